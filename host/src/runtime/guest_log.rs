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
///
/// Redaction runs on the guest's raw text, before anything is escaped, split into lines or
/// cut, so a secret is found however it was written. A secret spanning lines (a PEM key, a
/// value read from a file with its newline) is also redacted line by line, because stdout and
/// stderr are logged a line at a time.
#[derive(Debug, Default)]
pub struct Redactor {
    /// Longest first, so a whole value is redacted before its parts.
    patterns: Vec<String>,
    /// The longest pattern without a line break: how much of a line must be held back, when a
    /// line is too long to buffer whole, so that a secret is never cut in two.
    longest_in_line: usize,
}

impl Redactor {
    pub fn new(secrets: Arc<[String]>, credentials: Vec<String>) -> Self {
        let mut patterns = Vec::new();
        let mut add = |value: &str, min: usize| {
            let lines = value.split('\n').map(|l| l.trim_end_matches('\r'));
            for p in std::iter::once(value).chain(lines) {
                if p.len() >= min && !patterns.iter().any(|q: &String| q == p) {
                    patterns.push(p.to_string());
                }
            }
        };
        for s in secrets.iter() {
            add(s, MIN_REDACTED_SECRET);
        }
        for c in &credentials {
            add(c, MIN_REDACTED_CREDENTIAL);
        }
        patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        let longest_in_line = patterns
            .iter()
            .filter(|p| !p.contains('\n'))
            .map(String::len)
            .max()
            .unwrap_or(0);
        Self {
            patterns,
            longest_in_line,
        }
    }

