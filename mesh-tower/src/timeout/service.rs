//! The timeout service: computes the deadline and starts its timer.

use std::task::{Context, Poll};

use tower::Service;

use super::{
    Deadline, DeadlineBody, GRPC_TIMEOUT, ResponseFuture, effective_deadline, encode_grpc_timeout,
    parse_grpc_timeout,
};
use crate::BoxError;
use crate::context::RouteDecision;

/// Fails an RPC with DEADLINE_EXCEEDED when its deadline passes, before
/// or during the response body.
#[derive(Debug, Clone)]
pub struct TimeoutService<S> {
    inner: S,
}

impl<S> TimeoutService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        TimeoutService { inner }
    }
}

impl<S, ReqB, ResB> Service<http::Request<ReqB>> for TimeoutService<S>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<DeadlineBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<ReqB>) -> Self::Future {
        let caller = req
            .headers()
            .get(GRPC_TIMEOUT)
            .and_then(|v| parse_grpc_timeout(v.as_bytes()));
        let decision = RouteDecision::of(&req);
        let route = decision.map(|d| d.route.clone());
        let deadline =
            effective_deadline(caller, route.as_deref()).map(|(budget, limit)| Deadline {
                at: tokio::time::Instant::now() + budget,
                budget,
                limit,
            });
        if let Some(d) = &deadline {
            req.headers_mut()
                .insert(GRPC_TIMEOUT, encode_grpc_timeout(d.budget));
            req.extensions_mut().insert(*d);
        }
        ResponseFuture::new(self.inner.call(req), deadline, route)
    }
}
