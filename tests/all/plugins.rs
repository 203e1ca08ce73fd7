//! The first-party plugins the host embeds are what their sources build to.

use crate::programs;

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `plugins/dist/flagon-sqlite.wasm` (embedded in the host as the `sqlite` adapter) is
/// byte for byte what `plugins/sqlite` built to in this run.
#[test]
fn the_embedded_sqlite_adapter_is_built_from_its_source() {
    let built = std::fs::read(programs::PLUGIN_SQLITE).unwrap();
    let embedded = flagon::capabilities::sql::SQLITE_ADAPTER;
    assert!(
        built == embedded,
        "plugins/dist/flagon-sqlite.wasm (sha256 {}) is not what plugins/sqlite builds to \
         (sha256 {}); run `bash plugins/build` and commit plugins/dist",
        sha256(embedded),
        sha256(&built)
    );
}
