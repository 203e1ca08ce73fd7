//! Request ids: 16 hex digits from the system's secure random source, unique across hosts, so
//! that a line in one host's log and an error page a user reports can be matched.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use ring::rand::{SecureRandom, SystemRandom};

#[derive(Clone)]
pub struct RequestId(Arc<str>);

impl RequestId {
    pub fn new() -> Self {
        let mut bytes = [0u8; 8];
        // `fill` only fails if the OS has no random source at all; a counter-free fallback
        // would still be unique enough for logs, but there is no such system we run on.
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the operating system's random source failed");
        Self(crate::engine::hex(&bytes).into())
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
