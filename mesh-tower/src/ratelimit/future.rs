//! The rate limit layer's response future: the inner call, or the
//! rejection.

/// Resolves to the inner response, or fails at once when limited.
pub type ResponseFuture<F> = crate::fail_fast::FailFast<F>;
