//! mesh-tower: the data plane, as tower layers.
//!
//! One layer per concern, each usable on its own with static config and
//! all driven live by mesh-core's xDS snapshots. A request walks them in
//! the order gRPC defines, which [`stack`] alone sets:
//!
//! ```text
//! route → timeout → fault → ratelimit → retry ─┬→ breaker → balance → outlier → endpoint
//!   (once per RPC)                              └─ (once per attempt)
//! ```
//!
//! The per-RPC decision (route and cluster) travels in the request's
//! extensions as a [`context::RouteDecision`]; config swaps are atomic
//! snapshots, so the hot path takes no lock.

pub mod authz;
pub mod balance;
pub mod breaker;
pub mod cluster;
pub mod context;
pub mod discovery;
pub mod endpoint;
pub mod error;
pub mod fail_fast;
pub mod fault;
pub mod outlier;
pub mod ratelimit;
pub mod retry;
pub mod route;
pub mod stack;
pub mod timeout;
pub mod tls;

/// The error type every layer returns: boxed, and a `tonic::Status` inside
/// whenever the layer itself failed the request (tonic's client finds it in
/// the source chain).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
