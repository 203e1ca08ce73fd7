//! A `.sig` file is read before anything is trusted: whatever its text, parsing fails cleanly or
//! gives a file whose fields are well-formed, and which writes back to the same file.
#![no_main]

use flagon::signature::SignatureFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(sig) = SignatureFile::parse(text) else {
        return;
    };
    assert_eq!(sig.sha256.len(), 64, "{sig:?}");
    assert!(sig.key.starts_with("ed25519:"), "{sig:?}");
    let again = SignatureFile::parse(&sig.to_text()).expect("what it writes, it reads");
    assert_eq!(again, sig);
});
