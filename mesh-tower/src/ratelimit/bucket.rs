//! The token bucket: full at start, `tokens_per_fill` more every
//! `fill_interval`, never above `max_tokens`.
//!
//! Lock-free with one atomic: the bucket keeps `taken`, a count of tokens
//! consumed or lost to the cap, and derives the tokens ever added from the
//! elapsed time (`max_tokens + fills × tokens_per_fill`), so refills cost
//! nothing until a request looks (computed lazily, no timer task).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mesh_core::resource::filter::{LocalRateLimit, TokenBucket as BucketConfig};
use tokio::time::Instant;

use crate::route::RandomSource;

/// What the bucket decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Let it through.
    Admitted,
    /// Over the limit, but `filter_enforced` said not to reject it (shadow
    /// mode): let it through, counted.
    Shadowed,
    /// Over the limit: reject it.
    Rejected,
}

/// One local rate limit: its config and its tokens. Shared (in an `Arc`) by
/// every route the config applies to.
#[derive(Debug)]
pub struct TokenBucket {
    config: LocalRateLimit,
    max_tokens: u64,
    tokens_per_fill: u64,
    fill_interval_nanos: u64,
    start: Instant,
    /// Tokens consumed, plus those dropped because the bucket was full.
    taken: AtomicU64,
    limited: AtomicU64,
}

impl TokenBucket {
    /// The bucket of a `local_ratelimit` config; `None` when the config has
    /// no token bucket (a top-level config relying on per-route ones).
    pub fn new(config: LocalRateLimit) -> Option<Self> {
        let bucket = config.token_bucket?;
        Some(Self::build(config, bucket))
    }

    /// A bucket that is always checked and always enforced (a plain tower
    /// user's static limit).
    pub fn from_bucket(bucket: BucketConfig) -> Self {
        let config = LocalRateLimit {
            stat_prefix: "local_rate_limit".into(),
            token_bucket: Some(bucket),
            filter_enabled: mesh_core::resource::common::Fraction::ALWAYS,
            filter_enforced: mesh_core::resource::common::Fraction::ALWAYS,
            status: 429,
            rate_limited_as_resource_exhausted: false,
        };
        Self::build(config, bucket)
    }

    fn build(config: LocalRateLimit, bucket: BucketConfig) -> Self {
        // Validation guarantees a positive interval; clamp anyway so a
        // hand-built config cannot divide by zero.
        let nanos = bucket
            .fill_interval
            .as_nanos()
            .clamp(1, u128::from(u64::MAX)) as u64;
        TokenBucket {
            config,
            max_tokens: u64::from(bucket.max_tokens),
            tokens_per_fill: u64::from(bucket.tokens_per_fill),
            fill_interval_nanos: nanos,
            start: Instant::now(),
            taken: AtomicU64::new(0),
            limited: AtomicU64::new(0),
        }
    }

    /// The config this bucket enforces.
    pub fn config(&self) -> &LocalRateLimit {
        &self.config
    }

    /// Tokens ever added by `now` (the initial fill included).
    fn added(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        let fills =
            (elapsed / u128::from(self.fill_interval_nanos)).min(u128::from(u64::MAX)) as u64;
        self.max_tokens
            .saturating_add(fills.saturating_mul(self.tokens_per_fill))
    }

    /// Takes a token at `now` if one is left.
    pub fn try_acquire_at(&self, now: Instant) -> bool {
        let added = self.added(now);
        // Tokens beyond the cap were never in the bucket: count them taken.
        let floor = added.saturating_sub(self.max_tokens);
        let mut taken = self.taken.load(Ordering::Relaxed);
        loop {
            let effective = taken.max(floor);
            if effective >= added {
                return false;
            }
            match self.taken.compare_exchange_weak(
                taken,
                effective + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => taken = actual,
            }
        }
    }

    /// Takes a token now if one is left.
    pub fn try_acquire(&self) -> bool {
        self.try_acquire_at(Instant::now())
    }

    /// Tokens left at `now`.
    pub fn available_at(&self, now: Instant) -> u64 {
        let added = self.added(now);
        let taken = self
            .taken
            .load(Ordering::Relaxed)
            .max(added.saturating_sub(self.max_tokens));
        added.saturating_sub(taken)
    }

    /// How long one fill takes.
    pub fn fill_interval(&self) -> Duration {
        Duration::from_nanos(self.fill_interval_nanos)
    }

