//! Call accounting for channelz: counters of calls started, succeeded and
//! failed with the time of the last start ([`CallCounters`]), a call's
//! claim on them that records its outcome exactly once ([`Call`]), and the
//! response body that finds the outcome ([`TrackedBody`]).
//!
//! A call succeeds when it ends with gRPC status OK: `grpc-status` in the
//! trailers, or in the headers of a Trailers-Only response. A response
//! without `grpc-status` (plain HTTP) succeeds when its HTTP status is 2xx
//! and its body ends. Anything else fails, including a body dropped before
//! its end (a cancelled call). Everything is a relaxed atomic: no lock and
//! no allocation per call.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::server::is_grpc;

/// Now, in nanoseconds since the Unix epoch.
pub(crate) fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Calls started, succeeded and failed, and when the last one started.
#[derive(Debug, Default)]
pub(crate) struct CallCounters {
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    /// Nanoseconds since the Unix epoch; 0 before the first call.
    last_started: AtomicI64,
}

/// A copy of [`CallCounters`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CallCounts {
    pub(crate) started: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    /// Nanoseconds since the Unix epoch, if any call started.
    pub(crate) last_started: Option<i64>,
}

impl CallCounters {
    #[inline]
    pub(crate) fn start(&self, now: i64) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.last_started.store(now, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn finish(&self, ok: bool) {
        let counter = if ok { &self.succeeded } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CallCounts {
        let last = self.last_started.load(Ordering::Relaxed);
        CallCounts {
            started: self.started.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            last_started: (last != 0).then_some(last),
        }
    }
}

/// Something that counts calls: a channel, or a server connection (which
/// also counts on its server).
pub(crate) trait Tracks: Send + Sync + 'static {
    /// A call started at `now` (nanoseconds since the Unix epoch).
    fn call_started(&self, now: i64);
    /// A call ended.
    fn call_finished(&self, ok: bool);
}

/// One call's claim on a [`Tracks`]: counted as started when made, and as
/// finished once — by [`finish`](Self::finish), or as failed when dropped
/// unfinished.
pub(crate) struct Call<T: Tracks> {
    target: Option<Arc<T>>,
    /// The outcome if the response ends without trailers: set from the
    /// response head (Trailers-Only status, or the HTTP status).
    at_end: bool,
}

impl<T: Tracks> Call<T> {
    /// Starts a call on `target`.
    #[inline]
    pub(crate) fn start(target: Arc<T>) -> Self {
        target.call_started(now_nanos());
        Call {
            target: Some(target),
            at_end: false,
        }
    }

    /// Records the outcome (only the first one counts).
    #[inline]
    pub(crate) fn finish(&mut self, ok: bool) {
        if let Some(t) = self.target.take() {
            t.call_finished(ok);
        }
    }

    /// Reads the response head: a Trailers-Only `grpc-status` settles the
    /// outcome for a body that ends without trailers; otherwise a gRPC
    /// response needs its trailers, and plain HTTP succeeds on 2xx.
    pub(crate) fn on_head(&mut self, status: http::StatusCode, headers: &HeaderMap) {
        self.at_end = match grpc_status(headers) {
            Some(ok) => ok,
            None => !is_grpc(headers) && status.is_success(),
        };
    }

    /// Reads a trailers frame.
    fn on_trailers(&mut self, trailers: &HeaderMap) {
        match grpc_status(trailers) {
            Some(ok) => self.finish(ok),
            None => self.at_end = false,
        }
    }

    /// The body ended (or was dropped after its end).
    fn on_end(&mut self) {
        let ok = self.at_end;
        self.finish(ok);
    }
}

impl<T: Tracks> Drop for Call<T> {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// Whether `grpc-status` says OK, if present.
fn grpc_status(headers: &HeaderMap) -> Option<bool> {
    headers.get("grpc-status").map(|v| v.as_bytes() == b"0")
}

pin_project! {
    /// A response body that records its call's outcome: from the trailers,
    /// at its end, on an error, or when dropped.
    pub(crate) struct TrackedBody<B: Body, T: Tracks> {
        #[pin]
        inner: B,
        call: Option<Call<T>>,
    }

    impl<B: Body, T: Tracks> PinnedDrop for TrackedBody<B, T> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // A body nobody polled to its end may still be complete
            // (Trailers-Only, or an empty body).
            if let Some(mut call) = this.call.take()
                && this.inner.is_end_stream()
            {
                call.on_end();
            }
        }
    }
}

