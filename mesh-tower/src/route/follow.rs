//! Following discovery: compiling each published
//! [`Runtime`](crate::discovery::Runtime) into the route table.

use std::sync::Arc;

use super::{ClusterLookup, RouteState, Routes};
use crate::cluster::ClusterRuntime;
use crate::discovery::{Discovery, Runtime};

impl ClusterLookup for Runtime {
    fn cluster(&self, name: &str) -> Result<Arc<ClusterRuntime>, String> {
        if let Some(c) = self.clusters.get(name) {
            return Ok(c.clone());
        }
        Err(match self.cluster_errors.get(name) {
            Some(reason) => format!("cluster {name}: {reason}"),
            None => format!("cluster {name} is not in the config"),
        })
    }
}

impl Routes {
    /// Publishes the routes of a discovery runtime: its error fails RPCs,
    /// its config compiles against its clusters, and a runtime with
    /// neither (nothing received yet) changes nothing.
    pub fn follow(&self, runtime: &Runtime) {
        if let Some(error) = &runtime.error {
            self.store(RouteState::Failed(error.reason.clone().into()));
        } else if let Some(config) = &runtime.config {
            self.update(config, runtime);
        }
    }

    /// Keeps these routes compiled from `discovery`'s runtime: compiles the
    /// current one now, then each publish, in a task that ends when every
    /// clone of these routes is gone (or when the returned handle aborts
    /// it). Needs a Tokio runtime.
    pub fn follow_discovery(&self, discovery: Discovery) -> tokio::task::JoinHandle<()> {
        // Subscribe before loading, so a publish in between is not missed.
        let mut rx = discovery.subscribe();
        self.follow(&discovery.load());
        let weak = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let Some(shared) = weak.upgrade() else { return };
                Routes { shared }.follow(&discovery.load());
            }
        })
    }
}
