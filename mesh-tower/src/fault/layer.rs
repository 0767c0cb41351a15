//! The fault layer.

use std::sync::atomic::AtomicU64;

use tower::Layer;

use super::{ACTIVE_FAULTS, Fault};
use crate::route::RandomSource;

/// Injects each route's faults ([`Fault`]).
#[derive(Clone, Debug)]
pub struct FaultLayer {
    rng: RandomSource,
    active: &'static AtomicU64,
}

impl Default for FaultLayer {
    fn default() -> Self {
        FaultLayer {
            rng: RandomSource::Thread,
            active: &ACTIVE_FAULTS,
        }
    }
}

impl FaultLayer {
    /// Faults drawn from the thread's RNG, counted process-wide.
    pub fn new() -> Self {
        Self::default()
    }

    /// Draws percentages from `rng` (seeded in tests).
    pub fn with_rng(mut self, rng: RandomSource) -> Self {
        self.rng = rng;
        self
    }

    /// Counts active faults in `active` instead of the process-wide
    /// [`ACTIVE_FAULTS`] (isolated tests).
    pub fn with_active_counter(mut self, active: &'static AtomicU64) -> Self {
        self.active = active;
        self
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = Fault<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Fault {
            inner,
            rng: self.rng.clone(),
            active: self.active,
        }
    }
}
