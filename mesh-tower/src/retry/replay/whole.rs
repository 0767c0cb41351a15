//! A request body read whole before the first attempt: each attempt gets
//! its own cursor over the same frames. No lock, and no allocation beyond
//! the attempt's boxed body: a one-frame body (every unary RPC) is one
//! `Bytes`, cloned by a reference count.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

/// The data frames of a whole body.
#[derive(Debug, Clone, Default)]
pub(in crate::retry) enum Chunks {
    /// No data.
    #[default]
    None,
    /// One frame: the unary case.
    One(Bytes),
    /// Several frames.
    Many(Arc<[Bytes]>),
}

impl Chunks {
    fn get(&self, i: usize) -> Option<&Bytes> {
        match self {
            Chunks::None => None,
            Chunks::One(b) => (i == 0).then_some(b),
            Chunks::Many(all) => all.get(i),
        }
    }

    fn len(&self) -> usize {
        match self {
            Chunks::None => 0,
            Chunks::One(_) => 1,
            Chunks::Many(all) => all.len(),
        }
    }

    /// Data frames collected in order, without a `Vec` for the one-frame case.
    pub(super) fn collect(first: Option<Bytes>, rest: Vec<Bytes>) -> Chunks {
        match first {
            None => Chunks::None,
            Some(b) if rest.is_empty() => Chunks::One(b),
            Some(b) => Chunks::Many(std::iter::once(b).chain(rest).collect()),
        }
    }
}

/// A whole request body, ready to hand to any number of attempts.
#[derive(Debug, Clone, Default)]
pub(in crate::retry) struct Whole {
    pub(super) chunks: Chunks,
    pub(super) trailers: Option<HeaderMap>,
}

impl Whole {
    pub(super) fn body(&self) -> WholeBody {
        WholeBody {
            chunks: self.chunks.clone(),
            next: 0,
            trailers: self.trailers.clone(),
        }
    }
}

/// One attempt's copy of a whole body.
#[derive(Debug)]
pub(super) struct WholeBody {
    chunks: Chunks,
    next: usize,
    trailers: Option<HeaderMap>,
}

impl Body for WholeBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if let Some(chunk) = this.chunks.get(this.next) {
            this.next += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.chunks.len() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let left = (self.next..self.chunks.len())
            .filter_map(|i| self.chunks.get(i))
            .map(|b| b.len() as u64)
            .sum();
        SizeHint::with_exact(left)
    }
}
