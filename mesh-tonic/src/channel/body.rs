//! The response body of a [`Channel`](super::Channel).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Status;

use mesh_tower::stack::ResponseBody as StackBody;

use crate::admin::channelz::{Call, ChannelEntry, TrackedBody};

pin_project! {
    /// The endpoint's response body as mesh's stack delivers it (outlier
    /// accounting, breaker slot, deadline), with its errors as
    /// `tonic::Status`: a concrete error type, so futures holding it stay
    /// `Send` for any lifetime (`tokio::spawn` works). It records the
    /// RPC's outcome for channelz when it ends or is dropped.
    #[derive(Debug)]
    pub struct ResponseBody {
        #[pin]
        inner: TrackedBody<StackBody, ChannelEntry>,
    }
}

impl ResponseBody {
    pub(crate) fn new(inner: StackBody, call: Option<Call<ChannelEntry>>) -> Self {
        ResponseBody {
            inner: TrackedBody::new(inner, call),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.project()
            .inner
            .poll_frame(cx)
            .map(|f| f.map(|r| r.map_err(Status::from_error)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
