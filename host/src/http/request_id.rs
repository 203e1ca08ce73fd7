//! Request ids: 16 hex digits, unique within a process and (by a random per-process key) across
//! hosts, so that a line in one host's log and an error page a user reports can be matched.
//!
//! An id is a per-process counter plus a random key, run through the splitmix64 finaliser. The
//! finaliser is a bijection, so ids never repeat within a process; no system call is made per
//! request. Ids are labels, not secrets: do not use them for anything that must be unguessable.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use http::HeaderValue;
use ring::rand::{SecureRandom, SystemRandom};

use super::trace::Trace;

static COUNTER: AtomicU64 = AtomicU64::new(0);
static KEY: OnceLock<u64> = OnceLock::new();

fn key() -> u64 {
    *KEY.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // Only fails if the OS has no random source at all, which no supported system lacks.
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the operating system's random source failed");
        u64::from_le_bytes(bytes)
    })
}

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Clone)]
pub struct RequestId(Arc<str>, Option<Arc<Trace>>);

/// `n` through the keyed bijection: distinct inputs give distinct outputs.
pub(super) fn mix(n: u64) -> u64 {
    splitmix64(n.wrapping_add(key()))
}

/// Longest request id taken from a proxy's `X-Request-Id`.
const MAX_FORWARDED: usize = 128;

impl RequestId {
    pub fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self(hex(&mix(n).to_be_bytes()).into(), None)
    }

    /// The id a trusted proxy gave the request in `X-Request-Id`, so that its log lines and
    /// ours share one id; else (no header, a client that is not a trusted proxy, or a value
    /// that is empty, too long or holds characters outside `A-Z a-z 0-9 - _ . : + / =`) a new
    /// one. The characters allowed cannot break a log line or a header.
    pub fn from_proxy(headers: &http::HeaderMap, trusted: bool) -> Self {
        if trusted {
            let mut values = headers.get_all("x-request-id").iter();
            if let (Some(value), None) = (values.next(), values.next()) {
                let bytes = value.as_bytes();
                let ok = !bytes.is_empty()
                    && bytes.len() <= MAX_FORWARDED
                    && bytes
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(b));
                if ok && let Ok(text) = value.to_str() {
                    return Self(text.into(), None);
                }
            }
        }
        Self::new()
    }

    /// The same id, with the request's trace context.
    pub fn with_trace(mut self, trace: Trace) -> Self {
        self.1 = Some(Arc::new(trace));
        self
    }

    /// The request's trace context, passed on to what it sends out.
    pub fn trace(&self) -> Option<&Arc<Trace>> {
        self.1.as_ref()
    }

    /// The trace id for logs: 32 hex digits, or nothing when the request has no trace.
    pub fn trace_id(&self) -> impl fmt::Display + '_ {
        struct Id<'a>(Option<&'a Trace>);
        impl fmt::Display for Id<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    Some(t) => t.trace_id().fmt(f),
                    None => Ok(()),
                }
            }
        }
        Id(self.1.as_deref())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }

    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&self.0).expect("hex digits are a valid header value")
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

/// Lowercase hex digits of `bytes`, without the formatting machinery (this runs per request).
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trusted_proxys_id_is_kept_and_anything_else_replaced() {
        let with = |v: &[u8]| {
            let mut h = http::HeaderMap::new();
            h.insert("x-request-id", HeaderValue::from_bytes(v).unwrap());
            h
        };
        let uuid = b"0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(
            RequestId::from_proxy(&with(uuid), true).as_str().as_bytes(),
            uuid
        );
        assert_eq!(
            RequestId::from_proxy(&with(b"a/b+c=:_."), true).as_str(),
            "a/b+c=:_."
        );
        // Not from a trusted proxy: the client does not choose our ids.
        assert_ne!(
            RequestId::from_proxy(&with(uuid), false)
                .as_str()
                .as_bytes(),
            uuid
        );
        for bad in [
            &b"has space"[..],
            b"quote\"",
            b"tab\t",
            &[b'x'; 129],
            b"\xff",
        ] {
            let id = RequestId::from_proxy(&with(bad), true);
            assert_eq!(id.as_str().len(), 16, "{bad:?}");
        }
        let mut two = with(uuid);
        two.append("x-request-id", HeaderValue::from_static("other"));
        assert_eq!(RequestId::from_proxy(&two, true).as_str().len(), 16);
    }

    #[test]
    fn ids_are_16_hex_digits_and_distinct() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| RequestId::new().to_string()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|i| i.len() == 16 && i.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }
}
