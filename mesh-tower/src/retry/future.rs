//! The retry response future: runs attempts until one is returned.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use mesh_core::resource::route::RetryPolicy;
use pin_project_lite::pin_project;
use rand::rngs::SmallRng;
use tokio::time::Sleep;
use tower::Service;

use super::replay::Replay;
use super::{
    PREVIOUS_RPC_ATTEMPTS, PerTryTimeout, Verdict, backoff, classify_error, response_verdict,
    verdict,
};
use crate::BoxError;
use crate::breaker::{Breaker, Guard};
use crate::context::{RouteDecision, RoutePolicy};
use crate::timeout::{Deadline, GRPC_TIMEOUT, encode_grpc_timeout};

/// Where an RPC's retry policy lives (no copy of it per RPC).
#[derive(Debug)]
pub(super) enum PolicyRef {
    Fixed(Arc<RetryPolicy>),
    /// A route whose `retry` is `Some`.
    Route(Arc<RoutePolicy>),
}

impl PolicyRef {
    fn get(&self) -> Option<&RetryPolicy> {
        match self {
            PolicyRef::Fixed(p) => Some(p),
            PolicyRef::Route(r) => r.retry.as_ref(),
        }
    }
}

/// The request minus its body. The first attempt takes the caller's own
/// head; retries rebuild one from a copy of the line and headers, with the
/// extensions the layers below read (the [`RouteDecision`] and the
/// [`Deadline`]): copying the whole extension map would cost allocations on
/// every RPC for the rare retry.
#[derive(Debug)]
pub(super) struct RequestHead {
    first: Option<http::request::Parts>,
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    decision: Option<RouteDecision>,
    deadline: Option<Deadline>,
}

impl RequestHead {
    pub(super) fn new(parts: http::request::Parts) -> Self {
        RequestHead {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            decision: parts.extensions.get::<RouteDecision>().cloned(),
            deadline: parts.extensions.get::<Deadline>().copied(),
            first: Some(parts),
        }
    }

    fn request(
        &mut self,
        body: tonic::body::Body,
        previous: u32,
        timeout: Option<Duration>,
    ) -> http::Request<tonic::body::Body> {
        let mut req = match self.first.take() {
            Some(parts) => http::Request::from_parts(parts, body),
            None => {
                let mut req = http::Request::new(body);
                *req.method_mut() = self.method.clone();
                *req.uri_mut() = self.uri.clone();
                *req.version_mut() = self.version;
                *req.headers_mut() = self.headers.clone();
                if let Some(d) = &self.decision {
                    req.extensions_mut().insert(d.clone());
                }
                if let Some(d) = self.deadline {
                    req.extensions_mut().insert(d);
                }
                req
            }
        };
        if previous > 0 {
            req.headers_mut()
                .insert(PREVIOUS_RPC_ATTEMPTS, http::HeaderValue::from(previous));
        }
        if let Some(t) = timeout {
            req.headers_mut()
                .insert(GRPC_TIMEOUT, encode_grpc_timeout(t));
        }
        req
    }
}

/// An RPC's attempt accounting.
#[derive(Debug)]
pub(super) struct Attempts {
    policy: Option<PolicyRef>,
    breaker: Option<Arc<Breaker>>,
    max: u32,
    /// Attempts counted so far (transparent retries excluded).
    started: u32,
    transparent_left: bool,
    deadline: Option<Deadline>,
    rng: SmallRng,
    /// The breaker's retry slot, held while a retry backs off and runs.
    retry_slot: Option<Guard>,
}

impl Attempts {
    pub(super) fn new(
        policy: Option<PolicyRef>,
        breaker: Option<Arc<Breaker>>,
        cap: u32,
        deadline: Option<Deadline>,
        rng: SmallRng,
    ) -> Self {
        let max = super::max_attempts(policy.as_ref().and_then(PolicyRef::get), cap);
        Attempts {
            policy,
            breaker,
            max,
            started: 0,
            transparent_left: true,
            deadline,
            rng,
            retry_slot: None,
        }
    }

    fn policy(&self) -> Option<&RetryPolicy> {
        self.policy.as_ref().and_then(PolicyRef::get)
    }

    fn per_try(&self) -> Option<Duration> {
        self.policy().and_then(|p| p.per_try_timeout)
    }

    /// The `grpc-timeout` for the next attempt: the RPC's time left, or
    /// the per-try timeout when shorter.
    fn attempt_timeout(&self) -> Option<Duration> {
        let left = self
            .deadline
            .map(|d| d.remaining(tokio::time::Instant::now()));
        match (left, self.per_try()) {
            (Some(l), Some(p)) => Some(l.min(p)),
            (l, p) => l.or(p),
        }
    }
}

