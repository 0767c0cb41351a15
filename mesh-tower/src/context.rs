//! The per-RPC routing decision that travels in request extensions from the
//! route layer down to the layers below it.
//!
//! A user who skips the route layer (a plain tower user with one cluster)
//! inserts a [`RouteDecision`] themselves; every lower layer reads only this.

use std::sync::Arc;
use std::time::Duration;

use mesh_core::resource::filter::FaultConfig;
use mesh_core::resource::route::{DurationCap, HashPolicy, RetryPolicy};

use crate::cluster::ClusterRuntime;

/// Where one RPC goes and under which policies. Set once per RPC (the
/// weighted cluster is chosen once, A28); each retry attempt reads the same.
#[derive(Clone, Debug)]
pub struct RouteDecision {
    /// The route's compiled policies (for the chosen cluster weight).
    pub route: Arc<RoutePolicy>,
    /// The chosen cluster.
    pub cluster: Arc<ClusterRuntime>,
    /// The request hash from the route's `hash_policy` (ring hash), if any.
    pub hash: Option<u64>,
}

/// A route's policies, compiled once per config snapshot (per route and
/// cluster weight, since filter overrides can differ per weight, A39).
#[derive(Debug, Default)]
pub struct RoutePolicy {
    /// For messages and metrics: the route's name, or its index.
    pub name: String,
    /// Effective `max_stream_duration` (route, else the HCM's); `None` = no
    /// limit (A31).
    pub max_stream_duration: Option<Duration>,
    /// `grpc_timeout_header_max` (A31): caps the caller's `grpc-timeout`.
    pub grpc_timeout_header_max: Option<DurationCap>,
    /// Envoy's `RouteAction.timeout`; `None` when unset (never Envoy's 15 s
    /// default) or zero.
    pub timeout: Option<Duration>,
    /// Retries (A44), if any.
    pub retry: Option<RetryPolicy>,
    /// Fault injection (A33): the HCM filter's config with the most specific
    /// override applied; `None` when no fault filter applies.
    pub fault: Option<Arc<FaultConfig>>,
    /// The route's local rate limit bucket, if any.
    pub rate_limit: Option<Arc<crate::ratelimit::TokenBucket>>,
    /// How to hash the request for ring hash (A42).
    pub hash_policy: Vec<HashPolicy>,
}

impl RouteDecision {
    /// The decision in a request's extensions.
    pub fn of<B>(req: &http::Request<B>) -> Option<&RouteDecision> {
        req.extensions().get::<RouteDecision>()
    }
}
