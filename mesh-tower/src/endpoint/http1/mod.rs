//! HTTP/1.1 connections to one endpoint: a small pool, one request at a
//! time per connection (hyper's `client::conn::http1`, no pipelining).
//!
//! - A request takes an idle connection, else opens one while the endpoint
//!   has fewer than [`ConnectionSettings::max_http1_connections`] open and
//!   the cluster's breaker grants a `max_connections` slot (the endpoint's
//!   first connection opens even past it, as on HTTP/2); else it waits for
//!   a connection to come back, holding a `max_pending_requests` slot
//!   (past that limit it fails at once with the breaker's overflow).
//! - A connection goes back to the pool once its response has been read to
//!   the end (a small task waits for that), and is closed instead after
//!   `max_requests_per_connection` requests. A request whose idle
//!   connection turns out closed before it was written (the peer's
//!   keep-alive timeout) is sent once more on another.
//! - Opening shares the endpoint's state machine ([`super::pool`]): a
//!   failure with nothing open is TRANSIENT_FAILURE with backoff, requests
//!   fail fast meanwhile, and the last close goes back to IDLE.
//!
//! Requests go out in origin form (`/path?query`) with a `Host` header
//! (from the URI's authority when the request has none) as HTTP/1.1.
//!
//! Not here: HTTP/2 (the lock-free slot list in [`super::pool`]), upgrades
//! (`CONNECT`, WebSocket), pipelining.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use http::header::HOST;
use http::{HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::ConnectivityState;
use super::future::{Inner, ResponseFuture, transport_error};
use super::pool::{InFlight, Shared};
use crate::BoxError;
use crate::breaker::Guard;

type Body = tonic::body::Body;

/// One endpoint's HTTP/1.1 connections.
#[derive(Debug, Default)]
pub(crate) struct H1Pool {
    idle: Mutex<Vec<H1Conn>>,
    /// Connections open or opening; changed under `idle`'s lock, read
    /// without it (the state machine reads it under its own lock).
    open: AtomicUsize,
    /// Connections open (handshake done).
    established: AtomicUsize,
    /// A connection came back or closed.
    returned: Notify,
}

/// An idle or busy HTTP/1.1 connection.
#[derive(Debug)]
struct H1Conn {
    sender: http1::SendRequest<Body>,
    /// Requests sent on it so far.
    sent: u32,
}

impl H1Pool {
    /// Connections open or opening.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Connections open.
    pub(crate) fn established(&self) -> usize {
        self.established.load(Ordering::Acquire)
    }

    /// Idle connections (tests).
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.lock().len()
    }

    /// Wakes every waiting request to look again.
    pub(crate) fn wake_all(&self) {
        self.returned.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<H1Conn>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put_idle(&self, conn: H1Conn) {
        self.lock().push(conn);
        self.returned.notify_one();
    }

    /// One connection (or attempt) fewer.
    fn gone(&self, established: bool) {
        let _idle = self.lock();
        self.open.fetch_sub(1, Ordering::AcqRel);
        if established {
            self.established.fetch_sub(1, Ordering::AcqRel);
        }
        drop(_idle);
        self.returned.notify_one();
    }
}

/// Sends `req` over HTTP/1.1.
pub(super) fn call(shared: &Arc<Shared>, req: Request<Body>) -> ResponseFuture {
    if shared.state() == ConnectivityState::TransientFailure {
        return ResponseFuture::failed(crate::error::unavailable(shared.failure_message()));
    }
    let guard = InFlight::new(Arc::clone(shared));
    ResponseFuture {
        inner: Inner::Sending(Box::pin(send(Arc::clone(shared), guard, origin_form(req)))),
    }
}

/// Opens one connection into the pool unless one is open or opening
/// (the state machine's eager connect).
pub(super) fn connect(shared: &Arc<Shared>) {
    if tokio::runtime::Handle::try_current().is_err() || shared.backing_off() {
        return;
    }
    let guard = {
        let _idle = shared.h1.lock();
        if shared.h1.open() > 0 {
            return;
        }
        shared.h1.open.fetch_add(1, Ordering::AcqRel);
        shared
            .settings
            .breaker
            .as_ref()
            .and_then(|b| b.try_connection().ok())
    };
    let opening = Opening::new(shared);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        if let Ok(conn) = open(&shared, opening, guard).await {
            shared.h1.put_idle(conn);
        }
    });
}

async fn send(
    shared: Arc<Shared>,
    mut guard: InFlight,
    mut req: Request<Body>,
) -> Result<Response<Incoming>, BoxError> {
    let mut resent = false;
    loop {
        let mut conn = checkout(&shared).await?;
        guard.on_sent();
        conn.sent += 1;
        match conn.sender.try_send_request(req).await {
            Ok(resp) => {
                guard.answered();
                give_back(&shared, conn);
                return Ok(resp);
            }
            // Not written: the connection closed while idle. Once more on
            // another (the dead one leaves when its driver ends).
            Err(mut e) => match e.take_message() {
                Some(r) if !resent => {
                    resent = true;
                    req = r;
                    guard.leave_slot();
                }
                _ => return Err(transport_error(shared.address, e.into_error())),
            },
        }
    }
}

