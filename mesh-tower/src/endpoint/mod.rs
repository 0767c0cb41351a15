//! Connections to one endpoint: gRPC's per-endpoint connection state
//! machine (IDLE, CONNECTING, READY, TRANSIENT_FAILURE) over HTTP/2 or
//! HTTP/1.1 connections made with hyper's client connection API.
//!
//! The version is [`ConnectionSettings::http`]: HTTP/2 by default (gRPC
//! channels keep it whatever the cluster says, as proxyless gRPC does);
//! mesh's HTTP client takes it from each cluster's protocol options
//! ([`ConnectionSettings::http_from_cluster`]). HTTP/1.1 runs one request
//! at a time per connection from a small pool per endpoint (up to
//! [`ConnectionSettings::max_http1_connections`], within the breaker's
//! `max_connections`; waiting requests take `max_pending_requests` slots;
//! closed after `max_requests_per_connection`, which HTTP/2 ignores). The
//! HTTP/2 path is unchanged by it: one enum match per request. The rest of
//! this list is about HTTP/2.
//!
//! - A request in IDLE starts a connect attempt; requests queue while
//!   CONNECTING (bounded by the attempt's timeout) and fail fast with
//!   UNAVAILABLE in TRANSIENT_FAILURE, naming the endpoint and the last
//!   connect error.
//! - Failed attempts back off as gRPC's connection-backoff doc says
//!   ([`ConnectBackoff`]); a success resets the backoff.
//! - Connections are reused (their `SendRequest` is cloned per request);
//!   another is opened when every open one is at the peer's
//!   `SETTINGS_MAX_CONCURRENT_STREAMS`, up to
//!   [`ConnectionSettings::max_connections`].
//! - When a connection closes (GOAWAY, reset) it leaves the set; with none
//!   left the endpoint goes back to IDLE and reconnects on next use, or at
//!   once when its balancer keeps endpoints connected.
//! - Dropping the [`Connection`] (the endpoint left the snapshot) closes
//!   its connections once their streams finish.
//!
//! Request URIs are sent as they are; a URI without scheme and authority
//! gets the connector's scheme and the `host` header (else the endpoint
//! address) so HTTP/2 has a `:authority`.
//!
//! Not here: picking endpoints ([`crate::balance`]), outlier accounting
//! ([`crate::outlier`]), TLS (a [`Connector`] supplied by mesh-tonic).

mod backoff;
mod connector;
mod future;
mod http1;
mod load;
mod pool;
mod service;
mod socket;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Uri, Version};
use mesh_core::resource::Cluster;
use mesh_core::resource::cluster::UpstreamHttpOptions;
use mesh_core::resource::endpoint::Endpoint;
use tokio::sync::watch;

pub use self::backoff::{Backoff, ConnectBackoff};
pub use self::connector::{BoxIo, ConnectFuture, Connector, Io, TcpConnector};
pub use self::future::ResponseFuture;
pub use self::load::{DEFAULT_DECAY, Load, LoadSignal};
pub use self::service::{EndpointService, PickedEndpoint};
pub use self::socket::{CallCounts, SocketInfo, TlsInfo};
pub use self::state::ConnectivityState;
use crate::cluster::EndpointHandle;

/// How an endpoint connects. Shared by every endpoint of a cluster.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Backoff between failed attempts and the connect timeout.
    pub backoff: ConnectBackoff,
    /// Opens the byte streams HTTP/2 runs over.
    pub connector: Arc<dyn Connector>,
    /// Most HTTP/2 connections to one endpoint (default 8).
    pub max_connections: usize,
    /// Streams per connection before another is opened, when lower than
    /// the peer's `SETTINGS_MAX_CONCURRENT_STREAMS` (default: no lower cap).
    pub max_streams_per_connection: usize,
    /// Seed of the backoff jitter (tests); `None` seeds from the OS.
    pub seed: Option<u64>,
    /// The cluster's circuit breaker: connections take `max_connections`
    /// slots and requests waiting for a connection take
    /// `max_pending_requests` slots (A32 / Envoy).
    pub breaker: Option<Arc<crate::breaker::Breaker>>,
    /// The HTTP version and per-connection request limit (default
    /// [`UpstreamHttpOptions::HTTP2`]; the limit applies to HTTP/1.1).
    pub http: UpstreamHttpOptions,
    /// Whether [`apply_cluster`](Self::apply_cluster) takes `http` from the
    /// cluster (mesh's HTTP client) or leaves it (gRPC channels: HTTP/2
    /// always, as proxyless gRPC). Default false.
    pub http_from_cluster: bool,
    /// Most HTTP/1.1 connections to one endpoint (default 32); the
    /// cluster's `max_connections` bounds them across endpoints.
    pub max_http1_connections: usize,
}

