//! When to renew and when to retry: pure functions of the certificate's
//! validity, the clock and a jitter sample, so they test without time.
//!
//! Renewal follows istio-agent: renew when `grace_ratio` of the lifetime
//! remains (half, by default), moved by up to ± `jitter_ratio` of the
//! lifetime so that workloads started together spread their requests.
//! The lifetime counts from when the certificate was received (or its
//! `not_before`, if later): CAs backdate `not_before` for clock skew, which
//! for short-lived certificates would otherwise put the renewal point in
//! the past. Failed requests are retried with exponential backoff, never
//! waiting longer than a quarter of the validity left, so a short-lived
//! certificate gets several attempts before it expires.

use std::time::{Duration, SystemTime};

/// The renewal point's placement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RenewalSchedule {
    pub(crate) grace_ratio: f64,
    pub(crate) jitter_ratio: f64,
}

impl RenewalSchedule {
    /// How long after `now` to renew a certificate received at `received`,
    /// valid from `not_before` until `not_after`; `sample` in [-1, 1]
    /// (values outside are clamped) places it within the jitter.
    pub(crate) fn renew_in(
        &self,
        received: SystemTime,
        not_before: SystemTime,
        not_after: SystemTime,
        now: SystemTime,
        sample: f64,
    ) -> Duration {
        let start = received.max(not_before);
        let lifetime = not_after.duration_since(start).unwrap_or_default();
        let jitter = self.jitter_ratio * sample.clamp(-1.0, 1.0);
        let elapsed_fraction = (1.0 - self.grace_ratio + jitter).clamp(0.0, 1.0);
        let at = start + lifetime.mul_f64(elapsed_fraction);
        at.duration_since(now).unwrap_or_default()
    }
}

/// Exponential backoff between failed requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// The delay after the `failures`-th consecutive failure (1-based):
    /// `initial · 2^(failures-1)`, at most `max`, moved by up to ±10 % by
    /// `sample` in [-1, 1], and at most a quarter of `valid_for` (the
    /// current certificate's remaining validity, if there is one) but never
    /// below `initial`.
    pub(crate) fn retry_in(
        &self,
        failures: u32,
        valid_for: Option<Duration>,
        sample: f64,
    ) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1 << exp).min(self.max);
        let mut delay = base.mul_f64(1.0 + 0.1 * sample.clamp(-1.0, 1.0));
        if let Some(left) = valid_for {
            delay = delay.min((left / 4).max(self.initial));
        }
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn renews_when_the_grace_fraction_remains() {
        let s = RenewalSchedule {
            grace_ratio: 0.5,
            jitter_ratio: 0.0,
        };
        // 100 s certificate received at issue: renew at 50 s.
        assert_eq!(s.renew_in(T0, T0, T0 + secs(100), T0, 0.7), secs(50));
        // Asked 20 s later: 30 s to go.
        assert_eq!(
            s.renew_in(T0, T0, T0 + secs(100), T0 + secs(20), 0.0),
            secs(30)
        );
        // Past the point: now.
        assert_eq!(
            s.renew_in(T0, T0, T0 + secs(100), T0 + secs(80), 0.0),
            Duration::ZERO
        );
        // Expired: now.
        assert_eq!(
            s.renew_in(T0, T0, T0 + secs(100), T0 + secs(200), 0.0),
            Duration::ZERO
        );
        let s = RenewalSchedule {
            grace_ratio: 0.2,
            jitter_ratio: 0.0,
        };
        assert_eq!(s.renew_in(T0, T0, T0 + secs(100), T0, 0.0), secs(80));
    }

    #[test]
    fn jitter_moves_the_point_within_its_ratio() {
        let s = RenewalSchedule {
            grace_ratio: 0.5,
            jitter_ratio: 0.1,
        };
        let at = |sample| s.renew_in(T0, T0, T0 + secs(100), T0, sample);
        assert_eq!(at(-1.0), secs(40));
        assert_eq!(at(1.0), secs(60));
        assert_eq!(at(0.5), secs(55));
        // Out-of-range samples are clamped.
        assert_eq!(at(-7.0), secs(40));
        assert_eq!(at(f64::INFINITY), secs(60));
    }

    #[test]
    fn a_backdated_not_before_does_not_shorten_the_lifetime() {
        let s = RenewalSchedule {
            grace_ratio: 0.5,
            jitter_ratio: 0.0,
        };
        // A 4 s certificate backdated by 60 s (as mesh-control's CA does),
        // received at T0+60: renew 2 s later, not immediately.
        let received = T0 + secs(60);
        assert_eq!(
            s.renew_in(received, T0, received + secs(4), received, 0.0),
            secs(2)
        );
        // A not_before in the future (clock skew) counts from there.
        assert_eq!(
            s.renew_in(T0, T0 + secs(10), T0 + secs(20), T0, 0.0),
            secs(15)
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_max() {
        let b = Backoff {
            initial: secs(1),
            max: secs(10),
        };
        let delays: Vec<_> = (1..=6).map(|n| b.retry_in(n, None, 0.0)).collect();
        assert_eq!(
            delays,
            [secs(1), secs(2), secs(4), secs(8), secs(10), secs(10)]
        );
        assert_eq!(b.retry_in(u32::MAX, None, 0.0), secs(10));
        assert_eq!(b.retry_in(2, None, 1.0), Duration::from_millis(2200));
        assert_eq!(b.retry_in(2, None, -1.0), Duration::from_millis(1800));
    }

    #[test]
    fn backoff_leaves_time_for_more_attempts_before_expiry() {
        let b = Backoff {
            initial: secs(1),
            max: secs(60),
        };
        // 40 s of validity left: wait at most 10 s.
        assert_eq!(b.retry_in(6, Some(secs(40)), 0.0), secs(10));
        // Almost expired: still no tighter than the initial delay.
        assert_eq!(b.retry_in(6, Some(secs(2)), 0.0), secs(1));
        assert_eq!(b.retry_in(1, Some(secs(400)), 0.0), secs(1));
    }
}
