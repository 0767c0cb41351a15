//! The process-wide channelz registry: every live channel, server, server
//! connection and listening socket, by id, and the ids given to mesh-tower's
//! endpoints (subchannels) and their connections (client sockets).
//!
//! Ids come from one counter, so an id names one entity of any kind.
//! Channels, servers and server connections register when they are made
//! and leave when dropped (the registry holds only weak references).
//! Endpoints and their connections belong to mesh-tower, so they get ids
//! lazily, when a query first lists them, and their entries are pruned
//! once the endpoint or connection is gone. One mutex guards it all: it is
//! taken when a channel, server or connection is made or dropped and by
//! queries, never per request.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use mesh_tower::cluster::EndpointHandle;
use mesh_tower::discovery::Discovery;
use mesh_tower::endpoint::SocketInfo;
use mesh_tower::tls::{CertificateProvider, ProviderRegistry};

use super::calls::{CallCounters, Tracks};

/// The registry.
static REGISTRY: LazyLock<Mutex<Inner>> = LazyLock::new(Mutex::default);

/// The id counter (ids start at 1; 0 means "none" in channelz requests).
static NEXT_ID: AtomicI64 = AtomicI64::new(1);

fn next_id() -> i64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

fn lock() -> MutexGuard<'static, Inner> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a channel's subchannels are found.
pub(crate) struct ChannelView {
    /// The channel's discovery runtime (clusters and their endpoints).
    pub(crate) discovery: Discovery,
    /// Where TLS clusters get their client certificate (for the sockets'
    /// `local_certificate`).
    pub(crate) tls: Option<Arc<ProviderRegistry>>,
}

/// A registered client channel. Its [`Channel`](crate::Channel) clones
/// share it; dropping the last one unregisters it.
pub(crate) struct ChannelEntry {
    pub(crate) id: i64,
    pub(crate) target: Arc<str>,
    pub(crate) calls: CallCounters,
    pub(crate) view: Option<ChannelView>,
}

impl Tracks for ChannelEntry {
    #[inline]
    fn call_started(&self, now: i64) {
        self.calls.start(now);
    }

    #[inline]
    fn call_finished(&self, ok: bool) {
        self.calls.finish(ok);
    }
}

impl Drop for ChannelEntry {
    fn drop(&mut self) {
        lock().channels.remove(&self.id);
    }
}

impl std::fmt::Debug for ChannelEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelEntry")
            .field("id", &self.id)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Registers a channel to `target`.
pub(crate) fn register_channel(target: Arc<str>, view: Option<ChannelView>) -> Arc<ChannelEntry> {
    let entry = Arc::new(ChannelEntry {
        id: next_id(),
        target,
        calls: CallCounters::default(),
        view,
    });
    lock().channels.insert(entry.id, Arc::downgrade(&entry));
    entry
}

/// A registered server: its listening socket and call counts. Held by
/// the accept loop and every open connection.
#[derive(Debug)]
pub(crate) struct ServerEntry {
    pub(crate) id: i64,
    /// The id of its listening socket.
    pub(crate) listen_id: i64,
    pub(crate) listening: SocketAddr,
    pub(crate) calls: CallCounters,
}

impl Drop for ServerEntry {
    fn drop(&mut self) {
        let mut inner = lock();
        inner.servers.remove(&self.id);
        inner.listen.remove(&self.listen_id);
    }
}

/// Registers a server listening on `listening`.
pub(crate) fn register_server(listening: SocketAddr) -> Arc<ServerEntry> {
    let entry = Arc::new(ServerEntry {
        id: next_id(),
        listen_id: next_id(),
        listening,
        calls: CallCounters::default(),
    });
    let mut inner = lock();
    inner.servers.insert(entry.id, Arc::downgrade(&entry));
    inner.listen.insert(entry.listen_id, Arc::downgrade(&entry));
    entry
}

/// What a TLS handshake established, for `Security.tls`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SocketTls {
    /// The certificate this side presented (DER).
    pub(crate) local_certificate: Option<Vec<u8>>,
    /// The certificate the peer presented (DER).
    pub(crate) remote_certificate: Option<Vec<u8>>,
    /// rustls's name of the negotiated cipher suite.
    pub(crate) cipher_suite: Option<&'static str>,
}

/// A registered server connection; it counts each request on itself and
/// on its server. Dropping it (the connection ended) unregisters it.
#[derive(Debug)]
pub(crate) struct ServerSocket {
    pub(crate) id: i64,
    pub(crate) server: Arc<ServerEntry>,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) tls: Option<SocketTls>,
    pub(crate) streams: CallCounters,
}

impl Tracks for ServerSocket {
    #[inline]
    fn call_started(&self, now: i64) {
        self.streams.start(now);
        self.server.calls.start(now);
    }

    #[inline]
    fn call_finished(&self, ok: bool) {
        self.streams.finish(ok);
        self.server.calls.finish(ok);
    }
}

