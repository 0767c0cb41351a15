//! Cluster (CDS): where a cluster's endpoints come from, how they are
//! balanced, protected (circuit breakers, outlier detection) and secured
//! (UpstreamTlsContext).
//!
//! Accepted discovery types: EDS over ADS (or `self`) and STATIC with a
//! `load_assignment` (as Envoy; gRPC lacks STATIC). LOGICAL_DNS and aggregate
//! clusters are NACKed for now. The upstream HTTP version comes from the
//! protocol options ([`UpstreamHttpOptions`]; HTTP/1.1 when none, as
//! Envoy). Ignored: health checks, connection options,
//! `transport_socket_matches` and every other Envoy-only field. Provider
//! instance names in the TLS context are checked against the bootstrap by
//! the client, not here.

mod lb_policy;
mod outlier;
mod protocol;

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3 as wire;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls_wire;
use envoy_types::pb::google::protobuf::UInt32Value;
use prost::Message;

pub use self::lb_policy::LbPolicy;
pub use self::outlier::{
    ConsecutiveFailures, FailurePercentageEjection, OutlierDetection, SuccessRateEjection,
};
pub use self::protocol::{HTTP_PROTOCOL_OPTIONS, UpstreamHttpOptions, UpstreamProtocol};
use super::common::Metadata;
use super::endpoint::{ClusterLoadAssignment, HealthStatus, HealthStatusSet};
use super::tls::UpstreamTlsContext;
use super::{AtField, FieldError, Resource, ResourceType, resource_error};

resource_error!(
    /// A Cluster that failed validation.
    ClusterError,
    "Cluster"
);

/// A validated Cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// The resource name.
    pub name: String,
    /// Where its endpoints come from.
    pub discovery: Discovery,
    /// How an endpoint is picked inside a locality.
    pub lb_policy: LbPolicy,
    /// Limits from `circuit_breakers.thresholds[priority DEFAULT]`.
    pub circuit_breakers: CircuitBreakers,
    /// Outlier detection, when the cluster asks for it.
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS to the endpoints (`transport_socket` `envoy.transport_sockets.tls`);
    /// `None` is plaintext.
    pub tls: Option<UpstreamTlsContext>,
    /// Whether to report load to the xDS server (`lrs_server: {self: {}}`).
    pub lrs_server: bool,
    /// `common_lb_config.override_host_status`: endpoint health states a
    /// session-affinity override may still route to.
    pub override_host_status: HealthStatusSet,
    /// The cluster's metadata.
    pub metadata: Metadata,
    /// The HTTP version its endpoints speak and the per-connection request
    /// limit (mesh's HTTP client follows it; gRPC channels always use
    /// HTTP/2, as proxyless gRPC).
    pub upstream_http: UpstreamHttpOptions,
}

impl Cluster {
    /// The EDS service name to subscribe to, for EDS clusters.
    pub fn eds_service_name(&self) -> Option<&str> {
        match &self.discovery {
            Discovery::Eds { service_name } => Some(service_name),
            Discovery::Static(_) => None,
        }
    }
}

/// Where a cluster's endpoints come from.
#[derive(Debug, Clone, PartialEq)]
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

/// Circuit-breaker limits (A32; the DEFAULT-priority thresholds). Limits
/// mesh may not enforce stay `None` when unset, with Envoy's defaults in
/// the `DEFAULT_*` constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CircuitBreakers {
    /// Most concurrent requests to the cluster (default 1024); more fail
    /// with UNAVAILABLE and are not retried.
    pub max_requests: u32,
    /// Most requests waiting for a connection (Envoy's default 1024).
    pub max_pending_requests: Option<u32>,
    /// Most concurrent retries (Envoy's default 3).
    pub max_retries: Option<u32>,
    /// Most connections (Envoy's default 1024).
    pub max_connections: Option<u32>,
}