impl<B: Body, T: Tracks> TrackedBody<B, T> {
    /// Wraps `inner`; `call` (if any) has read the response head.
    pub(crate) fn new(inner: B, call: Option<Call<T>>) -> Self {
        TrackedBody { inner, call }
    }
}

impl<B, T> Body for TrackedBody<B, T>
where
    B: Body<Data = Bytes>,
    T: Tracks,
{
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Some(call) = this.call {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        call.on_trailers(trailers);
                    }
                }
                Poll::Ready(Some(Err(_))) => call.finish(false),
                Poll::Ready(None) => call.on_end(),
                Poll::Pending => {}
            }
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

impl<B: Body + std::fmt::Debug, T: Tracks> std::fmt::Debug for TrackedBody<B, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty, Full, StreamBody};

    #[derive(Default)]
    struct Counter(CallCounters);

    impl Tracks for Counter {
        fn call_started(&self, now: i64) {
            self.0.start(now);
        }
        fn call_finished(&self, ok: bool) {
            self.0.finish(ok);
        }
    }

    fn grpc_head() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/grpc".parse().unwrap());
        h
    }

    fn trailers(status: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", status.parse().unwrap());
        h
    }

    fn body_with_trailers(
        t: HeaderMap,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"msg"))),
            Ok(Frame::trailers(t)),
        ];
        StreamBody::new(futures::stream::iter(frames))
    }

    fn counts(c: &Arc<Counter>) -> (u64, u64, u64) {
        let s = c.0.snapshot();
        (s.started, s.succeeded, s.failed)
    }

    #[tokio::test]
    async fn trailers_decide_grpc_calls() {
        let c = Arc::new(Counter::default());
        for (status, _) in [("0", true), ("14", false), ("0", true)] {
            let mut call = Call::start(c.clone());
            call.on_head(http::StatusCode::OK, &grpc_head());
            let body = TrackedBody::new(body_with_trailers(trailers(status)), Some(call));
            body.collect().await.unwrap();
        }
        assert_eq!(counts(&c), (3, 2, 1));
        assert!(c.0.snapshot().last_started.is_some());
    }

    #[tokio::test]
    async fn trailers_only_responses_count_even_unpolled() {
        let c = Arc::new(Counter::default());
        let mut call = Call::start(c.clone());
        let mut head = grpc_head();
        head.insert("grpc-status", "5".parse().unwrap());
        call.on_head(http::StatusCode::OK, &head);
        drop(TrackedBody::new(Empty::<Bytes>::new(), Some(call)));
        let mut call = Call::start(c.clone());
        let mut head = grpc_head();
        head.insert("grpc-status", "0".parse().unwrap());
        call.on_head(http::StatusCode::OK, &head);
        drop(TrackedBody::new(Empty::<Bytes>::new(), Some(call)));
        assert_eq!(counts(&c), (2, 1, 1));
    }

    #[tokio::test]
    async fn plain_http_succeeds_on_2xx_at_the_end() {
        let c = Arc::new(Counter::default());
        for (status, _) in [(200, true), (503, false)] {
            let mut call = Call::start(c.clone());
            call.on_head(
                http::StatusCode::from_u16(status).unwrap(),
                &HeaderMap::new(),
            );
            let body = TrackedBody::new(Full::new(Bytes::from_static(b"hi")), Some(call));
            body.collect().await.unwrap();
        }
        assert_eq!(counts(&c), (2, 1, 1));
    }

    #[tokio::test]
    async fn cancelled_and_headless_calls_fail() {
        let c = Arc::new(Counter::default());
        // Dropped before any response.
        drop(Call::start(c.clone()));
        // A gRPC body dropped before its trailers.
        let mut call = Call::start(c.clone());
        call.on_head(http::StatusCode::OK, &grpc_head());
        drop(TrackedBody::new(
            body_with_trailers(trailers("0")),
            Some(call),
        ));
        // A gRPC body that ends without trailers.
        let mut call = Call::start(c.clone());
        call.on_head(http::StatusCode::OK, &grpc_head());
        TrackedBody::new(Full::new(Bytes::from_static(b"x")), Some(call))
            .collect()
            .await
            .unwrap();
        assert_eq!(counts(&c), (3, 0, 3));
    }
}
