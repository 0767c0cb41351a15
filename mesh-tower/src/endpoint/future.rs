//! The response future of a request sent to an endpoint.
//!
//! hyper's `send_request` future has no nameable type, so a request costs
//! one boxed future; everything else (the connection pick, in-flight
//! accounting) is done without allocating.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::Incoming;
use tonic::{Code, Status};

use super::ConnectivityState;
use super::pool::{InFlight, Mode, Shared, Slot};
use crate::BoxError;

type Body = tonic::body::Body;
pub(super) type Boxed = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

/// The answer of one endpoint: response headers (the body streams on), or
/// a boxed `tonic::Status` naming the endpoint.
pub struct ResponseFuture {
    pub(super) inner: Inner,
}

pub(super) enum Inner {
    Sending(Boxed),
    Failed(Option<BoxError>),
}

impl ResponseFuture {
    /// A future that fails at once with `err`.
    pub fn failed(err: BoxError) -> Self {
        ResponseFuture {
            inner: Inner::Failed(Some(err)),
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Incoming>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().inner {
            Inner::Sending(f) => f.as_mut().poll(cx),
            Inner::Failed(e) => Poll::Ready(Err(e.take().unwrap_or_else(|| {
                crate::error::unavailable("response future polled after completion")
            }))),
        }
    }
}

pub(super) fn call(shared: &Arc<Shared>, req: Request<Body>) -> ResponseFuture {
    let first = match shared.state() {
        ConnectivityState::TransientFailure => {
            return ResponseFuture::failed(crate::error::unavailable(shared.failure_message()));
        }
        ConnectivityState::Ready => shared.pick_slot(),
        _ => None,
    };
    let failures = shared.failures();
    if first.is_none() {
        shared.connect_h2();
    }
    let mut guard = InFlight::new(Arc::clone(shared));
    if let Some(slot) = &first {
        guard.on_slot(slot);
    }
    ResponseFuture {
        inner: Inner::Sending(Box::pin(send(
            Arc::clone(shared),
            guard,
            first,
            req,
            failures,
        ))),
    }
}

/// Sends on `slot`, or waits for the endpoint to connect first. A request
/// that never left (its connection closed first) is sent once more.
async fn send(
    shared: Arc<Shared>,
    mut guard: InFlight,
    mut slot: Option<Arc<Slot>>,
    mut req: Request<Body>,
    mut failures: u64,
) -> Result<Response<Incoming>, BoxError> {
    let mut resent = false;
    loop {
        let s = match slot.take() {
            Some(s) => s,
            None => wait_ready(&shared, failures).await?,
        };
        guard.on_slot(&s);
        let mut sender = s.sender.clone();
        match sender.try_send_request(req).await {
            Ok(resp) => {
                guard.answered();
                return Ok(resp);
            }
            Err(mut e) => match e.take_message() {
                Some(r) if !resent => {
                    resent = true;
                    req = r;
                    guard.leave_slot();
                    failures = shared.failures();
                }
                _ => return Err(transport_error(shared.address, e.into_error())),
            },
        }
    }
}

/// Waits until the endpoint has an open connection, or fails when the
/// connect attempt does.
async fn wait_ready(shared: &Arc<Shared>, failures: u64) -> Result<Arc<Slot>, BoxError> {
    // A waiting request holds a max_pending_requests slot; past the limit
    // it fails at once (and is not retried: Overflow marks it).
    let _pending = match shared.settings.breaker.as_ref().map(|b| b.try_pending()) {
        Some(Err(overflow)) => return Err(Box::new(overflow)),
        Some(Ok(g)) => Some(g),
        None => None,
    };
    let mut rx = shared.subscribe();
    loop {
        let state = *rx.borrow_and_update();
        if shared.failures() != failures {
            return Err(crate::error::unavailable(shared.failure_message()));
        }
        match state {
            ConnectivityState::Ready => match shared.pick_slot() {
                Some(s) => return Ok(s),
                // Up on HTTP/1.1 only (an endpoint following the
                // downstream's version) and HTTP/2 failed: fail now.
                None if shared.mode != Mode::Http2 && shared.backing_off() => {
                    return Err(crate::error::unavailable(shared.failure_message()));
                }
                None => shared.connect_h2(),
            },
            ConnectivityState::TransientFailure => {
                return Err(crate::error::unavailable(shared.failure_message()));
            }
            ConnectivityState::Idle => shared.connect_h2(),
            ConnectivityState::Connecting => {}
        }
        if rx.changed().await.is_err() {
            return Err(crate::error::unavailable(format!(
                "endpoint {} was removed",
                shared.address
            )));
        }
    }
}

/// A hyper error as a `Status`. An RST_STREAM the peer sent maps as gRPC's
/// HTTP/2 spec says (tonic's mapping: REFUSED_STREAM is UNAVAILABLE,
/// CANCEL is CANCELLED, ...); anything that broke the connection (I/O,
/// GOAWAY, a peer that does not speak HTTP/2, such as a TLS server hit in
/// plaintext) is UNAVAILABLE, as in every gRPC implementation. The hyper
/// error stays reachable as the source.
pub(super) fn transport_error(address: SocketAddr, e: hyper::Error) -> BoxError {
    let e = Arc::new(e);
    let code = if stream_reset_by_peer(&e) {
        match Status::from_error(Box::new(SharedError(Arc::clone(&e)))).code() {
            Code::Unknown => Code::Unavailable,
            c => c,
        }
    } else {
        Code::Unavailable
    };
    let mut msg = format!("endpoint {address}: {e}");
    let mut src = std::error::Error::source(&*e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    let mut status = Status::new(code, msg);
    status.set_source(e);
    Box::new(status)
}

/// Whether the peer reset this one stream (the connection is fine).
fn stream_reset_by_peer(e: &hyper::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = src {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.is_reset() && h2.is_remote();
        }
        src = err.source();
    }
    false
}

#[derive(Debug)]
struct SharedError(Arc<hyper::Error>);

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
