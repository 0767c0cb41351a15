//! The fault layer's response future: a pass-through, a delay before the
//! forwarded call (or the abort), or an immediate abort.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::Service;

use super::FaultGuard;
use crate::BoxError;

pin_project! {
    /// Resolves to the inner response, possibly after an injected delay, or
    /// to the injected abort. Holds the active-fault slot while it runs.
    pub struct ResponseFuture<S, B>
    where
        S: Service<http::Request<B>>,
    {
        #[pin]
        kind: Kind<S, B>,
        guard: Option<FaultGuard>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, B>
    where
        S: Service<http::Request<B>>,
    {
        Inner { #[pin] future: S::Future },
        Delay {
            #[pin]
            sleep: Sleep,
            // The service made ready by `poll_ready`, and the request it
            // takes once the delay is over (unless aborting).
            service: Option<S>,
            request: Option<http::Request<B>>,
            abort: Option<BoxError>,
        },
        Failed { error: Option<BoxError> },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<http::Request<B>>,
{
    pub(super) fn inner(future: S::Future, guard: Option<FaultGuard>) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
            guard,
        }
    }

    pub(super) fn delay(
        sleep: Sleep,
        service: S,
        request: http::Request<B>,
        abort: Option<BoxError>,
        guard: FaultGuard,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Delay {
                sleep,
                service: Some(service),
                request: Some(request),
                abort,
            },
            guard: Some(guard),
        }
    }

    pub(super) fn failed(error: BoxError) -> Self {
        ResponseFuture {
            kind: Kind::Failed { error: Some(error) },
            guard: None,
        }
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.kind.as_mut().project() {
                KindProj::Inner { future } => {
                    let out = std::task::ready!(future.poll(cx));
                    this.guard.take();
                    return Poll::Ready(out.map_err(Into::into));
                }
                KindProj::Delay {
                    sleep,
                    service,
                    request,
                    abort,
                } => {
                    std::task::ready!(sleep.poll(cx));
                    if let Some(error) = abort.take() {
                        this.guard.take();
                        return Poll::Ready(Err(error));
                    }
                    let mut service = service.take().expect("polled after completion");
                    let request = request.take().expect("polled after completion");
                    let future = service.call(request);
                    this.kind.set(Kind::Inner { future });
                }
                KindProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().expect("polled after completion")));
                }
            }
        }
    }
}
