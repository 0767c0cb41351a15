//! Per-client status: what each ADS client subscribed to, which versions it
//! ACKed, its last NACK and how many responses it got. The stream tasks
//! write it; [`ClientRegistry::list`] reads it (`ControlPlane::clients()`).
//!
//! This module holds no protocol logic; it is a shared table.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use mesh_core::resource::ResourceType;

/// How many disconnected clients are remembered (so a NACK from a client
/// that has gone stays visible).
const KEEP_DISCONNECTED: usize = 64;

/// What one client subscribed to for one type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Every resource of the type (LDS/CDS wildcard: an empty first request
    /// or `"*"`).
    pub wildcard: bool,
    /// The names requested (besides `"*"`).
    pub names: BTreeSet<String>,
}

/// A rejected response, as the client reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// The type of the rejected response.
    pub kind: ResourceType,
    /// The nonce of the rejected response.
    pub nonce: String,
    /// The version the client still runs (its `version_info`).
    pub accepted_version: String,
    /// The client's `error_detail.message`.
    pub error_detail: String,
    /// When the NACK arrived.
    pub at: SystemTime,
}

/// A point-in-time view of one ADS client (one stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStatus {
    /// The server's id for the stream (1, 2, ... in connection order).
    pub stream: u64,
    /// `node.id` from the first request (empty until it arrives).
    pub node_id: String,
    /// `node.user_agent_name` (`gRPC Python`, `mesh`, ...).
    pub user_agent: String,
    /// The peer's socket address, when known.
    pub peer: Option<SocketAddr>,
    /// Whether the stream is still open.
    pub connected: bool,
    /// Subscriptions per type.
    pub subscriptions: BTreeMap<ResourceType, Subscription>,
    /// The last version the client ACKed per type.
    pub acked: BTreeMap<ResourceType, String>,
    /// Responses sent per type.
    pub responses: BTreeMap<ResourceType, u64>,
    /// The latest snapshot version this client's session has been compared
    /// against (whether or not anything was sent).
    pub seen_version: u64,
    /// How many NACKs the client sent.
    pub nacks: u64,
    /// The last NACK, if any.
    pub last_nack: Option<Nack>,
}

impl ClientStatus {
    pub(crate) fn new(stream: u64, peer: Option<SocketAddr>) -> Self {
        ClientStatus {
            stream,
            node_id: String::new(),
            user_agent: String::new(),
            peer,
            connected: true,
            subscriptions: BTreeMap::new(),
            acked: BTreeMap::new(),
            responses: BTreeMap::new(),
            seen_version: 0,
            nacks: 0,
            last_nack: None,
        }
    }

    /// Responses sent of `kind` (0 if none).
    pub fn responses_of(&self, kind: ResourceType) -> u64 {
        self.responses.get(&kind).copied().unwrap_or(0)
    }

    /// Responses sent of every type.
    pub fn total_responses(&self) -> u64 {
        self.responses.values().sum()
    }
}

/// The status table of every client, connected or recently gone. Cheap to
/// clone (shared).
#[derive(Debug, Clone, Default)]
pub struct ClientRegistry {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    next_stream: u64,
    connected: BTreeMap<u64, ClientStatus>,
    gone: VecDeque<ClientStatus>,
}

impl ClientRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a new stream; returns its status to fill in.
    pub(crate) fn open(&self, peer: Option<SocketAddr>) -> ClientStatus {
        let mut inner = self.lock();
        inner.next_stream += 1;
        let status = ClientStatus::new(inner.next_stream, peer);
        inner.connected.insert(status.stream, status.clone());
        status
    }

    /// Replaces a stream's status.
    pub(crate) fn update(&self, status: &ClientStatus) {
        let mut inner = self.lock();
        if let Some(s) = inner.connected.get_mut(&status.stream) {
            s.clone_from(status);
        }
    }

    /// Marks a stream closed, keeping its last status for a while.
    pub(crate) fn close(&self, mut status: ClientStatus) {
        status.connected = false;
        let mut inner = self.lock();
        inner.connected.remove(&status.stream);
        inner.gone.push_back(status);
        while inner.gone.len() > KEEP_DISCONNECTED {
            inner.gone.pop_front();
        }
    }

    /// Every client: connected ones, then recently disconnected ones, each
    /// in stream order.
    pub fn list(&self) -> Vec<ClientStatus> {
        let inner = self.lock();
        inner
            .connected
            .values()
            .chain(inner.gone.iter())
            .cloned()
            .collect()
    }

    /// How many streams are open.
    pub fn connected(&self) -> usize {
        self.lock().connected.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a table that is still
        // consistent (every write is one assignment), so poison is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_clients_are_kept_and_bounded() {
        let reg = ClientRegistry::new();
        let mut first = reg.open(None);
        first.node_id = "a".into();
        reg.update(&first);
        assert_eq!(reg.list()[0].node_id, "a");
        reg.close(first);
        assert_eq!(reg.connected(), 0);
        assert!(!reg.list()[0].connected);
        for _ in 0..KEEP_DISCONNECTED + 5 {
            let s = reg.open(None);
            reg.close(s);
        }
        let list = reg.list();
        assert_eq!(list.len(), KEEP_DISCONNECTED);
        assert!(list.iter().all(|s| s.node_id.is_empty()), "oldest dropped");
    }
}
