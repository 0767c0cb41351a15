//! Watchers: resolve a target's listener → routes → clusters → endpoints
//! and publish one consistent, immutable [`ClientConfig`] snapshot through
//! a `watch` channel (A74).
//!
//! Subscriptions are shared with every other watcher of the same client and
//! dropped with the last [`TargetWatch`] clone. Nothing here validates or
//! speaks the protocol; see [`crate::xds`].

mod cascade;
mod server;
mod snapshot;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

pub use cascade::ConfigState;
pub use server::{ServerConfig, ServerState};
pub use snapshot::{ClientConfig, ClusterResult, ConfigError, ResolvedCluster};

use crate::xds::XdsClient;

/// A live view of one resolved config (`T` is [`ClientConfig`] or
/// [`ServerConfig`]). Cheap to clone; the cascade stops with the last clone.
#[derive(Debug)]
pub struct ConfigWatch<T> {
    rx: watch::Receiver<Option<Result<Arc<T>, ConfigError>>>,
    listener_name: Arc<str>,
    _task: Arc<AbortOnDrop>,
}

impl<T> Clone for ConfigWatch<T> {
    fn clone(&self) -> Self {
        ConfigWatch {
            rx: self.rx.clone(),
            listener_name: self.listener_name.clone(),
            _task: self._task.clone(),
        }
    }
}

/// A client target's config watch.
pub type TargetWatch = ConfigWatch<ClientConfig>;
/// An xDS-enabled server's config watch.
pub type ServerWatch = ConfigWatch<ServerConfig>;

#[derive(Debug)]
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows the client listener `listener_name` for the target authority
/// `target` (which picks the virtual host).
pub fn watch_target(client: &XdsClient, listener_name: &str, target: &str) -> TargetWatch {
    let (tx, rx) = watch::channel(None);
    let cascade = cascade::Cascade::new(
        client.clone(),
        listener_name.to_owned(),
        target.to_owned(),
        tx,
    );
    let task = tokio::spawn(cascade.run());
    ConfigWatch {
        rx,
        listener_name: listener_name.into(),
        _task: Arc::new(AbortOnDrop(task.abort_handle())),
    }
}

/// Follows the server listener `listener_name` and the routes it names
/// (A36).
pub fn watch_server(client: &XdsClient, listener_name: &str) -> ServerWatch {
    let (tx, rx) = watch::channel(None);
    let cascade = server::ServerCascade::new(client.clone(), listener_name.to_owned(), tx);
    let task = tokio::spawn(cascade.run());
    ConfigWatch {
        rx,
        listener_name: listener_name.into(),
        _task: Arc::new(AbortOnDrop(task.abort_handle())),
    }
}

impl<T> ConfigWatch<T> {
    /// The current state: `None` until the first config resolves.
    pub fn current(&self) -> Option<Result<Arc<T>, ConfigError>> {
        self.rx.borrow().clone()
    }

    /// A receiver for data planes that poll (`borrow()` holds a read lock
    /// only while cloning an `Arc`; data planes keep their own arc-swapped
    /// copy for the hot path).
    pub fn receiver(&self) -> watch::Receiver<Option<Result<Arc<T>, ConfigError>>> {
        self.rx.clone()
    }

    /// Waits for the next change.
    pub async fn changed(&mut self) -> Option<Result<Arc<T>, ConfigError>> {
        let _ = self.rx.changed().await;
        self.rx.borrow_and_update().clone()
    }

    /// Waits up to `timeout` for the first resolved state (a config or an
    /// error). On timeout the error names the listener still missing.
    pub async fn first(&mut self, timeout: Duration) -> Result<Arc<T>, ConfigError> {
        let wait = self.rx.wait_for(Option::is_some);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(state)) => state.clone().expect("waited for Some"),
            _ => Err(ConfigError {
                reason: format!(
                    "no xDS config after {timeout:?}: Listener \"{}\" (or what it references) not received",
                    self.listener_name
                ),
            }),
        }
    }
}
