//! Routing (A28, A36, A39, A42): chooses the virtual host, the first
//! matching route and the weighted cluster of each RPC, once per RPC, and
//! hands the result to the layers below as a
//! [`RouteDecision`](crate::context::RouteDecision) in the request's
//! extensions.
//!
//! The virtual host is chosen once per channel from the target on clients
//! ([`RouteLayer::client`]: the snapshot already chose it), or per request
//! from `:authority`/`Host` on servers and the plain-HTTP path
//! ([`RouteLayer::per_request_host`]). Routes are compiled once per
//! snapshot into a [`RouteTable`] bound to each cluster's runtime, with the
//! per-route filter overrides (ClusterWeight > Route > VirtualHost) already
//! resolved into a [`RoutePolicy`](crate::context::RoutePolicy) per route
//! and cluster weight; [`Routes`] swaps tables atomically.
//!
//! A request that matches no route, a route with an unsupported or (on a
//! client) non-forwarding action, or a cluster in error fails UNAVAILABLE
//! with a message that says which. This module does not pick endpoints,
//! apply timeouts or inject faults: the layers below read the decision.

mod follow;
pub mod future;
mod hash;
mod layer;
mod policy;
mod random;
mod routes;
mod service;
mod table;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use self::hash::request_hash;
pub use self::layer::RouteLayer;
pub use self::random::RandomSource;
pub use self::routes::{RouteState, Routes};
pub use self::service::Route;
pub use self::table::{ClusterLookup, HostSelection, RouteTable, Selected};
