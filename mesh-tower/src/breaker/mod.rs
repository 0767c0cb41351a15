//! Circuit breaking (gRFC A32, Envoy's `circuit_breakers`).
//!
//! A [`Breaker`] holds the counters of one {cluster, EDS service name},
//! shared process-wide through [`Breaker::shared`] so every channel to the
//! cluster counts against the same limits (A32). Limits are atomics, updated
//! in place from new snapshots ([`Breaker::update`]).
//!
//! - `max_requests` (default 1024): active requests, counted per attempt by
//!   [`BreakerLayer`] and released when the response body ends or is dropped.
//! - `max_pending_requests`: requests waiting for a connection; the endpoint
//!   layer counts them with [`Breaker::try_pending`].
//! - `max_retries`: active retries; the retry layer asks
//!   [`Breaker::try_retry`] before each retry. When `max_retries` is unset, a
//!   retry budget ([`RetryBudget`], 20% of active requests, at least 3) caps
//!   them instead, like Envoy's `retry_budget`.
//! - `max_connections`: connections, counted by the endpoint layer with
//!   [`Breaker::try_connection`].
//!
//! Overflow fails at once with an [`Overflow`] error (UNAVAILABLE inside,
//! `circuit breaker max_requests=N reached for cluster NAME`), counted per
//! kind for metrics ([`Breaker::overflows`]); the retry layer recognises it
//! and never retries it.
//!
//! Not here: choosing the cluster (route), the endpoint (balance), or
//! connection pooling (endpoint).

mod body;
mod counters;
mod future;
mod layer;
mod service;

pub use self::body::GuardedBody;
pub use self::counters::{Breaker, Guard, Kind, Overflow, RetryBudget};
pub use self::future::ResponseFuture;
pub use self::layer::BreakerLayer;
pub use self::service::BreakerService;

#[cfg(test)]
mod tests;
