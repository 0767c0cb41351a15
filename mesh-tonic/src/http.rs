//! A plain-HTTP client through the mesh, for axum apps and other hyper
//! users: the same client stack as [`Channel`](crate::Channel) (routes,
//! timeouts, faults, rate limits, retries, breakers, balancing, outlier
//! detection), picked per request by the request's host.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = mesh_tonic::http::Client::builder().build()?; // bootstrap from the environment
//! let req = http::Request::get("http://reviews.default:9080/reviews/1").body(String::new())?;
//! let resp = client.request(req).await; // 503, 429, 504 ... when the mesh fails it
//! # Ok(()) }
//! ```
//!
//! **Host matching.** Each request's authority (its URI's, else the `Host`
//! header) names the target, as `xds:///<authority>` would: the Listener
//! from the bootstrap's client template, and the virtual host matched
//! against that authority per request (the route layer's per-request host
//! mode). The first request to a host resolves it (waiting up to the
//! config timeout); later ones find its stack in an arc-swapped map (one
//! load and one hash lookup, no lock). A host without config is not
//! remembered: each request to it fails after the config timeout, so pick
//! a short one ([`ClientBuilder::config_timeout`]) when callers may name
//! hosts the mesh does not know.
//!
//! **Protocol.** Each cluster's protocol options pick the HTTP version, as
//! Envoy reads them (`typed_extension_protocol_options
//! ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]` or the
//! deprecated `http2_protocol_options`): HTTP/1.1 when the cluster says
//! nothing (istiod's `http` ports), HTTP/2 (h2c in plaintext) for
//! `http2_protocol_options` (istiod's `grpc` and `http2` ports), the
//! request's own version for `use_downstream_protocol_config`. HTTP/1.1
//! goes over a small pool of connections per endpoint, one request at a
//! time each (mesh-tower's endpoint docs). Unlike [`Channel`](crate::Channel),
//! which speaks HTTP/2 whatever the cluster says, as proxyless gRPC does.
//!
//! **Failures.** When the mesh fails a request (no route, breaker open,
//! rate limited, fault abort, deadline, endpoint unreachable) the response
//! is synthesized with the HTTP status for the gRPC code
//! (mesh-tower's `http_status_for`: 503, 429, 504, ...), the reason as a
//! text body and in the `x-mesh-error` header. [`Client::try_request`]
//! returns the failure as a [`RequestError`] instead.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ::http::header::{CONTENT_TYPE, HOST, HeaderValue};
use ::http::uri::{Authority, Scheme};
use ::http::{Request, Response, StatusCode, Uri};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use mesh_core::bootstrap::Bootstrap;
use mesh_tower::BoxError;
use mesh_tower::discovery::DiscoveryOptions;
use mesh_tower::stack::{ClientService, ResponseBody as StackBody};
use pin_project_lite::pin_project;
use tonic::{Code, Status};
use tower::ServiceExt;

use crate::channel::{Settings, Target};
use crate::error::Error;

/// The response header naming why the mesh failed a request.
pub const MESH_ERROR_HEADER: &str = "x-mesh-error";

/// An HTTP client through the mesh (see the [module docs](self)). Cheap to
/// clone; clones share every host's stack.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    settings: Settings,
    bootstrap: Bootstrap,
    /// Resolved hosts; replaced whole (copy on write) when one is added.
    hosts: ArcSwap<HashMap<Box<str>, ClientService>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts = self.shared.hosts.load();
        let mut names: Vec<&str> = hosts.keys().map(|k| &**k).collect();
        names.sort_unstable();
        f.debug_struct("Client")
            .field("hosts", &names)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            settings: Settings::default(),
        }
    }

    /// Sends `req` through the mesh. Never fails: a request the mesh fails
    /// gets a synthesized response (see [`RequestError::into_response`]).
    pub async fn request<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        match self.try_request(req).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        }
    }

    /// Sends `req` through the mesh; the upstream's response (whatever its
    /// status), or why the mesh failed the request.
    pub async fn try_request<B>(&self, req: Request<B>) -> Result<Response<Body>, RequestError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut req = req.map(tonic::body::Body::new);
        let authority = request_authority(&req)?;
        absolute_uri(&mut req, &authority);
        let service = self.service_for(&authority).await?;
        match service.oneshot(req).await {
            Ok(resp) => Ok(resp.map(Body::stack)),
            Err(e) => Err(RequestError::from_status(Status::from_error(e))),
        }
    }

    /// The stack of `authority`, resolving it on first use. Concurrent
    /// first requests may each resolve it (sharing one xDS subscription);
    /// the first stack stored wins, so they all end up on one. Nothing
    /// waits on another host's resolution.
    async fn service_for(&self, authority: &Authority) -> Result<ClientService, RequestError> {
        if let Some(s) = self.shared.hosts.load().get(authority.as_str()) {
            return Ok(s.clone());
        }
        let target = Target::parse(&format!("xds:///{authority}")).map_err(RequestError::build)?;
        let stack = self
            .shared
            .settings
            .stack(&self.shared.bootstrap, &target, true)
            .await
            .map_err(RequestError::build)?;
        let fresh = stack.service();
        let hosts = self.shared.hosts.rcu(|hosts| {
            let mut hosts = HashMap::clone(hosts);
            hosts
                .entry(authority.as_str().into())
                .or_insert_with(|| fresh.clone());
            hosts
        });
        // `rcu` returns the map it replaced; the stored one has our entry
        // unless another resolver's was there first.
        Ok(hosts.get(authority.as_str()).cloned().unwrap_or(fresh))
    }
}

