//! A gRPC response body that records the RPC's status at its trailers.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Code;

use super::EndpointOutlier;
use super::service::{parse_code, status_outcome};

pin_project! {
    /// The inner body; when it carries a gRPC stream, the endpoint records
    /// the status from its trailers (a stream ending without them counts as
    /// a failure, an error as a gateway failure; a body dropped early, as
    /// on cancellation, records nothing).
    #[derive(Debug)]
    pub struct ObservedBody<B, E> {
        #[pin]
        inner: B,
        endpoint: Option<Arc<E>>,
    }
}

impl<B, E> ObservedBody<B, E> {
    pub(super) fn new(inner: B, endpoint: Option<Arc<E>>) -> Self {
        ObservedBody { inner, endpoint }
    }
}

impl<B, E> Body for ObservedBody<B, E>
where
    B: Body,
    E: AsRef<EndpointOutlier>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if this.endpoint.is_some() {
            let outcome = match &polled {
                Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(|t| {
                    status_outcome(t.get("grpc-status").map_or(Code::Unknown, parse_code))
                }),
                Poll::Ready(Some(Err(_))) => Some((false, true)),
                Poll::Ready(None) => Some(status_outcome(Code::Unknown)),
                Poll::Pending => None,
            };
            if let Some((ok, gw)) = outcome
                && let Some(e) = this.endpoint.take()
            {
                (*e).as_ref().record(ok, gw);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
