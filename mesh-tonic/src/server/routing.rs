//! Per-request routing of an xDS-enabled server (A36): the virtual host
//! from `:authority` (or `Host`), the first matching route, and the
//! `non_forwarding_action` check; then the chain's RBAC filters (A41, with
//! the route's overrides), then the inbound hook, then the service.
//!
//! Refusals never reach the service: gRPC calls get a Trailers-Only
//! UNAVAILABLE, or PERMISSION_DENIED from RBAC (see [`super::reject`]).
//! A gRPC call's `grpc-timeout` is enforced as tonic's own server does:
//! when it passes before the service answers, the handler is dropped and
//! the caller gets DEADLINE_EXCEEDED.
//! Every request that passes carries the connection in its extensions:
//! [`ConnectionInfo`], tonic's `TcpConnectInfo`, mesh-tower's
//! [`ConnectionFacts`], and the client's verified [`PeerIdentity`] on an
//! mTLS connection. This module does not pick filter chains (the accept
//! loop does, per connection) nor terminate TLS.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{Either, Full};
use mesh_core::resource::listener::{FilterChain, RouteSource};
use mesh_core::resource::route::{Route, RouteAction, RouteConfig, VirtualHost};
use mesh_core::watch::ServerConfig;
use mesh_tower::authz::{self, ConnectionFacts, Inbound};
use mesh_tower::timeout::{GRPC_TIMEOUT, parse_grpc_timeout};
use mesh_tower::tls::PeerIdentity;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tonic::Code;
use tonic::transport::server::TcpConnectInfo;
use tower::Service;

use super::reject::{is_grpc, refuse};
use super::tls::TlsPeer;

/// What a request matched, for the [`InboundHook`].
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The local address of the connection.
    pub local_addr: SocketAddr,
    /// The peer's address.
    pub peer_addr: SocketAddr,
    /// The connection's filter chain (its HCM carries the HTTP filters,
    /// RBAC among them).
    pub filter_chain: &'a FilterChain,
    /// The virtual host chosen from the request's authority.
    pub virtual_host: &'a VirtualHost,
    /// The route the request matched (a `non_forwarding_action` route).
    pub route: &'a Route,
}

/// The per-request policy slot of an xDS-enabled server: runs after routing
/// and before the service, with the connection's filter chain and the
/// matched route, after the built-in RBAC filters allowed the request.
/// Other inbound policy (custom filters of the chain's HCM) plugs in here.
/// It runs on the request path, so it must not block.
///
/// Inbound telemetry that needs the response too belongs in a
/// `tower::Layer` around the service, which finds [`ConnectionInfo`] (and
/// tonic's `TcpConnectInfo`) in the request extensions.
pub trait InboundHook: Send + Sync + 'static {
    /// `Err` refuses the request with that status (Trailers-Only for gRPC).
    fn on_request(
        &self,
        request: &http::request::Parts,
        ctx: &RequestContext<'_>,
    ) -> Result<(), tonic::Status>;
}

/// The connection a request came on, inserted into every request's
/// extensions (next to tonic's `TcpConnectInfo`, so
/// `tonic::Request::remote_addr` works).
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The local address of the connection.
    pub local_addr: SocketAddr,
    /// The peer's address.
    pub peer_addr: SocketAddr,
    /// The name of the filter chain serving the connection.
    pub filter_chain: Arc<str>,
}

/// Which chain of a config a connection uses.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ChainIndex {
    Listed(usize),
    Default,
}

fn chain_of(config: &ServerConfig, index: ChainIndex) -> &FilterChain {
    let server = config.server();
    match index {
        ChainIndex::Listed(i) => &server.filter_chains[i],
        ChainIndex::Default => server
            .default_filter_chain
            .as_ref()
            .expect("ChainIndex::Default is only built for listeners with one"),
    }
}

/// One connection's routing state.
pub(crate) struct Conn {
    /// The config the connection was accepted under (keeps its chain).
    config: Arc<ServerConfig>,
    chain: ChainIndex,
    /// The server's current config, for RDS updates that arrive while the
    /// connection is open (they apply without draining).
    live: Arc<ArcSwapOption<ServerConfig>>,
    hook: Option<Arc<dyn InboundHook>>,
    info: ConnectionInfo,
    /// What RBAC reads of the connection.
    facts: ConnectionFacts,
    /// The client's verified certificate (mTLS).
    identity: Option<PeerIdentity>,
}

impl Conn {
    pub(crate) fn new(
        config: Arc<ServerConfig>,
        chain: ChainIndex,
        live: Arc<ArcSwapOption<ServerConfig>>,
        hook: Option<Arc<dyn InboundHook>>,
        local_addr: SocketAddr,
        peer_addr: SocketAddr,
        tls: Option<TlsPeer>,
    ) -> Self {
        let filter_chain = Arc::from(chain_of(&config, chain).name.as_str());
        let facts = ConnectionFacts {
            local_addr,
            peer_addr,
            tls: tls.is_some(),
            sni: tls.as_ref().and_then(|t| t.sni.clone()),
        };
        Conn {
            config,
            chain,
            live,
            hook,
            info: ConnectionInfo {
                local_addr,
                peer_addr,
                filter_chain,
            },
            facts,
            identity: tls.and_then(|t| t.identity),
        }
    }

    pub(crate) fn chain(&self) -> &FilterChain {
        chain_of(&self.config, self.chain)
    }

    /// Runs `f` with the chain's routes: inline, or the RDS resource from
    /// the live config (else from the config the connection started with).
    fn with_routes<R>(&self, f: impl FnOnce(Option<&RouteConfig>) -> R) -> R {
        match &self.chain().hcm.route {
            RouteSource::Inline(rc) => f(Some(rc)),
            RouteSource::Rds(name) => {
                let live = self.live.load();
                let rc = live
                    .as_ref()
                    .and_then(|c| c.routes.get(name))
                    .or_else(|| self.config.routes.get(name));
                f(rc.map(|rc| &**rc))
            }
        }
    }

