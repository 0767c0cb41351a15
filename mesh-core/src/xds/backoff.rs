//! Exponential backoff with jitter, for reconnecting the ADS stream.
//!
//! The defaults are gRPC's connection backoff (1 s initial, ×1.6, ±20%
//! jitter, 120 s max). The RNG is a small seeded generator so tests can pin
//! the sequence.

use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::SmallRng};

/// Backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// First delay.
    pub initial: Duration,
    /// Growth per attempt.
    pub multiplier: f64,
    /// Fraction of jitter either side (0.2 = ±20%).
    pub jitter: f64,
    /// Cap.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            jitter: 0.2,
            max: Duration::from_secs(120),
        }
    }
}

/// A backoff sequence.
#[derive(Debug)]
pub struct Backoff {
    config: BackoffConfig,
    current: Duration,
    rng: SmallRng,
}

impl Backoff {
    /// A sequence with a random seed.
    pub fn new(config: BackoffConfig) -> Self {
        Self::with_rng(config, SmallRng::from_rng(&mut rand::rng()))
    }

    /// A sequence with a given RNG (deterministic tests).
    pub fn with_rng(config: BackoffConfig, rng: SmallRng) -> Self {
        Backoff {
            current: config.initial,
            config,
            rng,
        }
    }

    /// The next delay, jittered; grows the base for next time.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        let grown = base.as_secs_f64() * self.config.multiplier;
        self.current = Duration::from_secs_f64(grown.min(self.config.max.as_secs_f64()));
        let j = self.config.jitter;
        let factor = if j > 0.0 {
            self.rng.random_range(1.0 - j..=1.0 + j)
        } else {
            1.0
        };
        Duration::from_secs_f64(base.as_secs_f64() * factor)
    }

    /// Back to the initial delay (after the stream delivered a response).
    pub fn reset(&mut self) {
        self.current = self.config.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_jitters_caps_and_resets() {
        let mut b = Backoff::with_rng(BackoffConfig::default(), SmallRng::seed_from_u64(7));
        let d: Vec<f64> = (0..14).map(|_| b.next_delay().as_secs_f64()).collect();
        assert!((0.8..=1.2).contains(&d[0]), "{d:?}");
        assert!((1.28..=1.92).contains(&d[1]), "{d:?}");
        assert!(
            d[13] <= 120.0 * 1.2 && d[13] >= 120.0 * 0.8,
            "capped: {d:?}"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs_f64(1.2));
    }
}
