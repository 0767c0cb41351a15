//! Cluster (CDS). STUB: being filled in.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3 as wire;

use super::endpoint::ClusterLoadAssignment;
use super::{FieldError, Resource, ResourceType, resource_error};

resource_error!(
    /// A Cluster that failed validation.
    ClusterError,
    "Cluster"
);

/// A validated Cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The resource name.
    pub name: String,
    /// Where its endpoints come from.
    pub discovery: Discovery,
}

/// Where a cluster's endpoints come from.
#[derive(Debug, Clone)]
pub enum Discovery {
    /// EDS over ADS, under this service name (the cluster name when
    /// `eds_cluster_config.service_name` is empty).
    Eds {
        /// The ClusterLoadAssignment to subscribe to.
        service_name: String,
    },
    /// STATIC: endpoints carried in `load_assignment`.
    Static(Arc<ClusterLoadAssignment>),
}

impl Resource for Cluster {
    const TYPE: ResourceType = ResourceType::Cluster;
    type Wire = wire::Cluster;
    fn wire_name(wire: &Self::Wire) -> &str {
        &wire.name
    }
    fn validate(wire: Self::Wire) -> Result<Self, FieldError> {
        Cluster::try_from(wire).map_err(|e| e.error)
    }
}

impl TryFrom<wire::Cluster> for Cluster {
    type Error = ClusterError;
    fn try_from(c: wire::Cluster) -> Result<Self, Self::Error> {
        Err(ClusterError::new(c.name, FieldError::new("", "not implemented")))
    }
}
