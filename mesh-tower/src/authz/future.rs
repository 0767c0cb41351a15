//! The response future of [`RbacService`](super::RbacService).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;

pin_project! {
    /// The inner service's response, or the denial.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Denied { response: Option<Response<Full<Bytes>>> },
        Inner { #[pin] fut: F },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn denied(response: Response<Full<Bytes>>) -> Self {
        ResponseFuture {
            state: State::Denied {
                response: Some(response),
            },
        }
    }

    pub(super) fn inner(fut: F) -> Self {
        ResponseFuture {
            state: State::Inner { fut },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Either<B, Full<Bytes>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Denied { response } => {
                let r = response.take().expect("polled after completion");
                Poll::Ready(Ok(r.map(Either::Right)))
            }
            StateProj::Inner { fut } => fut.poll(cx).map(|r| r.map(|resp| resp.map(Either::Left))),
        }
    }
}