    /// Routes a request: `Err` is the refusal.
    fn route(&self, parts: &http::request::Parts) -> Result<(), (Code, String)> {
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
            })
            .unwrap_or("");
        let path = parts.uri.path();
        self.with_routes(|rc| {
            let unavailable = |m: String| Err((Code::Unavailable, m));
            let Some(rc) = rc else {
                return unavailable(format!(
                    "no RouteConfiguration for filter chain \"{}\"",
                    self.chain().name
                ));
            };
            let Some(vh) = rc.virtual_host_for(authority) else {
                return unavailable(format!(
                    "no virtual host for authority \"{authority}\" in RouteConfiguration \"{}\"",
                    rc.name
                ));
            };
            let draw = || rand::random_range(0..1_000_000);
            let Some(route) = vh.route_for(path, &parts.headers, draw) else {
                return unavailable(format!(
                    "no route for \"{path}\" in virtual host \"{}\"",
                    vh.name
                ));
            };
            if !matches!(route.action, RouteAction::NonForwarding) {
                return unavailable(format!(
                    "route \"{}\" of virtual host \"{}\" has no non_forwarding_action: \
                     a server cannot serve it",
                    route.name, vh.name
                ));
            }
            self.authorize(parts, vh, route)?;
            let Some(hook) = &self.hook else {
                return Ok(());
            };
            let ctx = RequestContext {
                local_addr: self.info.local_addr,
                peer_addr: self.info.peer_addr,
                filter_chain: self.chain(),
                virtual_host: vh,
                route,
            };
            hook.on_request(parts, &ctx)
                .map_err(|s| (s.code(), s.message().to_owned()))
        })
    }
}

impl Conn {
    /// The chain's RBAC filters on `route`: PERMISSION_DENIED with a
    /// message naming no policy; the log names it.
    fn authorize(
        &self,
        parts: &http::request::Parts,
        vh: &VirtualHost,
        route: &Route,
    ) -> Result<(), (Code, String)> {
        let filters = authz::effective_filters(&self.chain().hcm, vh, route);
        let inbound = Inbound::from_parts(parts, &self.facts, self.identity.as_ref());
        authz::evaluate(filters, &inbound).map_err(|denial| {
            tracing::info!(
                path = parts.uri.path(),
                peer = %self.facts.peer_addr,
                principal = self.identity.as_ref().map(PeerIdentity::principal),
                chain = %self.info.filter_chain,
                %denial,
                "RBAC denied the request"
            );
            (Code::PermissionDenied, authz::DENIED_MESSAGE.to_owned())
        })
    }
}

/// The per-connection service: routes, then calls the user's service.
pub(crate) struct XdsRouting<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S: Clone> Clone for XdsRouting<S> {
    fn clone(&self) -> Self {
        XdsRouting {
            inner: self.inner.clone(),
            conn: self.conn.clone(),
        }
    }
}

impl<S> XdsRouting<S> {
    pub(crate) fn new(inner: S, conn: Arc<Conn>) -> Self {
        XdsRouting { inner, conn }
    }
}

impl<S, ReqB, B> Service<Request<ReqB>> for XdsRouting<S>
where
    S: Service<Request<ReqB>, Response = Response<B>>,
{
    type Response = Response<Either<B, Full<Bytes>>>;
    type Error = S::Error;
    type Future = RoutingFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        if let Err((code, message)) = self.conn.route(&parts) {
            tracing::debug!(path = parts.uri.path(), %message, "request refused");
            let response = refuse(is_grpc(&parts.headers), code, &message);
            return RoutingFuture::Refused {
                response: Some(response),
            };
        }
        let info = &self.conn.info;
        parts.extensions.insert(TcpConnectInfo {
            local_addr: Some(info.local_addr),
            remote_addr: Some(info.peer_addr),
        });
        parts.extensions.insert(info.clone());
        parts.extensions.insert(self.conn.facts.clone());
        if let Some(identity) = &self.conn.identity {
            parts.extensions.insert(identity.clone());
        }
        let deadline = parts
            .headers
            .get(GRPC_TIMEOUT)
            .and_then(|v| parse_grpc_timeout(v.as_bytes()))
            .map(tokio::time::sleep);
        RoutingFuture::Inner {
            fut: self.inner.call(Request::from_parts(parts, body)),
            deadline,
        }
    }
}

pin_project! {
    /// The response future of [`XdsRouting`].
    #[project = RoutingProj]
    pub(crate) enum RoutingFuture<F> {
        Refused { response: Option<Response<Full<Bytes>>> },
        Inner {
            #[pin]
            fut: F,
            // The caller's `grpc-timeout`, until the response headers.
            #[pin]
            deadline: Option<Sleep>,
        },
    }
}

impl<F, B, E> Future for RoutingFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Either<B, Full<Bytes>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RoutingProj::Refused { response } => {
                let r = response.take().expect("polled after completion");
                Poll::Ready(Ok(r.map(Either::Right)))
            }
            RoutingProj::Inner { fut, deadline } => {
                if let Poll::Ready(r) = fut.poll(cx) {
                    return Poll::Ready(r.map(|resp| resp.map(Either::Left)));
                }
                match deadline.as_pin_mut().map(|d| d.poll(cx)) {
                    Some(Poll::Ready(())) => Poll::Ready(Ok(refuse(
                        true,
                        Code::DeadlineExceeded,
                        "deadline exceeded before the server answered",
                    )
                    .map(Either::Right))),
                    _ => Poll::Pending,
                }
            }
        }
    }
}
