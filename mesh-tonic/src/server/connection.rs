//! One accepted connection: HTTP/1.1 or HTTP/2 (hyper-util's auto builder)
//! until it closes, or until the server drains it (Listener change, not
//! serving, shutdown): then a graceful shutdown (HTTP/2 GOAWAY, in-flight
//! requests finish) bounded by the grace period, after which the connection
//! is closed.
//!
//! `io` is any stream: TCP, or TLS over it.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tower::Service;

use super::BoxError;

/// The drain signal of one connection: the server's generation counter, and
/// the generation the connection was accepted in. A higher counter drains.
pub(crate) struct Drain {
    pub(crate) rx: watch::Receiver<u64>,
    pub(crate) generation: u64,
}

/// Serves `io` with `service` until the connection ends or is drained.
pub(crate) async fn serve<I, S, B>(io: I, service: S, drain: Drain, grace: Duration)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let Drain { mut rx, generation } = drain;
    tokio::select! {
        done = conn.as_mut() => {
            if let Err(error) = done {
                tracing::debug!(%error, "connection ended with an error");
            }
            return;
        }
        // A closed channel means the server is gone: drain too.
        _ = rx.wait_for(|g| *g > generation) => {}
    }
    conn.as_mut().graceful_shutdown();
    match tokio::time::timeout(grace, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%error, "drained connection ended with an error"),
        Err(_) => tracing::debug!(?grace, "drain grace period over: closing the connection"),
    }
}