/// The request's authority: its URI's, else its `Host` header.
fn request_authority<B>(req: &Request<B>) -> Result<Authority, RequestError> {
    if let Some(a) = req.uri().authority() {
        return Ok(a.clone());
    }
    req.headers()
        .get(HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        .ok_or_else(|| RequestError {
            status: StatusCode::BAD_REQUEST,
            code: Code::InvalidArgument,
            message: "the request names no host (neither an absolute URI nor a Host header)".into(),
        })
}

/// Makes a relative URI absolute (`http://authority/...`): HTTP/2 sends
/// `:authority`, which per-request host matching reads.
fn absolute_uri<B>(req: &mut Request<B>, authority: &Authority) {
    if req.uri().authority().is_some() {
        return;
    }
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority.clone());
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(::http::uri::PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
}

/// Configures a [`Client`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    settings: Settings,
}

impl ClientBuilder {
    /// Uses `bootstrap` instead of the environment's.
    pub fn bootstrap(mut self, bootstrap: Bootstrap) -> Self {
        self.settings.bootstrap = Some(bootstrap);
        self
    }

    /// How long the first request to a host waits for its config
    /// ([`DEFAULT_CONFIG_TIMEOUT`](crate::channel::DEFAULT_CONFIG_TIMEOUT)).
    pub fn config_timeout(mut self, timeout: Duration) -> Self {
        self.settings.config_timeout = timeout;
        self
    }

    /// Connection, balancing and connector settings of the endpoints.
    pub fn discovery_options(mut self, options: DiscoveryOptions) -> Self {
        self.settings.discovery = options;
        self
    }

    /// Seeds every random choice (reproducible tests and demos).
    pub fn seed(mut self, seed: u64) -> Self {
        self.settings.seed = Some(seed);
        self
    }

    /// The client; fails only when no bootstrap is given and the
    /// environment has none (hosts resolve on first use).
    pub fn build(mut self) -> Result<Client, Error> {
        let bootstrap = self.settings.bootstrap()?;
        // Plain HTTP follows each cluster's protocol options.
        self.settings.discovery.connection.http_from_cluster = true;
        Ok(Client {
            shared: Arc::new(Shared {
                settings: self.settings,
                bootstrap,
                hosts: ArcSwap::from_pointee(HashMap::new()),
            }),
        })
    }
}

/// Why the mesh failed an HTTP request.
#[derive(Debug, Clone)]
pub struct RequestError {
    status: StatusCode,
    code: Code,
    message: String,
}

impl RequestError {
    fn from_status(s: Status) -> Self {
        RequestError {
            status: mesh_tower::error::http_status_for(s.code()),
            code: s.code(),
            message: s.message().to_owned(),
        }
    }

    fn build(e: Error) -> Self {
        RequestError::from_status(e.to_status())
    }

    /// The HTTP status the failure maps to (503, 429, 504, ...).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The gRPC code the mesh failed the request with.
    pub fn code(&self) -> Code {
        self.code
    }

    /// Why, naming the layer and resource (`circuit breaker max_requests=…`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A response with [`status`](Self::status), the message as a
    /// `text/plain` body, and the message in [`MESH_ERROR_HEADER`].
    pub fn into_response(self) -> Response<Body> {
        let mut resp = Response::new(Body::full(Bytes::from(self.message.clone())));
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&self.message) {
            headers.insert(MESH_ERROR_HEADER, v);
        }
        resp
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?}): {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for RequestError {}

pin_project! {
    /// A response body: the upstream's, or the text of a failure.
    #[derive(Debug)]
    pub struct Body {
        #[pin]
        kind: Kind,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind {
        Stack { #[pin] inner: StackBody },
        Full { data: Option<Bytes> },
    }
}

impl Body {
    fn stack(inner: StackBody) -> Self {
        Body {
            kind: Kind::Stack { inner },
        }
    }

    fn full(data: Bytes) -> Self {
        Body {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }
}

/// An error reading an upstream body (reset stream, deadline, ...).
#[derive(Debug)]
pub struct BodyError(BoxError);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project().kind.project() {
            KindProj::Stack { inner } => inner.poll_frame(cx).map_err(BodyError),
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Stack { inner } => inner.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Stack { inner } => inner.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[test]
    fn the_authority_comes_from_the_uri_then_the_host_header() {
        let req = Request::get("http://a.test:80/x").body(()).unwrap();
        assert_eq!(request_authority(&req).unwrap(), "a.test:80");
        let mut req = Request::get("/x")
            .header(HOST, "b.test:81")
            .body(())
            .unwrap();
        let a = request_authority(&req).unwrap();
        absolute_uri(&mut req, &a);
        assert_eq!(req.uri(), "http://b.test:81/x");
        let req = Request::get("/x").body(()).unwrap();
        assert_eq!(
            request_authority(&req).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn failures_become_responses_with_the_mapped_status() {
        let e = RequestError::from_status(Status::resource_exhausted("rate limited by route r"));
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[MESH_ERROR_HEADER], "rate limited by route r");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "rate limited by route r");
        let e = RequestError::from_status(Status::unavailable("no healthy upstream"));
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
