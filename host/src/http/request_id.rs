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
pub struct RequestId(Arc<str>);

impl RequestId {
    pub fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = splitmix64(n.wrapping_add(key()));
        Self(hex(&id.to_be_bytes()).into())
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
fn hex(bytes: &[u8]) -> String {
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
