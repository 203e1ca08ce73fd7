//! What a guest writes to the host's log: its stdout and stderr turned into log lines
//! attributed to the component and request (split at newlines, size- and count-limited), and
//! the cleaning every guest-written line gets (control characters escaped, secrets and the
//! request's credentials redacted).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream, StreamResult};

use crate::text::log_safe;

/// Most log lines one request may write through each of `flagon:app/log`, stdout and stderr;
/// later lines are dropped and counted, so a guest cannot flood the host's log.
pub const MAX_LOG_LINES_PER_REQUEST: u32 = 256;
/// Longest log message kept; longer ones are cut (on a char boundary) and marked.
pub const MAX_LOG_LINE_BYTES: usize = 4096;

/// Secret values shorter than this are not redacted: they would match ordinary text.
const MIN_REDACTED_SECRET: usize = 4;
/// Credentials shorter than this are not redacted: they would match ordinary text.
const MIN_REDACTED_CREDENTIAL: usize = 8;

/// What must never appear in a guest's log lines: the app's secret variable values and the
/// request's credentials (its `Authorization` and `Cookie` values).
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: Arc<[String]>,
    credentials: Vec<String>,
}

impl Redactor {
    /// `credentials` longest first, so a whole header is redacted before its parts.
    pub fn new(secrets: Arc<[String]>, credentials: Vec<String>) -> Self {
        Self {
            secrets,
            credentials,
        }
    }

    /// `text` with every secret and credential replaced by `[redacted]`.
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let secrets = self
            .secrets
            .iter()
            .filter(|s| s.len() >= MIN_REDACTED_SECRET);
        let credentials = self
            .credentials
            .iter()
            .filter(|c| c.len() >= MIN_REDACTED_CREDENTIAL);
        let mut out = std::borrow::Cow::Borrowed(text);
        for s in secrets.chain(credentials) {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[redacted]").into();
            }
        }
        out
    }
}

/// Who writes a request's guest log lines, and what must be kept out of them.
#[derive(Clone, Debug)]
pub struct GuestLog {
    pub component: Arc<str>,
    pub request_id: Arc<str>,
    pub redactor: Arc<Redactor>,
}

impl GuestLog {
    /// `text` as it may go into the host's log: control characters escaped, then secrets and
    /// credentials redacted.
    pub fn clean(&self, text: &str) -> String {
        self.redactor.redact(&log_safe(text)).into_owned()
    }
}

/// `s` cut to at most `max` bytes (on a char boundary), marked when cut.
pub fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated {} bytes]", &s[..end], s.len() - end).into()
}

/// One of a request's output streams (`stdout` or `stderr`).
#[derive(Clone)]
pub struct GuestOutput(Arc<Mutex<LineSink>>);

struct LineSink {
    log: GuestLog,
    stream: &'static str,
    buf: Vec<u8>,
    lines: u32,
}

impl GuestOutput {
    pub fn new(log: GuestLog, stream: &'static str) -> Self {
        Self(Arc::new(Mutex::new(LineSink {
            log,
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
            let text = self.log.clean(&text);
            tracing::info!(
                target: "flagon::guest",
                component = %self.log.component,
                request_id = %self.log.request_id,
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
                component = %self.log.component,
                request_id = %self.log.request_id,
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

#[cfg(test)]
mod tests {
    #[test]
    fn truncate_keeps_char_boundaries() {
        assert_eq!(super::truncate("héllo", 10), "héllo");
        let t = super::truncate("héllo", 2);
        assert!(t.starts_with("h…"), "{t}");
    }
}
