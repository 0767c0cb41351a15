//! Request bodies kept so a retry can send them again.
//!
//! Before the first attempt the caller's body is read for as long as its
//! frames are ready at once. A body that ends there (every unary RPC: tonic
//! encodes the one message straight away) is [`whole`]: each attempt gets
//! its own cursor over the same `Bytes`, with no lock and no copy. A body
//! that is still streaming (client streaming) goes to [`stream`], where
//! attempts share a buffer filled as the newest attempt reads. Either way,
//! past the byte cap the RPC streams on but can no longer be retried.

mod stream;
mod whole;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

use self::stream::{StreamBody, StreamReplay};
use self::whole::{Chunks, Whole, WholeBody};

/// Hands out one body per attempt over the same request body.
#[derive(Debug)]
pub(super) enum Replay {
    /// Read whole before the first attempt.
    Whole(Whole),
    /// Still streaming; buffered as it goes.
    Streaming(StreamReplay),
}

impl Replay {
    /// Reads `source` while its frames are ready (up to `cap` bytes) and
    /// returns how to replay it. Never pending: a body that is not ready
    /// becomes [`Replay::Streaming`]. A body that fails fails the RPC.
    pub(super) fn read(
        mut source: tonic::body::Body,
        cap: usize,
        cx: &mut Context<'_>,
    ) -> Result<Replay, Status> {
        let mut first: Option<Bytes> = None;
        let mut rest: Vec<Bytes> = Vec::new();
        let mut buffered = 0usize;
        let streaming = |source, first: Option<Bytes>, rest: Vec<Bytes>, buffered, lost| {
            let prefix = first.into_iter().chain(rest).collect();
            Replay::Streaming(StreamReplay::new(source, prefix, buffered, cap, lost))
        };
        loop {
            if source.is_end_stream() {
                return Ok(Replay::Whole(Whole {
                    chunks: Chunks::collect(first, rest),
                    trailers: None,
                }));
            }
            let frame = match Pin::new(&mut source).poll_frame(cx) {
                Poll::Pending => return Ok(streaming(source, first, rest, buffered, false)),
                Poll::Ready(None) => {
                    return Ok(Replay::Whole(Whole {
                        chunks: Chunks::collect(first, rest),
                        trailers: None,
                    }));
                }
                Poll::Ready(Some(Err(status))) => return Err(status),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) => {
                    buffered += data.len();
                    match &first {
                        None => first = Some(data),
                        Some(_) => rest.push(data),
                    }
                    if buffered > cap {
                        // Sent by the first attempt, never resent.
                        return Ok(streaming(source, first, rest, buffered, true));
                    }
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        return Ok(Replay::Whole(Whole {
                            chunks: Chunks::collect(first, rest),
                            trailers: Some(trailers),
                        }));
                    }
                    // No other frame kinds exist today.
                    Err(_) => return Err(Status::internal("unknown request body frame")),
                },
            }
        }
    }

    /// The next attempt's body; with a streaming body, earlier attempts'
    /// bodies stop reading.
    pub(super) fn body(&self) -> ReplayBody {
        ReplayBody {
            inner: match self {
                Replay::Whole(w) => Inner::Whole(w.body()),
                Replay::Streaming(s) => Inner::Stream(s.body()),
            },
        }
    }

    /// Whether every byte sent so far is still held, so a retry can resend
    /// the whole body.
    pub(super) fn can_replay(&self) -> bool {
        match self {
            Replay::Whole(_) => true,
            Replay::Streaming(s) => s.can_replay(),
        }
    }
}

/// One attempt's view of a replayable request body.
#[derive(Debug)]
pub struct ReplayBody {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Whole(WholeBody),
    Stream(StreamBody),
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match &mut self.inner {
            Inner::Whole(b) => Pin::new(b).poll_frame(cx),
            Inner::Stream(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Whole(b) => b.is_end_stream(),
            Inner::Stream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Whole(b) => b.size_hint(),
            Inner::Stream(b) => b.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::channel::mpsc;
    use futures::task::noop_waker_ref;
    use http_body_util::{BodyExt, Full, StreamBody};

    use super::*;

    type FrameResult = Result<Frame<Bytes>, Status>;

    fn read(body: tonic::body::Body, cap: usize) -> Result<Replay, Status> {
        Replay::read(body, cap, &mut Context::from_waker(noop_waker_ref()))
    }

    fn frames(items: Vec<FrameResult>) -> tonic::body::Body {
        tonic::body::Body::new(StreamBody::new(futures::stream::iter(items)))
    }

    fn data(s: &'static str) -> FrameResult {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    async fn collect(replay: &Replay) -> (Bytes, Option<http::HeaderMap>) {
        let c = replay.body().collect().await.unwrap();
        let trailers = c.trailers().cloned();
        (c.to_bytes(), trailers)
    }

    #[tokio::test]
    async fn a_unary_body_is_read_whole_into_one_chunk() {
        let body = tonic::body::Body::new(Full::new(Bytes::from_static(b"hello")));
        let replay = read(body, 64).unwrap();
        assert!(matches!(&replay, Replay::Whole(w) if matches!(w.chunks, Chunks::One(_))));
        assert!(replay.can_replay());
        for _ in 0..3 {
            assert_eq!(collect(&replay).await.0, "hello");
        }
    }

    #[tokio::test]
    async fn ready_frames_and_trailers_are_replayed_to_every_attempt() {
        let mut t = http::HeaderMap::new();
        t.insert("x-end", "1".parse().unwrap());
        let body = frames(vec![data("a"), data("b"), Ok(Frame::trailers(t))]);
        let replay = read(body, 64).unwrap();
        assert!(matches!(replay, Replay::Whole(_)));
        for _ in 0..2 {
            let (bytes, trailers) = collect(&replay).await;
            assert_eq!(bytes, "ab");
            assert_eq!(trailers.unwrap()["x-end"], "1");
        }
    }

    #[tokio::test]
    async fn a_body_not_ready_streams_and_is_buffered_as_it_goes() {
        let (tx, rx) = mpsc::unbounded::<FrameResult>();
        tx.unbounded_send(data("first ")).unwrap();
        let replay = read(tonic::body::Body::new(StreamBody::new(rx)), 64).unwrap();
        assert!(matches!(replay, Replay::Streaming(_)));
        let first = replay.body();
        let sender = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.unbounded_send(data("second")).unwrap();
        });
        assert_eq!(first.collect().await.unwrap().to_bytes(), "first second");
        sender.await.unwrap();
        assert!(replay.can_replay());
        assert_eq!(collect(&replay).await.0, "first second");
    }

    #[tokio::test]
    async fn over_the_cap_the_first_attempt_gets_everything_and_no_retry_can() {
        let body = frames(vec![data("0123"), data("4567"), data("89")]);
        let replay = read(body, 5).unwrap();
        assert!(!replay.can_replay());
        assert_eq!(collect(&replay).await.0, "0123456789");
    }

    #[tokio::test]
    async fn a_failing_body_fails_the_rpc() {
        let body = frames(vec![data("a"), Err(Status::data_loss("gone"))]);
        let err = read(body, 64).unwrap_err();
        assert_eq!(err.code(), tonic::Code::DataLoss);
    }

    #[tokio::test]
    async fn an_empty_body_is_whole() {
        let replay = read(tonic::body::Body::empty(), 64).unwrap();
        assert!(matches!(&replay, Replay::Whole(w) if matches!(w.chunks, Chunks::None)));
        assert!(replay.body().is_end_stream());
    }
}
