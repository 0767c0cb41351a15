//! Failures as gRPC statuses, and the HTTP codes plain-HTTP callers get.
//!
//! Every layer fails a request with a `tonic::Status` whose message says
//! why (`circuit breaker max_requests=100 reached for cluster …`). Config
//! problems are UNAVAILABLE, never NOT_FOUND or INVALID_ARGUMENT (A88).

use tonic::{Code, Status};

use crate::BoxError;

/// UNAVAILABLE with `msg`, boxed for a layer's error.
pub fn unavailable(msg: impl Into<String>) -> BoxError {
    Box::new(Status::unavailable(msg))
}

/// A status with `code` and `msg`, boxed.
pub fn status(code: Code, msg: impl Into<String>) -> BoxError {
    Box::new(Status::new(code, msg))
}

/// The `tonic::Status` inside a layer error, if any (searching the source
/// chain, as tonic does).
pub fn find_status<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Status> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(s) = e.downcast_ref::<Status>() {
            return Some(s);
        }
        cur = e.source();
    }
    None
}

/// The HTTP status a plain-HTTP caller gets for a gRPC code (the inverse
/// of gRPC's HTTP → gRPC mapping where one exists).
pub fn http_status_for(code: Code) -> http::StatusCode {
    use http::StatusCode as H;
    match code {
        Code::Ok => H::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => H::BAD_REQUEST,
        Code::Unauthenticated => H::UNAUTHORIZED,
        Code::PermissionDenied => H::FORBIDDEN,
        Code::NotFound | Code::Unimplemented => H::NOT_FOUND,
        Code::ResourceExhausted => H::TOO_MANY_REQUESTS,
        Code::DeadlineExceeded => H::GATEWAY_TIMEOUT,
        Code::Unavailable => H::SERVICE_UNAVAILABLE,
        Code::Cancelled => H::from_u16(499).unwrap_or(H::BAD_REQUEST),
        _ => H::INTERNAL_SERVER_ERROR,
    }
}