impl CircuitBreakers {
    /// `max_requests` when unset.
    pub const DEFAULT_MAX_REQUESTS: u32 = 1024;
    /// Envoy's `max_pending_requests` when unset.
    pub const DEFAULT_MAX_PENDING_REQUESTS: u32 = 1024;
    /// Envoy's `max_retries` when unset.
    pub const DEFAULT_MAX_RETRIES: u32 = 3;
    /// Envoy's `max_connections` when unset.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;

    fn from_wire(c: Option<&wire::CircuitBreakers>) -> Self {
        let default = c.and_then(|c| {
            c.thresholds
                .iter()
                .find(|t| t.priority == core::RoutingPriority::Default as i32)
        });
        let get = |f: fn(&wire::circuit_breakers::Thresholds) -> &Option<UInt32Value>| {
            default.and_then(|t| f(t).as_ref()).map(|v| v.value)
        };
        CircuitBreakers {
            max_requests: get(|t| &t.max_requests).unwrap_or(Self::DEFAULT_MAX_REQUESTS),
            max_pending_requests: get(|t| &t.max_pending_requests),
            max_retries: get(|t| &t.max_retries),
            max_connections: get(|t| &t.max_connections),
        }
    }
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        Self::from_wire(None)
    }
}

impl Resource for Cluster {
    const TYPE: ResourceType = ResourceType::Cluster;
    type Wire = wire::Cluster;
    fn wire_name(wire: &Self::Wire) -> &str {
        &wire.name
    }
    fn validate(wire: Self::Wire) -> Result<Self, FieldError> {
        convert(wire)
    }
}

impl TryFrom<wire::Cluster> for Cluster {
    type Error = ClusterError;
    fn try_from(c: wire::Cluster) -> Result<Self, Self::Error> {
        let name = c.name.clone();
        convert(c).map_err(|e| ClusterError::new(name, e))
    }
}

const UPSTREAM_TLS: &str = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const AGGREGATE: &str = "envoy.extensions.clusters.aggregate.v3.ClusterConfig";

fn convert(mut c: wire::Cluster) -> Result<Cluster, FieldError> {
    let discovery = discovery(&mut c)?;
    let lb_policy = lb_policy::from_cluster(&c)?;
    let upstream_http = protocol::from_cluster(&c)?;
    let outlier_detection = c
        .outlier_detection
        .as_ref()
        .map(OutlierDetection::from_wire)
        .transpose()
        .at_field("outlier_detection")?;
    let tls = c
        .transport_socket
        .as_ref()
        .map(transport_socket)
        .transpose()?;
    let lrs_server = match c.lrs_server.as_ref().map(|s| &s.config_source_specifier) {
        None => false,
        Some(Some(core::config_source::ConfigSourceSpecifier::Self_(_))) => true,
        Some(_) => {
            return Err(FieldError::new(
                "lrs_server",
                "must be self: load reports go to the xDS server",
            ));
        }
    };
    let mut override_host_status = HealthStatusSet::EMPTY;
    let statuses = c
        .common_lb_config
        .as_ref()
        .and_then(|l| l.override_host_status.as_ref())
        .map_or(&[][..], |s| &s.statuses);
    for (i, s) in statuses.iter().enumerate() {
        let status = HealthStatus::from_wire(*s).ok_or_else(|| {
            FieldError::new(
                format!("common_lb_config.override_host_status.statuses[{i}]"),
                format!("unknown health status {s}"),
            )
        })?;
        override_host_status.insert(status);
    }
    Ok(Cluster {
        discovery,
        lb_policy,
        circuit_breakers: CircuitBreakers::from_wire(c.circuit_breakers.as_ref()),
        outlier_detection,
        tls,
        lrs_server,
        override_host_status,
        metadata: c.metadata.as_ref().map(Metadata::from).unwrap_or_default(),
        upstream_http,
        name: c.name,
    })
}