    /// Requests found over the limit so far (rejected or shadowed).
    pub fn limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }

    /// Checks one request: `filter_enabled` decides whether the bucket is
    /// consulted, `filter_enforced` whether an over-limit request is
    /// rejected (Envoy's semantics).
    pub fn admit(&self, rng: &RandomSource) -> Admission {
        if !rng.hit(self.config.filter_enabled) || self.try_acquire() {
            return Admission::Admitted;
        }
        self.limited.fetch_add(1, Ordering::Relaxed);
        if rng.hit(self.config.filter_enforced) {
            Admission::Rejected
        } else {
            Admission::Shadowed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::resource::common::Fraction;

    fn bucket(max: u32, per_fill: u32, interval_ms: u64) -> TokenBucket {
        TokenBucket::from_bucket(BucketConfig {
            max_tokens: max,
            tokens_per_fill: per_fill,
            fill_interval: Duration::from_millis(interval_ms),
        })
    }

    fn drain(b: &TokenBucket) -> u32 {
        let mut n = 0;
        while b.try_acquire() {
            n += 1;
            assert!(n < 10_000, "bucket never empties");
        }
        n
    }

    #[tokio::test(start_paused = true)]
    async fn starts_full_and_refills_per_interval_up_to_the_cap() {
        let b = bucket(10, 3, 100);
        assert_eq!(b.available_at(Instant::now()), 10);
        assert_eq!(drain(&b), 10);
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(!b.try_acquire(), "no refill before a whole interval");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(drain(&b), 3);
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(drain(&b), 6, "two whole intervals");
        // A long idle period fills the bucket to the cap, not beyond.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(b.available_at(Instant::now()), 10);
        assert_eq!(drain(&b), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn partial_use_then_refill_stays_capped() {
        let b = bucket(5, 2, 1000);
        assert!(b.try_acquire());
        assert!(b.try_acquire());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.available_at(Instant::now()), 5, "3 left + 2, capped at 5");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.available_at(Instant::now()), 5);
        assert_eq!(drain(&b), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_max_tokens_limits_everything() {
        let b = bucket(0, 1, 10);
        assert!(!b.try_acquire());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!b.try_acquire());
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_takers_never_overdraw() {
        let b = std::sync::Arc::new(bucket(1000, 1, 1_000_000));
        let now = Instant::now();
        let mut threads = Vec::new();
        for _ in 0..4 {
            let b = b.clone();
            threads.push(std::thread::spawn(move || {
                (0..600).filter(|_| b.try_acquire_at(now)).count()
            }));
        }
        let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn enabled_and_enforced_fractions() {
        let mut cfg = TokenBucket::from_bucket(BucketConfig {
            max_tokens: 0,
            tokens_per_fill: 1,
            fill_interval: Duration::from_secs(1),
        })
        .config()
        .clone();
        let rng = RandomSource::seeded(1);
        cfg.filter_enabled = Fraction::NEVER;
        let b = TokenBucket::new(cfg.clone()).unwrap();
        assert_eq!(
            b.admit(&rng),
            Admission::Admitted,
            "not enabled: not checked"
        );
        assert_eq!(b.limited(), 0);
        cfg.filter_enabled = Fraction::ALWAYS;
        cfg.filter_enforced = Fraction::NEVER;
        let b = TokenBucket::new(cfg.clone()).unwrap();
        assert_eq!(b.admit(&rng), Admission::Shadowed);
        assert_eq!(b.limited(), 1);
        cfg.filter_enforced = Fraction::ALWAYS;
        let b = TokenBucket::new(cfg.clone()).unwrap();
        assert_eq!(b.admit(&rng), Admission::Rejected);
        // Half enforced: about half the limited requests are rejected.
        cfg.filter_enforced = Fraction::per_million(500_000);
        let b = TokenBucket::new(cfg).unwrap();
        let rejected = (0..10_000)
            .filter(|_| b.admit(&rng) == Admission::Rejected)
            .count();
        assert!((4_700..=5_300).contains(&rejected), "{rejected} of 10000");
    }

    #[test]
    fn no_bucket_no_limit() {
        let cfg = LocalRateLimit {
            stat_prefix: "p".into(),
            token_bucket: None,
            filter_enabled: Fraction::ALWAYS,
            filter_enforced: Fraction::ALWAYS,
            status: 429,
            rate_limited_as_resource_exhausted: false,
        };
        assert!(TokenBucket::new(cfg).is_none());
    }
}
