//! `xds:` client channels for tonic (gRFC A27, A28, A47, A71).
//!
//! A [`Channel`] is tonic's `GrpcService`: hand it to any tonic-generated
//! client unchanged.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mesh_tonic::Channel;
//! // The bootstrap comes from GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG.
//! let channel = Channel::from_target("xds:///echo.default.svc.cluster.local:7070").await?;
//! // let mut client = GreeterClient::new(channel);
//! # Ok(()) }
//! ```
//!
//! Building a channel resolves the target's Listener name from the
//! bootstrap's template (`xds://authority/name` uses that authority's,
//! A47), subscribes through the process-wide xDS client shared by every
//! channel to the same target (A71), and waits — at most the
//! [config timeout](ChannelBuilder::config_timeout), 20 s by default — for
//! the first complete config. Without one it fails UNAVAILABLE naming what
//! is missing. After that, config changes apply live; RPCs always see one
//! consistent snapshot.
//!
//! Each request gets scheme `http` and the target's name as `:authority`
//! (tonic-generated clients send relative URIs), then walks mesh-tower's
//! stack: route → timeout → fault → ratelimit → retry → breaker → balance
//! → outlier → endpoint. The channel itself adds no lock and no
//! allocation per request; failures are `tonic::Status`es whose message
//! says which layer failed and why.
//!
//! Not here: TLS to endpoints (cluster `transport_socket`; mesh-tower's
//! default connector is plaintext), servers ([`crate::server`]).

mod body;
pub mod future;
mod resolve;
mod target;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use mesh_core::bootstrap::Bootstrap;
use mesh_tower::discovery::DiscoveryOptions;
use mesh_tower::stack::{ClientService, ClientStack};
use tonic::Status;
use tower::Service;

pub use self::body::ResponseBody;
pub use self::resolve::DEFAULT_CONFIG_TIMEOUT;
pub(crate) use self::resolve::Settings;
pub(crate) use self::target::Target;
use crate::admin::channelz::{Call, ChannelEntry, ChannelView, register_channel};
use crate::error::Error;

/// The future of one mesh-tower stack call.
type StackFuture = <ClientService as Service<Request<tonic::body::Body>>>::Future;

/// A client channel to an `xds:` target: tonic's `GrpcService` over mesh's
/// client stack. Cheap to clone (a few `Arc`s); clones share connections,
/// config and state. See the [module docs](self).
#[derive(Clone)]
pub struct Channel {
    service: ClientService,
    authority: Authority,
    target: Arc<str>,
    /// The channel's channelz entry (calls counted per RPC).
    channelz: Arc<ChannelEntry>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// A channel to `target` (`xds:///name`, `xds://authority/name`) with
    /// the bootstrap from the environment and the default config timeout.
    pub async fn from_target(target: impl Into<String>) -> Result<Channel, Error> {
        Channel::builder(target).connect().await
    }

    /// A builder for a channel to `target`.
    pub fn builder(target: impl Into<String>) -> ChannelBuilder {
        ChannelBuilder {
            target: target.into(),
            settings: Settings::default(),
        }
    }

    /// A channel over a stack you built yourself (a static config through
    /// `Discovery::from_static`, say), sending `authority` as `:authority`.
    pub fn from_stack(stack: &ClientStack, authority: &str) -> Result<Channel, Error> {
        let parsed = authority.parse().map_err(|_| {
            Error::new(
                crate::error::ErrorKind::InvalidTarget,
                format!("invalid authority {authority:?}"),
            )
        })?;
        let target: Arc<str> = authority.into();
        Ok(Channel {
            service: stack.service(),
            authority: parsed,
            channelz: register_channel(target.clone(), None),
            target,
        })
    }

    /// The target this channel was built for.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The `:authority` every request carries (the target's name).
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }
}

