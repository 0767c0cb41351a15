//! The breaker's response future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::{Guard, GuardedBody, Overflow};
use crate::BoxError;

pin_project! {
    /// Resolves to the inner response with its body holding the request's
    /// breaker slot, or to [`Overflow`] at once.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State<F> {
        Overflow { error: Option<Overflow> },
        Called { #[pin] fut: F, guard: Option<Guard> },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn overflow(error: Overflow) -> Self {
        ResponseFuture {
            state: State::Overflow { error: Some(error) },
        }
    }

    pub(super) fn called(fut: F, guard: Option<Guard>) -> Self {
        ResponseFuture {
            state: State::Called { fut, guard },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<http::Response<GuardedBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Overflow { error } => {
                let error = error.take().expect("polled after completion");
                Poll::Ready(Err(Box::new(error)))
            }
            StateProj::Called { fut, guard } => {
                let res = std::task::ready!(fut.poll(cx)).map_err(Into::into)?;
                // An error above releases the slot with the future.
                Poll::Ready(Ok(res.map(|b| GuardedBody::new(b, guard.take()))))
            }
        }
    }
}
