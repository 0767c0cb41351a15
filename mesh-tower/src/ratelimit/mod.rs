//! Local rate limiting. STUB: being written.

/// A token bucket.
#[derive(Debug, Default)]
pub struct TokenBucket {}