    /// `text` with every secret and credential replaced by `[redacted]`.
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let mut out = std::borrow::Cow::Borrowed(text);
        for p in &self.patterns {
            if out.contains(p.as_str()) {
                out = out.replace(p.as_str(), "[redacted]").into();
            }
        }
        out
    }

    /// Where to cut `buf` at or before `at` so that no secret in it is cut in two: the start
    /// of the first occurrence that would cross the cut, if any.
    fn safe_cut(&self, buf: &[u8], at: usize) -> usize {
        let mut cut = at.min(buf.len());
        // Moving the cut back can make it cross another occurrence: repeat until none does.
        loop {
            let crossing = self.patterns.iter().map(String::as_bytes).find_map(|p| {
                let first = cut.saturating_sub(p.len() - 1);
                (first..cut).find(|&i| buf.get(i..i + p.len()) == Some(p))
            });
            match crossing {
                Some(start) if start < cut => cut = start,
                _ => return cut,
            }
        }
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
    /// `text` as it may go into the host's log: secrets and credentials redacted, cut to
    /// `max` bytes, then control characters escaped. In that order: a secret is found before
    /// escaping or cutting could change how it is written.
    pub fn clean(&self, text: &str, max: usize) -> String {
        let redacted = self.redactor.redact(text);
        log_safe(&truncate(&redacted, max)).into_owned()
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
    out: fn(&GuestLog, &'static str, &str),
}

impl GuestOutput {
    pub fn new(log: GuestLog, stream: &'static str) -> Self {
        Self::with_output(log, stream, to_tracing)
    }

    fn with_output(
        log: GuestLog,
        stream: &'static str,
        out: fn(&GuestLog, &'static str, &str),
    ) -> Self {
        Self(Arc::new(Mutex::new(LineSink {
            log,
            stream,
            buf: Vec::new(),
            lines: 0,
            out,
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
            let line = std::mem::take(&mut self.buf);
            self.emit(&line);
            bytes = &bytes[pos + 1..];
        }
        self.buf.extend_from_slice(bytes);
        // A line too long to hold: log its first `MAX_LOG_LINE_BYTES` as a line of their own,
        // holding back what could be the start of a secret that the next write completes.
        let hold = self.log.redactor.longest_in_line;
        while self.buf.len() >= MAX_LOG_LINE_BYTES + hold {
            let cut = self.log.redactor.safe_cut(&self.buf, MAX_LOG_LINE_BYTES);
            // A cut at 0 means a secret starts the buffer: it is whole (it fits in the held
            // back part), so it is taken with the head and redacted there.
            let cut = if cut == 0 {
                MAX_LOG_LINE_BYTES + hold
            } else {
                cut
            };
            let rest = self.buf.split_off(cut);
            let head = std::mem::replace(&mut self.buf, rest);
            self.emit(&head);
        }
    }

    fn emit(&mut self, line: &[u8]) {
        self.lines = self.lines.saturating_add(1);
        if self.lines <= MAX_LOG_LINES_PER_REQUEST {
            let text = self
                .log
                .clean(&String::from_utf8_lossy(line), MAX_LOG_LINE_BYTES);
            (self.out)(&self.log, self.stream, &text);
        }
    }
}

/// Where a guest output line goes: the host's log.
fn to_tracing(log: &GuestLog, stream: &'static str, text: &str) {
    tracing::info!(
        target: "flagon::guest",
        component = %log.component,
        request_id = %log.request_id,
        stream,
        "{text}"
    );
}

impl Drop for LineSink {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.emit(&line);
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
    use super::*;

    const PEM: &str = "-----BEGIN TEST KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\nAT8wggE7AgEAAkEAq7BFUpkGp3+\n-----END TEST KEY-----\n";

    fn log() -> GuestLog {
        GuestLog {
            component: "c".into(),
            request_id: "r".into(),
            redactor: Arc::new(Redactor::new(
                vec!["s3cr3t".to_string(), PEM.to_string()].into(),
                vec!["Bearer tok_0123456789".to_string()],
            )),
        }
    }

    std::thread_local! {
        static LINES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    fn capture(_: &GuestLog, _: &'static str, text: &str) {
        LINES.with(|l| l.borrow_mut().push(text.to_string()));
    }

    /// What a guest writing `writes` to stdout gets into the log.
    fn logged(writes: &[&[u8]]) -> Vec<String> {
        LINES.with(|l| l.borrow_mut().clear());
        let out = GuestOutput::with_output(log(), "stdout", capture);
        for w in writes {
            out.write(w);
        }
        drop(out);
        LINES.with(|l| l.borrow().clone())
    }

    #[test]
    fn secrets_are_redacted_before_escaping_splitting_and_cutting() {
        let all = |lines: &[String]| lines.join("\n");
        // A multi-line secret through the log interface and through stdout.
        let l = log();
        let text = l.clean(&format!("key: {PEM}done"), MAX_LOG_LINE_BYTES);
        assert_eq!(text, "key: [redacted]done");
        let lines = logged(&[format!("key:\n{PEM}").as_bytes()]);
        assert!(
            !all(&lines).contains("MIIB") && !all(&lines).contains("AT8w"),
            "{lines:?}"
        );
        // A secret straddling the 4 KiB cut, written in one piece or in two; and one line too
        // long to hold whole, whose secret sits where the first piece would end.
        let huge = format!(
            "{}s3cr3t{}",
            "w".repeat(MAX_LOG_LINE_BYTES - 3),
            "v".repeat(MAX_LOG_LINE_BYTES)
        );
        let lines = logged(&[huge.as_bytes(), b"\n"]);
        assert!(
            !all(&lines).contains("s3c") && all(&lines).contains("[redacted]"),
            "{:?}",
            lines
                .iter()
                .map(|l| &l[l.len().saturating_sub(20)..])
                .collect::<Vec<_>>()
        );
        let long = format!("{}s3cr3t tail\n", "x".repeat(MAX_LOG_LINE_BYTES - 3));
        for writes in [
            vec![long.as_bytes()],
            vec![
                &long.as_bytes()[..MAX_LOG_LINE_BYTES],
                &long.as_bytes()[MAX_LOG_LINE_BYTES..],
            ],
        ] {
            let lines = logged(&writes);
            let joined = all(&lines);
            assert!(
                !joined.contains("s3c") && !joined.contains("3t tail"),
                "{lines:?}"
            );
            assert!(joined.contains("truncated"), "{lines:?}");
        }
        // Through the log interface, the cut comes after redaction.
        let text = l.clean(
            &format!("{}s3cr3t", "y".repeat(MAX_LOG_LINE_BYTES - 3)),
            MAX_LOG_LINE_BYTES,
        );
        assert!(
            !text.contains("s3c") && text.contains("[truncated"),
            "{}",
            &text[4000..]
        );
        // Credentials too, and escaping still happens (after redaction).
        let text = l.clean("auth=Bearer tok_0123456789\nINFO forged", 100);
        assert_eq!(text, "auth=[redacted]\\nINFO forged");
    }

    #[test]
    fn long_lines_are_cut_in_pieces_that_keep_secrets_whole() {
        let r = log().redactor.clone();
        let buf = b"aaaas3cr3tbbbb";
        assert_eq!(r.safe_cut(buf, 6), 4);
        assert_eq!(r.safe_cut(buf, 4), 4);
        assert_eq!(r.safe_cut(buf, 12), 12);
        let lines = logged(&["z".repeat(3 * MAX_LOG_LINE_BYTES).as_bytes()]);
        assert_eq!(
            lines.len(),
            3,
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
    }

    #[test]
    fn truncate_keeps_char_boundaries() {
        assert_eq!(truncate("héllo", 10), "héllo");
        let t = truncate("héllo", 2);
        assert!(t.starts_with("h…"), "{t}");
    }
}
