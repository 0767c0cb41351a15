//! What the client knows about one subscribed resource: its cached value,
//! its CSDS status, and the watchers to tell when either changes.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::resource::{Cluster, ClusterLoadAssignment, Listener, ResourceType, RouteConfig};

/// A validated resource of any of the four types.
#[derive(Debug, Clone)]
pub enum AnyResource {
    /// LDS.
    Listener(Arc<Listener>),
    /// RDS.
    RouteConfig(Arc<RouteConfig>),
    /// CDS.
    Cluster(Arc<Cluster>),
    /// EDS.
    Endpoints(Arc<ClusterLoadAssignment>),
}

/// CSDS's `ClientResourceStatus`, plus the A88 additions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceStatus {
    /// Subscribed, nothing received yet.
    Requested,
    /// The server said (or the timer decided) it does not exist.
    DoesNotExist,
    /// Received and accepted.
    Acked,
    /// The last update was rejected; a cached value may still be in use.
    Nacked,
    /// An error was received for the resource (A88).
    ReceivedError,
    /// The does-not-exist timer fired with `resource_timer_is_transient_error`.
    Timeout,
}

/// The error of a resource that cannot be used at all (A88's "resource
/// error"): watchers drop what they had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceError {
    /// Why, for status messages: names the resource.
    pub reason: String,
}

/// What a watcher sees of one resource.
#[derive(Debug, Clone, Default)]
pub struct ResourceUpdate {
    /// The value to use, if any.
    pub data: Option<AnyResource>,
    /// Set when there is no usable value: does not exist, timed out, or
    /// rejected before anything was cached (or with `fail_on_data_errors`).
    pub error: Option<ResourceError>,
    /// An error that leaves `data` in force: a rejected update or a deletion
    /// of a cached resource (A88 ambient error). Reported, not acted on.
    pub ambient_error: Option<String>,
}

impl ResourceUpdate {
    /// Whether the resource is resolved: a value, or a definite error.
    pub fn is_resolved(&self) -> bool {
        self.data.is_some() || self.error.is_some()
    }
}

/// One watcher's channel: the value and a shared wake-up for cascades that
/// watch many resources at once.
#[derive(Debug)]
pub(crate) struct WatcherSlot {
    pub id: u64,
    pub tx: watch::Sender<ResourceUpdate>,
    pub wake: Option<Arc<Notify>>,
}

/// The client's record of one subscribed resource.
#[derive(Debug)]
pub(crate) struct ResourceEntry {
    pub status: ResourceStatus,
    pub update: ResourceUpdate,
    /// The accepted wire bytes (for the config dump and change detection).
    pub raw: Option<envoy_types::pb::google::protobuf::Any>,
    /// Version of the response that last carried it.
    pub version: String,
    pub last_updated: Option<SystemTime>,
    /// The last rejection: error text, the rejected version, when.
    pub failed: Option<(String, String, SystemTime)>,
    /// When the does-not-exist timer fires, if running.
    pub timer: Option<Instant>,
    pub watchers: Vec<WatcherSlot>,
}

impl ResourceEntry {
    pub fn new() -> Self {
        ResourceEntry {
            status: ResourceStatus::Requested,
            update: ResourceUpdate::default(),
            raw: None,
            version: String::new(),
            last_updated: None,
            failed: None,
            timer: None,
            watchers: Vec::new(),
        }
    }

    /// Whether a value is cached.
    pub fn is_cached(&self) -> bool {
        self.update.data.is_some()
    }

    /// Sends the current update to every watcher, dropping closed ones.
    pub fn publish(&mut self) {
        let update = &self.update;
        self.watchers.retain(|w| {
            if w.tx.send(update.clone()).is_err() {
                return false;
            }
            if let Some(wake) = &w.wake {
                wake.notify_one();
            }
            true
        });
    }
}

impl AnyResource {
    /// The type of the resource.
    pub fn resource_type(&self) -> ResourceType {
        match self {
            AnyResource::Listener(_) => ResourceType::Listener,
            AnyResource::RouteConfig(_) => ResourceType::RouteConfiguration,
            AnyResource::Cluster(_) => ResourceType::Cluster,
            AnyResource::Endpoints(_) => ResourceType::ClusterLoadAssignment,
        }
    }
}
