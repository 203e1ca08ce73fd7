//! The first-party plugins embedded in the host: `plugins/<name>` built for `wasm32-wasip2`.
//!
//! They are committed under `plugins/dist` (so that building the host needs no C toolchain and no
//! nested build) and rebuilt from source by the tests, which check that the two are the same
//! bytes (`tests/all/plugins.rs`). A manifest names one with `plugin = "<name>"` in its
//! `[components.<id>]` table instead of a `source`; the DB adapters are `adapter = "sqlite"` and
//! `adapter = "postgres"` in `[databases.<name>]`.
//!
//! Each is signed by the first-party release key (`plugins/flagon-plugins.pub`): its
//! `plugins/dist/flagon-<name>.wasm.sig` is embedded beside it, and `signature::check` verifies
//! it under `[app] require_signatures` (`tests/all/signing.rs` verifies every one in CI).
//!
//! A leaf: it imports nothing of the crate.

/// What an embedded plugin is for, which decides where a manifest may name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Authenticator,
    Middleware,
    SqlAdapter,
}

/// One embedded plugin.
#[derive(Debug)]
pub struct Plugin {
    /// The name a manifest uses: `plugin = "auth-jwt"`.
    pub name: &'static str,
    pub kind: PluginKind,
    /// The component's bytes.
    pub wasm: &'static [u8],
    /// Its signature file (`plugins/dist/flagon-<name>.wasm.sig`), by [`FIRST_PARTY_KEY`],
    /// signed as `flagon-<name>`.
    pub signature: &'static str,
}

/// The public half of the first-party release key, `ed25519:<base64>`
/// (`plugins/flagon-plugins.pub`). It signed every plugin in `plugins/dist`, and the host
/// trusts it for those embedded plugins only, never for a `.wasm` file unless
/// `[app] trusted_keys` lists it.
pub const FIRST_PARTY_KEY: &str = include_str!("../../../plugins/flagon-plugins.pub");

macro_rules! dist {
    ($file:literal) => {
        include_bytes!(concat!("../../../plugins/dist/", $file))
    };
}

macro_rules! plugin {
    ($name:literal, $kind:ident) => {
        Plugin {
            name: $name,
            kind: PluginKind::$kind,
            wasm: include_bytes!(concat!("../../../plugins/dist/flagon-", $name, ".wasm")),
            signature: include_str!(concat!("../../../plugins/dist/flagon-", $name, ".wasm.sig")),
        }
    };
}

/// Every embedded plugin, by name.
pub const PLUGINS: &[Plugin] = &[
    plugin!("auth-jwt", Authenticator),
    plugin!("auth-session", Authenticator),
    plugin!("auth-apikey", Authenticator),
    plugin!("auth-apikey-sql", Authenticator),
    plugin!("ratelimit", Middleware),
    plugin!("cors", Middleware),
    plugin!("sqlite", SqlAdapter),
    plugin!("postgres", SqlAdapter),
];

/// The embedded plugin called `name`.
pub fn find(name: &str) -> Option<&'static Plugin> {
    PLUGINS.iter().find(|p| p.name == name)
}

/// The names of the plugins a `[components.<id>]` table may use (the authenticators and
/// middleware), for error messages.
pub fn component_names() -> String {
    PLUGINS
        .iter()
        .filter(|p| p.kind != PluginKind::SqlAdapter)
        .map(|p| format!("\"{}\"", p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The SQLite adapter (`adapter = "sqlite"`).
pub fn sqlite() -> &'static [u8] {
    dist!("flagon-sqlite.wasm")
}

/// The Postgres adapter (`adapter = "postgres"`).
pub fn postgres() -> &'static [u8] {
    dist!("flagon-postgres.wasm")
}
