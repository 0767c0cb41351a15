//! The timeout's response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::{Deadline, DeadlineBody};
use crate::BoxError;
use crate::context::RoutePolicy;

pin_project! {
    /// The inner response future raced against the RPC's deadline; the
    /// response body carries the deadline on.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
        deadline: Option<Deadline>,
        route: Option<Arc<RoutePolicy>>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(
        inner: F,
        deadline: Option<Deadline>,
        route: Option<Arc<RoutePolicy>>,
    ) -> Self {
        ResponseFuture {
            inner,
            sleep: deadline.map(|d| tokio::time::sleep_until(d.at)),
            deadline,
            route,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<http::Response<DeadlineBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(res) = this.inner.poll(cx) {
            let res = res.map_err(Into::into)?;
            let deadline = *this.deadline;
            let route = this.route.take();
            return Poll::Ready(Ok(res.map(|b| DeadlineBody::new(b, deadline, route))));
        }
        if let Some(sleep) = this.sleep.as_pin_mut()
            && sleep.poll(cx).is_ready()
        {
            let d = this.deadline.expect("a timer has a deadline");
            let route = this.route.as_deref().map(|r| r.name.as_str());
            return Poll::Ready(Err(Box::new(d.exceeded(route))));
        }
        Poll::Pending
    }
}