impl Drop for ServerSocket {
    fn drop(&mut self) {
        lock().server_sockets.remove(&self.id);
    }
}

/// Registers a connection of `server`.
pub(crate) fn register_server_socket(
    server: &Arc<ServerEntry>,
    local: SocketAddr,
    remote: SocketAddr,
    tls: Option<SocketTls>,
) -> Arc<ServerSocket> {
    let socket = Arc::new(ServerSocket {
        id: next_id(),
        server: Arc::clone(server),
        local,
        remote,
        tls,
        streams: CallCounters::default(),
    });
    lock()
        .server_sockets
        .insert(socket.id, (server.id, Arc::downgrade(&socket)));
    socket
}

/// An endpoint listed as a subchannel, with what its sockets need.
#[derive(Clone)]
pub(crate) struct SubchannelCtx {
    /// The identity provider of the endpoint's cluster (TLS clusters that
    /// present a client certificate).
    pub(crate) identity: Option<CertificateProvider>,
}

/// Whatever a socket id names.
pub(crate) enum SocketEntity {
    /// A server's listening socket.
    Listen(Arc<ServerEntry>),
    /// A server's connection.
    Server(Arc<ServerSocket>),
    /// A channel's connection to an endpoint.
    Client(Arc<SocketInfo>, SubchannelCtx),
}

/// Ids for objects owned elsewhere: keyed by address, checked against a
/// weak reference (which keeps the address from being reused while the
/// entry exists).
struct IdMap<T, C> {
    by_ptr: HashMap<usize, i64>,
    by_id: BTreeMap<i64, (Weak<T>, C)>,
}

impl<T, C> Default for IdMap<T, C> {
    fn default() -> Self {
        IdMap {
            by_ptr: HashMap::new(),
            by_id: BTreeMap::new(),
        }
    }
}

impl<T, C: Clone> IdMap<T, C> {
    fn id_of(&mut self, value: &Arc<T>, ctx: C) -> i64 {
        let ptr = Arc::as_ptr(value) as usize;
        if let Some(&id) = self.by_ptr.get(&ptr)
            && let Some(entry) = self.by_id.get_mut(&id)
        {
            entry.1 = ctx;
            return id;
        }
        let id = next_id();
        self.by_ptr.insert(ptr, id);
        self.by_id.insert(id, (Arc::downgrade(value), ctx));
        id
    }

    fn get(&self, id: i64) -> Option<(Arc<T>, C)> {
        let (weak, ctx) = self.by_id.get(&id)?;
        Some((weak.upgrade()?, ctx.clone()))
    }

    /// Forgets the entries whose object is gone.
    fn prune(&mut self) {
        let by_ptr = &mut self.by_ptr;
        self.by_id.retain(|_, (weak, _)| {
            let alive = weak.strong_count() > 0;
            if !alive {
                by_ptr.remove(&(weak.as_ptr() as usize));
            }
            alive
        });
    }
}

#[derive(Default)]
struct Inner {
    channels: BTreeMap<i64, Weak<ChannelEntry>>,
    servers: BTreeMap<i64, Weak<ServerEntry>>,
    /// Listening socket id → its server.
    listen: BTreeMap<i64, Weak<ServerEntry>>,
    /// Connection id → its server's id and the connection.
    server_sockets: BTreeMap<i64, (i64, Weak<ServerSocket>)>,
    subchannels: IdMap<EndpointHandle, SubchannelCtx>,
    client_sockets: IdMap<SocketInfo, SubchannelCtx>,
}

/// A page of `entries` (in id order): the live values with id >= `start`,
/// at most `max`, and whether no live value follows them.
///
/// Called under the lock, so it never drops an upgraded value (the last
/// reference's `Drop` would take the lock again).
fn page<'a, T: 'a>(entries: impl Iterator<Item = &'a Weak<T>>, max: usize) -> (Vec<Arc<T>>, bool) {
    let mut out = Vec::new();
    for weak in entries {
        if weak.strong_count() == 0 {
            continue;
        }
        if out.len() == max {
            return (out, false);
        }
        out.extend(weak.upgrade());
    }
    (out, true)
}

/// Top channels with id >= `start`, at most `max`; `true` when that is all.
pub(crate) fn channels(start: i64, max: usize) -> (Vec<Arc<ChannelEntry>>, bool) {
    page(lock().channels.range(start.max(0)..).map(|(_, w)| w), max)
}

/// The channel `id`.
pub(crate) fn channel(id: i64) -> Option<Arc<ChannelEntry>> {
    lock().channels.get(&id)?.upgrade()
}

/// Servers with id >= `start`, at most `max`; `true` when that is all.
pub(crate) fn servers(start: i64, max: usize) -> (Vec<Arc<ServerEntry>>, bool) {
    page(lock().servers.range(start.max(0)..).map(|(_, w)| w), max)
}

/// The server `id`.
pub(crate) fn server(id: i64) -> Option<Arc<ServerEntry>> {
    lock().servers.get(&id)?.upgrade()
}

