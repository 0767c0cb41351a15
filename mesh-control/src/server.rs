//! The embeddable control plane: a config source (a file or directory of
//! Istio YAML, or YAML text) → translation → a versioned snapshot → the ADS
//! server, with hot reload and optional endpoint health checking.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mesh_control::server::ControlPlane;
//! let cp = ControlPlane::builder()
//!     .config_path("mesh/")
//!     .listen("127.0.0.1:15010".parse()?)
//!     .start()
//!     .await?;
//! let bootstrap = cp.client_bootstrap("greeter-client");
//! println!("{}", bootstrap.to_json());
//! # Ok(()) }
//! ```
//!
//! Each new snapshot gets the next version number; a reload that changes
//! nothing publishes nothing. A config that fails to load leaves the last
//! good one in force; the error is logged and kept in
//! [`RunningControlPlane::last_error`].
//!
//! This module does not parse YAML or build xDS itself (see
//! `pipeline`, the seam to [`crate::config`] and [`crate::translate`]).

mod pipeline;
mod reload;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_core::bootstrap::Bootstrap;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::ads::{AdsServer, ClientRegistry, ClientStatus};
use crate::health::{self, HealthCheckConfig};
use crate::snapshot::XdsSnapshot;

/// The default ADS listening address (istiod's plaintext xDS port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:15010";

/// How long file changes are collected before one reload.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(200);

/// A config that could not be loaded: every error found, and the warnings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .errors.join("\n"))]
pub struct ConfigError {
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl ConfigError {
    pub(crate) fn with(errors: Vec<String>, warnings: Vec<String>) -> Self {
        ConfigError { errors, warnings }
    }

    /// Each error, naming file, object and field.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Warnings found on the way.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The initial config is invalid.
    #[error("invalid config: {0}")]
    Config(#[from] ConfigError),
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config path could not be watched for changes.
    #[error("cannot watch {path} for changes: {reason}")]
    Watch {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Where config comes from.
#[derive(Debug, Clone)]
enum Source {
    /// Nothing yet: serve an empty snapshot (tests, `set_snapshot`).
    Empty,
    /// A file or directory, watched for changes.
    Path(PathBuf),
    /// YAML text.
    Yaml(String),
}

/// Entry point: [`ControlPlane::builder`].
#[derive(Debug)]
pub struct ControlPlane;

impl ControlPlane {
    /// A builder with defaults: no config, `127.0.0.1:15010`, no health
    /// checks.
    pub fn builder() -> ControlPlaneBuilder {
        ControlPlaneBuilder {
            source: Source::Empty,
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            health: None,
            debounce: DEFAULT_DEBOUNCE,
            watch: true,
        }
    }
}

/// Configures and starts a control plane.
#[derive(Debug, Clone)]
#[must_use]
pub struct ControlPlaneBuilder {
    source: Source,
    listen: SocketAddr,
    health: Option<HealthCheckConfig>,
    debounce: Duration,
    watch: bool,
}

impl ControlPlaneBuilder {
    /// Reads config from a YAML file or a directory of them, reloading on
    /// change.
    pub fn config_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = Source::Path(path.into());
        self
    }

    /// Reads config from YAML text.
    pub fn config_yaml(mut self, yaml: impl Into<String>) -> Self {
        self.source = Source::Yaml(yaml.into());
        self
    }

    /// Where ADS listens (port 0 picks a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Turns endpoint health checking (grpc.health.v1) on with the default
    /// interval, or off.
    pub fn health_check(mut self, on: bool) -> Self {
        self.health = on.then(HealthCheckConfig::default);
        self
    }

    /// Turns endpoint health checking on with `config`.
    pub fn health_check_config(mut self, config: HealthCheckConfig) -> Self {
        self.health = Some(config);
        self
    }

    /// How long file changes are collected before a reload (200 ms).
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// Whether a config path is watched for changes (on by default).
    pub fn watch_files(mut self, on: bool) -> Self {
        self.watch = on;
        self
    }

    /// Loads the config, binds, and starts serving.
    pub async fn start(self) -> Result<RunningControlPlane, StartError> {
        let loaded = match &self.source {
            Source::Empty => None,
            Source::Path(p) => Some(pipeline::load_path(p)?),
            Source::Yaml(y) => Some(pipeline::load_yaml("<yaml>", y)?),
        };
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: self.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: self.listen,
            source,
        })?;

        let (snapshots_tx, snapshots_rx) = watch::channel(Arc::new(XdsSnapshot::default()));
        let core = Arc::new(Core {
            state: Mutex::new(State {
                publisher: Some(snapshots_tx),
                ..State::default()
            }),
            current: snapshots_rx.clone(),
            clients: ClientRegistry::new(),
        });
        if let Some(loaded) = loaded {
            core.install(Base::Model(loaded.model), &loaded.warnings);
        }

        let mut tasks = Vec::new();
        let _watcher = match (&self.source, self.watch) {
            (Source::Path(p), true) => {
                let (w, task) =
                    reload::watch(p.clone(), self.debounce, core.clone()).map_err(|reason| {
                        StartError::Watch {
                            path: p.clone(),
                            reason,
                        }
                    })?;
                tasks.push(task);
                Some(w)
            }
            _ => None,
        };
        if let Some(cfg) = self.health {
            tasks.push(tokio::spawn(run_health(cfg, core.clone())));
        }

        let ads = AdsServer::new(snapshots_rx, core.clients.clone());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .add_service(ads.into_service())
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!("ADS server stopped: {e}");
            }
        });
        tracing::info!(%local_addr, "mesh-control serving ADS");
        Ok(RunningControlPlane {
            local_addr,
            core,
            stop: Some(stop_tx),
            server: Some(server),
            tasks,
            _watcher,
        })
    }
}

