//! The public handle of an xDS client: subscribe to resources, read status.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::ads::{AdsOptions, AdsWorker, Command, Connector};
use super::resource_state::{ResourceUpdate, WatcherSlot};
use super::status::ClientStatus;
use super::type_state::DataErrorPolicy;
use crate::bootstrap::{Bootstrap, XdsServer};

/// The [`XdsClient::shared`] key of the client xDS-enabled servers use.
pub const SERVER_CLIENT_KEY: &str = "#server";
use crate::resource::ResourceType;

/// An xDS client: one ADS stream (state of the world) to one server, a
/// cache, and the subscriptions of every watcher. Cheap to clone; the stream
/// ends when the last clone and the last [`ResourceWatch`] are dropped.
///
/// Must be created inside a Tokio runtime (it spawns its worker).
#[derive(Clone, Debug)]
pub struct XdsClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    next_id: AtomicU64,
    server: String,
}

impl XdsClient {
    /// Starts a client for `bootstrap`'s first server (fallback to the
    /// others arrives with A71 support), honouring its server features.
    pub fn new(bootstrap: &Bootstrap) -> Self {
        Self::with_options(bootstrap, AdsOptions::default())
    }

    /// Like [`Self::new`] with explicit timers and backoff (for tests). The
    /// data-error policy still comes from the server's features.
    pub fn with_options(bootstrap: &Bootstrap, mut options: AdsOptions) -> Self {
        let server = bootstrap.xds_servers[0].clone();
        let features = server.server_features();
        options.policy = DataErrorPolicy {
            fail_on_data_errors: features.fail_on_data_errors,
            ignore_resource_deletion: features.ignore_resource_deletion,
        };
        options.timer_is_transient = features.resource_timer_is_transient_error;
        options.certificate_providers = Some(Arc::new(
            bootstrap.certificate_providers.keys().cloned().collect(),
        ));
        Self::start(
            bootstrap.node.to_proto(),
            server.server_uri().to_owned(),
            super::transport::connector(server),
            options,
        )
    }

    /// The process-wide client for `key`, shared by every caller with the
    /// same key and server list, created on first use (A71: gRPC keeps one
    /// client per data-plane target, and one for servers under
    /// [`SERVER_CLIENT_KEY`]). It lives while any handle or watch does.
    pub fn shared(bootstrap: &Bootstrap, key: &str) -> Self {
        type Pool = HashMap<(String, Vec<XdsServer>), Weak<Inner>>;
        static POOL: Mutex<Option<Pool>> = Mutex::new(None);
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        let pool = pool.get_or_insert_with(HashMap::new);
        pool.retain(|_, w| w.strong_count() > 0);
        let k = (key.to_owned(), bootstrap.xds_servers.clone());
        // A client whose worker is gone (its runtime shut down while a
        // handle lived on) would never answer: start a new one instead.
        if let Some(inner) = pool
            .get(&k)
            .and_then(Weak::upgrade)
            .filter(|i| !i.commands.is_closed())
        {
            return XdsClient { inner };
        }
        let client = Self::new(bootstrap);
        pool.insert(k, Arc::downgrade(&client.inner));
        client
    }

    /// Starts a client that identifies as `node` and reaches its server
    /// through `connector`.
    pub(crate) fn start(
        node: Node,
        server: String,
        connector: Connector,
        options: AdsOptions,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = AdsWorker::new(node, server.clone(), connector, options, rx);
        tokio::spawn(worker.run());
        XdsClient {
            inner: Arc::new(Inner {
                commands: tx,
                next_id: AtomicU64::new(1),
                server,
            }),
        }
    }

    /// Subscribes to one resource. The subscription is shared with other
    /// watchers of the same resource and ends when the last one is dropped.
    pub fn watch(&self, kind: ResourceType, name: impl Into<String>) -> ResourceWatch {
        self.watch_inner(kind, name.into(), None)
    }