impl ConnectionSettings {
    /// Fits the settings to `cluster`: its protocol options when
    /// [`http_from_cluster`](Self::http_from_cluster) is set.
    pub fn apply_cluster(&mut self, cluster: &Cluster) {
        if self.http_from_cluster {
            self.http = cluster.upstream_http;
        }
    }
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            backoff: ConnectBackoff::default(),
            connector: Arc::new(TcpConnector),
            max_connections: 8,
            max_streams_per_connection: usize::MAX,
            seed: None,
            breaker: None,
            http: UpstreamHttpOptions::HTTP2,
            http_from_cluster: false,
            max_http1_connections: 32,
        }
    }
}

/// The connections to one endpoint and their connectivity state.
#[derive(Debug)]
pub struct Connection {
    shared: Arc<pool::Shared>,
}

impl Connection {
    /// Connections to `address`; none is opened until the first request or
    /// [`connect`](Self::connect).
    pub fn new(address: SocketAddr, settings: Arc<ConnectionSettings>) -> Self {
        Connection {
            shared: pool::Shared::new(address, settings),
        }
    }

    /// The endpoint's address.
    pub fn address(&self) -> SocketAddr {
        self.shared.address
    }

    /// The current state (an atomic load).
    #[inline]
    pub fn state(&self) -> ConnectivityState {
        self.shared.state()
    }

    /// A receiver of state changes.
    pub fn watch(&self) -> watch::Receiver<ConnectivityState> {
        self.shared.subscribe()
    }

    /// Starts connecting if IDLE (or READY with every connection closed).
    pub fn connect(&self) {
        self.shared.connect();
    }

    /// Whether to reconnect on its own after a close or a backoff (eager
    /// balancers such as round robin), rather than on the next request.
    /// Turning it on connects an IDLE endpoint.
    pub fn set_keep_connected(&self, keep: bool) {
        self.shared.set_keep_connected(keep);
    }

    /// The last connect or connection error, if any since the last success.
    pub fn last_error(&self) -> Option<Arc<str>> {
        self.shared.last_error()
    }

    /// How many connections (HTTP/2 and HTTP/1.1) are open.
    pub fn connection_count(&self) -> usize {
        self.shared.connection_count()
    }

    /// Requests sent to the endpoint: started, answered, failed
    /// (introspection).
    pub fn calls(&self) -> &CallCounts {
        &self.shared.calls
    }

    /// The open HTTP/2 connections (introspection; cold path: it clones the
    /// list). Each entry lives as long as its connection.
    pub fn sockets(&self) -> Vec<Arc<SocketInfo>> {
        self.shared.sockets()
    }

    /// In-flight requests and the latency estimate.
    #[inline]
    pub fn load(&self) -> &Load {
        &self.shared.load
    }

    /// Forces the state, for tests and benches that put an in-process
    /// service under the balancer instead of real connections. The state
    /// machine overrides it on its next transition.
    pub fn set_state(&self, state: ConnectivityState) {
        self.shared.set_state(state);
    }

    /// Sends `req` on one of the endpoint's connections (connecting first
    /// if needed), in the endpoint's HTTP version.
    pub fn call(&self, mut req: Request<tonic::body::Body>) -> ResponseFuture {
        if req.uri().scheme().is_none() || req.uri().authority().is_none() {
            absolute_uri(&mut req, self.shared.address, &self.shared.settings);
        }
        match self.shared.mode {
            pool::Mode::Http2 => future::call(&self.shared, req),
            pool::Mode::Http1 => http1::call(&self.shared, req),
            pool::Mode::Downstream if req.version() == Version::HTTP_2 => {
                future::call(&self.shared, req)
            }
            pool::Mode::Downstream => http1::call(&self.shared, req),
        }
    }
}

/// Gives a relative URI the connector's scheme and an authority (the
/// `host` header, else the endpoint's address).
fn absolute_uri<B>(req: &mut Request<B>, address: SocketAddr, settings: &ConnectionSettings) {
    let authority = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .or_else(|| req.uri().authority().cloned())
        .or_else(|| address.to_string().parse().ok());
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    if parts.scheme.is_none() {
        parts.scheme = Some(settings.connector.scheme());
    }
    parts.authority = authority;
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
}

impl EndpointHandle {
    /// A new endpoint (no connection yet) with a fresh outlier state.
    pub fn new(config: Endpoint, settings: Arc<ConnectionSettings>) -> Self {
        EndpointHandle {
            address: config.address,
            connection: Connection::new(config.address, settings),
            outlier: crate::outlier::EndpointOutlier::new(),
            config: arc_swap::ArcSwap::from_pointee(config),
        }
    }

    /// Whether the picker may choose it: not ejected by outlier detection.
    #[inline]
    pub fn is_pickable(&self) -> bool {
        !self.outlier.is_ejected()
    }
}

#[cfg(test)]
mod tests;
