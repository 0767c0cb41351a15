//! xDS-enabled servers (gRFC A36) for tonic services and axum routers.
//!
//! [`XdsServer`] owns its accept loop, so it can act per connection:
//!
//! - It asks for the Listener named by the bootstrap's
//!   `server_listener_resource_name_template`, with `%s` the listening
//!   address (`0.0.0.0:PORT`, `[::]:PORT`, or the exact address bound).
//! - It serves only while it holds a valid Listener whose address equals the
//!   listening address; otherwise it is *not serving*: connections are
//!   accepted and closed at once. Mode changes reach
//!   [`XdsServerBuilder::on_serving_mode_change`].
//! - Each connection gets the filter chain that matches it
//!   (`FilterChainMatch`, A36); without one it is closed. A chain with a
//!   `DownstreamTlsContext` terminates TLS (A29) with the certificates of
//!   the bootstrap's `certificate_providers` (the process-wide
//!   [`shared_tls_registry`],
//!   or [`XdsServerBuilder::tls_registry`]); the handshake is bounded by
//!   [`XdsServerBuilder::tls_handshake_timeout`], 10 s by default. The
//!   client's verified certificate reaches every request of the connection
//!   as a [`PeerIdentity`](mesh_tower::tls::PeerIdentity) extension. A
//!   chain without one is plaintext.
//! - Each request gets the virtual host for its `:authority` (or `Host`) and
//!   the first matching route; a route without `non_forwarding_action`, or no
//!   route, fails the RPC with UNAVAILABLE (Trailers-Only). Then the
//!   chain's RBAC filters run (A41, [`mesh_tower::authz`]: DENY before
//!   ALLOW as the HCM orders them, the route's `RBACPerRoute` applied); a
//!   denial is PERMISSION_DENIED (403 for plain HTTP) with a message that
//!   names no policy, and an `info` log that does. Then the
//!   [`InboundHook`] runs, then the service.
//! - A new Listener drains the connections of the old one (HTTP/2 GOAWAY,
//!   in-flight RPCs finish, then the grace period closes them); RDS updates
//!   apply to open connections. Shutdown drains the same way.
//!
//! HTTP/1.1 and HTTP/2 are both served (hyper-util's auto builder), so an
//! axum `Router` works as well as tonic's `Routes`.
//!
//! ```no_run
//! # async fn run(routes: tonic::service::Routes) -> Result<(), mesh_tonic::server::Error> {
//! use std::net::SocketAddr;
//! use mesh_tonic::server::{XdsServer, shutdown_signal};
//!
//! let addr: SocketAddr = "0.0.0.0:50051".parse().unwrap();
//! XdsServer::builder()
//!     .on_serving_mode_change(|mode, why| eprintln!("{mode:?} {why:?}"))
//!     .serve_with_shutdown(addr, routes, shutdown_signal())
//!     .await
//! # }
//! ```
//!
//! Not here: the client side (`mesh_tonic::channel`); the TLS and RBAC
//! machinery itself (mesh-tower's `tls` and `authz`).

mod accept;
mod connection;
mod error;
mod listen;
mod mode;
mod reject;
mod routing;
mod signal;
mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use mesh_core::bootstrap::Bootstrap;
use mesh_core::watch::watch_server;
use mesh_core::xds::{SERVER_CLIENT_KEY, XdsClient};
use mesh_tower::discovery::shared_tls_registry;
use mesh_tower::tls::ProviderRegistry;
use tower::Service;

pub use self::error::{Error, ErrorKind};
pub use self::listen::Listen;
pub use self::mode::{ModeCallback, ServingMode};
pub(crate) use self::reject::is_grpc;
pub use self::routing::{ConnectionInfo, InboundHook, RequestContext};
pub use self::signal::shutdown_signal;

use self::accept::AcceptLoop;

/// The boxed error type services and bodies may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long draining connections may take by default.
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(10);

