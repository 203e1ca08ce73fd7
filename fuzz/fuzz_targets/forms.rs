//! Any body as a urlencoded or multipart form: decoding never panics and keeps its limits.
#![no_main]

use std::sync::OnceLock;

use flagon::http::forms::{FormLimits, parse_multipart, parse_urlencoded};
use libfuzzer_sys::fuzz_target;

const LIMITS: FormLimits = FormLimits {
    max_parts: 16,
    max_field: 256,
};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let check = |fields: &[flagon::http::forms::FormField]| {
        assert!(fields.len() <= LIMITS.max_parts);
        for f in fields {
            if f.file.is_none() {
                assert!(f.value.len() <= LIMITS.max_field);
            }
        }
    };
    if let Ok(fields) = parse_urlencoded(data, LIMITS) {
        check(&fields);
    }
    let body = bytes::Bytes::copy_from_slice(data);
    if let Ok(fields) = runtime().block_on(parse_multipart(body, "boundary", LIMITS)) {
        check(&fields);
    }
});
