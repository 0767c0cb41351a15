//! Retry decisions and the backoff schedule, as pure functions.

use std::time::Duration;

use mesh_core::resource::route::{RetryBackOff, RetryOn, RetryPolicy};
use rand::Rng;
use tonic::Code;

use super::ErrorClass;

/// gRPC's cap on attempts per RPC, the first included (A44).
pub const MAX_ATTEMPTS: u32 = 5;
/// Request bytes buffered for replay by default; past it no retry.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 64 * 1024;
/// The header carrying the number of earlier attempts (A6).
pub const PREVIOUS_RPC_ATTEMPTS: &str = "grpc-previous-rpc-attempts";

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the result to the caller (success, committed, or not retryable).
    Return,
    /// Retry under the policy (counts as an attempt, after a backoff).
    Retry,
    /// Retry at once without counting: the server never saw the stream.
    Transparent,
}

/// Attempts an RPC may make under `policy`, the first included.
pub fn max_attempts(policy: Option<&RetryPolicy>, cap: u32) -> u32 {
    policy.map_or(1, |p| p.num_retries.saturating_add(1).min(cap).max(1))
}

/// The delay before retry number `retry` (1 for the first retry): random
/// in `[0, min(base × 2^(retry-1), max)]` (A44's full jitter).
pub fn backoff(back_off: &RetryBackOff, retry: u32, rng: &mut impl Rng) -> Duration {
    let exp = retry.saturating_sub(1).min(31);
    let ceiling = back_off
        .base_interval
        .saturating_mul(1u32 << exp)
        .min(back_off.max_interval);
    ceiling.mul_f64(rng.random::<f64>())
}

/// The verdict on an attempt that failed with an error.
pub fn verdict(
    class: &ErrorClass,
    policy: Option<&RetryPolicy>,
    transparent_left: bool,
) -> Verdict {
    if class.overflow {
        return Verdict::Return;
    }
    if class.unprocessed && transparent_left {
        return Verdict::Transparent;
    }
    let Some(p) = policy else {
        return Verdict::Return;
    };
    let on = p.retry_on;
    let any = |bits: &[RetryOn]| bits.iter().any(|b| on.contains(*b));
    let retry = on.retries_code(class.code)
        || (class.refused_stream && any(&[RetryOn::REFUSED_STREAM, RetryOn::HTTP_5XX]))
        || (class.reset && any(&[RetryOn::RESET, RetryOn::HTTP_5XX]))
        || (class.connect_failure
            && any(&[
                RetryOn::CONNECT_FAILURE,
                RetryOn::HTTP_5XX,
                RetryOn::GATEWAY_ERROR,
            ]))
        || (class.per_try_timeout && any(&[RetryOn::HTTP_5XX, RetryOn::GATEWAY_ERROR]));
    if retry {
        Verdict::Retry
    } else {
        Verdict::Return
    }
}

/// The verdict on an attempt that got response headers: real headers
/// commit the RPC (A6); a Trailers-Only error reply (`grpc-status` in the
/// headers) or a failing HTTP status may be retried.
pub fn response_verdict(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    policy: Option<&RetryPolicy>,
) -> Verdict {
    let Some(p) = policy else {
        return Verdict::Return;
    };
    if let Some(code) = headers.get("grpc-status") {
        let code = code
            .to_str()
            .ok()
            .and_then(|c| c.parse::<i32>().ok())
            .map_or(Code::Unknown, Code::from_i32);
        if code == Code::Ok {
            return Verdict::Return;
        }
        return if p.retry_on.retries_code(code) || http_retry(status, p) {
            Verdict::Retry
        } else {
            Verdict::Return
        };
    }
    if status.is_success() {
        return Verdict::Return;
    }
    if p.retry_on.retries_code(code_for_http(status)) || http_retry(status, p) {
        Verdict::Retry
    } else {
        Verdict::Return
    }
}

fn http_retry(status: http::StatusCode, p: &RetryPolicy) -> bool {
    let on = p.retry_on;
    let code = status.as_u16();
    (status.is_server_error() && on.contains(RetryOn::HTTP_5XX))
        || (matches!(code, 502..=504) && on.contains(RetryOn::GATEWAY_ERROR))
        || (code == 409 && on.contains(RetryOn::RETRIABLE_4XX))
        || (on.contains(RetryOn::RETRIABLE_STATUS_CODES)
            && p.retriable_status_codes.contains(&u32::from(code)))
}

/// gRPC's mapping of an HTTP status without `grpc-status` to a code.
fn code_for_http(status: http::StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}
