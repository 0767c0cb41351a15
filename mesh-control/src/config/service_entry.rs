//! ServiceEntry (a service: hosts and ports) and WorkloadEntry (a workload:
//! an address with labels), standing in for Kubernetes Services and Pods.
//!
//! Endpoints must be IP addresses: mesh-control resolves no DNS, so every
//! resolution is served as STATIC (other modes are reported).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use super::walk::{Findings, Obj};
use super::{HEALTH_ANNOTATION, Meta};

/// A validated ServiceEntry.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceEntry {
    /// Name, namespace, labels, origin.
    pub meta: Meta,
    /// `hosts`, expanded to FQDNs relative to the namespace.
    pub hosts: Vec<String>,
    /// `ports`.
    pub ports: Vec<ServicePort>,
    /// `resolution`.
    pub resolution: Resolution,
    /// `workloadSelector.labels`: which WorkloadEntries (in the same
    /// namespace) back it.
    pub workload_selector: Option<BTreeMap<String, String>>,
    /// `endpoints` given inline.
    pub endpoints: Vec<WorkloadEndpoint>,
    /// Inline endpoints marked unhealthy by the `mesh.dev/health` annotation.
    pub unhealthy: bool,
}

/// One service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `number`.
    pub number: u16,
    /// `name`.
    pub name: String,
    /// `protocol` (upper case; empty when unset).
    pub protocol: String,
    /// `targetPort`.
    pub target_port: Option<u16>,
}

/// `resolution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// `STATIC`.
    Static,
    /// `NONE`, `DNS` or `DNS_ROUND_ROBIN`: served as STATIC.
    Other,
}

/// A workload's address and properties (WorkloadEntry spec, or an inline
/// ServiceEntry endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadEndpoint {
    /// `address`.
    pub address: IpAddr,
    /// `ports`: port name → port.
    pub ports: BTreeMap<String, u16>,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// `locality` (`region/zone/subzone`).
    pub locality: Option<String>,
    /// `weight`.
    pub weight: Option<u32>,
    /// `serviceAccount`.
    pub service_account: Option<String>,
}

/// A validated WorkloadEntry.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadEntry {
    /// Name, namespace, labels, origin.
    pub meta: Meta,
    /// The workload.
    pub endpoint: WorkloadEndpoint,
    /// Marked unhealthy by the `mesh.dev/health` annotation.
    pub unhealthy: bool,
}

impl WorkloadEntry {
    /// The workload's labels: `spec.labels` over `metadata.labels`.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.meta.labels.clone();
        l.extend(self.endpoint.labels.clone());
        l
    }
}

fn health(meta: &Meta, f: &mut Findings) -> bool {
    match meta.annotations.get(HEALTH_ANNOTATION).map(String::as_str) {
        None | Some("healthy") => false,
        Some("unhealthy") => true,
        Some(other) => {
            f.error(
                &format!("metadata.annotations[\"{HEALTH_ANNOTATION}\"]"),
                format!("\"{other}\" is not \"healthy\" or \"unhealthy\""),
            );
            false
        }
    }
}

