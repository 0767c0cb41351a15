//! Local rate limiting per route (Envoy's `local_ratelimit` filter): a
//! lock-free token bucket per filter config, checked once per RPC.
//!
//! The layer reads the bucket from the request's
//! [`RouteDecision`](crate::context::RouteDecision) (the route layer
//! resolved the most specific `local_ratelimit` config into it); a request
//! without a decision or without a bucket passes untouched. A limited gRPC
//! request fails UNAVAILABLE, or RESOURCE_EXHAUSTED with
//! `rate_limited_as_resource_exhausted`; a limited plain-HTTP request fails
//! with the code the edge turns into the configured HTTP status (429 by
//! default). It does not count descriptors or add `x-ratelimit-*` headers.

mod bucket;
pub mod future;
mod layer;
mod service;

pub use self::bucket::{Admission, TokenBucket};
pub use self::layer::RateLimitLayer;
pub use self::service::RateLimit;

/// The gRPC code whose HTTP mapping ([`crate::error::http_status_for`]) is
/// `status`, for failing plain-HTTP requests with a configured HTTP status;
/// `None` when no code maps to it.
pub(crate) fn code_for_http_status(status: u16) -> Option<tonic::Code> {
    use tonic::Code as C;
    let code = match status {
        400 => C::InvalidArgument,
        401 => C::Unauthenticated,
        403 => C::PermissionDenied,
        404 => C::NotFound,
        429 => C::ResourceExhausted,
        499 => C::Cancelled,
        500 => C::Internal,
        503 => C::Unavailable,
        504 => C::DeadlineExceeded,
        _ => return None,
    };
    Some(code)
}

/// Whether a request is gRPC (`content-type: application/grpc...`).
pub(crate) fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}
