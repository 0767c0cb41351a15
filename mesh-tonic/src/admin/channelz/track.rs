//! [`TrackedService`]: counts every request of one server connection for
//! channelz (on the connection and on its server), the outcome read from
//! the response as [`TrackedBody`] reads it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::Service;

use super::calls::{Call, TrackedBody, Tracks};

/// Wraps a connection's service; clones share the counted target.
#[derive(Debug)]
pub(crate) struct TrackedService<S, T> {
    inner: S,
    target: Arc<T>,
}

impl<S: Clone, T> Clone for TrackedService<S, T> {
    fn clone(&self) -> Self {
        TrackedService {
            inner: self.inner.clone(),
            target: Arc::clone(&self.target),
        }
    }
}

impl<S, T> TrackedService<S, T> {
    /// Counts `inner`'s requests on `target`.
    pub(crate) fn new(inner: S, target: Arc<T>) -> Self {
        TrackedService { inner, target }
    }
}

impl<S, T, R, B> Service<Request<R>> for TrackedService<S, T>
where
    S: Service<Request<R>, Response = Response<B>>,
    T: Tracks,
    B: Body<Data = Bytes>,
{
    type Response = Response<TrackedBody<B, T>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future, T>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<R>) -> Self::Future {
        TrackedFuture {
            call: Some(Call::start(Arc::clone(&self.target))),
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The response of a [`TrackedService`], its body tracked.
    pub(crate) struct TrackedFuture<F, T: Tracks> {
        #[pin]
        inner: F,
        call: Option<Call<T>>,
    }
}

impl<F, T, B, E> Future for TrackedFuture<F, T>
where
    F: Future<Output = Result<Response<B>, E>>,
    T: Tracks,
    B: Body<Data = Bytes>,
{
    type Output = Result<Response<TrackedBody<B, T>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            // Dropping the call counts it as failed.
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(resp)) => resp,
        };
        let mut call = this.call.take();
        if let Some(call) = &mut call {
            call.on_head(resp.status(), resp.headers());
        }
        Poll::Ready(Ok(resp.map(|body| TrackedBody::new(body, call))))
    }
}
