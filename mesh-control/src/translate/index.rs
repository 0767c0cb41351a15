//! The config, indexed for translation: services by host, their workloads,
//! the DestinationRule and VirtualService of each host, short host names.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::config::{
    Config, DestinationRule, ServiceEntry, ServicePort, VirtualService, WorkloadEndpoint, fqdn,
};

use super::Out;

/// One service host (a ServiceEntry has one per host).
#[derive(Debug)]
pub(crate) struct Service<'a> {
    /// The FQDN.
    pub host: String,
    /// The ServiceEntry's namespace.
    pub namespace: String,
    /// The ServiceEntry.
    pub entry: &'a ServiceEntry,
    /// Short names this host answers for (`echo`, `echo.default`,
    /// `echo.default.svc`), without those another host claimed first.
    pub short_names: Vec<String>,
    /// The workloads behind it.
    pub workloads: Vec<Workload<'a>>,
}

impl Service<'_> {
    /// Every name a client may dial it by: the FQDN first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.host.as_str()).chain(self.short_names.iter().map(String::as_str))
    }

    /// The port a route to this service goes to when the destination names
    /// none: the only port, if there is exactly one.
    pub fn only_port(&self) -> Option<u16> {
        match self.entry.ports.as_slice() {
            [p] => Some(p.number),
            _ => None,
        }
    }
}

/// A workload (WorkloadEntry or inline endpoint).
#[derive(Debug, Clone)]
pub(crate) struct Workload<'a> {
    /// WorkloadEntry name (the ServiceEntry's for inline endpoints).
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Address, ports, locality, weight, service account.
    pub ep: &'a WorkloadEndpoint,
    /// Effective labels.
    pub labels: BTreeMap<String, String>,
    /// Marked unhealthy in config.
    pub unhealthy: bool,
}

impl Workload<'_> {
    /// The port this workload serves `port` of a service on.
    pub fn port_for(&self, port: &ServicePort) -> u16 {
        self.ep
            .ports
            .get(&port.name)
            .copied()
            .or(port.target_port)
            .unwrap_or(port.number)
    }

    /// The workload's service account (`default` when unset, as in
    /// Kubernetes).
    pub fn service_account(&self) -> &str {
        self.ep.service_account.as_deref().unwrap_or("default")
    }

    /// The workload's address.
    pub fn ip(&self) -> IpAddr {
        self.ep.address
    }
}

/// Whether `labels` carries every label of `selector`.
pub(crate) fn selects(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The indexed config.
#[derive(Debug)]
pub(crate) struct Index<'a> {
    services: BTreeMap<String, Service<'a>>,
    destination_rules: BTreeMap<String, &'a DestinationRule>,
    virtual_services: BTreeMap<String, &'a VirtualService>,
}

impl<'a> Index<'a> {
    /// Indexes `config`, warning about conflicts (the first definition wins).
    pub fn build(config: &'a Config, out: &mut Out) -> Self {
        let workloads: Vec<Workload<'a>> = config
            .workload_entries
            .iter()
            .map(|we| Workload {
                name: &we.meta.name,
                namespace: &we.meta.namespace,
                ep: &we.endpoint,
                labels: we.labels(),
                unhealthy: we.unhealthy,
            })
            .collect();
        let mut services: BTreeMap<String, Service<'a>> = BTreeMap::new();
        for se in &config.service_entries {
            let backing: Vec<Workload<'a>> = match &se.workload_selector {
                Some(sel) => workloads
                    .iter()
                    .filter(|w| w.namespace == se.meta.namespace && selects(sel, &w.labels))
                    .cloned()
                    .collect(),
                None => se
                    .endpoints
                    .iter()
                    .map(|ep| Workload {
                        name: &se.meta.name,
                        namespace: &se.meta.namespace,
                        ep,
                        labels: ep.labels.clone(),
                        unhealthy: se.unhealthy,
                    })
                    .collect(),
            };
            for host in &se.hosts {
                if let Some(first) = services.get(host) {
                    out.warn(format!(
                        "{}: host {host} is already defined by ServiceEntry {}/{}: ignored",
                        se.meta.source, first.namespace, first.entry.meta.name
                    ));
                    continue;
                }
                services.insert(
                    host.clone(),
                    Service {
                        host: host.clone(),
                        namespace: se.meta.namespace.clone(),
                        entry: se,
                        short_names: Vec::new(),
                        workloads: backing.clone(),
                    },
                );
            }
        }
        assign_short_names(&mut services, out);
        let mut destination_rules = BTreeMap::new();
        for dr in &config.destination_rules {
            let host = fqdn(&dr.host, &dr.meta.namespace);
            if let Some(first) = destination_rules.insert(host.clone(), dr) {
                out.warn(format!(
                    "{}: host {host} already has DestinationRule {}/{}: ignored",
                    dr.meta.source, first.meta.namespace, first.meta.name
                ));
                destination_rules.insert(host, first);
            }
        }
        let mut virtual_services = BTreeMap::new();
        for vs in &config.virtual_services {
            for h in &vs.hosts {
                let host = fqdn(h, &vs.meta.namespace);
                if let Some(first) = virtual_services.insert(host.clone(), vs) {
                    out.warn(format!(
                        "{}: host {host} already has VirtualService {}/{}: ignored for it",
                        vs.meta.source, first.meta.namespace, first.meta.name
                    ));
                    virtual_services.insert(host, first);
                }
            }
        }
        Index {
            services,
            destination_rules,
            virtual_services,
        }
    }

    /// Every service, by host.
    pub fn services(&self) -> impl Iterator<Item = &Service<'a>> {
        self.services.values()
    }

    /// The service for `host` (an FQDN).
    pub fn service(&self, host: &str) -> Option<&Service<'a>> {
        self.services.get(host)
    }

    /// The DestinationRule for `host` (an FQDN).
    pub fn destination_rule(&self, host: &str) -> Option<&'a DestinationRule> {
        self.destination_rules.get(host).copied()
    }

    /// The VirtualService for `host` (an FQDN).
    pub fn virtual_service(&self, host: &str) -> Option<&'a VirtualService> {
        self.virtual_services.get(host).copied()
    }
}

/// `a.b.svc.cluster.local` answers to `a`, `a.b` and `a.b.svc` too, unless
/// another host (in name order) claimed the short name first.
fn assign_short_names(services: &mut BTreeMap<String, Service<'_>>, out: &mut Out) {
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for (host, svc) in services.iter_mut() {
        let Some(stem) = host.strip_suffix(".svc.cluster.local") else {
            continue;
        };
        let Some((name, _namespace)) = stem.split_once('.') else {
            continue;
        };
        for short in [name.to_owned(), stem.to_owned(), format!("{stem}.svc")] {
            if let Some(first) = owner.get(&short) {
                out.warn(format!(
                    "short name {short} of {host} is also a short name of {first}: \
                     it resolves to {first}"
                ));
                continue;
            }
            owner.insert(short.clone(), host.clone());
            svc.short_names.push(short);
        }
    }
}
