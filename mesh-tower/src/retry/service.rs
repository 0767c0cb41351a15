//! The retry service: starts the first attempt and hands the rest to the
//! response future.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tower::Service;

use super::ResponseFuture;
use super::future::{Attempts, PolicyRef, RequestHead};
use super::layer::Settings;
use crate::BoxError;
use crate::context::RouteDecision;
use crate::timeout::Deadline;

/// Retries failed attempts on clones of the inner service.
#[derive(Debug, Clone)]
pub struct RetryService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> RetryService<S> {
    pub(super) fn new(inner: S, settings: Arc<Settings>) -> Self {
        RetryService { inner, settings }
    }

    fn next_seed(&self) -> u64 {
        // splitmix64 over a shared counter: lock-free and reproducible.
        let mut z = self
            .settings
            .seeds
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl<S, ResB> Service<http::Request<tonic::body::Body>> for RetryService<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let decision = RouteDecision::of(&req);
        let policy = match (&self.settings.policy, decision) {
            (Some(p), _) => Some(PolicyRef::Fixed(p.clone())),
            (None, Some(d)) if d.route.retry.is_some() => Some(PolicyRef::Route(d.route.clone())),
            _ => None,
        };
        let breaker = self
            .settings
            .breaker
            .clone()
            .or_else(|| decision.map(|d| d.cluster.breaker.clone()));
        let deadline = req.extensions().get::<Deadline>().copied();
        let (parts, body) = req.into_parts();
        let head = RequestHead::new(parts);
        let attempts = Attempts::new(
            policy,
            breaker,
            self.settings.max_attempts,
            deadline,
            SmallRng::seed_from_u64(self.next_seed()),
        );
        // The ready service takes the first attempt; its clone waits for
        // the next call (tower's contract: poll_ready again before it).
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::start(
            ready,
            head,
            body,
            self.settings.max_buffered_bytes,
            attempts,
        )
    }
}
