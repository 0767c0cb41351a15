//! The rate limit layer.

use tower::Layer;

use super::RateLimit;
use crate::route::RandomSource;

/// Applies each route's local rate limit ([`RateLimit`]).
#[derive(Clone, Debug, Default)]
pub struct RateLimitLayer {
    rng: RandomSource,
}

impl RateLimitLayer {
    /// A layer drawing `filter_enabled` / `filter_enforced` from the
    /// thread's RNG.
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer drawing from `rng` (seeded in tests).
    pub fn with_rng(rng: RandomSource) -> Self {
        RateLimitLayer { rng }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.rng.clone())
    }
}