/// Puts `conn` back in the pool once its response has been read, unless
/// it reached `max_requests_per_connection` (dropping the sender closes
/// the connection after the response).
fn give_back(shared: &Arc<Shared>, mut conn: H1Conn) {
    let limit = shared.settings.http.max_requests_per_connection;
    if limit.is_some_and(|max| conn.sent >= max) {
        return;
    }
    let weak: Weak<Shared> = Arc::downgrade(shared);
    tokio::spawn(async move {
        if conn.sender.ready().await.is_ok()
            && let Some(shared) = weak.upgrade()
        {
            shared.h1.put_idle(conn);
        }
    });
}

enum Next {
    Reuse(H1Conn),
    Open(Option<Guard>),
    Wait,
    Fail,
}

/// An idle connection, a new one, or (at the limits) the next one that
/// comes back.
async fn checkout(shared: &Arc<Shared>) -> Result<H1Conn, BoxError> {
    let mut _pending = None;
    loop {
        let notified = shared.h1.returned.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match try_checkout(shared) {
            Next::Reuse(c) => return Ok(c),
            Next::Open(guard) => {
                let opening = Opening::new(shared);
                return open(shared, opening, guard).await;
            }
            Next::Fail => return Err(crate::error::unavailable(shared.failure_message())),
            Next::Wait => {}
        }
        if _pending.is_none() {
            _pending = match shared.settings.breaker.as_ref().map(|b| b.try_pending()) {
                Some(Err(overflow)) => return Err(Box::new(overflow)),
                Some(Ok(g)) => Some(Some(g)),
                None => Some(None),
            };
        }
        notified.await;
    }
}

fn try_checkout(shared: &Arc<Shared>) -> Next {
    // Read before taking the pool's lock: the state machine's lock is
    // never taken inside it.
    let backing_off = shared.backing_off();
    let mut idle = shared.h1.lock();
    while let Some(c) = idle.pop() {
        if c.sender.is_ready() {
            return Next::Reuse(c);
        }
        // Closed: its driver takes it out of the counts.
    }
    let open = shared.h1.open();
    if open == 0 && backing_off {
        return Next::Fail;
    }
    if open >= shared.settings.max_http1_connections.max(1) || backing_off {
        return Next::Wait;
    }
    let guard = match &shared.settings.breaker {
        None => None,
        Some(b) => match b.try_connection() {
            Ok(g) => Some(g),
            // The first connection opens anyway (counted as an overflow).
            Err(_) if open == 0 => None,
            Err(_) => return Next::Wait,
        },
    };
    shared.h1.open.fetch_add(1, Ordering::AcqRel);
    drop(idle);
    Next::Open(guard)
}

/// An attempt counted in `open`; uncounted on drop unless it connected
/// (a request cancelled mid-connect leaves no phantom connection).
struct Opening(Option<Arc<Shared>>);

impl Opening {
    fn new(shared: &Arc<Shared>) -> Self {
        Opening(Some(Arc::clone(shared)))
    }

    /// It connected: the driver uncounts it when it closes.
    fn connected(mut self) {
        self.0 = None;
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.h1.gone(false);
        }
    }
}

/// Connects and handshakes (bounded by the connect timeout), and spawns
/// the connection's driver, which holds the breaker slot until it closes.
async fn open(
    shared: &Arc<Shared>,
    opening: Opening,
    breaker: Option<Guard>,
) -> Result<H1Conn, BoxError> {
    let started = Instant::now();
    if shared.state() == ConnectivityState::Idle {
        shared.set_state(ConnectivityState::Connecting);
    }
    let timeout = shared.connect_timeout();
    let address = shared.address;
    let connector = Arc::clone(&shared.settings.connector);
    let attempt = async {
        let io = connector.connect(address).await.map_err(|e| {
            let msg = format!("connect to {address}: {e}");
            (msg, Some(e))
        })?;
        http1::Builder::new()
            .handshake::<_, Body>(TokioIo::new(io))
            .await
            .map_err(|e| (format!("HTTP/1.1 handshake with {address}: {e}"), None))
    };
    let result = match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err((
            format!("connect to {address} timed out after {timeout:?}"),
            None,
        )),
    };
    match result {
        Ok((sender, conn)) => {
            opening.connected();
            shared.h1.established.fetch_add(1, Ordering::AcqRel);
            let id = shared.next_id();
            shared.on_h1_connected();
            tracing::debug!(%address, id, "endpoint connected (HTTP/1.1)");
            let weak = Arc::downgrade(shared);
            tokio::spawn(async move {
                let result = conn.await;
                drop(breaker);
                if let Some(shared) = weak.upgrade() {
                    shared.h1.gone(true);
                    shared.on_connection_gone(id, result.err().map(|e| e.to_string()));
                }
            });
            Ok(H1Conn { sender, sent: 0 })
        }
        Err((msg, io)) => {
            drop(breaker);
            drop(opening);
            shared.on_connect_failed(msg.clone(), started, false);
            let mut status = tonic::Status::unavailable(msg);
            if let Some(io) = io {
                // Keeps `connect-failure` retry policies working.
                status.set_source(Arc::new(io));
            }
            Err(Box::new(status))
        }
    }
}

/// The request as HTTP/1.1 sends it: origin-form URI, `Host` header.
fn origin_form(mut req: Request<Body>) -> Request<Body> {
    if !req.headers().contains_key(HOST)
        && let Some(host) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        req.headers_mut().insert(HOST, host);
    }
    if req.uri().authority().is_some() {
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        *req.uri_mut() = http::Uri::from(pq);
    }
    *req.version_mut() = Version::HTTP_11;
    req
}

#[cfg(test)]
mod tests;