/// The connections of server `server` with id >= `start`, at most `max`;
/// `true` when that is all.
pub(crate) fn server_sockets(
    server: i64,
    start: i64,
    max: usize,
) -> (Vec<Arc<ServerSocket>>, bool) {
    let inner = lock();
    let entries = inner.server_sockets.range(start.max(0)..);
    page(
        entries
            .filter(|(_, (s, _))| *s == server)
            .map(|(_, (_, w))| w),
        max,
    )
}

/// The ids of `endpoints` as subchannels (given on first sight).
pub(crate) fn subchannel_ids(endpoints: &[(Arc<EndpointHandle>, SubchannelCtx)]) -> Vec<i64> {
    let mut inner = lock();
    inner.subchannels.prune();
    endpoints
        .iter()
        .map(|(ep, ctx)| inner.subchannels.id_of(ep, ctx.clone()))
        .collect()
}

/// The subchannel `id`.
pub(crate) fn subchannel(id: i64) -> Option<(Arc<EndpointHandle>, SubchannelCtx)> {
    lock().subchannels.get(id)
}

/// The ids of an endpoint's connections as sockets (given on first sight).
pub(crate) fn client_socket_ids(sockets: &[Arc<SocketInfo>], ctx: &SubchannelCtx) -> Vec<i64> {
    let mut inner = lock();
    inner.client_sockets.prune();
    sockets
        .iter()
        .map(|s| inner.client_sockets.id_of(s, ctx.clone()))
        .collect()
}

/// Whatever socket `id` names.
pub(crate) fn socket(id: i64) -> Option<SocketEntity> {
    let inner = lock();
    if let Some(s) = inner.server_sockets.get(&id).and_then(|(_, w)| w.upgrade()) {
        return Some(SocketEntity::Server(s));
    }
    if let Some(s) = inner.listen.get(&id).and_then(Weak::upgrade) {
        return Some(SocketEntity::Listen(s));
    }
    let (info, ctx) = inner.client_sockets.get(id)?;
    Some(SocketEntity::Client(info, ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_leave_when_dropped_and_page_by_id() {
        let a = register_channel("xds:///a".into(), None);
        let b = register_channel("xds:///b".into(), None);
        let c = register_channel("xds:///c".into(), None);
        assert!(a.id < b.id && b.id < c.id);
        // Other tests register concurrently: look only at ours.
        let (page1, _) = channels(a.id, 2);
        assert_eq!(page1.len(), 2);
        assert_eq!(page1[0].id, a.id);
        let next = page1[1].id + 1;
        let (rest, _) = channels(next, 1000);
        assert!(rest.iter().any(|ch| ch.id == c.id) || page1[1].id == c.id);
        // Pages hold their channels: let them go first.
        drop((page1, rest));
        let id = b.id;
        assert!(channel(id).is_some());
        drop(b);
        assert!(channel(id).is_none());
        let (all, end) = channels(0, usize::MAX);
        assert!(end);
        assert!(all.iter().all(|ch| ch.id != id));
    }

    #[test]
    fn server_sockets_belong_to_their_server() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let s1 = register_server(addr);
        let s2 = register_server(addr);
        let a = register_server_socket(&s1, addr, peer, None);
        let b = register_server_socket(&s2, addr, peer, None);
        let c = register_server_socket(&s1, addr, peer, None);
        let ids = |v: Vec<Arc<ServerSocket>>| v.iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(server_sockets(s1.id, 0, 10).0), vec![a.id, c.id]);
        let (first, end) = server_sockets(s1.id, 0, 1);
        assert_eq!((ids(first), end), (vec![a.id], false));
        assert_eq!(ids(server_sockets(s2.id, 0, 10).0), vec![b.id]);
        assert!(matches!(socket(s1.listen_id), Some(SocketEntity::Listen(s)) if s.id == s1.id));
        assert!(matches!(socket(c.id), Some(SocketEntity::Server(_))));
        let (cid, sid) = (c.id, s2.id);
        drop(c);
        assert!(socket(cid).is_none());
        assert_eq!(ids(server_sockets(s1.id, 0, 10).0), vec![a.id]);
        drop((b, s2));
        assert!(server(sid).is_none());
    }

    #[test]
    fn lazily_given_ids_are_stable_and_pruned() {
        let mut map: IdMap<u32, ()> = IdMap::default();
        let x = Arc::new(1u32);
        let y = Arc::new(2u32);
        let ix = map.id_of(&x, ());
        assert_eq!(map.id_of(&x, ()), ix);
        let iy = map.id_of(&y, ());
        assert_ne!(ix, iy);
        assert_eq!(map.get(ix).map(|(v, _)| *v), Some(1));
        drop(x);
        assert!(map.get(ix).is_none());
        map.prune();
        assert_eq!(map.by_id.len(), 1);
        assert_eq!(map.by_ptr.len(), 1);
    }
}
