//! The connection state machine of one endpoint and its set of HTTP/2
//! connections (its HTTP/1.1 connections are in [`super::http1`], sharing
//! this state machine).
//!
//! State lives in an atomic (read by pickers) mirrored in a `watch` (awaited
//! by requests queued while CONNECTING). The live connections are an
//! arc-swapped list: a request loads it, picks the least-busy open
//! connection and clones its `SendRequest`; no lock on that path. The cold
//! path (attempts, failures, backoff, connection close) takes a mutex.
//!
//! Background tasks (connect attempt, backoff timer, connection driver)
//! hold only a `Weak` reference, so dropping the endpoint closes its
//! connections: the last `SendRequest` goes away and hyper shuts the
//! connection down once in-flight streams finish.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::watch;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::connector::BoxIo;
use super::load::Load;
use super::socket::{CallCounts, SocketInfo};
use super::{ConnectionSettings, ConnectivityState};

type Body = tonic::body::Body;
type Conn = http2::Connection<TokioIo<BoxIo>, Body, TokioExecutor>;

/// One HTTP/2 connection.
#[derive(Debug)]
pub(crate) struct Slot {
    id: u64,
    /// The `max_connections` slot this connection holds, if any.
    _breaker: Option<crate::breaker::Guard>,
    pub(crate) sender: http2::SendRequest<Body>,
    pub(crate) stats: Arc<SlotStats>,
}

/// Counters shared with the connection's driver task (which must not hold
/// the `SendRequest`, or the connection would never close).
#[derive(Debug)]
pub(crate) struct SlotStats {
    pub(crate) in_flight: AtomicUsize,
    /// Addresses, TLS session and stream counts (introspection).
    pub(crate) socket: Arc<SocketInfo>,
    /// The peer's `SETTINGS_MAX_CONCURRENT_STREAMS` as hyper last saw it.
    max_streams: AtomicUsize,
}

/// Everything about one endpoint's connections.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) address: SocketAddr,
    pub(crate) settings: Arc<ConnectionSettings>,
    state: AtomicU8,
    state_tx: watch::Sender<ConnectivityState>,
    slots: ArcSwap<Vec<Arc<Slot>>>,
    cold: Mutex<Cold>,
    pub(crate) load: Load,
    /// Requests started, answered and failed (introspection).
    pub(crate) calls: CallCounts,
    keep_connected: AtomicBool,
    /// Failed attempts so far: a queued request fails with the attempt it
    /// waited for, even if the backoff already ended.
    failures: std::sync::atomic::AtomicU64,
    /// The HTTP version requests use, resolved once from the settings.
    pub(crate) mode: Mode,
    /// The HTTP/1.1 connections (empty unless `mode` sends HTTP/1.1).
    pub(crate) h1: super::http1::H1Pool,
}

/// Which connections a request goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Http2,
    Http1,
    /// HTTP/2 requests on HTTP/2, the others on HTTP/1.1.
    Downstream,
}

impl Mode {
    fn of(settings: &ConnectionSettings) -> Self {
        use mesh_core::resource::cluster::UpstreamProtocol as P;
        match settings.http.protocol {
            P::Http2 => Mode::Http2,
            P::Http1 => Mode::Http1,
            P::UseDownstream => Mode::Downstream,
            // ALPN over TLS (mesh's TLS connector offers h2 unless the
            // cluster says HTTP/1.1), else
            // HTTP/1.1, as Envoy's auto_config.
            P::Auto if settings.connector.scheme() == http::uri::Scheme::HTTPS => Mode::Http2,
            P::Auto => Mode::Http1,
        }
    }
}

#[derive(Debug)]
struct Cold {
    connecting: bool,
    backing_off: bool,
    backoff: Backoff,
    last_error: Option<Arc<str>>,
    /// When the current backoff ends (for messages).
    retry_at: Option<Instant>,
    next_id: u64,
    rng: SmallRng,
}

impl Shared {
    pub(crate) fn new(address: SocketAddr, settings: Arc<ConnectionSettings>) -> Arc<Self> {
        let (state_tx, _) = watch::channel(ConnectivityState::Idle);
        let rng = match settings.seed {
            Some(seed) => SmallRng::seed_from_u64(seed ^ address_seed(address)),
            None => SmallRng::from_rng(&mut rand::rng()),
        };
        Arc::new(Shared {
            address,
            state: AtomicU8::new(ConnectivityState::Idle as u8),
            state_tx,
            slots: ArcSwap::from_pointee(Vec::new()),
            cold: Mutex::new(Cold {
                connecting: false,
                backing_off: false,
                backoff: Backoff::new(settings.backoff),
                last_error: None,
                retry_at: None,
                next_id: 0,
                rng,
            }),
            load: Load::default(),
            calls: CallCounts::default(),
            keep_connected: AtomicBool::new(false),
            failures: std::sync::atomic::AtomicU64::new(0),
            mode: Mode::of(&settings),
            h1: super::http1::H1Pool::default(),
            settings,
        })
    }

