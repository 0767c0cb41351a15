//! A response body that holds a breaker slot until the stream ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::Guard;

pin_project! {
    /// The inner body, plus the `max_requests` slot of its request, released
    /// at the end of the stream (last frame, error) or when dropped.
    #[derive(Debug)]
    pub struct GuardedBody<B> {
        #[pin]
        inner: B,
        guard: Option<Guard>,
    }
}

impl<B> GuardedBody<B> {
    /// `inner`, holding `guard` until it ends.
    pub fn new(inner: B, guard: Option<Guard>) -> Self {
        GuardedBody { inner, guard }
    }

    /// The body inside.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(None | Some(Err(_))) => *this.guard = None,
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => *this.guard = None,
            _ => {}
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
