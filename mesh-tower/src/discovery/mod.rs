//! Discovery: turns a target's config snapshots (a
//! [`TargetWatch`], or one static
//! [`ClientConfig`] for users without xDS) into run-time state: one
//! [`ClusterRuntime`] per cluster (breaker, balancer, endpoints), published
//! as an arc-swapped [`Runtime`] that the route layer reads per request.
//!
//! Unchanged clusters and endpoints are reused across snapshots (see
//! [`build`](self)), so connections, breaker counters and outlier state
//! survive config updates. Each cluster with `outlier_detection` gets its
//! detector task, which lives as long as the cluster stays in the config.
//!
//! Errors (A88): mesh-core's watcher publishes an error only when there is
//! no usable resource (never received, or really removed: cached resources
//! survive NACKs and transient errors there). Discovery then publishes a
//! runtime whose [`Runtime::error`] fails RPCs with UNAVAILABLE and the
//! error text; clusters that failed alone fail only their own RPCs
//! ([`Runtime::cluster`]).
//!
//! TLS (A29): a cluster with an `UpstreamTlsContext` connects through a
//! [`TlsConnector`](crate::tls::TlsConnector) built from the context and
//! [`DiscoveryOptions::tls_registry`] (the bootstrap's certificate
//! providers), running over the cluster's plain connector; a cluster without
//! one is plaintext (the fallback of gRPC's xDS credentials). A context that
//! cannot be turned into a connector (an unknown provider instance, files
//! that do not load, no registry) fails that cluster's RPCs with UNAVAILABLE
//! and the error text. The connector is built once per context: a snapshot
//! with the same context keeps it and the connections made with it.
//!
//! Not here: route matching (the route layer compiles routes on top of the
//! runtime), connecting (endpoint), picking (balance).

mod build;
mod tls;

pub use self::tls::shared_tls_registry;

use std::collections::HashMap;
use std::sync::Arc;

use crate::breaker::Breaker;

use arc_swap::ArcSwap;
use mesh_core::resource::Cluster;
use mesh_core::watch::{ClientConfig, ConfigError, ConfigState, TargetWatch};
use tokio::sync::{Mutex, watch};

use self::build::Builder;
use crate::BoxError;
use crate::balance::BalanceSettings;
use crate::cluster::ClusterRuntime;
use crate::endpoint::{ConnectionSettings, Connector};
use crate::tls::ProviderRegistry;

/// Picks the connector of a cluster (mesh-tonic: TLS from `cluster.tls`).
pub type ConnectorFor = Arc<dyn Fn(&Cluster) -> Arc<dyn Connector> + Send + Sync>;

/// How discovery builds runtimes.
#[derive(Clone, Default)]
pub struct DiscoveryOptions {
    /// Connection settings of every endpoint.
    pub connection: ConnectionSettings,
    /// Replaces `connection.connector` per cluster, when set.
    pub connector_for: Option<ConnectorFor>,
    /// Balancer settings of every cluster.
    pub balance: BalanceSettings,
    /// Seed of the balancers' randomness (tests); `None` for entropy.
    pub seed: Option<u64>,
    /// The certificate providers TLS clusters get their certificates and
    /// CAs from: normally [`shared_tls_registry`] of the bootstrap the xDS
    /// client uses, so every channel of the process (and the xDS-enabled
    /// server) shares one provider per instance. `None`: clusters with an
    /// `UpstreamTlsContext` fail their RPCs with UNAVAILABLE (plaintext
    /// clusters are unaffected). With mesh-tonic's channel, pass it in
    /// `ChannelBuilder::discovery_options`.
    pub tls_registry: Option<Arc<ProviderRegistry>>,
    /// Insecure credentials: every cluster connects in plaintext and its
    /// `UpstreamTlsContext` is ignored, as a gRPC channel built with
    /// insecure credentials does. `false` (the default) is xDS credentials:
    /// TLS where the cluster asks for it.
    pub ignore_tls: bool,
}

impl std::fmt::Debug for DiscoveryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryOptions")
            .field("connection", &self.connection)
            .field("connector_for", &self.connector_for.is_some())
            .field("balance", &self.balance)
            .field("seed", &self.seed)
            .field("tls_registry", &self.tls_registry.is_some())
            .field("ignore_tls", &self.ignore_tls)
            .finish()
    }
}

impl DiscoveryOptions {
    /// The connection settings of `cluster`'s endpoints; `tls` (the
    /// cluster's TLS connector) replaces the plain connector.
    fn settings_for(
        &self,
        cluster: &Cluster,
        breaker: Arc<Breaker>,
        tls: Option<&Arc<dyn Connector>>,
    ) -> Arc<ConnectionSettings> {
        let mut s = self.connection.clone();
        s.apply_cluster(cluster);
        s.breaker = Some(breaker);
        match tls {
            Some(c) => s.connector = Arc::clone(c),
            None => s.connector = self.plain_connector(cluster),
        }
        Arc::new(s)
    }

    /// The connector opening `cluster`'s byte streams before any TLS:
    /// `connector_for`'s, else `connection.connector`.
    fn plain_connector(&self, cluster: &Cluster) -> Arc<dyn Connector> {
        match &self.connector_for {
            Some(f) => f(cluster),
            None => Arc::clone(&self.connection.connector),
        }
    }
}

