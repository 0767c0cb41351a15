//! The breaker service: takes a `max_requests` slot per attempt.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

use super::{Breaker, GuardedBody, ResponseFuture};
use crate::BoxError;
use crate::context::RouteDecision;

/// Fails an attempt at once when its cluster is at `max_requests`;
/// otherwise passes it on, holding the slot until the response body ends.
#[derive(Debug, Clone)]
pub struct BreakerService<S> {
    inner: S,
    fixed: Option<Arc<Breaker>>,
}

impl<S> BreakerService<S> {
    /// Wraps `inner`; `fixed` overrides the route decision's breaker.
    pub fn new(inner: S, fixed: Option<Arc<Breaker>>) -> Self {
        BreakerService { inner, fixed }
    }
}

impl<S, ReqB, ResB> Service<http::Request<ReqB>> for BreakerService<S>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<GuardedBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        let breaker = match &self.fixed {
            Some(b) => Some(b),
            None => RouteDecision::of(&req).map(|d| &d.cluster.breaker),
        };
        let guard = match breaker.map(Breaker::try_request) {
            None => None,
            Some(Ok(guard)) => Some(guard),
            Some(Err(overflow)) => return ResponseFuture::overflow(overflow),
        };
        ResponseFuture::called(self.inner.call(req), guard)
    }
}
