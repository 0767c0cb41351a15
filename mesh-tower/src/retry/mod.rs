//! Retries (gRFC A44 with Envoy's `retry_on`), once per RPC above the
//! breaker, so each attempt goes through breaker and balance again and
//! picks an endpoint again.
//!
//! - Conditions: the gRPC codes A44 names (`cancelled`, `deadline-exceeded`,
//!   `internal`, `resource-exhausted`, `unavailable`) and Envoy's `5xx`,
//!   `gateway-error`, `reset`, `connect-failure`, `refused-stream`,
//!   `retriable-status-codes`, `retriable-4xx` ([`verdict`]).
//! - Attempts: `num_retries + 1`, capped at 5 (A44); `per_try_timeout`
//!   bounds each attempt until its response headers.
//! - Backoff: full jitter, random in `[0, min(base × 2ⁿ, max)]` ([`backoff`]),
//!   from a seedable RNG ([`RetryLayer::seed`]).
//! - Limits: before each retry the cluster's breaker is asked for a retry
//!   slot (`max_retries`, or the retry budget); a refused slot ends the RPC
//!   with its last result. Circuit-breaker overflow is never retried.
//! - Commit (A6): once real response headers arrive the RPC is committed
//!   and never retried; a Trailers-Only reply (`grpc-status` in the
//!   headers) does not commit it.
//! - Replay: the request body is buffered as it streams, up to a byte cap
//!   (64 KiB by default); past it the RPC streams on but is not retried.
//! - `grpc-previous-rpc-attempts` on every retry; `grpc-timeout` re-sent
//!   with the time left (the RPC's [`Deadline`](crate::timeout::Deadline)
//!   and `per_try_timeout`).
//! - Transparent retry (A6): a stream refused (REFUSED_STREAM) or never
//!   processed (GOAWAY, a request the connection never sent) is retried
//!   once at once, whether or not a policy applies, without counting as
//!   an attempt.
//!
//! The policy comes from the request's
//! [`RouteDecision`](crate::context::RouteDecision), or a fixed one
//! ([`RetryLayer::policy`]).
//!
//! Not here: the RPC deadline (timeout), hedging, retry throttling tokens.

mod classify;
mod future;
mod layer;
mod policy;
mod replay;
mod service;

pub use self::classify::{ErrorClass, PerTryTimeout, classify_error};
pub use self::future::ResponseFuture;
pub use self::layer::RetryLayer;
pub use self::policy::{
    DEFAULT_MAX_BUFFERED_BYTES, MAX_ATTEMPTS, PREVIOUS_RPC_ATTEMPTS, Verdict, backoff,
    max_attempts, response_verdict, verdict,
};
pub use self::replay::ReplayBody;
pub use self::service::RetryService;

#[cfg(test)]
mod tests;