/// How long a client may take to finish its TLS handshake by default.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An xDS-enabled server; see the [module docs](self). Build one with
/// [`XdsServer::builder`].
#[derive(Clone)]
pub struct XdsServer {
    bootstrap: Option<Bootstrap>,
    drain_grace: Duration,
    on_mode: Option<ModeCallback>,
    hook: Option<Arc<dyn InboundHook>>,
    tls_registry: Option<Arc<ProviderRegistry>>,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for XdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsServer")
            .field("bootstrap", &self.bootstrap.is_some())
            .field("drain_grace", &self.drain_grace)
            .field("on_serving_mode_change", &self.on_mode.is_some())
            .field("inbound_hook", &self.hook.is_some())
            .field("tls_registry", &self.tls_registry.is_some())
            .field("tls_handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

/// Configures an [`XdsServer`].
#[derive(Debug, Clone)]
pub struct XdsServerBuilder {
    server: XdsServer,
}

impl XdsServer {
    /// A builder with the defaults: bootstrap from the environment, 10 s
    /// drain grace, no callback, no hook, certificate providers from the
    /// bootstrap, 10 s TLS handshake timeout.
    pub fn builder() -> XdsServerBuilder {
        XdsServerBuilder {
            server: XdsServer {
                bootstrap: None,
                drain_grace: DEFAULT_DRAIN_GRACE,
                on_mode: None,
                hook: None,
                tls_registry: None,
                handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            },
        }
    }

    /// Serves `service` on `listen` until an error; dropping the future
    /// closes every connection at once.
    pub async fn serve<S, B>(self, listen: impl Into<Listen>, service: S) -> Result<(), Error>
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.serve_with_shutdown(listen, service, std::future::pending())
            .await
    }

    /// Serves `service` on `listen` until `signal` resolves, then stops
    /// accepting and drains open connections (at most the drain grace).
    ///
    /// The xDS client is the process-wide one for servers
    /// (`XdsClient::shared(&bootstrap, SERVER_CLIENT_KEY)`), which a CSDS
    /// service can report on.
    pub async fn serve_with_shutdown<S, B>(
        self,
        listen: impl Into<Listen>,
        service: S,
        signal: impl Future<Output = ()>,
    ) -> Result<(), Error>
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let bootstrap = match self.bootstrap {
            Some(b) => b,
            None => Bootstrap::from_env().map_err(|e| {
                Error::new(
                    ErrorKind::Bootstrap,
                    format!("xDS-enabled server: {e}"),
                    Some(Box::new(e)),
                )
            })?,
        };
        let (listener, listening) = listen.into().bind().await?;
        let listener_name = bootstrap
            .server_listener_name(&listen::listening_name(listening))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Bootstrap,
                    "xDS-enabled server: the bootstrap has no \
                     server_listener_resource_name_template (A36 requires it)",
                    None,
                )
            })?;
        let tls_registry = self
            .tls_registry
            .unwrap_or_else(|| shared_tls_registry(&bootstrap));
        let client = XdsClient::shared(&bootstrap, SERVER_CLIENT_KEY);
        let watch = watch_server(&client, &listener_name);
        AcceptLoop {
            listener,
            listening,
            listener_name,
            watch,
            grace: self.drain_grace,
            on_mode: self.on_mode,
            hook: self.hook,
            tls_registry,
            handshake_timeout: self.handshake_timeout,
            channelz: crate::admin::channelz::register_server(listening),
        }
        .run(service, signal)
        .await;
        Ok(())
    }
}

impl XdsServerBuilder {
    /// Uses this bootstrap instead of the environment's
    /// (`GRPC_XDS_BOOTSTRAP` / `GRPC_XDS_BOOTSTRAP_CONFIG`).
    pub fn bootstrap(mut self, bootstrap: Bootstrap) -> Self {
        self.server.bootstrap = Some(bootstrap);
        self
    }

    /// How long draining connections (Listener change, shutdown) may take
    /// before they are closed; 10 s by default.
    pub fn drain_grace(mut self, grace: Duration) -> Self {
        self.server.drain_grace = grace;
        self
    }

    /// Called on every serving mode change, with the reason when not
    /// serving. It runs on the accept loop: keep it short.
    pub fn on_serving_mode_change(
        mut self,
        callback: impl Fn(ServingMode, Option<String>) + Send + Sync + 'static,
    ) -> Self {
        self.server.on_mode = Some(Arc::new(callback));
        self
    }

    /// Runs `hook` on every routed request that RBAC allowed, before the
    /// service (the slot for other inbound policy).
    pub fn inbound_hook(mut self, hook: impl InboundHook) -> Self {
        self.server.hook = Some(Arc::new(hook));
        self
    }

    /// The certificate providers TLS filter chains use, instead of the
    /// process-wide registry over the bootstrap's `certificate_providers`
    /// (for providers registered in code, say).
    pub fn tls_registry(mut self, registry: Arc<ProviderRegistry>) -> Self {
        self.server.tls_registry = Some(registry);
        self
    }

    /// How long a client may take to finish its TLS handshake before the
    /// connection is closed (10 s by default).
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.server.handshake_timeout = timeout;
        self
    }

    /// The configured server.
    pub fn build(self) -> XdsServer {
        self.server
    }

    /// Builds and [serves](XdsServer::serve).
    pub async fn serve<S, B>(self, listen: impl Into<Listen>, service: S) -> Result<(), Error>
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.server.serve(listen, service).await
    }

    /// Builds and [serves until `signal`](XdsServer::serve_with_shutdown).
    pub async fn serve_with_shutdown<S, B>(
        self,
        listen: impl Into<Listen>,
        service: S,
        signal: impl Future<Output = ()>,
    ) -> Result<(), Error>
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.server
            .serve_with_shutdown(listen, service, signal)
            .await
    }
}
