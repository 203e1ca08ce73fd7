//! `[components.<id>]`: a Wasm component, its limits and what it is granted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::origin::{AllowedOrigin, InvalidOrigin};
use super::values::{HumanDuration, Size};
use super::{HOUR, Manifest, Result};
use crate::plugins::{self, Plugin, PluginKind};

/// `[components.<id>]`: a Wasm component and what it may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSection {
    /// Path of the `.wasm` component, relative to the manifest.
    /// Example: `source = "target/wasm32-wasip2/release/hello.wasm"`
    pub source: Option<PathBuf>,
    /// A first-party plugin embedded in the host, instead of a `source`.
    /// Example: `plugin = "auth-jwt"`
    pub plugin: Option<String>,
    /// Shell command that builds `source`, run by `flagon build` and `flagon serve --build`.
    /// Example: `build = "cargo build --release --target wasm32-wasip2"`
    pub build: Option<String>,
    /// Directory the build command runs in, relative to the manifest (default: the manifest's).
    /// Example: `workdir = "components/hello"`
    pub workdir: Option<PathBuf>,
    /// The world the component exports, when it is not Flagon's own: `"wasi-http"` for a
    /// standard `wasi:http/proxy` component (one written for `wasmtime serve` or Spin). A
    /// component exporting `wasi:http/incoming-handler` is detected without it.
    /// Example: `world = "wasi-http"`
    pub world: Option<World>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub grants: Grants,
    /// The component's own settings, which it reads as JSON through `flagon:app/settings`
    /// (how authenticators and middleware are configured). No secrets here: grant secret
    /// `variables` instead. Example: `settings = { issuer = "https://id.example.com" }`
    #[serde(default)]
    pub settings: toml::Table,
}

/// The world a component exports, as `world` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `flagon:app/handler` (or `authenticator`, `middleware`, by the component's role).
    Flagon,
    /// The standard `wasi:http/proxy` world: `wasi:http/incoming-handler` on a route.
    WasiHttp,
}

/// Where a component's bytes come from.
#[derive(Debug, Clone)]
pub enum WasmSource {
    /// A `.wasm` file (`source`), resolved against the manifest's directory.
    File(PathBuf),
    /// A plugin embedded in the host (`plugin`).
    Embedded(&'static Plugin),
}

impl WasmSource {
    /// The component's bytes.
    pub fn read(&self) -> std::io::Result<std::borrow::Cow<'static, [u8]>> {
        match self {
            WasmSource::File(path) => std::fs::read(path).map(Into::into),
            WasmSource::Embedded(p) => Ok(p.wasm.into()),
        }
    }

    /// The file, if the component is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            WasmSource::File(path) => Some(path),
            WasmSource::Embedded(_) => None,
        }
    }
}

impl std::fmt::Display for WasmSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WasmSource::File(path) => write!(f, "{}", path.display()),
            WasmSource::Embedded(p) => write!(f, "plugin `{}` (embedded)", p.name),
        }
    }
}

impl ComponentSection {
    /// Where the component's bytes come from. The manifest was validated, so exactly one of
    /// `source` and a known `plugin` is set.
    pub fn wasm(&self, manifest: &Manifest) -> WasmSource {
        match (&self.source, self.plugin.as_deref().and_then(plugins::find)) {
            (_, Some(plugin)) => WasmSource::Embedded(plugin),
            (Some(source), None) => WasmSource::File(manifest.resolve(source)),
            (None, None) => WasmSource::File(manifest.dir.clone()),
        }
    }
}

/// Per-instance limits. Example: `limits = { memory = "64MiB", timeout = "2s" }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most linear memory one instance may use; growth past it fails inside the guest.
    pub memory: Size,
    /// Wall-clock time one request may spend in the guest; past it the guest is stopped and the
    /// client gets 504.
    pub timeout: HumanDuration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: Size(64 * 1024 * 1024),
            timeout: HumanDuration(Duration::from_secs(5)),
        }
    }
}

