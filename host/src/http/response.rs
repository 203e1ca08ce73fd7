//! The response body the host sends: bytes in memory (what guests and error pages return), or a
//! file read in chunks as the client takes them (static files), so a large file never sits in
//! memory whole and a slow client holds at most one chunk.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

/// How much of a file is read per chunk.
const CHUNK: usize = 64 * 1024;

/// A response body.
#[derive(Debug, Default)]
pub struct Body(Kind);

#[derive(Debug, Default)]
enum Kind {
    #[default]
    Empty,
    Bytes(Bytes),
    File(Box<FileBody>),
}

#[derive(Debug)]
struct FileBody {
    file: tokio::fs::File,
    /// Bytes still to send.
    remaining: u64,
    buf: Box<[u8]>,
    /// Held until the body is done (or dropped with its connection), bounding how many files
    /// are streamed at once.
    _slot: Option<OwnedSemaphorePermit>,
}

impl Body {
    /// A body of `bytes`.
    pub fn new(bytes: Bytes) -> Self {
        if bytes.is_empty() {
            Self(Kind::Empty)
        } else {
            Self(Kind::Bytes(bytes))
        }
    }

    /// `len` bytes of `file` from its current position, read as the client takes them. The
    /// file must have at least `len` bytes left; if it shrinks meanwhile, the body ends in an
    /// error (the client sees a truncated response, never other data).
    pub fn file(file: std::fs::File, len: u64, slot: Option<OwnedSemaphorePermit>) -> Self {
        if len == 0 {
            return Self(Kind::Empty);
        }
        let chunk = usize::try_from(len).map_or(CHUNK, |len| len.min(CHUNK));
        Self(Kind::File(Box::new(FileBody {
            file: tokio::fs::File::from_std(file),
            remaining: len,
            buf: vec![0; chunk].into_boxed_slice(),
            _slot: slot,
        })))
    }
}

impl Body {
    /// The bytes of an in-memory body; `None` for a file (sent in chunks, never in memory).
    pub fn bytes(&self) -> Option<Bytes> {
        match &self.0 {
            Kind::Empty => Some(Bytes::new()),
            Kind::Bytes(bytes) => Some(bytes.clone()),
            Kind::File(_) => None,
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let Kind::File(f) = &mut self.0 else {
            // Bytes are sent in one frame; after it, or for an empty body, the body is over.
            return Poll::Ready(match std::mem::take(&mut self.0) {
                Kind::Bytes(bytes) => Some(Ok(Frame::data(bytes))),
                _ => None,
            });
        };
        let want = usize::try_from(f.remaining).map_or(f.buf.len(), |r| r.min(f.buf.len()));
        let mut read = ReadBuf::new(&mut f.buf[..want]);
        ready!(Pin::new(&mut f.file).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        if n == 0 {
            self.0 = Kind::Empty;
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file got shorter while it was sent",
            ))));
        }
        let chunk = Bytes::copy_from_slice(read.filled());
        f.remaining -= n as u64;
        if f.remaining == 0 {
            self.0 = Kind::Empty;
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.0, Kind::Empty)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Bytes(b) => SizeHint::with_exact(b.len() as u64),
            Kind::File(f) => SizeHint::with_exact(f.remaining),
        }
    }
}

#[cfg(test)]
impl Body {
    /// The bytes of an in-memory body (tests collect file bodies first).
    pub(crate) fn as_ref(&self) -> &[u8] {
        match &self.0 {
            Kind::Empty => &[],
            Kind::Bytes(bytes) => bytes,
            Kind::File(_) => panic!("a file body: collect it first"),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.as_ref().is_empty()
    }
}