/// The run-time state of one target at one moment.
#[derive(Debug, Default)]
pub struct Runtime {
    /// The config it was built from; `None` before the first one.
    pub config: Option<Arc<ClientConfig>>,
    /// Every resolved cluster the virtual host can send to, by name.
    pub clusters: HashMap<String, Arc<ClusterRuntime>>,
    /// Clusters that did not resolve, with the reason.
    pub cluster_errors: HashMap<String, String>,
    /// Set when RPCs must fail: no config ever, or the config was removed.
    pub error: Option<ConfigError>,
    /// Bumped on every publish.
    pub generation: u64,
}

impl Runtime {
    /// The cluster `name`, or UNAVAILABLE saying why it cannot serve.
    pub fn cluster(&self, name: &str) -> Result<&Arc<ClusterRuntime>, BoxError> {
        if let Some(c) = self.clusters.get(name) {
            return Ok(c);
        }
        if let Some(e) = &self.error {
            return Err(crate::error::unavailable(e.reason.clone()));
        }
        Err(crate::error::unavailable(
            match self.cluster_errors.get(name) {
                Some(reason) => format!("cluster {name}: {reason}"),
                None => format!("cluster {name} is not in the config"),
            },
        ))
    }

    /// UNAVAILABLE with the reason when RPCs cannot be routed at all.
    pub fn check(&self) -> Result<&Arc<ClientConfig>, BoxError> {
        match (&self.config, &self.error) {
            (_, Some(e)) => Err(crate::error::unavailable(e.reason.clone())),
            (Some(c), None) => Ok(c),
            (None, None) => Err(crate::error::unavailable("no config received yet")),
        }
    }
}

struct Shared {
    current: ArcSwap<Runtime>,
    tx: watch::Sender<u64>,
    builder: Mutex<Builder>,
}

/// A live, cheaply cloned view of a target's runtime.
#[derive(Clone)]
pub struct Discovery {
    shared: Arc<Shared>,
    rx: watch::Receiver<u64>,
    _task: Option<Arc<AbortOnDrop>>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("generation", &*self.rx.borrow())
            .finish_non_exhaustive()
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Discovery {
    /// A discovery fed by hand ([`apply`](Self::apply)); starts with no
    /// config.
    pub fn manual(options: DiscoveryOptions) -> Self {
        let (tx, rx) = watch::channel(0);
        Discovery {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(Runtime::default()),
                tx,
                builder: Mutex::new(Builder::new(options)),
            }),
            rx,
            _task: None,
        }
    }

    /// A discovery over one fixed config (no xDS).
    pub async fn from_static(config: ClientConfig, options: DiscoveryOptions) -> Self {
        let d = Discovery::manual(options);
        d.apply(Some(Ok(Arc::new(config)))).await;
        d
    }

    /// Follows `watch` in a background task until every clone of the
    /// returned handle is dropped.
    pub async fn from_watch(watch: TargetWatch, options: DiscoveryOptions) -> Self {
        let mut d = Discovery::manual(options);
        let mut rx = watch.receiver();
        let first = rx.borrow_and_update().clone();
        d.apply(first).await;
        let weak = Arc::downgrade(&d.shared);
        let task = tokio::spawn(async move {
            let _watch = watch;
            while rx.changed().await.is_ok() {
                let state = rx.borrow_and_update().clone();
                let Some(shared) = weak.upgrade() else { return };
                apply(&shared, state).await;
            }
        });
        d._task = Some(Arc::new(AbortOnDrop(task.abort_handle())));
        d
    }

    /// Builds and publishes the runtime for `state`.
    pub async fn apply(&self, state: ConfigState) {
        apply(&self.shared, state).await;
    }

    /// The current runtime (one arc-swap load).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Runtime>> {
        self.shared.current.load()
    }

    /// The current runtime as an owned `Arc`.
    pub fn load_full(&self) -> Arc<Runtime> {
        self.shared.current.load_full()
    }

    /// Waits for the next publish after the last one this handle saw.
    pub async fn changed(&mut self) {
        let _ = self.rx.changed().await;
        self.rx.borrow_and_update();
    }

    /// A receiver of publish generations (for `select!` loops).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.tx.subscribe()
    }
}

async fn apply(shared: &Shared, state: ConfigState) {
    let mut builder = shared.builder.lock().await;
    let generation = *shared.tx.borrow() + 1;
    let runtime = match state {
        None => return,
        Some(Ok(config)) => {
            let prev = shared.current.load();
            if prev
                .config
                .as_ref()
                .is_some_and(|p| Arc::ptr_eq(p, &config) || p.same_as(&config))
                && prev.error.is_none()
            {
                return;
            }
            builder.build(config, generation)
        }
        Some(Err(error)) => {
            tracing::warn!(%error, "xDS config unusable; RPCs fail UNAVAILABLE");
            builder.clear();
            Runtime {
                config: None,
                clusters: HashMap::new(),
                cluster_errors: HashMap::new(),
                error: Some(error),
                generation,
            }
        }
    };
    shared.current.store(Arc::new(runtime));
    shared.tx.send_replace(generation);
}

#[cfg(test)]
mod tests;
