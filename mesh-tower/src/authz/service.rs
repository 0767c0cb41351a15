//! [`RbacService`]: the service that checks each request before the inner one.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use mesh_core::resource::filter::RbacConfig;
use tonic::transport::server::TcpConnectInfo;
use tower::Service;

use super::DENIED_MESSAGE;
use super::eval::{ConnectionFacts, Inbound, RbacFilter, evaluate};
use super::future::ResponseFuture;
use crate::tls::PeerIdentity;

/// Checks every request against its RBAC filters; a denied request never
/// reaches the inner service. Built by [`super::RbacLayer`].
#[derive(Debug, Clone)]
pub struct RbacService<S> {
    inner: S,
    filters: Arc<[(String, RbacConfig)]>,
}

impl<S> RbacService<S> {
    pub(super) fn new(inner: S, filters: Arc<[(String, RbacConfig)]>) -> Self {
        RbacService { inner, filters }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for RbacService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<Either<ResB, Full<Bytes>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let peer = req.extensions().get::<PeerIdentity>();
        let fallback;
        let connection = match req.extensions().get::<ConnectionFacts>() {
            Some(c) => c,
            None => {
                fallback = facts_from_tonic(req.extensions().get::<TcpConnectInfo>(), peer);
                &fallback
            }
        };
        let inbound = Inbound::new(req.method(), req.uri(), req.headers(), connection, peer);
        let filters = self
            .filters
            .iter()
            .map(|(name, config)| RbacFilter { name, config });
        if let Err(denial) = evaluate(filters, &inbound) {
            tracing::info!(
                path = req.uri().path(),
                peer = %connection.peer_addr,
                principal = peer.map(PeerIdentity::principal),
                %denial,
                "RBAC denied the request"
            );
            return ResponseFuture::denied(denied_response(req.headers()));
        }
        ResponseFuture::inner(self.inner.call(req))
    }
}

/// Connection facts when the server inserted none: tonic's addresses (or
/// unspecified ones), TLS iff a peer certificate was verified.
fn facts_from_tonic(info: Option<&TcpConnectInfo>, peer: Option<&PeerIdentity>) -> ConnectionFacts {
    let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    ConnectionFacts {
        local_addr: info.and_then(|i| i.local_addr).unwrap_or(unspecified),
        peer_addr: info.and_then(|i| i.remote_addr).unwrap_or(unspecified),
        tls: peer.is_some(),
        sni: None,
    }
}

/// PERMISSION_DENIED with [`DENIED_MESSAGE`]: Trailers-Only for a gRPC
/// request, HTTP 403 otherwise.
pub(crate) fn denied_response(headers: &HeaderMap) -> Response<Full<Bytes>> {
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        let mut r = Response::new(Full::new(Bytes::new()));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert(
            "grpc-status",
            HeaderValue::from(tonic::Code::PermissionDenied as i32),
        );
        h.insert("grpc-message", HeaderValue::from_static(DENIED_MESSAGE));
        return r;
    }
    let mut r = Response::new(Full::new(Bytes::from_static(b"RBAC: access denied\n")));
    *r.status_mut() = StatusCode::FORBIDDEN;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