impl Service<Request<tonic::body::Body>> for Channel {
    type Response = Response<ResponseBody>;
    type Error = Status;
    type Future = future::ResponseFuture<StackFuture>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.service.poll_ready(cx).map_err(Status::from_error)
    }

    #[inline]
    fn call(&mut self, mut req: Request<tonic::body::Body>) -> Self::Future {
        set_origin(&mut req, &self.authority);
        let call = Call::start(Arc::clone(&self.channelz));
        future::ResponseFuture::new(self.service.call(req), call)
    }
}

/// Gives a relative URI (what tonic clients send without an origin) scheme
/// `http` and `authority`; an absolute URI is left alone. No allocation:
/// the authority is a shared `Bytes` clone.
fn set_origin<B>(req: &mut Request<B>, authority: &Authority) {
    if req.uri().authority().is_some() {
        return;
    }
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority.clone());
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
}

/// Configures and connects a [`Channel`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ChannelBuilder {
    target: String,
    settings: Settings,
}

impl ChannelBuilder {
    /// Uses `bootstrap` instead of the environment's.
    pub fn bootstrap(mut self, bootstrap: Bootstrap) -> Self {
        self.settings.bootstrap = Some(bootstrap);
        self
    }

    /// How long [`connect`](Self::connect) waits for the first complete
    /// config ([`DEFAULT_CONFIG_TIMEOUT`], 20 s, by default).
    pub fn config_timeout(mut self, timeout: Duration) -> Self {
        self.settings.config_timeout = timeout;
        self
    }

    /// Connection, balancing and connector settings of the endpoints.
    pub fn discovery_options(mut self, options: DiscoveryOptions) -> Self {
        self.settings.discovery = options;
        self
    }

    /// Insecure credentials: connect in plaintext even to clusters whose
    /// `UpstreamTlsContext` asks for TLS, as a gRPC channel built with
    /// insecure credentials does. By default a channel uses xDS
    /// credentials: TLS where the cluster asks for it (certificates from
    /// the bootstrap's `certificate_providers`), plaintext elsewhere.
    pub fn insecure(mut self) -> Self {
        self.settings.discovery.ignore_tls = true;
        self
    }

    /// Seeds every random choice (weighted clusters, picks, fault and retry
    /// percentages): reproducible runs in tests and demos.
    pub fn seed(mut self, seed: u64) -> Self {
        self.settings.seed = Some(seed);
        self
    }

    /// Resolves the target and waits for its first config (see the
    /// [module docs](self)). Fails with an [`Error`] whose
    /// [`code`](Error::code) is UNAVAILABLE when no config arrives in time,
    /// naming the resource still missing.
    pub async fn connect(self) -> Result<Channel, Error> {
        let target = Target::parse(&self.target)?;
        let bootstrap = self.settings.bootstrap()?;
        let built = self.settings.build(&bootstrap, &target, false).await?;
        let full: Arc<str> = target.full.as_str().into();
        let view = ChannelView {
            discovery: built.discovery,
            tls: built.tls_registry,
        };
        Ok(Channel {
            service: built.stack.service(),
            authority: target.http_authority(),
            channelz: register_channel(full.clone(), Some(view)),
            target: full,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_uris_get_the_target_as_authority() {
        let authority: Authority = "echo:7070".parse().unwrap();
        let mut req = Request::builder()
            .uri("/grpc.testing.TestService/EmptyCall")
            .body(())
            .unwrap();
        set_origin(&mut req, &authority);
        assert_eq!(
            req.uri(),
            "http://echo:7070/grpc.testing.TestService/EmptyCall"
        );
        let mut req = Request::builder().uri("http://other:1/x").body(()).unwrap();
        set_origin(&mut req, &authority);
        assert_eq!(req.uri(), "http://other:1/x");
    }

    fn assert_grpc_service<T>()
    where
        T: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + Sync + 'static,
        T::Future: Send + 'static,
    {
    }

    #[test]
    fn channel_is_a_grpc_service() {
        assert_grpc_service::<Channel>();
    }
}
