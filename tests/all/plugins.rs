//! The first-party plugins the host embeds are what their sources build to.

use crate::programs;

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check(built: &str, embedded: &[u8], name: &str) {
    let built = std::fs::read(built).unwrap();
    assert!(
        built == embedded,
        "plugins/dist/flagon-{name}.wasm (sha256 {}) is not what plugins/{name} builds to \
         (sha256 {}); run `bash plugins/build` and commit plugins/dist",
        sha256(embedded),
        sha256(&built)
    );
}

/// `plugins/dist/flagon-sqlite.wasm` (embedded in the host as the `sqlite` adapter) is
/// byte for byte what `plugins/sqlite` built to in this run.
#[test]
fn the_embedded_sqlite_adapter_is_built_from_its_source() {
    check(
        programs::PLUGIN_SQLITE,
        flagon::capabilities::sql::SQLITE_ADAPTER,
        "sqlite",
    );
}

/// The same for `plugins/postgres` (the `postgres` adapter).
#[test]
fn the_embedded_postgres_adapter_is_built_from_its_source() {
    check(
        programs::PLUGIN_POSTGRES,
        flagon::capabilities::sql::POSTGRES_ADAPTER,
        "postgres",
    );
}
