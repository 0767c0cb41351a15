//! Per-endpoint load, read by the least-request picker: requests in flight
//! and a peak-sensitive EWMA of response latency (linkerd's PeakEWMA).
//!
//! Why not in-flight counts alone: on loopback with few backends, P2C on
//! in-flight counts was measured to fatten p99 (../shared/PERF.md); the
//! counts are small and noisy, and ties resolve towards whoever answered
//! last. Weighting a latency estimate by in-flight + 1 keeps P2C's
//! preference for idle endpoints but ranks them by how fast they answer,
//! so a slow endpoint is avoided while fast ones share load.
//!
//! Everything is an atomic updated without locks; concurrent updates may
//! lose a sample, which an estimate tolerates.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How fast the latency estimate forgets (linkerd's default decay).
pub const DEFAULT_DECAY: Duration = Duration::from_secs(10);

/// What least-request compares between its choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadSignal {
    /// `peak_ewma_latency × (in_flight + 1)` (the default).
    #[default]
    PeakEwma,
    /// Requests in flight only (gRPC's A48 least request).
    InFlight,
}

/// The load of one endpoint.
#[derive(Debug)]
pub struct Load {
    in_flight: AtomicU32,
    /// EWMA of latency in nanoseconds, as f64 bits; 0 until the first sample.
    ewma_ns: AtomicU64,
    /// When `ewma_ns` was last updated, in ns since `epoch`.
    stamp_ns: AtomicU64,
    epoch: Instant,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            in_flight: AtomicU32::new(0),
            ewma_ns: AtomicU64::new(0f64.to_bits()),
            stamp_ns: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Load {
    /// Requests sent and not yet answered (response headers or error).
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The latency estimate (zero before the first answer).
    pub fn ewma(&self) -> Duration {
        Duration::from_nanos(f64::from_bits(self.ewma_ns.load(Ordering::Relaxed)) as u64)
    }

    /// The cost the picker compares: lower is better.
    #[inline]
    pub fn cost(&self, signal: LoadSignal) -> f64 {
        let pending = f64::from(self.in_flight.load(Ordering::Relaxed)) + 1.0;
        match signal {
            LoadSignal::InFlight => pending,
            // An endpoint without samples costs nothing, so it gets tried.
            LoadSignal::PeakEwma => f64::from_bits(self.ewma_ns.load(Ordering::Relaxed)) * pending,
        }
    }

    pub(crate) fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn finish(&self, latency: Option<Duration>, now: Instant) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(rtt) = latency {
            self.observe(rtt, now, DEFAULT_DECAY);
        }
    }

    /// Folds one latency sample in: a sample above the estimate replaces it
    /// (peak), a lower one decays it with weight `exp(-elapsed / decay)`.
    pub fn observe(&self, rtt: Duration, now: Instant, decay: Duration) {
        let rtt = rtt.as_nanos() as f64;
        let now_ns = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        let prev_stamp = self.stamp_ns.swap(now_ns, Ordering::Relaxed);
        let prev = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let next = if prev == 0.0 || rtt > prev {
            rtt
        } else {
            let elapsed = now_ns.saturating_sub(prev_stamp) as f64;
            let w = (-elapsed / decay.as_nanos() as f64).exp();
            prev * w + rtt * (1.0 - w)
        };
        self.ewma_ns.store(next.to_bits(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_ewma_jumps_up_and_decays_down() {
        let l = Load::default();
        let t0 = l.epoch;
        l.observe(Duration::from_millis(10), t0, DEFAULT_DECAY);
        assert_eq!(l.ewma(), Duration::from_millis(10));
        l.observe(Duration::from_millis(50), t0, DEFAULT_DECAY);
        assert_eq!(l.ewma(), Duration::from_millis(50), "a peak replaces");
        // One decay period later a 10 ms sample pulls it 63 % of the way.
        l.observe(Duration::from_millis(10), t0 + DEFAULT_DECAY, DEFAULT_DECAY);
        let ms = l.ewma().as_secs_f64() * 1e3;
        assert!((ms - (50.0 * (-1f64).exp() + 10.0 * (1.0 - (-1f64).exp()))).abs() < 0.01);
    }

    #[test]
    fn cost_weights_latency_by_pending() {
        let l = Load::default();
        assert_eq!(l.cost(LoadSignal::PeakEwma), 0.0);
        l.observe(Duration::from_micros(100), l.epoch, DEFAULT_DECAY);
        l.start();
        assert_eq!(l.cost(LoadSignal::PeakEwma), 200_000.0);
        assert_eq!(l.cost(LoadSignal::InFlight), 2.0);
        l.finish(None, l.epoch);
        assert_eq!(l.in_flight(), 0);
    }
}
