//! The outlier observer service, and what counts as success or failure.

use std::error::Error;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Code;
use tower::Service;

use super::{EndpointOutlier, ObservedBody, ResponseFuture};
use crate::BoxError;
use crate::cluster::EndpointHandle;
use crate::endpoint::PickedEndpoint;
use crate::retry::classify_error;

/// An attempt's result for outlier detection: `(success, gateway_error)`.
pub type Outcome = (bool, bool);

/// A gRPC status's outcome: OK succeeds, anything else fails (A50);
/// UNAVAILABLE and DEADLINE_EXCEEDED (Envoy's 503 and 504) are gateway
/// errors.
pub fn status_outcome(code: Code) -> Outcome {
    match code {
        Code::Ok => (true, false),
        Code::Unavailable | Code::DeadlineExceeded => (false, true),
        _ => (false, false),
    }
}

/// The outcome known from response headers: a Trailers-Only gRPC reply or
/// a plain HTTP response (only 5xx fails, as in Envoy). `None` for a gRPC
/// response whose status comes in the trailers.
pub fn response_outcome(status: http::StatusCode, headers: &http::HeaderMap) -> Option<Outcome> {
    if let Some(code) = headers.get("grpc-status") {
        return Some(status_outcome(parse_code(code)));
    }
    let grpc = headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|c| c.as_bytes().starts_with(b"application/grpc"));
    if grpc && status.is_success() {
        return None;
    }
    let code = status.as_u16();
    Some((!status.is_server_error(), matches!(code, 502..=504)))
}

/// An attempt error's outcome: a gateway failure, unless the server never
/// saw the stream (REFUSED_STREAM, GOAWAY: `None`, not its fault).
pub fn error_outcome(err: &(dyn Error + 'static)) -> Option<Outcome> {
    let class = classify_error(err);
    if class.unprocessed {
        return None;
    }
    let (_, gateway) = status_outcome(class.code);
    Some((false, gateway || class.reset || class.connect_failure))
}

pub(super) fn parse_code(v: &http::HeaderValue) -> Code {
    v.to_str()
        .ok()
        .and_then(|c| c.trim().parse::<i32>().ok())
        .map_or(Code::Unknown, Code::from_i32)
}

/// What the outlier layer records on: something holding an
/// [`EndpointOutlier`], possibly found in a request's extensions.
pub trait OutlierTarget: AsRef<EndpointOutlier> {
    /// The target a request was sent to, from its extensions.
    fn picked(_extensions: &http::Extensions) -> Option<Arc<Self>> {
        None
    }
}

impl OutlierTarget for EndpointOutlier {}

impl OutlierTarget for EndpointHandle {
    fn picked(extensions: &http::Extensions) -> Option<Arc<Self>> {
        extensions.get::<PickedEndpoint>().map(|p| p.0.clone())
    }
}

/// Records the result of each attempt on its endpoint's outlier state.
#[derive(Debug)]
pub struct OutlierService<S, E> {
    inner: S,
    endpoint: Option<Arc<E>>,
}

impl<S: Clone, E> Clone for OutlierService<S, E> {
    fn clone(&self) -> Self {
        OutlierService {
            inner: self.inner.clone(),
            endpoint: self.endpoint.clone(),
        }
    }
}

impl<S, E> OutlierService<S, E> {
    /// Observes `inner`'s attempts for `endpoint`, or else for the one
    /// each request names ([`OutlierTarget::picked`]).
    pub fn new(inner: S, endpoint: Option<Arc<E>>) -> Self {
        OutlierService { inner, endpoint }
    }
}

impl<S, E, ReqB, ResB> Service<http::Request<ReqB>> for OutlierService<S, E>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Error: Into<BoxError>,
    E: OutlierTarget,
{
    type Response = http::Response<ObservedBody<ResB, E>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        let endpoint = match &self.endpoint {
            Some(e) => Some(e.clone()),
            None => E::picked(req.extensions()),
        };
        ResponseFuture::new(self.inner.call(req), endpoint)
    }
}
