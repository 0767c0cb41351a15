//! The outlier observer's response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::service::{error_outcome, response_outcome};
use super::{EndpointOutlier, ObservedBody};
use crate::BoxError;

pin_project! {
    /// Records an attempt's outcome when its headers or error arrive, or
    /// hands the endpoint to the body to record at the trailers.
    #[derive(Debug)]
    pub struct ResponseFuture<F, E> {
        #[pin]
        inner: F,
        endpoint: Option<Arc<E>>,
    }
}

impl<F, E> ResponseFuture<F, E> {
    pub(super) fn new(inner: F, endpoint: Option<Arc<E>>) -> Self {
        ResponseFuture { inner, endpoint }
    }
}

impl<F, E, B, Err> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<http::Response<B>, Err>>,
    Err: Into<BoxError>,
    E: AsRef<EndpointOutlier>,
{
    type Output = Result<http::Response<ObservedBody<B, E>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        // No endpoint: the attempt goes unobserved.
        let endpoint = this.endpoint.take();
        match out {
            Err(e) => {
                let e: BoxError = e.into();
                if let Some(ep) = endpoint
                    && let Some((ok, gw)) = error_outcome(e.as_ref())
                {
                    (*ep).as_ref().record(ok, gw);
                }
                Poll::Ready(Err(e))
            }
            Ok(res) => {
                let pending = match (endpoint, response_outcome(res.status(), res.headers())) {
                    (Some(ep), Some((ok, gw))) => {
                        (*ep).as_ref().record(ok, gw);
                        None
                    }
                    (ep, _) => ep,
                };
                Poll::Ready(Ok(res.map(|b| ObservedBody::new(b, pending))))
            }
        }
    }
}
