//! Watchers: resolve a target's listener → routes → clusters → endpoints
//! and publish one consistent, immutable [`ClientConfig`] snapshot through
//! a `watch` channel (A74).
//!
//! Subscriptions are shared with every other watcher of the same client and
//! dropped with the last [`TargetWatch`] clone. Nothing here validates or
//! speaks the protocol; see [`crate::xds`].

mod cascade;
mod snapshot;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

pub use cascade::ConfigState;
pub use snapshot::{ClientConfig, ClusterResult, ConfigError, ResolvedCluster};

use crate::xds::XdsClient;

/// A live view of one client target's config. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TargetWatch {
    rx: watch::Receiver<ConfigState>,
    listener_name: Arc<str>,
    _task: Arc<AbortOnDrop>,
}

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
    TargetWatch {
        rx,
        listener_name: listener_name.into(),
        _task: Arc::new(AbortOnDrop(task.abort_handle())),
    }
}

impl TargetWatch {
    /// The current state: `None` until the first config resolves.
    pub fn current(&self) -> ConfigState {
        self.rx.borrow().clone()
    }

    /// A receiver for data planes that poll (`borrow()` is lock-free for
    /// readers in practice: a read lock held only while cloning an `Arc`).
    pub fn receiver(&self) -> watch::Receiver<ConfigState> {
        self.rx.clone()
    }

    /// Waits for the next change.
    pub async fn changed(&mut self) -> ConfigState {
        let _ = self.rx.changed().await;
        self.rx.borrow_and_update().clone()
    }

    /// Waits up to `timeout` for the first resolved state (a config or an
    /// error). On timeout the error names the listener still missing.
    pub async fn first(&mut self, timeout: Duration) -> Result<Arc<ClientConfig>, ConfigError> {
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
