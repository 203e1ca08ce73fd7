//! Any text as `flagon.toml`: parsing and validation never panic; an error names the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = flagon::Manifest::parse(std::path::Path::new("app/flagon.toml"), text) {
        assert!(e.to_string().contains("flagon.toml"), "{e}");
    }
});
