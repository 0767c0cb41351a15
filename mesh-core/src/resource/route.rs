//! RouteConfiguration (RDS): virtual hosts, routes, matchers and actions.
//! STUB: being filled in.

use envoy_types::pb::envoy::config::route::v3 as wire;

use super::{FieldError, Resource, ResourceType, resource_error};

resource_error!(
    /// A RouteConfiguration that failed validation.
    RouteConfigError,
    "RouteConfiguration"
);

/// A validated RouteConfiguration.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The resource name.
    pub name: String,
    /// Virtual hosts in wire order.
    pub virtual_hosts: Vec<VirtualHost>,
}

/// A virtual host. STUB.
#[derive(Debug, Clone)]
pub struct VirtualHost {
    /// Its name.
    pub name: String,
    /// Domains it serves.
    pub domains: Vec<String>,
}

impl RouteConfig {
    /// Every cluster name any route of any virtual host can send to.
    pub fn cluster_names(&self) -> std::collections::BTreeSet<&str> {
        Default::default()
    }

    /// The virtual host for `authority`, most specific domain first (A28).
    pub fn virtual_host_for(&self, _authority: &str) -> Option<&VirtualHost> {
        None
    }
}

impl Resource for RouteConfig {
    const TYPE: ResourceType = ResourceType::RouteConfiguration;
    type Wire = wire::RouteConfiguration;
    fn wire_name(wire: &Self::Wire) -> &str {
        &wire.name
    }
    fn validate(wire: Self::Wire) -> Result<Self, FieldError> {
        RouteConfig::try_from(wire).map_err(|e| e.error)
    }
}

impl TryFrom<wire::RouteConfiguration> for RouteConfig {
    type Error = RouteConfigError;
    fn try_from(r: wire::RouteConfiguration) -> Result<Self, Self::Error> {
        Err(RouteConfigError::new(r.name, FieldError::new("", "not implemented")))
    }
}
