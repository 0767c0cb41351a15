//! RPC deadlines (gRFC A31): the deadline is fixed when the call starts,
//! from the smallest of
//!
//! - the caller's `grpc-timeout` header (every unit: `H M S m u n`), capped
//!   by the route's `grpc_timeout_header_max` when that is set, or else by
//!   its `max_stream_duration` (A31: the header max replaces the stream
//!   max; zero means no cap);
//! - Envoy's route `timeout`, when set (never Envoy's 15 s default).
//!
//! It covers the whole RPC, response body stream included: a response still
//! streaming at the deadline ends with DEADLINE_EXCEEDED. The message names
//! the limit that fired (`deadline exceeded: max_stream_duration 5s of route
//! r1 elapsed`). The outgoing `grpc-timeout` carries the remaining time, and
//! the deadline travels down in the request's extensions as a [`Deadline`]
//! so retry can re-send the remaining time with each attempt.
//!
//! Place it above fault and retry, so an injected delay or a retry never
//! outlasts the deadline. Config comes from the request's
//! [`RouteDecision`](crate::context::RouteDecision); without one only the
//! caller's header counts.
//!
//! Not here: per-attempt timeouts (retry's `per_try_timeout`).

mod body;
mod deadline;
mod future;
mod grpc_timeout;
mod layer;
mod service;

pub use self::body::DeadlineBody;
pub use self::deadline::{Deadline, Limit, effective_deadline};
pub use self::future::ResponseFuture;
pub use self::grpc_timeout::{GRPC_TIMEOUT, encode_grpc_timeout, parse_grpc_timeout};
pub use self::layer::TimeoutLayer;
pub use self::service::TimeoutService;

#[cfg(test)]
mod tests;
