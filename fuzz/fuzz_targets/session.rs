//! Any `Cookie` header: loading the session never panics, and nothing but a cookie this key
//! sealed opens (a forged one gives an empty session).
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use flagon::web::session::{Session, SessionConfig, SessionKeys};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static SessionKeys {
    static KEYS: OnceLock<SessionKeys> = OnceLock::new();
    KEYS.get_or_init(|| SessionKeys::new(b"0123456789abcdef0123456789abcdef-fuzz", &[]).unwrap())
}

fuzz_target!(|header: &[u8]| {
    let cfg = SessionConfig::default();
    let mut session = Session::load(keys(), &cfg, [header], SystemTime::now());
    // Without the key, no input can carry a value.
    assert!(session.keys().is_empty());
});