/// What snapshots are built from.
#[derive(Debug, Clone)]
enum Base {
    /// A loaded config, translated on every change.
    Model(pipeline::Model),
    /// A snapshot set directly.
    Raw(XdsSnapshot),
}

#[derive(Debug, Default)]
struct State {
    /// Publishes snapshots; dropped at shutdown, which ends every stream.
    publisher: Option<watch::Sender<Arc<XdsSnapshot>>>,
    base: Option<Base>,
    unhealthy: BTreeSet<SocketAddr>,
    last_error: Option<String>,
    version: u64,
}

/// What the running tasks share.
#[derive(Debug)]
struct Core {
    state: Mutex<State>,
    /// The snapshot served (for reads; never marked seen).
    current: watch::Receiver<Arc<XdsSnapshot>>,
    clients: ClientRegistry,
}

impl Core {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the base config and publishes what it gives.
    fn install(&self, base: Base, warnings: &[String]) {
        for w in warnings {
            tracing::warn!("config: {w}");
        }
        let mut st = self.lock();
        st.base = Some(base);
        st.last_error = None;
        self.rebuild(&mut st);
    }

    /// Records a failed load; the last good config stays.
    fn fail(&self, error: &ConfigError) {
        tracing::error!("config rejected, keeping the last good one:\n{error}");
        self.lock().last_error = Some(error.to_string());
    }

    /// Builds the snapshot from the base and health, and publishes it if
    /// it differs from the one served.
    fn rebuild(&self, st: &mut State) {
        if st.publisher.is_none() {
            return; // shut down
        }
        let mut snap = match &st.base {
            None => XdsSnapshot::default(),
            Some(Base::Raw(s)) => {
                let mut s = s.clone();
                health::mark_unhealthy(&mut s, &st.unhealthy);
                s
            }
            Some(Base::Model(m)) => {
                let (snap, warnings) = pipeline::translate(m, &st.unhealthy);
                for w in warnings {
                    tracing::warn!("translate: {w}");
                }
                snap
            }
        };
        let cur = self.current.borrow().clone();
        if st.version > 0 && cur.resources == snap.resources && cur.inbound == snap.inbound {
            return;
        }
        st.version += 1;
        snap.version = st.version;
        tracing::info!(version = snap.version, "publishing xDS snapshot");
        if let Some(p) = &st.publisher {
            p.send_replace(Arc::new(snap));
        }
    }
}

