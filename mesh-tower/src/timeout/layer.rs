//! The timeout layer.

use tower::Layer;

use super::TimeoutService;

/// Fixes each RPC's deadline when it starts (A31). Place it above fault
/// and retry.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeoutLayer {
    _priv: (),
}

impl TimeoutLayer {
    /// Reads limits from each request's route decision and `grpc-timeout`.
    pub fn new() -> Self {
        TimeoutLayer { _priv: () }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService::new(inner)
    }
}
