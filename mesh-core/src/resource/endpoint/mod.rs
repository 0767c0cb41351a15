//! ClusterLoadAssignment (EDS): a cluster's endpoints grouped by priority
//! and locality.
//!
//! Validation follows gRPC (A27, A61): priorities must be contiguous from 0,
//! a locality appears once per priority, an address once in the whole
//! assignment (additional addresses included), and every endpoint has an IP
//! address and a port (no DNS names, pipes or named ports). Localities whose
//! `load_balancing_weight` is 0 or unset carry no load and are dropped, as
//! gRPC drops them; in a STATIC cluster's `load_assignment` an unset weight
//! counts as 1 instead, as Envoy uses every locality there.
//!
//! Endpoints are kept whatever their health (override_host_status may still
//! route to a draining one); [`HealthStatus::is_usable`] says which ones the
//! balancer may pick. [`Endpoint`] compares and hashes by value so watchers
//! can skip work for endpoints that did not change.
//!
//! Decoding is one pass over the wire message (moving its strings where it
//! can), with one address set and one locality set: nothing is allocated per
//! endpoint beyond the endpoint's own data.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as wire;

use super::common::{Fraction, Locality, Metadata};
use super::{FieldError, Resource, ResourceType, resource_error};

resource_error!(
    /// A ClusterLoadAssignment that failed validation.
    EndpointsError,
    "ClusterLoadAssignment"
);

/// A validated ClusterLoadAssignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLoadAssignment {
    /// The resource name (the EDS service name).
    pub cluster_name: String,
    /// Priorities, highest first: index 0 is priority 0. Never has gaps or
    /// empty priorities.
    pub priorities: Vec<Priority>,
    /// `policy.overprovisioning_factor` in percent (default 140).
    pub overprovisioning_factor: u32,
    /// `policy.drop_overloads`: category and the fraction of requests to
    /// drop for it.
    pub drop_overloads: Vec<(String, Fraction)>,
}

/// One priority level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priority {
    /// Its localities, each at most once, in wire order.
    pub localities: Vec<LocalityEndpoints>,
}

/// The endpoints of one locality at one priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalityEndpoints {
    /// Where they run.
    pub locality: Locality,
    /// `load_balancing_weight` relative to the other localities of the
    /// priority; never 0.
    pub weight: u32,
    /// The endpoints, in wire order.
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint (an `LbEndpoint`).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// Its address.
    pub address: SocketAddr,
    /// `endpoint.additional_addresses` (A61: other addresses of the same
    /// host, tried after the first one).
    pub additional_addresses: Vec<SocketAddr>,
    /// `health_status` from the control plane.
    pub health: HealthStatus,
    /// `load_balancing_weight` relative to the locality's other endpoints
    /// (default 1, never 0).
    pub weight: u32,
    /// `endpoint.hostname` (empty when unset).
    pub hostname: String,
    /// `metadata` (istiod puts the workload in
    /// `filter_metadata["istio"]["workload"]`).
    pub metadata: Metadata,
}

// Metadata holds JSON built from protobuf values, which never holds NaN, so
// equality is reflexive.
impl Eq for Endpoint {}

impl Hash for Endpoint {
    /// Hashes the identifying fields; metadata is left out (equal endpoints
    /// still hash equal).
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.address.hash(state);
        self.additional_addresses.hash(state);
        self.health.hash(state);
        self.weight.hash(state);
        self.hostname.hash(state);
    }
}

impl Endpoint {
    /// The Istio workload string (`name;namespace;canonical-service;revision;cluster`)
    /// istiod sends at `filter_metadata["istio"]["workload"]`.
    pub fn workload(&self) -> Option<&str> {
        self.metadata.string("istio", "workload")
    }

    /// Whether the balancer may pick it ([`HealthStatus::is_usable`]).
    pub fn is_usable(&self) -> bool {
        self.health.is_usable()
    }
}

/// An endpoint's health as the control plane reports it
/// (`envoy.config.core.v3.HealthStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HealthStatus {
    /// No health information (the default; usable).
    #[default]
    Unknown,
    /// Healthy (usable).
    Healthy,
    /// Unhealthy.
    Unhealthy,
    /// Draining: finishing its connections, no new ones.
    Draining,
    /// Health check timed out.
    Timeout,
    /// Degraded: usable only when nothing better is.
    Degraded,
}

