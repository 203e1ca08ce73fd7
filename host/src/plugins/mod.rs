//! The first-party plugins embedded in the host: `plugins/<name>` built for `wasm32-wasip2`.
//!
//! They are committed under `plugins/dist` (so that building the host needs no C toolchain and no
//! nested build) and rebuilt from source by the tests, which check that the two are the same
//! bytes (`tests/all/plugins.rs`). A manifest names one with `plugin = "<name>"` in its
//! `[components.<id>]` table instead of a `source`; the DB adapters are `adapter = "sqlite"` and
//! `adapter = "postgres"` in `[databases.<name>]`.
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
}

macro_rules! dist {
    ($file:literal) => {
        include_bytes!(concat!("../../../plugins/dist/", $file))
    };
}

/// Every embedded plugin, by name.
pub const PLUGINS: &[Plugin] = &[
    Plugin {
        name: "auth-jwt",
        kind: PluginKind::Authenticator,
        wasm: dist!("flagon-auth-jwt.wasm"),
    },
    Plugin {
        name: "auth-session",
        kind: PluginKind::Authenticator,
        wasm: dist!("flagon-auth-session.wasm"),
    },
    Plugin {
        name: "auth-apikey",
        kind: PluginKind::Authenticator,
        wasm: dist!("flagon-auth-apikey.wasm"),
    },
    Plugin {
        name: "auth-apikey-sql",
        kind: PluginKind::Authenticator,
        wasm: dist!("flagon-auth-apikey-sql.wasm"),
    },
    Plugin {
        name: "ratelimit",
        kind: PluginKind::Middleware,
        wasm: dist!("flagon-ratelimit.wasm"),
    },
    Plugin {
        name: "cors",
        kind: PluginKind::Middleware,
        wasm: dist!("flagon-cors.wasm"),
    },
    Plugin {
        name: "sqlite",
        kind: PluginKind::SqlAdapter,
        wasm: dist!("flagon-sqlite.wasm"),
    },
    Plugin {
        name: "postgres",
        kind: PluginKind::SqlAdapter,
        wasm: dist!("flagon-postgres.wasm"),
    },
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
