//! The route layer's response future: the inner call, or the routing
//! failure.

/// Resolves to the inner response, or fails at once when the request could
/// not be routed.
pub type ResponseFuture<F> = crate::fail_fast::FailFast<F>;
