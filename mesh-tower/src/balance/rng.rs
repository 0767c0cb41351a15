//! A lock-free random source for picks: SplitMix64 over one atomic
//! counter. Each draw is one `fetch_add` and a few multiplies; threads
//! never wait on each other. Seedable, so statistical tests are
//! deterministic (when one thread picks).

use std::sync::atomic::{AtomicU64, Ordering};

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 with an atomic state.
#[derive(Debug)]
pub(crate) struct AtomicRng(AtomicU64);

impl AtomicRng {
    pub(crate) fn new(seed: u64) -> Self {
        AtomicRng(AtomicU64::new(seed))
    }

    pub(crate) fn reseed(&self, seed: u64) {
        self.0.store(seed, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift (no division).
    #[inline]
    pub(crate) fn below(&self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_is_roughly_uniform_and_seeded() {
        let a = AtomicRng::new(42);
        let b = AtomicRng::new(42);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            counts[x] += 1;
        }
        for c in counts {
            assert!((9_500..=10_500).contains(&c), "{counts:?}");
        }
    }
}
