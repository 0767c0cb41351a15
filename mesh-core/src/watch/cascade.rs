//! The LDS → RDS → CDS → EDS cascade for one client target (A74).
//!
//! A task per target follows the listener, its route configuration, the
//! clusters of the chosen virtual host and their endpoints, subscribing and
//! unsubscribing as references change, and publishes a [`ClientConfig`]
//! only when everything it references has resolved.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::{Notify, watch};

use super::snapshot::{ClientConfig, ClusterResult, ConfigError, ResolvedCluster};
use crate::resource::ResourceType;
use crate::resource::cluster::Discovery;
use crate::resource::listener::{ListenerKind, RouteSource};
use crate::xds::{AnyResource, ResourceUpdate, ResourceWatch, XdsClient};

/// What a target's watchers see: nothing yet, a config, or an error.
pub type ConfigState = Option<Result<Arc<ClientConfig>, ConfigError>>;

pub(crate) struct Cascade {
    client: XdsClient,
    target: String,
    wake: Arc<Notify>,
    lds: ResourceWatch,
    rds: Option<ResourceWatch>,
    cds: BTreeMap<String, ResourceWatch>,
    /// Keyed by EDS service name.
    eds: BTreeMap<String, ResourceWatch>,
    tx: watch::Sender<ConfigState>,
}

enum Step {
    /// Something is still unresolved: wait.
    Pending,
    Ready(Result<ClientConfig, ConfigError>),
}

impl Cascade {
    pub fn new(
        client: XdsClient,
        listener_name: String,
        target: String,
        tx: watch::Sender<ConfigState>,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let lds = client.watch_with_wake(ResourceType::Listener, listener_name, wake.clone());
        Cascade {
            client,
            target,
            wake,
            lds,
            rds: None,
            cds: BTreeMap::new(),
            eds: BTreeMap::new(),
            tx,
        }
    }

    pub async fn run(mut self) {
        loop {
            if self.tx.is_closed() {
                return;
            }
            if let Step::Ready(result) = self.step() {
                self.publish(result);
            }
            self.wake.notified().await;
        }
    }

    fn publish(&self, result: Result<ClientConfig, ConfigError>) {
        self.tx.send_if_modified(|cur| {
            let changed = match (&*cur, &result) {
                (Some(Ok(a)), Ok(b)) => !a.same_as(b),
                (Some(Err(a)), Err(b)) => a != b,
                _ => true,
            };
            if changed {
                *cur = Some(result.map(Arc::new));
            }
            changed
        });
    }

