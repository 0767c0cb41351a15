//! ClusterLoadAssignment (EDS). STUB: being filled in.

use envoy_types::pb::envoy::config::endpoint::v3 as wire;

use super::{FieldError, Resource, ResourceType, resource_error};

resource_error!(
    /// A ClusterLoadAssignment that failed validation.
    EndpointsError,
    "ClusterLoadAssignment"
);

/// A validated ClusterLoadAssignment.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterLoadAssignment {
    /// The resource name (the EDS service name).
    pub cluster_name: String,
}

impl Resource for ClusterLoadAssignment {
    const TYPE: ResourceType = ResourceType::ClusterLoadAssignment;
    type Wire = wire::ClusterLoadAssignment;
    fn wire_name(wire: &Self::Wire) -> &str {
        &wire.cluster_name
    }
    fn validate(wire: Self::Wire) -> Result<Self, FieldError> {
        ClusterLoadAssignment::try_from(wire).map_err(|e| e.error)
    }
}

impl TryFrom<wire::ClusterLoadAssignment> for ClusterLoadAssignment {
    type Error = EndpointsError;
    fn try_from(c: wire::ClusterLoadAssignment) -> Result<Self, Self::Error> {
        Ok(ClusterLoadAssignment {
            cluster_name: c.cluster_name,
        })
    }
}
