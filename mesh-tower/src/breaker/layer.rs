//! The breaker layer.

use std::sync::Arc;

use tower::Layer;

use super::{Breaker, BreakerService};

/// Counts each attempt against its cluster's `max_requests`. Place it
/// below retry (each attempt counts) and above balance.
#[derive(Debug, Clone, Default)]
pub struct BreakerLayer {
    fixed: Option<Arc<Breaker>>,
}

impl BreakerLayer {
    /// Uses the breaker of the cluster in each request's
    /// [`RouteDecision`](crate::context::RouteDecision); requests without
    /// one pass uncounted.
    pub fn new() -> Self {
        BreakerLayer { fixed: None }
    }

    /// Uses `breaker` for every request (a plain tower user's one cluster).
    pub fn fixed(breaker: Arc<Breaker>) -> Self {
        BreakerLayer {
            fixed: Some(breaker),
        }
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = BreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService::new(inner, self.fixed.clone())
    }
}
