//! The server-side cascade (A36): an xDS-enabled server's Listener and the
//! RouteConfigurations its filter chains' HTTP connection managers name
//! over RDS. Published as one [`ServerConfig`] once every RDS name resolved.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Notify, watch};

use super::snapshot::ConfigError;
use crate::resource::listener::{FilterChain, HttpConnectionManager, RouteSource, ServerListener};
use crate::resource::{Listener, ResourceType, RouteConfig};
use crate::xds::{AnyResource, ResourceWatch, XdsClient};

/// A server listener with every route configuration it references.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The Listener (always a server listener).
    pub listener: Arc<Listener>,
    /// RouteConfigurations fetched over RDS, by name.
    pub routes: BTreeMap<String, Arc<RouteConfig>>,
}

impl ServerConfig {
    /// The server listener.
    pub fn server(&self) -> &ServerListener {
        self.listener
            .server()
            .expect("a ServerConfig holds a server listener")
    }

    /// The routes an HCM uses: inline, or fetched over RDS.
    pub fn route_config<'a>(
        &'a self,
        hcm: &'a HttpConnectionManager,
    ) -> Option<&'a Arc<RouteConfig>> {
        match &hcm.route {
            RouteSource::Inline(rc) => Some(rc),
            RouteSource::Rds(name) => self.routes.get(name),
        }
    }

    /// The routes of a filter chain.
    pub fn chain_routes<'a>(&'a self, chain: &'a FilterChain) -> Option<&'a Arc<RouteConfig>> {
        self.route_config(&chain.hcm)
    }
}

/// What a server's watchers see.
pub type ServerState = Option<Result<Arc<ServerConfig>, ConfigError>>;

pub(crate) struct ServerCascade {
    client: XdsClient,
    wake: Arc<Notify>,
    lds: ResourceWatch,
    rds: BTreeMap<String, ResourceWatch>,
    tx: watch::Sender<ServerState>,
}

impl ServerCascade {
    pub fn new(client: XdsClient, listener_name: String, tx: watch::Sender<ServerState>) -> Self {
        let wake = Arc::new(Notify::new());
        let lds = client.watch_with_wake(ResourceType::Listener, listener_name, wake.clone());
        ServerCascade {
            client,
            wake,
            lds,
            rds: BTreeMap::new(),
            tx,
        }
    }

    pub async fn run(mut self) {
        loop {
            if self.tx.is_closed() {
                return;
            }
            if let Some(result) = self.step() {
                self.tx.send_if_modified(|cur| {
                    let changed = match (&*cur, &result) {
                        (Some(Ok(a)), Ok(b)) => {
                            !Arc::ptr_eq(&a.listener, &b.listener)
                                || a.routes.len() != b.routes.len()
                                || a.routes
                                    .iter()
                                    .zip(&b.routes)
                                    .any(|((n, x), (m, y))| n != m || !Arc::ptr_eq(x, y))
                        }
                        (Some(Err(a)), Err(b)) => a != b,
                        _ => true,
                    };
                    if changed {
                        *cur = Some(result.map(Arc::new));
                    }
                    changed
                });
            }
            self.wake.notified().await;
        }
    }

    /// `None` while something is unresolved.
    fn step(&mut self) -> Option<Result<ServerConfig, ConfigError>> {
        let u = self.lds.current();
        let listener = match (u.data, u.error) {
            (Some(AnyResource::Listener(l)), _) => l,
            (_, Some(e)) => {
                self.rds.clear();
                return Some(Err(ConfigError { reason: e.reason }));
            }
            _ => return None,
        };
        if listener.server().is_none() {
            return Some(Err(ConfigError {
                reason: format!(
                    "Listener \"{}\" is a client listener (api_listener), not usable by a server",
                    listener.name
                ),
            }));
        }
        let names: Vec<String> = listener
            .route_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        self.rds.retain(|n, _| names.contains(n));
        let mut routes = BTreeMap::new();
        let mut pending = false;
        for name in names {
            let w = self.rds.entry(name.clone()).or_insert_with(|| {
                self.client.watch_with_wake(
                    ResourceType::RouteConfiguration,
                    name.clone(),
                    self.wake.clone(),
                )
            });
            let u = w.current();
            match (u.data, u.error) {
                (Some(AnyResource::RouteConfig(rc)), _) => {
                    routes.insert(name, rc);
                }
                (_, Some(e)) => return Some(Err(ConfigError { reason: e.reason })),
                _ => pending = true,
            }
        }
        if pending {
            return None;
        }
        Some(Ok(ServerConfig { listener, routes }))
    }
}
