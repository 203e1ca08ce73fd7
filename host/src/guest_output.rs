//! A guest's stdout and stderr, turned into log lines attributed to the component and request:
//! split at newlines, size- and count-limited, control characters escaped, secrets redacted.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream, StreamResult};

use crate::component::Guest;
use crate::state::{MAX_LOG_LINE_BYTES, MAX_LOG_LINES_PER_REQUEST, log_safe};

/// One of a request's output streams (`stdout` or `stderr`).
#[derive(Clone)]
pub struct GuestOutput(Arc<Mutex<LineSink>>);

struct LineSink {
    guest: Arc<Guest>,
    request_id: Arc<str>,
    /// This request's credentials (`Authorization`, `Cookie` values), redacted like secrets.
    credentials: Arc<[String]>,
    stream: &'static str,
    buf: Vec<u8>,
    lines: u32,
}

impl GuestOutput {
    pub fn new(
        guest: Arc<Guest>,
        request_id: Arc<str>,
        credentials: Arc<[String]>,
        stream: &'static str,
    ) -> Self {
        Self(Arc::new(Mutex::new(LineSink {
            guest,
            request_id,
            credentials,
            stream,
            buf: Vec::new(),
            lines: 0,
        })))
    }

    fn write(&self, bytes: &[u8]) {
        let mut sink = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sink.write(bytes);
    }
}

impl LineSink {
    fn write(&mut self, mut bytes: &[u8]) {
        while let Some(pos) = bytes.iter().position(|&b| b == b'\n') {
            self.buf.extend_from_slice(&bytes[..pos]);
            self.emit();
            bytes = &bytes[pos + 1..];
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= MAX_LOG_LINE_BYTES {
            self.emit();
        }
    }

    fn emit(&mut self) {
        self.lines = self.lines.saturating_add(1);
        if self.lines <= MAX_LOG_LINES_PER_REQUEST {
            let text = String::from_utf8_lossy(&self.buf[..self.buf.len().min(MAX_LOG_LINE_BYTES)]);
            let text = log_safe(&text).into_owned();
            let text =
                crate::state::redact_credentials(&self.guest.redact(&text), &self.credentials)
                    .into_owned();
            tracing::info!(
                target: "flagon::guest",
                component = %self.guest.id,
                request_id = %self.request_id,
                stream = self.stream,
                "{text}"
            );
        }
        self.buf.clear();
    }
}

impl Drop for LineSink {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.emit();
        }
        if self.lines > MAX_LOG_LINES_PER_REQUEST {
            tracing::warn!(
                component = %self.guest.id,
                request_id = %self.request_id,
                stream = self.stream,
                dropped = self.lines - MAX_LOG_LINES_PER_REQUEST,
                "guest output lines dropped (limit per request)"
            );
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        GuestOutput::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}
