//! The randomness the route and fault layers draw from: the thread's RNG in
//! production, a seeded one in tests (so statistical behaviour can be
//! checked with stated tolerances).

use std::sync::{Arc, Mutex};

use mesh_core::resource::common::Fraction;
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng};

/// Where per-request draws come from. Cheap to clone; clones of a seeded
/// source share one sequence.
#[derive(Clone, Debug, Default)]
pub enum RandomSource {
    /// The thread-local RNG: no lock, no allocation (the default).
    #[default]
    Thread,
    /// A seeded RNG behind a mutex: deterministic sequences for tests.
    Seeded(Arc<Mutex<SmallRng>>),
}

impl RandomSource {
    /// A deterministic source.
    pub fn seeded(seed: u64) -> Self {
        RandomSource::Seeded(Arc::new(Mutex::new(SmallRng::seed_from_u64(seed))))
    }

    /// A uniform draw in `0..n` (`n` > 0; 0 yields 0).
    pub fn below(&self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        match self {
            RandomSource::Thread => rand::rng().random_range(0..n),
            RandomSource::Seeded(rng) => rng
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .random_range(0..n),
        }
    }

    /// A uniform draw in `0..1_000_000`, what `Fraction::contains` takes.
    pub fn per_million(&self) -> u32 {
        self.below(1_000_000)
    }

    /// Whether a request falls in `fraction`; draws only when the fraction
    /// is neither 0 nor 100%.
    pub fn hit(&self, fraction: Fraction) -> bool {
        match fraction.as_per_million() {
            0 => false,
            1_000_000.. => true,
            _ => fraction.contains(self.per_million()),
        }
    }

    /// A uniform `u64` (channel ids).
    pub fn next_u64(&self) -> u64 {
        match self {
            RandomSource::Thread => rand::rng().random(),
            RandomSource::Seeded(rng) => rng.lock().unwrap_or_else(|e| e.into_inner()).random(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sources_repeat_and_stay_in_range() {
        let a = RandomSource::seeded(7);
        let b = RandomSource::seeded(7);
        for _ in 0..1000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
        assert_eq!(a.below(0), 0);
        assert!(RandomSource::Thread.per_million() < 1_000_000);
    }
}
