//! One endpoint's outlier state: atomics only, written by the request path
//! (counts) and the detector (ejection).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use tokio::sync::Notify;

/// `pending` bits: a consecutive-failure threshold was reached.
pub(super) const PENDING_5XX: u8 = 1;
pub(super) const PENDING_GATEWAY: u8 = 2;

/// Per-endpoint outlier counters and ejection state.
#[derive(Debug, Default)]
pub struct EndpointOutlier {
    successes: AtomicU64,
    failures: AtomicU64,
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// Consecutive thresholds set by the detector: 5xx in the high half,
    /// gateway in the low half; 0 = off.
    thresholds: AtomicU64,
    pending: AtomicU8,
    ejected: AtomicBool,
    ejections: AtomicU64,
    /// The detector to wake when a threshold is reached.
    wake: ArcSwapOption<Notify>,
}

impl AsRef<EndpointOutlier> for EndpointOutlier {
    fn as_ref(&self) -> &EndpointOutlier {
        self
    }
}

impl EndpointOutlier {
    /// Fresh state: not ejected, nothing counted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the endpoint is ejected (the picker skips it).
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// How many times it was ejected, for metrics.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Counts one attempt: a success, or a failure that is a gateway error
    /// (502/503/504, UNAVAILABLE, a connection failure) or not.
    pub fn record(&self, success: bool, gateway_error: bool) {
        if success {
            self.successes.fetch_add(1, Ordering::Relaxed);
            // Avoid writing shared lines when already zero.
            if self.consecutive_5xx.load(Ordering::Relaxed) != 0 {
                self.consecutive_5xx.store(0, Ordering::Relaxed);
            }
            if self.consecutive_gateway.load(Ordering::Relaxed) != 0 {
                self.consecutive_gateway.store(0, Ordering::Relaxed);
            }
            return;
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        let thresholds = self.thresholds.load(Ordering::Relaxed);
        let (t5xx, tgw) = ((thresholds >> 32) as u32, thresholds as u32);
        let mut reached = 0;
        let n = self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
        if t5xx != 0 && n == t5xx {
            reached |= PENDING_5XX;
        }
        if gateway_error {
            let n = self.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1;
            if tgw != 0 && n == tgw {
                reached |= PENDING_GATEWAY;
            }
        } else if self.consecutive_gateway.load(Ordering::Relaxed) != 0 {
            self.consecutive_gateway.store(0, Ordering::Relaxed);
        }
        if reached != 0 {
            self.pending.fetch_or(reached, Ordering::AcqRel);
            if let Some(n) = self.wake.load().as_ref() {
                n.notify_one();
            }
        }
    }

    /// The counts since the last call, resetting them (A50's bucket swap).
    pub(super) fn take_counts(&self) -> (u64, u64) {
        (
            self.successes.swap(0, Ordering::Relaxed),
            self.failures.swap(0, Ordering::Relaxed),
        )
    }

    pub(super) fn take_pending(&self) -> u8 {
        self.pending.swap(0, Ordering::AcqRel)
    }

    pub(super) fn attach(&self, wake: &Arc<Notify>, consecutive_5xx: u32, gateway: u32) {
        let packed = (u64::from(consecutive_5xx) << 32) | u64::from(gateway);
        self.thresholds.store(packed, Ordering::Relaxed);
        let current = self.wake.load();
        if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, wake)) {
            self.wake.store(Some(wake.clone()));
        }
    }

    pub(super) fn detach(&self) {
        self.thresholds.store(0, Ordering::Relaxed);
        self.wake.store(None);
    }

    pub(super) fn set_ejected(&self, ejected: bool) {
        if ejected {
            self.ejections.fetch_add(1, Ordering::Relaxed);
        }
        self.ejected.store(ejected, Ordering::Relaxed);
        self.reset_consecutive();
    }

    fn reset_consecutive(&self) {
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
        self.pending.store(0, Ordering::Relaxed);
    }
}