    #[inline]
    pub(crate) fn state(&self) -> ConnectivityState {
        ConnectivityState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Acquire)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<ConnectivityState> {
        self.state_tx.subscribe()
    }

    pub(crate) fn set_state(&self, s: ConnectivityState) {
        self.state.store(s as u8, Ordering::Release);
        // Always notify: queued requests re-check for an open connection
        // even when READY stays READY.
        self.state_tx.send_replace(s);
    }

    pub(crate) fn sockets(&self) -> Vec<Arc<SocketInfo>> {
        self.slots
            .load()
            .iter()
            .filter(|s| !s.sender.is_closed())
            .map(|s| Arc::clone(&s.stats.socket))
            .collect()
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.slots.load().len() + self.h1.established()
    }

    /// Whether no connection of either version is open (or opening, for
    /// HTTP/1.1).
    pub(crate) fn nothing_open(&self) -> bool {
        !self.has_open_slot() && self.h1.open() == 0
    }

    pub(crate) fn backing_off(&self) -> bool {
        self.lock().backing_off
    }

    pub(crate) fn connect_timeout(&self) -> std::time::Duration {
        self.lock().backoff.connect_timeout()
    }

    pub(crate) fn last_error(&self) -> Option<Arc<str>> {
        self.lock().last_error.clone()
    }

    pub(crate) fn set_keep_connected(self: &Arc<Self>, keep: bool) {
        let was = self.keep_connected.swap(keep, Ordering::Relaxed);
        if keep && !was && self.state() == ConnectivityState::Idle {
            self.connect();
        }
    }

