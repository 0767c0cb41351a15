//! The retry layer and its settings.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use mesh_core::resource::route::RetryPolicy;
use tower::Layer;

use super::{DEFAULT_MAX_BUFFERED_BYTES, MAX_ATTEMPTS, RetryService};
use crate::breaker::Breaker;

/// Settings shared by a retry layer's services.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) policy: Option<Arc<RetryPolicy>>,
    pub(super) breaker: Option<Arc<Breaker>>,
    pub(super) max_buffered_bytes: usize,
    pub(super) max_attempts: u32,
    /// Per-call RNG seeds are drawn from this (splitmix64), so a seeded
    /// layer gives the same jitter in the same call order.
    pub(super) seeds: AtomicU64,
}

/// Retries RPCs once per RPC, above the breaker (see the module docs).
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: Option<Arc<RetryPolicy>>,
    breaker: Option<Arc<Breaker>>,
    max_buffered_bytes: usize,
    max_attempts: u32,
    seed: Option<u64>,
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryLayer {
    /// Takes the policy and breaker from each request's route decision.
    pub fn new() -> Self {
        RetryLayer {
            policy: None,
            breaker: None,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            max_attempts: MAX_ATTEMPTS,
            seed: None,
        }
    }

    /// Uses `policy` for every request (over any route decision's).
    pub fn policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// Asks `breaker` for retry slots (over any route decision's cluster).
    pub fn breaker(mut self, breaker: Arc<Breaker>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// The request bytes buffered for replay; a longer body is not retried.
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.max_buffered_bytes = bytes;
        self
    }

    /// The cap on attempts per RPC (5 by default, A44).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Seeds the jitter RNG, for deterministic tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = RetryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let settings = Settings {
            policy: self.policy.clone(),
            breaker: self.breaker.clone(),
            max_buffered_bytes: self.max_buffered_bytes,
            max_attempts: self.max_attempts,
            seeds: AtomicU64::new(self.seed.unwrap_or_else(rand::random)),
        };
        RetryService::new(inner, Arc::new(settings))
    }
}
