//! Turning config snapshots into cluster runtimes, reusing what did not
//! change: a cluster whose config and endpoints are the same instances (or
//! equal values) keeps its runtime; a cluster whose endpoints changed
//! keeps its runtime and balancer, and every endpoint whose address stays
//! keeps its handle (and so its connections and outlier state); a cluster
//! whose config changed gets a new runtime around the same balancer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::resource::Cluster;
use mesh_core::resource::endpoint::ClusterLoadAssignment;
use mesh_core::watch::{ClientConfig, ResolvedCluster};

use super::tls::{ClusterTls, cluster_tls};
use super::{DiscoveryOptions, Runtime};
use crate::balance::Balancer;
use crate::breaker::Breaker;
use crate::cluster::{ClusterRuntime, EndpointHandle};
use crate::endpoint::ConnectionSettings;
use crate::outlier::OutlierDetector;

/// What the builder remembers of one cluster between snapshots.
struct Entry {
    runtime: Arc<ClusterRuntime>,
    endpoints: Arc<ClusterLoadAssignment>,
    detector: Option<OutlierDetector>,
    /// The TLS connector, for a cluster with an `UpstreamTlsContext`.
    tls: Option<ClusterTls>,
}

/// Builds [`Runtime`]s from snapshots, remembering the last one.
pub(crate) struct Builder {
    options: DiscoveryOptions,
    entries: HashMap<String, Entry>,
    /// Seeds for balancers built without an explicit seed.
    next_seed: u64,
}

impl Builder {
    pub(crate) fn new(options: DiscoveryOptions) -> Self {
        let next_seed = options.seed.unwrap_or_else(rand::random);
        Builder {
            options,
            entries: HashMap::new(),
            next_seed,
        }
    }

    /// The runtime for `config`; unchanged clusters are the same `Arc`s.
    pub(crate) fn build(&mut self, config: Arc<ClientConfig>, generation: u64) -> Runtime {
        let mut clusters = HashMap::with_capacity(config.clusters.len());
        let mut cluster_errors = HashMap::new();
        let mut entries = HashMap::with_capacity(config.clusters.len());
        for (name, result) in &config.clusters {
            match result {
                Ok(resolved) => {
                    let prev = self.entries.remove(name);
                    match self.cluster(name, resolved, prev) {
                        Ok(entry) => {
                            clusters.insert(name.clone(), Arc::clone(&entry.runtime));
                            entries.insert(name.clone(), entry);
                        }
                        Err(reason) => {
                            tracing::warn!(cluster = %name, %reason, "cluster cannot serve; its RPCs fail UNAVAILABLE");
                            cluster_errors.insert(name.clone(), reason);
                        }
                    }
                }
                Err(reason) => {
                    cluster_errors.insert(name.clone(), reason.clone());
                }
            }
        }
        // Clusters no longer referenced drop here, with their connections.
        self.entries = entries;
        Runtime {
            config: Some(config),
            clusters,
            cluster_errors,
            error: None,
            generation,
        }
    }

    /// Forgets every cluster (the config is gone).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The entry of one resolved cluster; `Err` is why it cannot serve (its
    /// TLS context cannot be used).
    fn cluster(
        &mut self,
        name: &str,
        resolved: &ResolvedCluster,
        prev: Option<Entry>,
    ) -> Result<Entry, String> {
        let cfg = &resolved.cluster;
        let cla = &resolved.endpoints;
        let tls = cluster_tls(
            &self.options,
            cfg,
            prev.as_ref().and_then(|p| p.tls.as_ref()),
        )?;
        if let Some(mut prev) = prev {
            let same_config =
                Arc::ptr_eq(&prev.runtime.config, cfg) || *prev.runtime.config == **cfg;
            let same_endpoints = Arc::ptr_eq(&prev.endpoints, cla) || *prev.endpoints == **cla;
            if same_config && same_endpoints {
                return Ok(prev);
            }
            let balancer = Arc::clone(&prev.runtime.balancer);
            // New TLS settings mean new connections: rebuild the handles.
            // So does a new upstream HTTP version.
            let keep_handles = prev.runtime.config.tls == cfg.tls
                && prev.runtime.config.upstream_http == cfg.upstream_http;
            self.fill(name, &balancer, cfg, cla, tls.as_ref(), keep_handles);
            let runtime = if same_config {
                prev.runtime
            } else {
                self.update_detector(&mut prev.detector, &balancer, cfg);
                Arc::new(ClusterRuntime {
                    name: Arc::clone(&prev.runtime.name),
                    config: Arc::clone(cfg),
                    breaker: breaker(name, cfg),
                    balancer,
                })
            };
            return Ok(Entry {
                runtime,
                endpoints: Arc::clone(cla),
                detector: prev.detector,
                tls,
            });
        }
        let seed = self.next_seed;
        self.next_seed = self.next_seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let balancer = Arc::new(
            Balancer::new(name)
                .with_seed(seed)
                .with_settings(self.options.balance),
        );
        self.fill(name, &balancer, cfg, cla, tls.as_ref(), false);
        let mut detector = None;
        self.update_detector(&mut detector, &balancer, cfg);
        Ok(Entry {
            runtime: Arc::new(ClusterRuntime {
                name: Arc::from(name),
                config: Arc::clone(cfg),
                breaker: breaker(name, cfg),
                balancer,
            }),
            endpoints: Arc::clone(cla),
            detector,
            tls,
        })
    }

    /// Publishes `cla` into `balancer`, reusing handles by address.
    fn fill(
        &self,
        name: &str,
        balancer: &Balancer,
        cfg: &Cluster,
        cla: &ClusterLoadAssignment,
        tls: Option<&ClusterTls>,
        keep: bool,
    ) {
        let old: HashMap<SocketAddr, Arc<EndpointHandle>> = if keep {
            balancer
                .endpoints()
                .iter()
                .map(|e| (e.address, Arc::clone(e)))
                .collect()
        } else {
            HashMap::new()
        };
        let mut settings: Option<Arc<ConnectionSettings>> = None;
        balancer.update_from_assignment(cfg.lb_policy, cla, |e| match old.get(&e.address) {
            Some(h) => {
                if **h.config.load() != *e {
                    h.config.store(Arc::new(e.clone()));
                }
                Arc::clone(h)
            }
            None => {
                let s = settings.get_or_insert_with(|| {
                    let tls = tls.map(|t| &t.connector);
                    self.options.settings_for(cfg, breaker(name, cfg), tls)
                });
                Arc::new(EndpointHandle::new(e.clone(), Arc::clone(s)))
            }
        });
    }

    fn update_detector(
        &self,
        detector: &mut Option<OutlierDetector>,
        balancer: &Arc<Balancer>,
        cfg: &Cluster,
    ) {
        match (&cfg.outlier_detection, detector.as_ref()) {
            (None, _) => *detector = None,
            (Some(od), Some(d)) => d.update(od.clone()),
            (Some(od), None) => {
                if tokio::runtime::Handle::try_current().is_ok() {
                    *detector = Some(OutlierDetector::spawn(
                        od.clone(),
                        Arc::downgrade(balancer),
                        |b: &Balancer| b.endpoints(),
                    ));
                }
            }
        }
    }
}

fn breaker(name: &str, cfg: &Cluster) -> Arc<Breaker> {
    let eds = cfg.eds_service_name().unwrap_or(name);
    Breaker::shared(name, eds, &cfg.circuit_breakers)
}
