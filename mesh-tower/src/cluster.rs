//! The runtime of one cluster: its validated config, circuit-breaker
//! counters, balancer and endpoints. Built by [`crate::discovery`] from
//! snapshots and reused across snapshots while the cluster is unchanged, so
//! connections and counters survive config updates.

use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::resource::Cluster;
use mesh_core::resource::endpoint::Endpoint;

/// One cluster at run time.
#[derive(Debug)]
pub struct ClusterRuntime {
    /// The cluster's name (`outbound|7070||echo.default.svc.cluster.local`).
    pub name: Arc<str>,
    /// The validated cluster config.
    pub config: Arc<Cluster>,
    /// Circuit-breaker counters, process-wide per {cluster, EDS service}.
    pub breaker: Arc<crate::breaker::Breaker>,
    /// Endpoint picking over the current endpoint set.
    pub balancer: Arc<crate::balance::Balancer>,
}

/// One endpoint at run time: shared by the balancer (which picks it), the
/// outlier detector (which ejects it) and the connection (which serves it).
/// Kept across snapshots while its address stays in the cluster.
#[derive(Debug)]
pub struct EndpointHandle {
    /// Where it listens.
    pub address: SocketAddr,
    /// Its config (locality, weight, metadata) from the latest snapshot.
    pub config: arc_swap::ArcSwap<Endpoint>,
    /// Outlier statistics and ejection state.
    pub outlier: crate::outlier::EndpointOutlier,
    /// Connections to it.
    pub connection: crate::endpoint::Connection,
}