/// What a component may use beyond computing. Everything is denied unless granted here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Names from `[variables]` this component may read through `flagon:app/config`.
    /// Example: `grants = { variables = ["api_token"] }`
    pub variables: Option<Vec<String>>,
    /// Password hashing, secure random numbers and HMAC through `flagon:app/crypto`.
    /// Example: `grants = { crypto = true }`
    #[serde(default)]
    pub crypto: bool,
    /// Rendering the app's templates through `flagon:app/templates`.
    /// Example: `grants = { templates = true }`
    #[serde(default)]
    pub templates: bool,
    /// The cookie session through `flagon:app/session`; its routes get CSRF protection.
    /// Example: `grants = { session = true }`
    #[serde(default)]
    pub session: bool,
    /// Names of `[kv.<name>]` stores this component may use through `flagon:app/kv`.
    /// Example: `grants = { kv = ["cache"] }`
    pub kv: Option<Vec<String>>,
    /// Names of `[databases.<name>]` this component may use through `flagon:app/sql`.
    /// Example: `grants = { sql = ["main"] }`
    pub sql: Option<Vec<String>>,
    /// Host directories the guest sees through WASI, read-only unless `write = true`.
    /// Keys are the guest paths. Example: `grants = { files = { "/data" = "./data" } }` or
    /// `files = { "/uploads" = { path = "./uploads", write = true } }`
    #[serde(default)]
    pub files: BTreeMap<String, FileGrant>,
    /// Origins this component may send HTTP requests to through `flagon:app/outbound-http`:
    /// `scheme://host[:port]`, `*.` for subdomains. A host name that resolves to a private or
    /// loopback address is refused unless the grant names that IP literal or sets
    /// `allow_private = true`. Example: `grants = { outbound = ["https://api.example.com",
    /// { origin = "http://search.internal:9200", allow_private = true }] }`
    pub outbound: Option<Vec<OutboundGrant>>,
}

/// One origin granted for outbound HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OutboundGrant {
    /// `"https://api.example.com"`
    Origin(String),
    /// `{ origin = "http://search.internal:9200", allow_private = true }`
    Detailed {
        origin: String,
        #[serde(default)]
        allow_private: bool,
    },
}

impl OutboundGrant {
    /// The grant as the outbound client's allow-list entry.
    pub fn parse(&self) -> std::result::Result<AllowedOrigin, InvalidOrigin> {
        match self {
            OutboundGrant::Origin(o)
            | OutboundGrant::Detailed {
                origin: o,
                allow_private: false,
            } => AllowedOrigin::parse(o),
            OutboundGrant::Detailed { origin, .. } => AllowedOrigin::parse_with_private(origin),
        }
    }
}

/// A directory granted to a component.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileGrant {
    /// Read-only: `"/data" = "./data"`.
    ReadOnly(PathBuf),
    /// `"/data" = { path = "./data", write = true }`.
    Dir {
        path: PathBuf,
        #[serde(default)]
        write: bool,
    },
}

impl FileGrant {
    pub fn path(&self) -> &Path {
        match self {
            FileGrant::ReadOnly(p) | FileGrant::Dir { path: p, .. } => p,
        }
    }

    pub fn writable(&self) -> bool {
        matches!(self, FileGrant::Dir { write: true, .. })
    }
}

