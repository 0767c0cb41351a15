//! ClusterLoadAssignments, one per cluster: the service's workloads (or a
//! subset's), grouped by locality at priority 0, with istiod's workload
//! metadata.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::google::protobuf::{Struct, UInt32Value, Value, value::Kind};
use mesh_core::resource::ResourceType;

use crate::config::ServicePort;

use super::index::{Index, Service, Workload, selects};
use super::wire::{any, cluster_name, socket_address};
use super::{HealthOverrides, Out};

const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// The endpoints of every cluster of `svc`'s `port`.
pub(super) fn outbound(
    ix: &Index<'_>,
    svc: &Service<'_>,
    port: &ServicePort,
    health: &HealthOverrides,
    out: &mut Out,
) {
    let all: Vec<&Workload<'_>> = svc.workloads.iter().collect();
    build(
        &cluster_name(port.number, "", &svc.host),
        port,
        &all,
        health,
        out,
    );
    let subsets = ix
        .destination_rule(&svc.host)
        .map(|d| d.subsets.as_slice())
        .unwrap_or_default();
    for subset in subsets {
        let members: Vec<&Workload<'_>> = svc
            .workloads
            .iter()
            .filter(|w| selects(&subset.labels, &w.labels))
            .collect();
        if members.is_empty() {
            out.warn(format!(
                "{}: subset \"{}\" of {} selects no endpoints",
                ix.destination_rule(&svc.host)
                    .map(|d| d.meta.source.to_string())
                    .unwrap_or_default(),
                subset.name,
                svc.host
            ));
        }
        build(
            &cluster_name(port.number, &subset.name, &svc.host),
            port,
            &members,
            health,
            out,
        );
    }
}

fn build(
    name: &str,
    port: &ServicePort,
    workloads: &[&Workload<'_>],
    health: &HealthOverrides,
    out: &mut Out,
) {
    let mut by_locality: BTreeMap<&str, Vec<endpoint::LbEndpoint>> = BTreeMap::new();
    let mut weights: BTreeMap<&str, u32> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for w in workloads {
        let addr = SocketAddr::new(w.ip(), w.port_for(port));
        if !seen.insert(addr) {
            continue; // duplicate addresses are NACKed
        }
        let locality = w.ep.locality.as_deref().unwrap_or("");
        let weight = w.ep.weight.unwrap_or(1);
        let sum = weights.entry(locality).or_default();
        *sum = sum.saturating_add(weight);
        by_locality.entry(locality).or_default().push(lb_endpoint(
            w,
            addr,
            weight,
            w.unhealthy || health.is_unhealthy(addr),
        ));
    }
    let cla = endpoint::ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: by_locality
            .into_iter()
            .map(|(l, lb_endpoints)| endpoint::LocalityLbEndpoints {
                locality: Some(locality(l)),
                load_balancing_weight: Some(UInt32Value { value: weights[l] }),
                priority: 0,
                lb_endpoints,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    out.add(
        ResourceType::ClusterLoadAssignment,
        name.to_owned(),
        any(&cla),
    );
}

fn locality(s: &str) -> core::Locality {
    let mut parts = s.splitn(3, '/');
    core::Locality {
        region: parts.next().unwrap_or_default().to_owned(),
        zone: parts.next().unwrap_or_default().to_owned(),
        sub_zone: parts.next().unwrap_or_default().to_owned(),
    }
}

fn lb_endpoint(
    w: &Workload<'_>,
    addr: SocketAddr,
    weight: u32,
    unhealthy: bool,
) -> endpoint::LbEndpoint {
    let status = if unhealthy {
        core::HealthStatus::Unhealthy
    } else {
        core::HealthStatus::Healthy
    };
    endpoint::LbEndpoint {
        health_status: status as i32,
        load_balancing_weight: Some(UInt32Value { value: weight }),
        metadata: Some(metadata(w)),
        host_identifier: Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(
            endpoint::Endpoint {
                address: Some(socket_address(addr.ip(), addr.port())),
                ..Default::default()
            },
        )),
    }
}

fn string_struct(fields: &[(&str, String)]) -> Struct {
    Struct {
        fields: fields
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    Value {
                        kind: Some(Kind::StringValue(v.clone())),
                    },
                )
            })
            .collect(),
    }
}

/// `istio.workload` = `name;namespace;canonical-service;canonical-revision;
/// cluster-id` and, for workloads labelled `security.istio.io/tlsMode:
/// istio`, `envoy.transport_socket_match.tlsMode` = `istio`.
pub(crate) fn metadata(w: &Workload<'_>) -> core::Metadata {
    let mut filter_metadata = std::collections::HashMap::new();
    filter_metadata.insert(
        "istio".to_owned(),
        string_struct(&[("workload", workload_id(w))]),
    );
    if w.labels.get(TLS_MODE_LABEL).map(String::as_str) == Some("istio") {
        filter_metadata.insert(
            "envoy.transport_socket_match".to_owned(),
            string_struct(&[("tlsMode", "istio".to_owned())]),
        );
    }
    core::Metadata {
        filter_metadata,
        ..Default::default()
    }
}

/// istiod's workload metadata string.
pub(crate) fn workload_id(w: &Workload<'_>) -> String {
    let label = |k: &str| w.labels.get(k).map(String::as_str);
    let service = label("service.istio.io/canonical-name")
        .or_else(|| label("app.kubernetes.io/name"))
        .or_else(|| label("app"))
        .unwrap_or(w.name);
    let revision = label("service.istio.io/canonical-revision")
        .or_else(|| label("app.kubernetes.io/version"))
        .or_else(|| label("version"))
        .filter(|r| *r != "latest")
        .unwrap_or("");
    format!("{};{};{service};{revision};Kubernetes", w.name, w.namespace)
}
