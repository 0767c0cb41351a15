//! A response body that ends with DEADLINE_EXCEEDED at the RPC's deadline.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::Deadline;
use crate::BoxError;
use crate::context::RoutePolicy;

pin_project! {
    /// The inner body, cut off with a DEADLINE_EXCEEDED error when the RPC's
    /// deadline passes before it ends.
    #[derive(Debug)]
    pub struct DeadlineBody<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: Option<Sleep>,
        deadline: Option<Deadline>,
        route: Option<Arc<RoutePolicy>>,
        done: bool,
    }
}

impl<B> DeadlineBody<B> {
    /// `inner` under `deadline` (`None`: passes through).
    pub fn new(inner: B, deadline: Option<Deadline>, route: Option<Arc<RoutePolicy>>) -> Self {
        DeadlineBody {
            inner,
            sleep: deadline.map(|d| tokio::time::sleep_until(d.at)),
            deadline,
            route,
            done: false,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            if frame.is_none() {
                *this.done = true;
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if let Some(sleep) = this.sleep.as_pin_mut()
            && sleep.poll(cx).is_ready()
        {
            *this.done = true;
            let d = this.deadline.expect("a timer has a deadline");
            let route = this.route.as_deref().map(|r| r.name.as_str());
            return Poll::Ready(Some(Err(Box::new(d.exceeded(route)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