pin_project! {
    /// Runs an RPC's attempts: the first at once, retries after a backoff,
    /// transparent retries at once, until one result is returned.
    #[derive(Debug)]
    pub struct ResponseFuture<S, F> {
        #[pin]
        state: State<F>,
        service: S,
        head: RequestHead,
        // The caller's body until it is read, just before the first attempt.
        body: Option<tonic::body::Body>,
        replay: Option<Replay>,
        max_buffered_bytes: usize,
        attempts: Attempts,
    }
}

pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State<F> {
        Calling {
            #[pin]
            fut: F,
            #[pin]
            per_try: Option<Sleep>,
        },
        Backoff {
            #[pin]
            sleep: Sleep,
        },
        Ready,
    }
}

impl<S, F> ResponseFuture<S, F> {
    /// An RPC whose first attempt goes to `service` (already ready) once
    /// the future is polled and the request body has been read.
    pub(super) fn start(
        service: S,
        head: RequestHead,
        body: tonic::body::Body,
        max_buffered_bytes: usize,
        attempts: Attempts,
    ) -> Self {
        ResponseFuture {
            state: State::Ready,
            service,
            head,
            body: Some(body),
            replay: None,
            max_buffered_bytes,
            attempts,
        }
    }
}

fn call_attempt<S, B>(
    service: &mut S,
    head: &mut RequestHead,
    replay: &Replay,
    attempts: &mut Attempts,
) -> S::Future
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>>,
{
    let body = tonic::body::Body::new(replay.body());
    let previous = attempts.started;
    attempts.started += 1;
    let req = head.request(body, previous, attempts.attempt_timeout());
    service.call(req)
}

enum Next {
    Retry(Duration),
    Transparent,
}

impl<S, F, B> Future for ResponseFuture<S, F>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>, Future = F>,
    F: Future<Output = Result<http::Response<B>, S::Error>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<http::Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Calling { fut, per_try } => {
                    let out = match fut.poll(cx) {
                        Poll::Ready(out) => out.map_err(Into::into),
                        Poll::Pending => {
                            let fired = per_try.as_pin_mut().is_some_and(|s| s.poll(cx).is_ready());
                            if !fired {
                                return Poll::Pending;
                            }
                            let limit = this.attempts.per_try().unwrap_or_default();
                            Err(Box::new(PerTryTimeout::new(limit)) as BoxError)
                        }
                    };
                    let attempts = &mut *this.attempts;
                    attempts.retry_slot = None;
                    let policy = attempts.policy();
                    let v = match &out {
                        Ok(res) => response_verdict(res.status(), res.headers(), policy),
                        Err(e) => verdict(
                            &classify_error(e.as_ref()),
                            policy,
                            attempts.transparent_left,
                        ),
                    };
                    match v {
                        Verdict::Return => return Poll::Ready(out),
                        _ if !this.replay.as_ref().is_some_and(Replay::can_replay) => {
                            return Poll::Ready(out);
                        }
                        Verdict::Transparent => {
                            attempts.transparent_left = false;
                            // Not counted: the server never saw it.
                            attempts.started -= 1;
                            Next::Transparent
                        }
                        Verdict::Retry => {
                            if attempts.started >= attempts.max {
                                return Poll::Ready(out);
                            }
                            let back_off = policy.map(|p| p.back_off).unwrap_or_default();
                            if let Some(b) = &attempts.breaker {
                                match b.try_retry() {
                                    Ok(slot) => attempts.retry_slot = Some(slot),
                                    // Over max_retries or the budget: the
                                    // last result stands.
                                    Err(_) => return Poll::Ready(out),
                                }
                            }
                            let retry = attempts.started;
                            Next::Retry(backoff(&back_off, retry, &mut attempts.rng))
                        }
                    }
                }
                StateProj::Backoff { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Ready);
                    continue;
                }
                StateProj::Ready => {
                    match this.body.take() {
                        // The first attempt's service came ready from the
                        // caller.
                        Some(body) => match Replay::read(body, *this.max_buffered_bytes, cx) {
                            Ok(replay) => *this.replay = Some(replay),
                            Err(status) => return Poll::Ready(Err(status.into())),
                        },
                        None => {
                            if let Err(e) = ready!(this.service.poll_ready(cx)) {
                                return Poll::Ready(Err(e.into()));
                            }
                        }
                    }
                    let replay = this.replay.as_ref().expect("read before the first attempt");
                    let fut = call_attempt(this.service, this.head, replay, this.attempts);
                    let per_try = this.attempts.per_try().map(tokio::time::sleep);
                    this.state.set(State::Calling { fut, per_try });
                    continue;
                }
            };
            match next {
                Next::Retry(delay) => this.state.set(State::Backoff {
                    sleep: tokio::time::sleep(delay),
                }),
                Next::Transparent => this.state.set(State::Ready),
            }
        }
    }
}
