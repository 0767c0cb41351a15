//! The bottom of the per-attempt stack: a tower `Service` that sends the
//! request to the endpoint the balancer picked.
//!
//! The balancer puts its pick in the request's extensions as a
//! [`PickedEndpoint`]; layers between the balancer and this service (the
//! outlier layer) read the same extension.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::Incoming;

use super::ResponseFuture;
use crate::BoxError;
use crate::cluster::EndpointHandle;

/// The endpoint chosen for this attempt (request extension).
#[derive(Debug, Clone)]
pub struct PickedEndpoint(pub Arc<EndpointHandle>);

/// Sends each request on its [`PickedEndpoint`]'s connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct EndpointService;

impl tower::Service<Request<tonic::body::Body>> for EndpointService {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> ResponseFuture {
        match req.extensions().get::<PickedEndpoint>() {
            Some(PickedEndpoint(ep)) => {
                let ep = Arc::clone(ep);
                ep.connection.call(req)
            }
            None => ResponseFuture::failed(crate::error::unavailable(
                "no endpoint picked for the request (the balance layer must run first)",
            )),
        }
    }
}