pub(super) fn parse_service_entry(
    spec: &Value,
    meta: Meta,
    f: &mut Findings,
) -> Option<ServiceEntry> {
    let s = Obj::new(
        spec,
        "spec",
        &[
            "hosts",
            "addresses",
            "ports",
            "location",
            "resolution",
            "endpoints",
            "workloadSelector",
            "exportTo",
            "subjectAltNames",
        ],
        f,
    )?;
    s.ignore("addresses", "clients dial by name, not VIP", f);
    s.ignore("exportTo", "every object is visible everywhere", f);
    s.ignore("location", "every service is treated as in the mesh", f);
    s.ignore(
        "subjectAltNames",
        "SANs come from the endpoints' service accounts",
        f,
    );
    let hosts: Vec<String> = s
        .str_list("hosts", f)
        .into_iter()
        .map(|h| super::fqdn(&h, &meta.namespace))
        .collect();
    if hosts.is_empty() {
        f.error("spec.hosts", "at least one host is required");
    }
    for (i, h) in hosts.iter().enumerate() {
        if h.contains('*') {
            f.error(
                &format!("spec.hosts[{i}]"),
                "wildcard hosts are not supported",
            );
        }
    }
    let ports: Vec<ServicePort> = s
        .list("ports", f)
        .into_iter()
        .filter_map(|(path, v)| {
            let p = Obj::new(v, &path, &["number", "protocol", "name", "targetPort"], f)?;
            let number = p.uint("number", 65535, f);
            if !p.has("number") {
                f.error(&p.path_of("number"), "is required");
            }
            let target_port = p.uint("targetPort", 65535, f).map(|v| v as u16);
            Some(ServicePort {
                number: number? as u16,
                name: p.str("name", f).unwrap_or_default(),
                protocol: p
                    .str("protocol", f)
                    .unwrap_or_default()
                    .to_ascii_uppercase(),
                target_port,
            })
        })
        .collect();
    if ports.is_empty() && !s.has("ports") {
        f.error("spec.ports", "at least one port is required");
    }
    let resolution = match s
        .one_of(
            "resolution",
            &["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"],
            f,
        )
        .as_deref()
    {
        Some("STATIC") => Resolution::Static,
        Some(_) => {
            f.ignored.push((
                "spec.resolution".into(),
                "mesh-control resolves no DNS: endpoints are served as STATIC".into(),
            ));
            Resolution::Other
        }
        None => Resolution::Static,
    };
    let workload_selector = s
        .obj("workloadSelector", &["labels"], f)
        .map(|w| w.str_map("labels", f));
    let endpoints = s
        .list("endpoints", f)
        .into_iter()
        .filter_map(|(path, v)| parse_endpoint(v, &path, f))
        .collect::<Vec<_>>();
    if workload_selector.is_some() && !endpoints.is_empty() {
        f.error(
            "spec.workloadSelector",
            "workloadSelector and endpoints are mutually exclusive",
        );
    }
    let unhealthy = health(&meta, f);
    Some(ServiceEntry {
        meta,
        hosts,
        ports,
        resolution,
        workload_selector,
        endpoints,
        unhealthy,
    })
}

pub(super) fn parse_workload_entry(
    spec: &Value,
    meta: Meta,
    f: &mut Findings,
) -> Option<WorkloadEntry> {
    let endpoint = parse_endpoint(spec, "spec", f)?;
    let unhealthy = health(&meta, f);
    Some(WorkloadEntry {
        meta,
        endpoint,
        unhealthy,
    })
}

fn parse_endpoint(v: &Value, path: &str, f: &mut Findings) -> Option<WorkloadEndpoint> {
    let o = Obj::new(
        v,
        path,
        &[
            "address",
            "ports",
            "labels",
            "network",
            "locality",
            "weight",
            "serviceAccount",
        ],
        f,
    )?;
    o.ignore("network", "there is one network", f);
    let address = o
        .req_str("address", f)
        .and_then(|a| match a.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                f.error(
                    &o.path_of("address"),
                    format!("\"{a}\" is not an IP address (mesh-control resolves no DNS)"),
                );
                None
            }
        });
    let ports = o
        .entries("ports", f)
        .into_iter()
        .filter_map(|(name, p, v)| match v.as_u64() {
            Some(n) if (1..=65535).contains(&n) => Some((name, n as u16)),
            _ => {
                f.error(&p, "must be a port number between 1 and 65535");
                None
            }
        })
        .collect();
    let locality = o.str("locality", f).filter(|l| !l.is_empty());
    if locality.as_ref().is_some_and(|l| l.split('/').count() > 3) {
        f.error(&o.path_of("locality"), "must be region/zone/subzone");
    }
    let weight = o.uint("weight", u64::from(u32::MAX), f).map(|w| w as u32);
    if weight == Some(0) {
        f.error(&o.path_of("weight"), "must be positive");
    }
    Some(WorkloadEndpoint {
        address: address?,
        ports,
        labels: o.str_map("labels", f),
        locality,
        weight,
        service_account: o.str("serviceAccount", f).filter(|s| !s.is_empty()),
    })
}