    /// Why requests fail in TRANSIENT_FAILURE.
    pub(crate) fn failure_message(&self) -> String {
        let cold = self.lock();
        let err = cold.last_error.as_deref().unwrap_or("unknown error");
        match cold.retry_at {
            Some(at) => format!(
                "endpoint {} is in TRANSIENT_FAILURE: {err} (next attempt in {:?})",
                self.address,
                at.saturating_duration_since(Instant::now())
            ),
            None => format!("endpoint {} is in TRANSIENT_FAILURE: {err}", self.address),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cold> {
        self.cold.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The least busy open connection; asks for one more when all are at
    /// the peer's stream limit (the request still goes out on the least
    /// busy one, where hyper queues it until a stream frees).
    pub(crate) fn pick_slot(self: &Arc<Self>) -> Option<Arc<Slot>> {
        let slots = self.slots.load();
        let cap = self.settings.max_streams_per_connection;
        let mut best: Option<&Arc<Slot>> = None;
        let mut best_n = usize::MAX;
        let mut saturated = true;
        for s in slots.iter() {
            if s.sender.is_closed() {
                continue;
            }
            let n = s.stats.in_flight.load(Ordering::Relaxed);
            let max = s.stats.max_streams.load(Ordering::Relaxed).min(cap);
            if n < max {
                saturated = false;
            }
            if n < best_n {
                best_n = n;
                best = Some(s);
            }
        }
        let best = best.cloned();
        if best.is_some() && saturated && slots.len() < self.settings.max_connections {
            self.connect_extra();
        }
        best
    }

    /// Starts connecting in the endpoint's protocol (HTTP/1.1 endpoints,
    /// and those following the downstream's, open an HTTP/1.1 connection).
    pub(crate) fn connect(self: &Arc<Self>) {
        match self.mode {
            Mode::Http2 => self.connect_h2(),
            Mode::Http1 | Mode::Downstream => super::http1::connect(self),
        }
    }

    /// Starts an HTTP/2 connect attempt unless a connection is up or
    /// coming, or the backoff is running.
    /// Outside a tokio runtime nothing happens (the endpoint stays IDLE).
    pub(crate) fn connect_h2(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut cold = self.lock();
        if cold.connecting || cold.backing_off || self.has_open_slot() {
            return;
        }
        cold.connecting = true;
        let timeout = cold.backoff.connect_timeout();
        drop(cold);
        if self.h1.open() == 0 {
            self.set_state(ConnectivityState::Connecting);
        }
        // The first connection opens even past max_connections (the
        // overflow is counted): without it the endpoint is unusable.
        let guard = self
            .settings
            .breaker
            .as_ref()
            .and_then(|b| b.try_connection().ok());
        self.spawn_attempt(&rt, timeout, guard);
    }

    fn connect_extra(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut cold = self.lock();
        if cold.connecting || cold.backing_off {
            return;
        }
        // Extra connections stay within the cluster's max_connections.
        let guard = match &self.settings.breaker {
            Some(b) => match b.try_connection() {
                Ok(g) => Some(g),
                Err(_) => return,
            },
            None => None,
        };
        cold.connecting = true;
        let timeout = cold.backoff.connect_timeout();
        drop(cold);
        self.spawn_attempt(&rt, timeout, guard);
    }

    fn has_open_slot(&self) -> bool {
        self.slots.load().iter().any(|s| !s.sender.is_closed())
    }

    fn spawn_attempt(
        self: &Arc<Self>,
        rt: &tokio::runtime::Handle,
        timeout: std::time::Duration,
        guard: Option<crate::breaker::Guard>,
    ) {
        let started = Instant::now();
        let weak = Arc::downgrade(self);
        let connector = Arc::clone(&self.settings.connector);
        let address = self.address;
        rt.spawn(async move {
            let attempt = async {
                let io = connector
                    .connect(address)
                    .await
                    .map_err(|e| format!("connect to {address}: {e}"))?;
                let socket = Arc::new(SocketInfo::of(&io, address));
                let mut builder = http2::Builder::new(TokioExecutor::new());
                builder.timer(TokioTimer::new());
                let (sender, conn) = builder
                    .handshake::<_, Body>(TokioIo::new(io))
                    .await
                    .map_err(|e| format!("HTTP/2 handshake with {address}: {e}"))?;
                Ok((sender, conn, socket))
            };
            let result = tokio::time::timeout(timeout, attempt).await;
            let Some(shared) = weak.upgrade() else {
                return; // The endpoint left; whatever connected is dropped.
            };
            match result {
                Ok(Ok((sender, conn, socket))) => shared.on_connected(sender, conn, guard, socket),
                Ok(Err(e)) => shared.on_connect_failed(e, started, true),
                Err(_) => shared.on_connect_failed(
                    format!("connect to {address} timed out after {timeout:?}"),
                    started,
                    true,
                ),
            }
        });
    }

    pub(crate) fn next_id(&self) -> u64 {
        let mut cold = self.lock();
        cold.next_id += 1;
        cold.next_id - 1
    }

    /// An HTTP/1.1 connection is up: READY, and the backoff starts over.
    pub(crate) fn on_h1_connected(&self) {
        let mut cold = self.lock();
        cold.backoff.reset();
        cold.last_error = None;
        cold.retry_at = None;
        drop(cold);
        if self.state() != ConnectivityState::Ready {
            self.set_state(ConnectivityState::Ready);
        }
    }

    fn on_connected(
        self: &Arc<Self>,
        sender: http2::SendRequest<Body>,
        conn: Conn,
        guard: Option<crate::breaker::Guard>,
        socket: Arc<SocketInfo>,
    ) {
        let stats = Arc::new(SlotStats {
            in_flight: AtomicUsize::new(0),
            socket,
            max_streams: AtomicUsize::new(conn.current_max_send_streams().max(1)),
        });
        let mut cold = self.lock();
        cold.connecting = false;
        cold.backoff.reset();
        cold.last_error = None;
        cold.retry_at = None;
        let id = cold.next_id;
        cold.next_id += 1;
        let slot = Arc::new(Slot {
            id,
            _breaker: guard,
            sender,
            stats: Arc::clone(&stats),
        });
        let mut next = Vec::clone(&self.slots.load());
        next.push(slot);
        self.slots.store(Arc::new(next));
        drop(cold);
        self.set_state(ConnectivityState::Ready);
        tracing::debug!(address = %self.address, id, "endpoint connected");

        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut conn = conn;
            let result = poll_fn(|cx| {
                let r = Pin::new(&mut conn).poll(cx);
                stats
                    .max_streams
                    .store(conn.current_max_send_streams().max(1), Ordering::Relaxed);
                r
            })
            .await;
            if let Some(shared) = weak.upgrade() {
                shared.on_closed(id, result.err().map(|e| e.to_string()));
            }
        });
    }

    /// A failed attempt (`h2`: the single-flight HTTP/2 one; else an
    /// HTTP/1.1 open, already out of the pool's count). Concurrent HTTP/1.1
    /// opens failing together back off once.
    pub(crate) fn on_connect_failed(self: &Arc<Self>, error: String, started: Instant, h2: bool) {
        tracing::debug!(address = %self.address, %error, "endpoint connect failed");
        let mut cold = self.lock();
        if h2 {
            cold.connecting = false;
        } else if cold.backing_off {
            cold.last_error = Some(error.into());
            return;
        }
        let Cold { backoff, rng, .. } = &mut *cold;
        let delay = backoff.next_delay(rng);
        let until = started + delay;
        cold.last_error = Some(error.into());
        cold.backing_off = true;
        let open = !self.nothing_open();
        if !open {
            cold.retry_at = Some(until);
        }
        drop(cold);
        if !open {
            self.failures.fetch_add(1, Ordering::Release);
            self.set_state(ConnectivityState::TransientFailure);
        }
        // HTTP/1.1 requests waiting for a connection re-check (and fail
        // when nothing is open).
        self.h1.wake_all();
        let weak = Arc::downgrade(self);
        let timer = async move {
            tokio::time::sleep_until(until).await;
            if let Some(shared) = weak.upgrade() {
                shared.on_backoff_done();
            }
        };
        // Called from the attempt's task, so inside the runtime.
        tokio::spawn(timer);
    }

    fn on_backoff_done(self: &Arc<Self>) {
        let mut cold = self.lock();
        cold.backing_off = false;
        cold.retry_at = None;
        drop(cold);
        if self.state() == ConnectivityState::TransientFailure {
            self.set_state(ConnectivityState::Idle);
            if self.keep_connected.load(Ordering::Relaxed) {
                self.connect();
            }
        }
    }

    fn on_closed(self: &Arc<Self>, id: u64, error: Option<String>) {
        // Serializes slot-list writers.
        let cold = self.lock();
        let next: Vec<Arc<Slot>> = self
            .slots
            .load()
            .iter()
            .filter(|s| s.id != id)
            .cloned()
            .collect();
        self.slots.store(Arc::new(next));
        drop(cold);
        self.on_connection_gone(id, error);
    }

    /// A connection of either version closed (already out of its set):
    /// with none left the endpoint goes back to IDLE.
    pub(crate) fn on_connection_gone(self: &Arc<Self>, id: u64, error: Option<String>) {
        let mut cold = self.lock();
        if let Some(e) = &error {
            cold.last_error = Some(format!("connection to {} closed: {e}", self.address).into());
        }
        let connecting = cold.connecting;
        let none_left = self.nothing_open();
        drop(cold);
        tracing::debug!(address = %self.address, id, ?error, "endpoint connection closed");
        if none_left && !connecting && self.state() == ConnectivityState::Ready {
            self.set_state(ConnectivityState::Idle);
            if self.keep_connected.load(Ordering::Relaxed) {
                self.connect();
            }
        }
    }
}

/// Decorrelates seeded jitter between endpoints.
fn address_seed(a: SocketAddr) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    a.hash(&mut h);
    h.finish()
}