    fn step(&mut self) -> Step {
        let lds = self.lds.current();
        let listener = match resolved(&lds, "Listener", self.lds.name()) {
            Err(e) => {
                self.rds = None;
                self.cds.clear();
                self.eds.clear();
                return Step::Ready(Err(e));
            }
            Ok(None) => return Step::Pending,
            Ok(Some(AnyResource::Listener(l))) => l,
            Ok(Some(_)) => unreachable!("an LDS watch yields listeners"),
        };
        let hcm = match &listener.kind {
            ListenerKind::Client(hcm) => hcm,
            ListenerKind::Server(_) => {
                return Step::Ready(Err(ConfigError {
                    reason: format!(
                        "Listener \"{}\" is a server listener (no api_listener), not usable by a client",
                        listener.name
                    ),
                }));
            }
        };
        let route_config = match &hcm.route {
            RouteSource::Inline(rc) => {
                self.rds = None;
                rc.clone()
            }
            RouteSource::Rds(name) => {
                if self.rds.as_ref().is_none_or(|w| w.name() != name) {
                    self.rds = Some(self.client.watch_with_wake(
                        ResourceType::RouteConfiguration,
                        name.clone(),
                        self.wake.clone(),
                    ));
                }
                let rds = self.rds.as_ref().expect("just set").current();
                match resolved(&rds, "RouteConfiguration", name) {
                    Err(e) => {
                        self.cds.clear();
                        self.eds.clear();
                        return Step::Ready(Err(e));
                    }
                    Ok(None) => return Step::Pending,
                    Ok(Some(AnyResource::RouteConfig(rc))) => rc,
                    Ok(Some(_)) => unreachable!("an RDS watch yields route configs"),
                }
            }
        };
        let vh_index = route_config.virtual_host_for(&self.target).and_then(|vh| {
            route_config
                .virtual_hosts
                .iter()
                .position(|v| std::ptr::eq(v, vh))
        });
        let Some(vh_index) = vh_index else {
            self.cds.clear();
            self.eds.clear();
            return Step::Ready(Err(ConfigError {
                reason: format!(
                    "RouteConfiguration \"{}\" has no virtual host for domain \"{}\"",
                    route_config.name, self.target
                ),
            }));
        };
        let wanted: BTreeSet<String> = route_config.virtual_hosts[vh_index]
            .cluster_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        self.cds.retain(|n, _| wanted.contains(n));
        for name in &wanted {
            if !self.cds.contains_key(name) {
                let w = self.client.watch_with_wake(
                    ResourceType::Cluster,
                    name.clone(),
                    self.wake.clone(),
                );
                self.cds.insert(name.clone(), w);
            }
        }

        let mut clusters: BTreeMap<String, ClusterResult> = BTreeMap::new();
        let mut wanted_eds: BTreeSet<String> = BTreeSet::new();
        let mut pending = false;
        for (name, w) in &self.cds {
            let u = w.current();
            let cluster = match resolved(&u, "Cluster", name) {
                Err(e) => {
                    clusters.insert(name.clone(), Err(e.reason));
                    continue;
                }
                Ok(None) => {
                    pending = true;
                    continue;
                }
                Ok(Some(AnyResource::Cluster(c))) => c,
                Ok(Some(_)) => unreachable!("a CDS watch yields clusters"),
            };
            match &cluster.discovery {
                Discovery::Static(cla) => {
                    clusters.insert(
                        name.clone(),
                        Ok(ResolvedCluster {
                            cluster: cluster.clone(),
                            endpoints: cla.clone(),
                        }),
                    );
                }
                Discovery::Eds { service_name } => {
                    wanted_eds.insert(service_name.clone());
                    if !self.eds.contains_key(service_name) {
                        let w = self.client.watch_with_wake(
                            ResourceType::ClusterLoadAssignment,
                            service_name.clone(),
                            self.wake.clone(),
                        );
                        self.eds.insert(service_name.clone(), w);
                    }
                    let eu = self.eds[service_name].current();
                    match resolved(&eu, "ClusterLoadAssignment", service_name) {
                        Err(e) => {
                            clusters.insert(name.clone(), Err(e.reason));
                        }
                        Ok(None) => pending = true,
                        Ok(Some(AnyResource::Endpoints(cla))) => {
                            clusters.insert(
                                name.clone(),
                                Ok(ResolvedCluster {
                                    cluster: cluster.clone(),
                                    endpoints: cla,
                                }),
                            );
                        }
                        Ok(Some(_)) => unreachable!("an EDS watch yields endpoints"),
                    }
                }
            }
        }
        self.eds.retain(|n, _| wanted_eds.contains(n));
        if pending {
            return Step::Pending;
        }
        Step::Ready(Ok(ClientConfig {
            target: self.target.clone(),
            listener,
            route_config,
            virtual_host_index: vh_index,
            clusters,
        }))
    }
}

/// The value of an update, `None` if unresolved, or its error.
fn resolved(
    u: &ResourceUpdate,
    kind: &str,
    name: &str,
) -> Result<Option<AnyResource>, ConfigError> {
    if let Some(d) = &u.data {
        return Ok(Some(d.clone()));
    }
    if let Some(e) = &u.error {
        let reason = if e.reason.contains(name) {
            e.reason.clone()
        } else {
            format!("{kind} \"{name}\": {}", e.reason)
        };
        return Err(ConfigError { reason });
    }
    Ok(None)
}
