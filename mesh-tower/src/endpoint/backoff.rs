//! gRPC's connection backoff (`doc/connection-backoff.md`): how long to
//! wait between connect attempts to one endpoint, and how long one attempt
//! may take.
//!
//! This module only computes durations; the connection state machine
//! ([`super::pool`]) sleeps on them.

use std::time::Duration;

use rand::Rng;

/// Connection backoff parameters. [`Default`] is gRPC's: 1 s initial,
/// ×1.6, ±20 % jitter, 120 s max, 20 s minimum connect timeout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectBackoff {
    /// Delay after the first failed attempt.
    pub initial: Duration,
    /// Growth factor between successive delays.
    pub multiplier: f64,
    /// Relative jitter applied to every delay after the first (0.2 = ±20 %).
    pub jitter: f64,
    /// Upper bound of the un-jittered delay.
    pub max: Duration,
    /// The shortest time one connect attempt (TCP + HTTP/2 handshake) may
    /// take before it counts as failed.
    pub min_connect_timeout: Duration,
}

impl Default for ConnectBackoff {
    fn default() -> Self {
        ConnectBackoff {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            jitter: 0.2,
            max: Duration::from_secs(120),
            min_connect_timeout: Duration::from_secs(20),
        }
    }
}

/// The state of one run of failed attempts: reset after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    params: ConnectBackoff,
    /// The un-jittered delay of the next attempt; `None` before the first.
    current: Option<Duration>,
}

impl Backoff {
    /// A fresh sequence.
    pub fn new(params: ConnectBackoff) -> Self {
        Backoff {
            params,
            current: None,
        }
    }

    /// Forgets earlier failures (after a successful connect).
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// How long the next attempt may take: the larger of the minimum
    /// connect timeout and the current backoff (gRPC's
    /// `max(current_deadline, now + MIN_CONNECT_TIMEOUT)`).
    pub fn connect_timeout(&self) -> Duration {
        let current = self.current.unwrap_or(self.params.initial);
        current.max(self.params.min_connect_timeout)
    }

    /// The delay between the start of the attempt that just failed and the
    /// next attempt. The first is `initial` exactly; later ones grow by
    /// `multiplier` up to `max` and are jittered by ±`jitter`.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let p = &self.params;
        match self.current {
            None => {
                self.current = Some(p.initial);
                p.initial
            }
            Some(cur) => {
                let next = cur.mul_f64(p.multiplier).min(p.max);
                self.current = Some(next);
                let jitter = if p.jitter > 0.0 {
                    rng.random_range(-p.jitter..=p.jitter)
                } else {
                    0.0
                };
                next.mul_f64((1.0 + jitter).max(0.0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn sequence_grows_by_1_6_within_jitter_and_caps_at_max() {
        let mut b = Backoff::new(ConnectBackoff::default());
        let mut rng = SmallRng::seed_from_u64(7);
        assert_eq!(b.next_delay(&mut rng), Duration::from_secs(1));
        let mut expected = 1.0_f64;
        let mut saw_low = false;
        let mut saw_high = false;
        for _ in 0..40 {
            expected = (expected * 1.6).min(120.0);
            let d = b.next_delay(&mut rng).as_secs_f64();
            assert!(
                d >= expected * 0.8 - 1e-9 && d <= expected * 1.2 + 1e-9,
                "delay {d} outside ±20% of {expected}"
            );
            saw_low |= d < expected;
            saw_high |= d > expected;
        }
        assert!(saw_low && saw_high, "jitter goes both ways");
        assert!(expected >= 120.0, "reached the cap");
    }

    #[test]
    fn connect_timeout_is_at_least_the_minimum_and_follows_the_backoff() {
        let mut b = Backoff::new(ConnectBackoff::default());
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(b.connect_timeout(), Duration::from_secs(20));
        for _ in 0..10 {
            b.next_delay(&mut rng);
        }
        // 1.6^9 ≈ 68.7 s: above the 20 s minimum.
        assert!(b.connect_timeout() > Duration::from_secs(60));
        b.reset();
        assert_eq!(b.next_delay(&mut rng), Duration::from_secs(1));
    }

    #[test]
    fn zero_jitter_is_exact() {
        let params = ConnectBackoff {
            jitter: 0.0,
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_millis(500),
            ..ConnectBackoff::default()
        };
        let mut b = Backoff::new(params);
        let mut rng = SmallRng::seed_from_u64(1);
        let got: Vec<u64> = (0..5)
            .map(|_| b.next_delay(&mut rng).as_millis() as u64)
            .collect();
        assert_eq!(got, [100, 200, 400, 500, 500]);
    }
}