fn discovery(c: &mut wire::Cluster) -> Result<Discovery, FieldError> {
    use wire::cluster::{ClusterDiscoveryType as T, DiscoveryType};
    let kind = match &c.cluster_discovery_type {
        None => DiscoveryType::Static as i32,
        Some(T::Type(t)) => *t,
        Some(T::ClusterType(ct)) => {
            let url = ct.typed_config.as_ref().map_or("", |a| a.type_url.as_str());
            if ct.name == "envoy.clusters.aggregate" || url.rsplit('/').next() == Some(AGGREGATE) {
                return Err(FieldError::new(
                    "cluster_type",
                    "aggregate clusters are not supported yet",
                ));
            }
            return Err(FieldError::new(
                "cluster_type",
                format!("custom cluster type {:?} is not supported", ct.name),
            ));
        }
    };
    match DiscoveryType::try_from(kind) {
        Ok(DiscoveryType::Eds) => eds(c),
        Ok(DiscoveryType::Static) => {
            let la = c.load_assignment.take().ok_or_else(|| {
                FieldError::new(
                    "load_assignment",
                    "missing: a STATIC cluster needs its endpoints",
                )
            })?;
            let cla = ClusterLoadAssignment::from_static_wire(la).at_field("load_assignment")?;
            Ok(Discovery::Static(Arc::new(cla)))
        }
        Ok(DiscoveryType::LogicalDns) => Err(FieldError::new(
            "type",
            "LOGICAL_DNS clusters are not supported yet",
        )),
        Ok(other) => Err(FieldError::new(
            "type",
            format!(
                "{} clusters are not supported (use EDS or STATIC)",
                other.as_str_name()
            ),
        )),
        Err(_) => Err(FieldError::new(
            "type",
            format!("unknown discovery type {kind}"),
        )),
    }
}

fn eds(c: &mut wire::Cluster) -> Result<Discovery, FieldError> {
    use core::config_source::ConfigSourceSpecifier as S;
    let eds = c.eds_cluster_config.as_mut().ok_or_else(|| {
        FieldError::new(
            "eds_cluster_config",
            "missing: an EDS cluster needs eds_config",
        )
    })?;
    match eds.eds_config.as_ref().map(|s| &s.config_source_specifier) {
        Some(Some(S::Ads(_) | S::Self_(_))) => {}
        _ => {
            return Err(FieldError::new(
                "eds_cluster_config.eds_config",
                "must be ads or self: endpoints come over the ADS stream",
            ));
        }
    }
    let service_name = if !eds.service_name.is_empty() {
        std::mem::take(&mut eds.service_name)
    } else if c.name.starts_with("xdstp:") {
        // A47: an xdstp cluster name is not an EDS resource name.
        return Err(FieldError::new(
            "eds_cluster_config.service_name",
            "required when the cluster name is an xdstp: name",
        ));
    } else {
        c.name.clone()
    };
    Ok(Discovery::Eds { service_name })
}

fn transport_socket(ts: &core::TransportSocket) -> Result<UpstreamTlsContext, FieldError> {
    use core::transport_socket::ConfigType;
    const FIELD: &str = "transport_socket.typed_config";
    let Some(ConfigType::TypedConfig(any)) = &ts.config_type else {
        return Err(FieldError::new(FIELD, "missing"));
    };
    if any.type_url.rsplit('/').next() != Some(UPSTREAM_TLS) {
        return Err(FieldError::new(
            FIELD,
            format!(
                "transport socket {:?} ({}) is not supported: only envoy.transport_sockets.tls \
                 with an UpstreamTlsContext",
                ts.name, any.type_url
            ),
        ));
    }
    let ctx = tls_wire::UpstreamTlsContext::decode(any.value.as_slice())
        .map_err(|e| FieldError::new(FIELD, format!("cannot decode UpstreamTlsContext: {e}")))?;
    UpstreamTlsContext::from_wire(&ctx, FIELD)
}

#[cfg(test)]
mod tests;
