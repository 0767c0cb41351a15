//! The balance layer: the bottom of the per-attempt stack above the
//! endpoint. It reads the [`RouteDecision`], picks an endpoint from the
//! decision's cluster, records the pick as a [`PickedEndpoint`] extension
//! and calls the inner per-endpoint service (by default
//! [`EndpointService`](crate::endpoint::EndpointService); stack.rs puts the
//! outlier layer between them).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Request;
use pin_project_lite::pin_project;

use crate::BoxError;
use crate::context::RouteDecision;
use crate::endpoint::PickedEndpoint;

/// Wraps a per-endpoint service in [`Balance`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BalanceLayer;

impl<S> tower::Layer<S> for BalanceLayer {
    type Service = Balance<S>;
    fn layer(&self, inner: S) -> Balance<S> {
        Balance { inner }
    }
}

/// Picks an endpoint per request and hands the request to `S`.
#[derive(Debug, Clone)]
pub struct Balance<S> {
    inner: S,
}

impl<S> Balance<S> {
    /// Balances over `inner`, the per-endpoint service.
    pub fn new(inner: S) -> Self {
        Balance { inner }
    }
}

impl<S, B> tower::Service<Request<B>> for Balance<S>
where
    S: tower::Service<Request<B>, Error = BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let picked = match RouteDecision::of(&req) {
            Some(d) => d.cluster.balancer.pick(d.hash),
            None => Err(crate::error::unavailable(
                "no route decision on the request (the route layer, or the caller, must set one)",
            )),
        };
        match picked {
            Ok(ep) => {
                req.extensions_mut().insert(PickedEndpoint(ep));
                ResponseFuture::inner(self.inner.call(req))
            }
            Err(e) => ResponseFuture::failed(e),
        }
    }
}

pin_project! {
    /// The inner service's future, or the pick's error.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = Proj]
    #[derive(Debug)]
    enum Kind<F> {
        Inner { #[pin] fut: F },
        Failed { err: Option<BoxError> },
    }
}

impl<F> ResponseFuture<F> {
    fn inner(fut: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { fut },
        }
    }

    fn failed(err: BoxError) -> Self {
        ResponseFuture {
            kind: Kind::Failed { err: Some(err) },
        }
    }
}

impl<F, T> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            Proj::Inner { fut } => fut.poll(cx),
            Proj::Failed { err } => Poll::Ready(Err(err
                .take()
                .unwrap_or_else(|| crate::error::unavailable("polled after completion")))),
        }
    }
}