/// Health checking: follows the served endpoints and feeds the unhealthy
/// set back into snapshots.
async fn run_health(cfg: HealthCheckConfig, core: Arc<Core>) {
    let mut snapshots = core.current.clone();
    let (targets_tx, targets_rx) =
        watch::channel(health::endpoint_addresses(&snapshots.borrow_and_update()));
    let (unhealthy_tx, mut unhealthy_rx) = watch::channel(BTreeSet::new());
    tokio::spawn(health::run(cfg, targets_rx, unhealthy_tx));
    loop {
        tokio::select! {
            r = snapshots.changed() => {
                if r.is_err() {
                    return;
                }
                let addrs = health::endpoint_addresses(&snapshots.borrow_and_update());
                targets_tx.send_if_modified(|cur| {
                    let changed = *cur != addrs;
                    *cur = addrs;
                    changed
                });
            }
            r = unhealthy_rx.changed() => {
                if r.is_err() {
                    return;
                }
                let down = unhealthy_rx.borrow_and_update().clone();
                let mut st = core.lock();
                st.unhealthy = down;
                core.rebuild(&mut st);
            }
        }
    }
}

/// A running control plane. Dropping it stops the ADS server (as
/// [`shutdown`](Self::shutdown) does, without waiting).
#[derive(Debug)]
pub struct RunningControlPlane {
    local_addr: SocketAddr,
    core: Arc<Core>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    _watcher: Option<reload::Watcher>,
}

impl RunningControlPlane {
    /// Where ADS listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A bootstrap for a client node with id `node_id`.
    pub fn client_bootstrap(&self, node_id: &str) -> Bootstrap {
        crate::bootstrap_gen::client_bootstrap(self.local_addr, node_id)
    }

    /// A bootstrap for an xDS-enabled server node: the workload at `ip` in
    /// `namespace` with `labels`.
    pub fn server_bootstrap(
        &self,
        ip: IpAddr,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Bootstrap {
        crate::bootstrap_gen::server_bootstrap(self.local_addr, ip, namespace, labels)
    }

    /// Replaces the config with `yaml` in-process (file watching goes on;
    /// the next file change replaces it again). On error nothing changes.
    pub fn apply_yaml(&self, yaml: &str) -> Result<(), ConfigError> {
        match pipeline::load_yaml("<apply_yaml>", yaml) {
            Ok(loaded) => {
                self.core
                    .install(Base::Model(loaded.model), &loaded.warnings);
                Ok(())
            }
            Err(e) => {
                self.core.fail(&e);
                Err(e)
            }
        }
    }

    /// Serves `snapshot` directly, bypassing config (its version is
    /// replaced by the next one). For tests and custom translators; the
    /// next config change replaces it.
    pub fn set_snapshot(&self, snapshot: XdsSnapshot) {
        self.core.install(Base::Raw(snapshot), &[]);
    }

    /// The snapshot being served.
    pub fn snapshot(&self) -> Arc<XdsSnapshot> {
        self.core.current.borrow().clone()
    }

    /// Every ADS client, connected or recently gone.
    pub fn clients(&self) -> Vec<ClientStatus> {
        self.core.clients.list()
    }

    /// The error of the last config load, if it failed (cleared by the next
    /// good one).
    pub fn last_error(&self) -> Option<String> {
        self.core.lock().last_error.clone()
    }

    /// Stops serving: every ADS stream ends with UNAVAILABLE and the
    /// listener closes.
    pub async fn shutdown(mut self) {
        self.stop_now();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    fn stop_now(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        // Ends the streams (tonic's graceful shutdown waits for them).
        self.core.lock().publisher = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for RunningControlPlane {
    fn drop(&mut self) {
        self.stop_now();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
