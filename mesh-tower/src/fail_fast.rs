//! A response future shared by layers that either call the inner service
//! or fail a request before calling it (route, rate limit).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::BoxError;

pin_project! {
    /// Resolves to the inner response, or to an error decided before the
    /// inner service was called.
    pub struct FailFast<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Failed { error: Option<BoxError> },
    }
}

impl<F> FailFast<F> {
    /// The inner call.
    pub(crate) fn inner(future: F) -> Self {
        FailFast {
            kind: Kind::Inner { future },
        }
    }

    /// A failure without a call.
    pub(crate) fn failed(error: BoxError) -> Self {
        FailFast {
            kind: Kind::Failed { error: Some(error) },
        }
    }
}

impl<F, T, E> Future for FailFast<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx).map_err(Into::into),
            KindProj::Failed { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
        }
    }
}
