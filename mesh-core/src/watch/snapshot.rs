//! The immutable snapshot a data plane consumes for one target: everything
//! an `xds:///name` channel needs, resolved and consistent.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::resource::listener::{HttpConnectionManager, ListenerKind};
use crate::resource::route::VirtualHost;
use crate::resource::{Cluster, ClusterLoadAssignment, Listener, RouteConfig};

/// The resolved config of one client target (A74's `XdsConfig`).
///
/// Published only once the listener, its routes and every cluster the
/// chosen virtual host references have resolved. A cluster that failed
/// resolves to an error of its own; the others are unaffected.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The target's authority (`echo.default.svc.cluster.local:7070`),
    /// which chose the virtual host and is sent as `:authority`.
    pub target: String,
    /// The Listener (always a client listener).
    pub listener: Arc<Listener>,
    /// The routes (from RDS or inline).
    pub route_config: Arc<RouteConfig>,
    /// Index of the virtual host chosen for `target` in `route_config`.
    pub virtual_host_index: usize,
    /// Every cluster the virtual host can send to.
    pub clusters: BTreeMap<String, ClusterResult>,
}

/// One cluster of a snapshot: resolved, or why not.
pub type ClusterResult = Result<ResolvedCluster, String>;

/// A cluster with its endpoints.
#[derive(Debug, Clone)]
pub struct ResolvedCluster {
    /// The Cluster.
    pub cluster: Arc<Cluster>,
    /// Its endpoints (from EDS, or the STATIC load assignment).
    pub endpoints: Arc<ClusterLoadAssignment>,
}

impl ClientConfig {
    /// The HTTP connection manager of the listener.
    pub fn http_connection_manager(&self) -> &HttpConnectionManager {
        match &self.listener.kind {
            ListenerKind::Client(hcm) => hcm,
            ListenerKind::Server(_) => unreachable!("a ClientConfig holds a client listener"),
        }
    }

    /// The virtual host chosen for the target.
    pub fn virtual_host(&self) -> &VirtualHost {
        &self.route_config.virtual_hosts[self.virtual_host_index]
    }

    /// A cluster by name.
    pub fn cluster(&self, name: &str) -> Option<&ClusterResult> {
        self.clusters.get(name)
    }

    /// Whether `other` is the same config down to the resource instances,
    /// so publishing it would change nothing.
    pub fn same_as(&self, other: &ClientConfig) -> bool {
        Arc::ptr_eq(&self.listener, &other.listener)
            && Arc::ptr_eq(&self.route_config, &other.route_config)
            && self.virtual_host_index == other.virtual_host_index
            && self.clusters.len() == other.clusters.len()
            && self
                .clusters
                .iter()
                .zip(&other.clusters)
                .all(|((a, ra), (b, rb))| {
                    a == b
                        && match (ra, rb) {
                            (Ok(x), Ok(y)) => {
                                Arc::ptr_eq(&x.cluster, &y.cluster)
                                    && Arc::ptr_eq(&x.endpoints, &y.endpoints)
                            }
                            (Err(x), Err(y)) => x == y,
                            _ => false,
                        }
                })
    }
}

/// Why a target has no usable config: the resource at fault and the reason.
/// Data planes fail RPCs with UNAVAILABLE carrying this text (A88).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ConfigError {
    /// What went wrong, naming the resource.
    pub reason: String,
}