impl Manifest {
    /// `source` or `plugin`: exactly one, and a plugin that exists and is a component.
    fn validate_source(&self, key: &str, c: &ComponentSection) -> Result<()> {
        match (&c.source, &c.plugin) {
            (Some(_), Some(_)) => Err(self.invalid(
                format!("{key}.plugin"),
                "a component has either a `source` or a `plugin`, not both",
                "remove `source` to use the embedded plugin, or `plugin` to use the file",
            )),
            (None, None) => Err(self.invalid(
                key.to_string(),
                "the component has no `source`",
                "point `source` at the component's `.wasm` file, or name an embedded plugin with `plugin = \"...\"`",
            )),
            (Some(source), None) if source.as_os_str().is_empty() => Err(self.invalid(
                format!("{key}.source"),
                "the source path is empty",
                "point `source` at the component's `.wasm` file",
            )),
            (Some(_), None) => Ok(()),
            (None, Some(name)) => {
                let Some(plugin) = plugins::find(name) else {
                    return Err(self.invalid(
                        format!("{key}.plugin"),
                        format!("there is no embedded plugin `{name}`"),
                        format!(
                            "use one of {}, or `source` for a component of your own",
                            plugins::component_names()
                        ),
                    ));
                };
                if plugin.kind == PluginKind::SqlAdapter {
                    return Err(self.invalid(
                        format!("{key}.plugin"),
                        format!("`{name}` is a DB adapter, not a component of the app"),
                        format!("use it as `adapter = \"{name}\"` in a `[databases.<name>]` table"),
                    ));
                }
                for (field, set) in [("build", c.build.is_some()), ("workdir", c.workdir.is_some())] {
                    if set {
                        return Err(self.invalid(
                            format!("{key}.{field}"),
                            "an embedded plugin is not built",
                            format!("remove `{field}`"),
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// Checks every `[components.<id>]`: limits, grants naming declared stores and variables, granted directories and origins.
    pub(super) fn validate_components(&self) -> Result<()> {
        for (id, c) in &self.components {
            let key = format!("components.{id}");
            self.validate_source(&key, c)?;
            if c.world == Some(World::WasiHttp) && self.role(id) != super::ComponentRole::Handler {
                return Err(self.invalid(
                    format!("{key}.world"),
                    "a `wasi-http` component answers routes; it cannot be an authenticator or middleware",
                    "remove it from `[auth]` and `[[middleware]]`, or build it for the `flagon:app/authenticator` or `middleware` world",
                ));
            }
            if c.limits.memory.0 < 64 * 1024 || c.limits.memory.0 > 4 * 1024 * 1024 * 1024 {
                return Err(self.invalid(
                    format!("{key}.limits.memory"),
                    format!("`{}` is outside 64KiB..4GiB", c.limits.memory),
                    "set e.g. `limits = { memory = \"64MiB\" }`",
                ));
            }
            if c.limits.timeout.0 < Duration::from_millis(1) || c.limits.timeout.0 > HOUR {
                return Err(self.invalid(
                    format!("{key}.limits.timeout"),
                    format!("`{}` is outside 1ms..1h", c.limits.timeout),
                    "set e.g. `limits = { timeout = \"2s\" }`",
                ));
            }
            for (guest, grant) in &c.grants.files {
                let ok = guest.starts_with('/')
                    && guest.len() > 1
                    && !guest.ends_with('/')
                    && guest
                        .split('/')
                        .skip(1)
                        .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
                if !ok {
                    return Err(self.invalid(
                        format!("{key}.grants.files"),
                        format!("`{guest}` is not a guest directory path"),
                        "write an absolute path other than `/`, e.g. `\"/data\" = \"./data\"`",
                    ));
                }
                let host = self.resolve(grant.path());
                if !host.is_dir() {
                    return Err(self.invalid(
                        format!("{key}.grants.files.\"{guest}\""),
                        format!("`{}` is not a directory", host.display()),
                        "create it, or point the grant at an existing directory",
                    ));
                }
            }
            for (i, grant) in c.grants.outbound.iter().flatten().enumerate() {
                if let Err(e) = grant.parse() {
                    return Err(self.invalid(
                        format!("{key}.grants.outbound[{i}]"),
                        e.to_string(),
                        "write an origin such as `\"https://api.example.com\"` or `\"https://*.example.com\"` (no path, no user info)",
                    ));
                }
            }
            for name in c.grants.kv.iter().flatten() {
                if !self.kv.contains_key(name) {
                    return Err(self.invalid(
                        format!("{key}.grants.kv"),
                        format!("unknown key-value store `{name}`"),
                        format!(
                            "declare it, e.g. `[kv.{name}]` (an embedded store needs no settings)"
                        ),
                    ));
                }
            }
            for name in c.grants.sql.iter().flatten() {
                if !self.databases.contains_key(name) {
                    return Err(self.invalid(
                        format!("{key}.grants.sql"),
                        format!("unknown database `{name}`"),
                        format!(
                            "declare it, e.g. `[databases.{name}]` with `adapter = \"sqlite\"`"
                        ),
                    ));
                }
            }
            for name in c.grants.variables.iter().flatten() {
                if !self.variables.contains_key(name) {
                    return Err(self.invalid(
                        format!("{key}.grants.variables"),
                        format!("unknown variable `{name}`"),
                        format!(
                            "declare it in `[variables]`, e.g. `{name} = {{ env = \"{}\" }}`",
                            name.to_uppercase()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