impl HealthStatus {
    /// Whether gRPC would route to it: `UNKNOWN` and `HEALTHY` only.
    pub const fn is_usable(self) -> bool {
        matches!(self, HealthStatus::Unknown | HealthStatus::Healthy)
    }

    /// From the wire enum value, `None` for values this version does not know.
    pub fn from_wire(v: i32) -> Option<Self> {
        Some(match core::HealthStatus::try_from(v).ok()? {
            core::HealthStatus::Unknown => HealthStatus::Unknown,
            core::HealthStatus::Healthy => HealthStatus::Healthy,
            core::HealthStatus::Unhealthy => HealthStatus::Unhealthy,
            core::HealthStatus::Draining => HealthStatus::Draining,
            core::HealthStatus::Timeout => HealthStatus::Timeout,
            core::HealthStatus::Degraded => HealthStatus::Degraded,
        })
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`HealthStatus`] values (a bit set: `Copy`, no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HealthStatusSet(u8);

impl HealthStatusSet {
    /// The empty set.
    pub const EMPTY: HealthStatusSet = HealthStatusSet(0);

    /// Adds a status.
    pub fn insert(&mut self, s: HealthStatus) {
        self.0 |= s.bit();
    }

    /// Whether `s` is in the set.
    pub const fn contains(self, s: HealthStatus) -> bool {
        self.0 & s.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<HealthStatus> for HealthStatusSet {
    fn from_iter<I: IntoIterator<Item = HealthStatus>>(iter: I) -> Self {
        let mut set = HealthStatusSet::EMPTY;
        for s in iter {
            set.insert(s);
        }
        set
    }
}

impl ClusterLoadAssignment {
    /// `policy.overprovisioning_factor` when unset, in percent.
    pub const DEFAULT_OVERPROVISIONING_FACTOR: u32 = 140;

    /// Every endpoint with its priority and locality.
    pub fn endpoints(&self) -> impl Iterator<Item = (u32, &LocalityEndpoints, &Endpoint)> {
        self.priorities.iter().enumerate().flat_map(|(p, prio)| {
            prio.localities
                .iter()
                .flat_map(move |l| l.endpoints.iter().map(move |e| (p as u32, l, e)))
        })
    }

    /// How many endpoints there are in all.
    pub fn endpoint_count(&self) -> usize {
        self.priorities
            .iter()
            .flat_map(|p| &p.localities)
            .map(|l| l.endpoints.len())
            .sum()
    }

    /// Validates the `load_assignment` of a STATIC cluster: as EDS, except
    /// that a locality without a weight counts as weight 1 (Envoy uses
    /// every locality of a static cluster). Paths are relative to the
    /// assignment.
    pub fn from_static_wire(c: wire::ClusterLoadAssignment) -> Result<Self, FieldError> {
        convert(c, 1)
    }
}

impl Resource for ClusterLoadAssignment {
    const TYPE: ResourceType = ResourceType::ClusterLoadAssignment;
    type Wire = wire::ClusterLoadAssignment;
    fn wire_name(wire: &Self::Wire) -> &str {
        &wire.cluster_name
    }
    fn validate(wire: Self::Wire) -> Result<Self, FieldError> {
        convert(wire, 0)
    }
}

impl TryFrom<wire::ClusterLoadAssignment> for ClusterLoadAssignment {
    type Error = EndpointsError;
    fn try_from(c: wire::ClusterLoadAssignment) -> Result<Self, Self::Error> {
        let name = c.cluster_name.clone();
        convert(c, 0).map_err(|e| EndpointsError::new(name, e))
    }
}

/// Where an address was first seen: `endpoints[i].lb_endpoints[j]`.
type Seen = HashMap<SocketAddr, (usize, usize)>;

fn convert(
    c: wire::ClusterLoadAssignment,
    unset_locality_weight: u32,
) -> Result<ClusterLoadAssignment, FieldError> {
    let total: usize = c.endpoints.iter().map(|l| l.lb_endpoints.len()).sum();
    let mut seen = Seen::with_capacity(total);
    let mut priorities: Vec<Priority> = Vec::new();
    let mut weight_sums: Vec<u32> = Vec::new();
    let n_localities = c.endpoints.len();
    let mut localities: HashSet<(usize, Locality)> = HashSet::with_capacity(n_localities);
    for (i, mut l) in c.endpoints.into_iter().enumerate() {
        let weight = l
            .load_balancing_weight
            .map_or(unset_locality_weight, |w| w.value);
        if weight == 0 {
            continue; // gRPC: a locality without weight gets no load.
        }
        let p = l.priority as usize;
        if p >= n_localities {
            // With n localities, contiguous priorities stop at n - 1.
            return Err(FieldError::new(
                format!("endpoints[{i}].priority"),
                format!("priority {p} leaves a gap: priorities must be contiguous from 0"),
            ));
        }
        if p >= priorities.len() {
            priorities.resize_with(p + 1, || Priority {
                localities: Vec::new(),
            });
            weight_sums.resize(p + 1, 0);
        }
        weight_sums[p] = weight_sums[p].checked_add(weight).ok_or_else(|| {
            FieldError::new(
                format!("endpoints[{i}].load_balancing_weight"),
                format!("sum of locality weights in priority {p} exceeds 4294967295"),
            )
        })?;
        let locality = l
            .locality
            .take()
            .map_or_else(Locality::default, |l| Locality {
                region: l.region,
                zone: l.zone,
                sub_zone: l.sub_zone,
            });
        if !localities.insert((p, locality.clone())) {
            return Err(FieldError::new(
                format!("endpoints[{i}].locality"),
                format!("duplicate locality {locality} in priority {p}"),
            ));
        }
        let endpoints = locality_endpoints(l, i, &mut seen)?;
        priorities[p].localities.push(LocalityEndpoints {
            locality,
            weight,
            endpoints,
        });
    }
    if let Some(p) = priorities.iter().position(|p| p.localities.is_empty()) {
        return Err(FieldError::new(
            "endpoints",
            format!("priority {p} has no localities: priorities must be contiguous from 0"),
        ));
    }
    let (overprovisioning_factor, drop_overloads) = policy(c.policy)?;
    Ok(ClusterLoadAssignment {
        cluster_name: c.cluster_name,
        priorities,
        overprovisioning_factor,
        drop_overloads,
    })
}

fn locality_endpoints(
    l: wire::LocalityLbEndpoints,
    i: usize,
    seen: &mut Seen,
) -> Result<Vec<Endpoint>, FieldError> {
    use wire::locality_lb_endpoints::LbConfig;
    match l.lb_config {
        Some(LbConfig::LedsClusterLocalityConfig(_)) => {
            return Err(FieldError::new(
                format!("endpoints[{i}].leds_cluster_locality_config"),
                "LEDS is not supported",
            ));
        }
        Some(LbConfig::LoadBalancerEndpoints(_)) => {
            return Err(FieldError::new(
                format!("endpoints[{i}].load_balancer_endpoints"),
                "load_balancer_endpoints is not supported; use lb_endpoints",
            ));
        }
        None => {}
    }
    let mut sum: u32 = 0;
    let mut out = Vec::with_capacity(l.lb_endpoints.len());
    for (j, e) in l.lb_endpoints.into_iter().enumerate() {
        let e = lb_endpoint(e, i, j, seen)
            .map_err(|err| err.at(format_args!("endpoints[{i}].lb_endpoints[{j}]")))?;
        sum = sum.checked_add(e.weight).ok_or_else(|| {
            FieldError::new(
                format!("endpoints[{i}].lb_endpoints[{j}].load_balancing_weight"),
                "sum of endpoint weights in the locality exceeds 4294967295",
            )
        })?;
        out.push(e);
    }
    Ok(out)
}

/// One `LbEndpoint`; errors are relative to it.
fn lb_endpoint(
    e: wire::LbEndpoint,
    i: usize,
    j: usize,
    seen: &mut Seen,
) -> Result<Endpoint, FieldError> {
    use wire::lb_endpoint::HostIdentifier;
    let endpoint = match e.host_identifier {
        Some(HostIdentifier::Endpoint(ep)) => ep,
        Some(HostIdentifier::EndpointName(_)) => {
            return Err(FieldError::new(
                "endpoint_name",
                "named endpoints are not supported",
            ));
        }
        None => return Err(FieldError::new("endpoint", "missing")),
    };
    let health = HealthStatus::from_wire(e.health_status).ok_or_else(|| {
        FieldError::new(
            "health_status",
            format!("unknown health status {}", e.health_status),
        )
    })?;
    let weight = e.load_balancing_weight.map_or(1, |w| w.value);
    if weight == 0 {
        return Err(FieldError::new(
            "load_balancing_weight",
            "must be at least 1",
        ));
    }
    let address = socket_addr(endpoint.address.as_ref()).map_err(|e| e.at("endpoint.address"))?;
    check_unique(seen, address, i, j).map_err(|e| e.at("endpoint.address"))?;
    let mut additional_addresses = Vec::with_capacity(endpoint.additional_addresses.len());
    for (k, a) in endpoint.additional_addresses.iter().enumerate() {
        let at = |e: FieldError| e.at(format!("endpoint.additional_addresses[{k}].address"));
        let addr = socket_addr(a.address.as_ref()).map_err(at)?;
        check_unique(seen, addr, i, j).map_err(at)?;
        additional_addresses.push(addr);
    }
    Ok(Endpoint {
        address,
        additional_addresses,
        health,
        weight,
        hostname: endpoint.hostname,
        metadata: e.metadata.map(Metadata::from).unwrap_or_default(),
    })
}

fn check_unique(seen: &mut Seen, addr: SocketAddr, i: usize, j: usize) -> Result<(), FieldError> {
    match seen.entry(addr) {
        Entry::Vacant(v) => {
            v.insert((i, j));
            Ok(())
        }
        Entry::Occupied(o) => {
            let (fi, fj) = *o.get();
            Err(FieldError::new(
                "",
                format!(
                    "duplicate endpoint address {addr} (also at endpoints[{fi}].lb_endpoints[{fj}])"
                ),
            ))
        }
    }
}

/// An `Address` that must be an IP socket address; errors relative to it.
fn socket_addr(a: Option<&core::Address>) -> Result<SocketAddr, FieldError> {
    use core::address::Address as A;
    use core::socket_address::PortSpecifier;
    let sa = match a.and_then(|a| a.address.as_ref()) {
        Some(A::SocketAddress(sa)) => sa,
        Some(A::Pipe(_)) => {
            return Err(FieldError::new(
                "pipe",
                "pipe addresses are not supported: an endpoint needs an IP address and port",
            ));
        }
        Some(A::EnvoyInternalAddress(_)) => {
            return Err(FieldError::new(
                "envoy_internal_address",
                "internal addresses are not supported: an endpoint needs an IP address and port",
            ));
        }
        None => {
            return Err(FieldError::new(
                "",
                "missing: an endpoint needs a socket_address with an IP address and port",
            ));
        }
    };
    let ip: IpAddr = sa.address.parse().map_err(|_| {
        FieldError::new(
            "socket_address.address",
            format!(
                "{:?} is not an IP address (DNS names are not resolved)",
                sa.address
            ),
        )
    })?;
    let port = match &sa.port_specifier {
        Some(PortSpecifier::PortValue(p)) if (1..=65535).contains(p) => *p as u16,
        Some(PortSpecifier::PortValue(p)) => {
            return Err(FieldError::new(
                "socket_address.port_value",
                format!("invalid port {p}"),
            ));
        }
        Some(PortSpecifier::NamedPort(_)) => {
            return Err(FieldError::new(
                "socket_address.named_port",
                "named ports are not supported",
            ));
        }
        None => return Err(FieldError::new("socket_address.port_value", "missing")),
    };
    Ok(SocketAddr::new(ip, port))
}

fn policy(
    p: Option<wire::cluster_load_assignment::Policy>,
) -> Result<(u32, Vec<(String, Fraction)>), FieldError> {
    let Some(p) = p else {
        return Ok((
            ClusterLoadAssignment::DEFAULT_OVERPROVISIONING_FACTOR,
            Vec::new(),
        ));
    };
    let factor = p.overprovisioning_factor.map_or(
        ClusterLoadAssignment::DEFAULT_OVERPROVISIONING_FACTOR,
        |f| f.value,
    );
    if factor == 0 {
        return Err(FieldError::new(
            "policy.overprovisioning_factor",
            "must be greater than 0",
        ));
    }
    let drops = p
        .drop_overloads
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let fraction = match &d.drop_percentage {
                Some(pct) => Fraction::from_fractional_percent(
                    pct,
                    &format!("policy.drop_overloads[{i}].drop_percentage"),
                )?,
                None => Fraction::NEVER,
            };
            Ok((d.category, fraction))
        })
        .collect::<Result<_, FieldError>>()?;
    Ok((factor, drops))
}

#[cfg(test)]
mod tests;
