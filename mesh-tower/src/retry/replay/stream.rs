//! Request bodies still streaming when the RPC starts (client streaming),
//! buffered as they stream so a retry can send them again.
//!
//! Every attempt gets a [`StreamBody`] over one shared state: it first
//! replays what earlier attempts sent, then pulls the rest from the
//! caller's body, keeping a copy (`Bytes` clones, no data copies) up to the
//! byte cap. Past the cap the buffer is dropped and the RPC can no longer be
//! retried, but the stream goes on. Only the newest attempt's body may
//! read; an older one fails, so a stale stream cannot steal data. The state
//! sits behind a mutex that only the newest attempt's body takes (never
//! contended); unary RPCs never come here (see [`super`]).

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use tonic::Status;

#[derive(Debug)]
struct Shared {
    source: Option<tonic::body::Body>,
    chunks: Vec<Bytes>,
    buffered: usize,
    cap: usize,
    trailers: Option<HeaderMap>,
    /// The caller's body ended (or failed).
    ended: bool,
    /// The copy is incomplete (over the cap, or the body failed).
    lost: bool,
    /// The attempt allowed to read.
    current: u32,
}

/// Hands out one body per attempt over the same buffered request body.
#[derive(Debug, Clone)]
pub(in crate::retry) struct StreamReplay {
    shared: Arc<Mutex<Shared>>,
}

impl StreamReplay {
    /// A replay whose first attempt sends `prefix` (frames already read,
    /// `buffered` bytes; `lost` if they went over the cap) and then the
    /// rest of `source`.
    pub(super) fn new(
        source: tonic::body::Body,
        prefix: Vec<Bytes>,
        buffered: usize,
        cap: usize,
        lost: bool,
    ) -> Self {
        StreamReplay {
            shared: Arc::new(Mutex::new(Shared {
                source: Some(source),
                chunks: prefix,
                buffered,
                cap,
                trailers: None,
                ended: false,
                lost,
                current: 0,
            })),
        }
    }

    /// The next attempt's body; earlier attempts' bodies stop reading.
    pub(super) fn body(&self) -> StreamBody {
        let mut s = lock(&self.shared);
        s.current += 1;
        StreamBody {
            shared: self.shared.clone(),
            id: s.current,
            pos: 0,
            trailers_sent: false,
        }
    }

    /// Whether every byte sent so far is still held, so a retry can resend
    /// the whole body.
    pub(super) fn can_replay(&self) -> bool {
        !lock(&self.shared).lost
    }
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One attempt's view of a streaming request body.
#[derive(Debug)]
pub(super) struct StreamBody {
    shared: Arc<Mutex<Shared>>,
    id: u32,
    pos: usize,
    trailers_sent: bool,
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let mut s = lock(&this.shared);
        if s.current != this.id {
            return Poll::Ready(Some(Err(Status::cancelled(
                "request body superseded by a retry attempt",
            ))));
        }
        if let Some(chunk) = s.chunks.get(this.pos) {
            this.pos += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }
        if s.ended {
            if !this.trailers_sent
                && let Some(t) = &s.trailers
            {
                this.trailers_sent = true;
                return Poll::Ready(Some(Ok(Frame::trailers(t.clone()))));
            }
            return Poll::Ready(None);
        }
        let Some(source) = s.source.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = match Pin::new(source).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                s.ended = true;
                s.source = None;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(e))) => {
                s.ended = true;
                s.lost = true;
                s.source = None;
                return Poll::Ready(Some(Err(e)));
            }
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        let frame = match frame.into_data() {
            Ok(data) => {
                let s = &mut *s;
                if !s.lost && s.buffered + data.len() <= s.cap {
                    s.buffered += data.len();
                    s.chunks.push(data.clone());
                    this.pos = s.chunks.len();
                } else if !s.lost {
                    // Over the cap: stream on, but no retry can resend it.
                    s.lost = true;
                    s.chunks = Vec::new();
                    s.buffered = 0;
                    this.pos = 0;
                }
                Frame::data(data)
            }
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => {
                    s.trailers = Some(trailers.clone());
                    s.ended = true;
                    s.source = None;
                    this.trailers_sent = true;
                    Frame::trailers(trailers)
                }
                // No other frame kinds exist today; pass any on unbuffered.
                Err(other) => {
                    s.lost = true;
                    other
                }
            },
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        let s = lock(&self.shared);
        s.current == self.id
            && self.pos >= s.chunks.len()
            && (s.trailers.is_none() || self.trailers_sent)
            && (s.ended || s.source.as_ref().is_some_and(|b| b.is_end_stream()))
    }
}