/// An in-flight request's claim on the endpoint and its connection,
/// released on drop.
#[derive(Debug)]
pub(crate) struct InFlight {
    shared: Arc<Shared>,
    slot: Option<Arc<SlotStats>>,
    /// Whether the request went out (on an HTTP/2 slot or an HTTP/1.1
    /// connection): only then is its latency a sample.
    sent: bool,
    started: Instant,
    latency: Option<std::time::Duration>,
    /// Whether an answer came (the call counts as succeeded).
    answered: bool,
}

impl InFlight {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        shared.load.start();
        shared.calls.start();
        InFlight {
            shared,
            slot: None,
            sent: false,
            started: Instant::now(),
            latency: None,
            answered: false,
        }
    }

    pub(crate) fn on_slot(&mut self, slot: &Slot) {
        if self.slot.is_none() {
            slot.stats.in_flight.fetch_add(1, Ordering::Relaxed);
            slot.stats.socket.streams().start();
            self.slot = Some(Arc::clone(&slot.stats));
            self.on_sent();
        }
    }

    /// The request leaves now (latency is measured from here).
    pub(crate) fn on_sent(&mut self) {
        self.sent = true;
        self.started = Instant::now();
    }

    /// Gives the connection back (the request never left on it).
    pub(crate) fn leave_slot(&mut self) {
        if let Some(s) = self.slot.take() {
            s.in_flight.fetch_sub(1, Ordering::Relaxed);
            s.socket.streams().finish(false);
        }
        self.sent = false;
    }

    /// Records the answer's latency (measured from the send) and releases.
    pub(crate) fn answered(mut self) {
        self.answered = true;
        if self.sent {
            self.latency = Some(self.started.elapsed());
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(s) = self.slot.take() {
            s.in_flight.fetch_sub(1, Ordering::Relaxed);
            s.socket.streams().finish(self.answered);
        }
        self.shared.calls.finish(self.answered);
        let now = if self.latency.is_some() {
            self.started + self.latency.unwrap_or_default()
        } else {
            self.started
        };
        self.shared.load.finish(self.latency, now);
    }
}
