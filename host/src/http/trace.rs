//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` a request
//! came with, continued into the requests its guests send out.
//!
//! A request from a trusted proxy (`[server] trusted_proxies`) that brings a valid
//! `traceparent` keeps its trace id; any other request (no header, an invalid one, which the
//! spec says to ignore, or a client that is not a trusted proxy, which could otherwise set the
//! sampled flag or `tracestate` of every service downstream) starts a trace. Either way the request gets a
//! span id of its own, which outbound requests carry as their parent. `tracestate` is passed
//! on unchanged when it came with a valid `traceparent`. Flagon does not record spans itself:
//! a trace it starts is not marked sampled; one it continues keeps the caller's flags.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderValue};

/// Longest `tracestate` passed on (the spec asks implementations to carry at least 512 bytes).
const MAX_TRACESTATE: usize = 512;

/// One request's place in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub trace_id: [u8; 16],
    /// This request's span: the parent of what it sends out.
    pub span_id: [u8; 8],
    pub flags: u8,
    /// The caller's `tracestate`, passed on as it came.
    pub state: Option<HeaderValue>,
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A fresh, non-zero 64-bit id: a counter through a keyed bijection, as request ids are (no
/// system call per request). Ids are unique within a process and, by the random key, across
/// hosts; they are labels, not secrets.
fn fresh() -> u64 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = super::request_id::mix(n);
    if id == 0 { 1 } else { id }
}

impl Trace {
    /// The trace of a request with these headers: its `traceparent` continued when it came
    /// from a trusted proxy (`trusted`), else a new trace.
    pub fn of(headers: &HeaderMap, trusted: bool) -> Self {
        let span_id = fresh().to_be_bytes();
        if let Some((trace_id, flags)) = trusted.then(|| parse_traceparent(headers)).flatten() {
            let state = headers
                .get("tracestate")
                .filter(|v| v.len() <= MAX_TRACESTATE && v.to_str().is_ok())
                .cloned();
            return Self {
                trace_id,
                span_id,
                flags,
                state,
            };
        }
        // The span id's counter value, mixed again under another constant: one atomic
        // increment per request, and trace ids as unique as span ids.
        let mut trace_id = [0; 16];
        trace_id[..8].copy_from_slice(&span_id);
        let second = super::request_id::mix(u64::from_be_bytes(span_id) ^ 0x7f4a_7c15_9e37_79b9);
        trace_id[8..].copy_from_slice(&second.to_be_bytes());
        Self {
            trace_id,
            span_id,
            flags: 0,
            state: None,
        }
    }

    /// The `traceparent` of a request this one sends: same trace, this request as parent.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            super::request_id::hex(&self.trace_id),
            super::request_id::hex(&self.span_id),
            self.flags
        )
    }

    /// The trace id as 32 hex digits, for logs.
    pub fn trace_id(&self) -> TraceId<'_> {
        TraceId(&self.trace_id)
    }
}

/// Formats a trace id as 32 lowercase hex digits.
pub struct TraceId<'a>(&'a [u8; 16]);

impl fmt::Display for TraceId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The trace id and flags of a valid `traceparent`, per the spec's version 00 (and, for a
/// higher version, its first four fields). Exactly one header, or it is ignored.
fn parse_traceparent(headers: &HeaderMap) -> Option<([u8; 16], u8)> {
    let mut values = headers.get_all("traceparent").iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let text = value.to_str().ok()?;
    let mut fields = text.split('-');
    let version = fields.next()?;
    let trace = fields.next()?;
    let parent = fields.next()?;
    let flags = fields.next()?;
    let rest = fields.next();
    let lower_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !lower_hex(version, 2) || version == "ff" || !lower_hex(flags, 2) {
        return None;
    }
    // Version 00 has exactly four fields; a later version may add more after a `-`.
    if version == "00" && (rest.is_some() || text.len() != 55) {
        return None;
    }
    if !lower_hex(trace, 32) || !lower_hex(parent, 16) {
        return None;
    }
    if trace.bytes().all(|b| b == b'0') || parent.bytes().all(|b| b == b'0') {
        return None;
    }
    let mut trace_id = [0; 16];
    for (i, byte) in trace_id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&trace[2 * i..2 * i + 2], 16).ok()?;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace_id, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    impl Trace {
        fn of_trusted(headers: &HeaderMap) -> Self {
            Self::of(headers, true)
        }
    }

    #[test]
    fn an_untrusted_clients_traceparent_is_not_continued() {
        let t = Trace::of(
            &headers(&[("traceparent", PARENT), ("tracestate", "a=b")]),
            false,
        );
        assert_ne!(t.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!((t.flags, t.state), (0, None));
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let t = Trace::of_trusted(&headers(&[
            ("traceparent", PARENT),
            ("tracestate", "rojo=00f067aa0ba902b7"),
        ]));
        let out = t.traceparent();
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{out}"
        );
        assert!(out.ends_with("-01"), "{out}");
        assert!(
            !out.contains("00f067aa0ba902b7"),
            "the span is ours, not the caller's: {out}"
        );
        assert_eq!(out.len(), 55);
        assert_eq!(t.state.as_ref().unwrap(), "rojo=00f067aa0ba902b7");
        assert_eq!(t.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let t = Trace::of_trusted(&headers(&[("traceparent", bad), ("tracestate", "a=b")]));
            assert_ne!(
                t.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{bad}"
            );
            assert_eq!(t.flags, 0, "{bad}");
            assert_eq!(t.state, None, "{bad}");
        }
        // Two traceparent headers: ambiguous, ignored.
        let t = Trace::of_trusted(&headers(&[
            ("traceparent", PARENT),
            ("traceparent", PARENT),
        ]));
        assert_eq!(t.flags, 0);
        // A later version's extra fields are allowed.
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        let t = Trace::of_trusted(&headers(&[("traceparent", v1)]));
        assert_eq!(t.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn new_traces_and_spans_are_distinct() {
        let a = Trace::of_trusted(&HeaderMap::new());
        let b = Trace::of_trusted(&HeaderMap::new());
        assert_ne!(a.trace_id, b.trace_id);
        assert_ne!(a.span_id, b.span_id);
        assert_ne!(a.trace_id, [0; 16]);
        assert!(a.traceparent().ends_with("-00"));
    }
}