    /// Like [`Self::watch`], also notifying `wake` on every change, so one
    /// task can follow many resources.
    pub fn watch_with_wake(
        &self,
        kind: ResourceType,
        name: impl Into<String>,
        wake: Arc<Notify>,
    ) -> ResourceWatch {
        self.watch_inner(kind, name.into(), Some(wake))
    }

    fn watch_inner(
        &self,
        kind: ResourceType,
        name: String,
        wake: Option<Arc<Notify>>,
    ) -> ResourceWatch {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(ResourceUpdate::default());
        let _ = self.inner.commands.send(Command::Subscribe {
            kind,
            name: name.clone(),
            slot: WatcherSlot { id, tx, wake },
        });
        ResourceWatch {
            client: self.clone(),
            kind,
            name,
            id,
            rx,
        }
    }

    /// The status of every subscribed resource.
    pub async fn status(&self) -> ClientStatus {
        let (tx, rx) = oneshot::channel();
        let _ = self.inner.commands.send(Command::Status(tx));
        rx.await
            .expect("the ADS worker lives as long as its clients")
    }

    /// Whether both handles are the same client.
    pub fn ptr_eq(&self, other: &XdsClient) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The server URI this client talks to.
    pub fn server(&self) -> &str {
        &self.inner.server
    }
}

/// One subscription to one resource. Dropping it unsubscribes.
#[derive(Debug)]
pub struct ResourceWatch {
    client: XdsClient,
    kind: ResourceType,
    name: String,
    id: u64,
    rx: watch::Receiver<ResourceUpdate>,
}

impl ResourceWatch {
    /// The resource's type.
    pub fn kind(&self) -> ResourceType {
        self.kind
    }

    /// The resource's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current state (cheap: clones `Arc`s).
    pub fn current(&self) -> ResourceUpdate {
        self.rx.borrow().clone()
    }

    /// The current state, marking it seen.
    pub fn current_and_mark_seen(&mut self) -> ResourceUpdate {
        self.rx.borrow_and_update().clone()
    }

    /// Whether it changed since last seen.
    pub fn has_changed(&self) -> bool {
        self.rx.has_changed().unwrap_or(false)
    }

    /// Waits for the next change and returns the new state.
    pub async fn changed(&mut self) -> ResourceUpdate {
        // The worker keeps the sender while subscribed, so this only fails
        // if the runtime is shutting down; then the last state stands.
        let _ = self.rx.changed().await;
        self.rx.borrow_and_update().clone()
    }

    /// Waits until the resource is resolved (a value or a definite error).
    pub async fn resolved(&mut self) -> ResourceUpdate {
        loop {
            let u = self.rx.borrow_and_update().clone();
            if u.is_resolved() {
                return u;
            }
            if self.rx.changed().await.is_err() {
                return u;
            }
        }
    }
}

impl Drop for ResourceWatch {
    fn drop(&mut self) {
        let _ = self.client.inner.commands.send(Command::Unsubscribe {
            kind: self.kind,
            name: std::mem::take(&mut self.name),
            id: self.id,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bootstrap() -> Bootstrap {
        Bootstrap::builder()
            .xds_server("127.0.0.1:1")
            .node_id("shared-test")
            .build()
            .unwrap()
    }

    #[test]
    fn a_shared_client_whose_runtime_is_gone_is_replaced() {
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A handle outlives the runtime its worker ran on.
        let stale = first.block_on(async { XdsClient::shared(&bootstrap(), "stale") });
        drop(first);
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        second.block_on(async {
            let fresh = XdsClient::shared(&bootstrap(), "stale");
            assert!(!Arc::ptr_eq(&fresh.inner, &stale.inner));
            assert!(!fresh.inner.commands.is_closed());
            // And a live one is shared.
            let again = XdsClient::shared(&bootstrap(), "stale");
            assert!(Arc::ptr_eq(&fresh.inner, &again.inner));
        });
    }
}
