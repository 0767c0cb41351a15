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
use crate::admin::channelz::{Call, ChannelEntry};

pin_project! {
    /// Resolves to the response, its body wrapped in [`ResponseBody`], or
    /// the `tonic::Status` the stack failed the RPC with.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // The RPC's count on the channel (channelz), handed to the body.
        call: Option<Call<ChannelEntry>>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, call: Call<ChannelEntry>) -> Self {
        ResponseFuture {
            inner,
            call: Some(call),
        }
    }
}

impl<F: std::fmt::Debug> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<StackBody>, BoxError>>,
{
    type Output = Result<Response<ResponseBody>, Status>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.inner.poll(cx).map(|r| match r {
            Ok(resp) => {
                let mut call = this.call.take();
                if let Some(call) = &mut call {
                    call.on_head(resp.status(), resp.headers());
                }
                Ok(resp.map(|body| ResponseBody::new(body, call)))
            }
            // Dropping the call counts it as failed.
            Err(e) => Err(Status::from_error(e)),
        })
    }
}
