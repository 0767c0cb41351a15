//! Fault injection (A33, Envoy's `HTTPFault`): delays and aborts chosen per
//! RPC from the route's fault config.
//!
//! Sits above rate limiting and retries and below the timeout layer, so the
//! deadline is fixed before a delay starts and a delay never outlasts it
//! (A31). The config comes from the request's
//! [`RouteDecision`](crate::context::RouteDecision) (the route layer already
//! applied the most specific override); without one the request passes
//! untouched. What this layer does:
//! - the fault's `headers` matchers gate everything;
//! - a fixed delay, or the `x-envoy-fault-delay-request` header
//!   (milliseconds) when the config says `header_delay`;
//! - an abort with `http_status` (mapped to a gRPC code as gRPC maps it),
//!   `grpc_status`, or the `x-envoy-fault-abort-grpc-request` /
//!   `x-envoy-fault-abort-request` headers when the config says
//!   `header_abort`;
//! - percentages at per-million precision (every denominator); header
//!   driven faults also honour `x-envoy-fault-{delay,abort}-request-percentage`,
//!   read as a percentage and capped by the configured one;
//! - `max_active_faults` against ONE process-wide count of active faults
//!   ([`active_faults`]): a fault over the cap is not injected.
//!
//! The delay happens before the request is forwarded; an abort after a
//! delay fails once the delay is over (gRPC's order). It does not throttle
//! response bodies (`response_rate_limit` is ignored, as in gRPC).

mod decide;
pub mod future;
mod layer;
mod service;
#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicU64;

pub use self::decide::{FaultGuard, Injection, decide};
pub use self::layer::FaultLayer;
pub use self::service::Fault;

/// The process-wide number of faults being injected right now (A33).
pub static ACTIVE_FAULTS: AtomicU64 = AtomicU64::new(0);

/// How many faults are active process-wide.
pub fn active_faults() -> u64 {
    ACTIVE_FAULTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Header carrying a delay in milliseconds (`header_delay`).
pub const DELAY_HEADER: &str = "x-envoy-fault-delay-request";
/// Header capping the delay percentage (`header_delay`).
pub const DELAY_PERCENTAGE_HEADER: &str = "x-envoy-fault-delay-request-percentage";
/// Header carrying an HTTP status to abort with (`header_abort`).
pub const ABORT_HEADER: &str = "x-envoy-fault-abort-request";
/// Header carrying a gRPC code to abort with (`header_abort`); wins over
/// [`ABORT_HEADER`].
pub const ABORT_GRPC_HEADER: &str = "x-envoy-fault-abort-grpc-request";
/// Header capping the abort percentage (`header_abort`).
pub const ABORT_PERCENTAGE_HEADER: &str = "x-envoy-fault-abort-request-percentage";
