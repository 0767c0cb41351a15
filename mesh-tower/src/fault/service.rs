//! The fault service.

use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};

use tower::Service;

use super::decide;
use super::future::ResponseFuture;
use crate::BoxError;
use crate::context::RouteDecision;
use crate::ratelimit::is_grpc;
use crate::route::RandomSource;

/// Injects the route's delay and abort faults (see the
/// [module docs](super)).
#[derive(Clone, Debug)]
pub struct Fault<S> {
    pub(super) inner: S,
    pub(super) rng: RandomSource,
    pub(super) active: &'static AtomicU64,
}

impl<S, B> Service<http::Request<B>> for Fault<S>
where
    S: Service<http::Request<B>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let injection = RouteDecision::of(&req).and_then(|d| {
            let config = d.route.fault.as_deref()?;
            decide(config, req.headers(), is_grpc(&req), &self.rng, self.active)
                .map(|i| (i, d.route.clone()))
        });
        let Some((injection, route)) = injection else {
            return ResponseFuture::inner(self.inner.call(req), None);
        };
        let abort = injection.abort.map(|code| {
            crate::error::status(
                code,
                format!("RPC aborted by fault injection on route {}", route.name),
            )
        });
        match (injection.delay, abort) {
            (Some(delay), abort) => {
                // Take the service `poll_ready` readied; leave a clone.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::delay(
                    tokio::time::sleep(delay),
                    ready,
                    req,
                    abort,
                    injection.guard,
                )
            }
            (None, Some(abort)) => ResponseFuture::failed(abort),
            (None, None) => ResponseFuture::inner(self.inner.call(req), Some(injection.guard)),
        }
    }
}
