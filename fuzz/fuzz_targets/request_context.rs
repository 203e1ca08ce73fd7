//! Headers any client sends, read by the host on every request: `traceparent`/`tracestate`
//! and `X-Request-Id` (both kept from a trusted proxy). Whatever comes in,
//! the request id is safe to log and to send as a header, and the `traceparent` sent on is a
//! well-formed version-00 one.
#![no_main]

use flagon::http::request_id::RequestId;
use flagon::http::trace::Trace;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &[u8], &[u8])| {
    let (traceparent, tracestate, request_id) = input;
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("traceparent", traceparent),
        ("tracestate", tracestate),
        ("x-request-id", request_id),
    ] {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.insert(name, v);
        }
    }
    let id = RequestId::from_proxy(&headers, true);
    let text = id.as_str();
    assert!(!text.is_empty() && text.len() <= 128, "{text:?}");
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(&b)),
        "{text:?}"
    );
    let _ = id.header_value();

    let trace = Trace::of(&headers, true);
    let out = trace.traceparent();
    let fields: Vec<&str> = out.split('-').collect();
    assert_eq!(out.len(), 55, "{out}");
    assert_eq!(fields.len(), 4, "{out}");
    assert_eq!(fields[0], "00");
    assert!(fields[1..].iter().all(|f| {
        f.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }));
    assert_ne!(fields[1], "0".repeat(32));
    assert_ne!(fields[2], "0".repeat(16));
    assert!(HeaderValue::from_str(&out).is_ok());
    if let Some(state) = &trace.state {
        assert!(state.len() <= 512 && state.to_str().is_ok());
    }
});
