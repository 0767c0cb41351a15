//! The response future of a [`Channel`](super::Channel).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use mesh_tower::BoxError;
use mesh_tower::stack::ResponseBody as StackBody;
use pin_project_lite::pin_project;
use tonic::Status;

use super::body::ResponseBody;

pin_project! {
    /// Resolves to the response, its body wrapped in [`ResponseBody`], or
    /// the `tonic::Status` the stack failed the RPC with.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F) -> Self {
        ResponseFuture { inner }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<StackBody>, BoxError>>,
{
    type Output = Result<Response<ResponseBody>, Status>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map(|r| match r {
            Ok(resp) => Ok(resp.map(ResponseBody::new)),
            Err(e) => Err(Status::from_error(e)),
        })
    }
}
