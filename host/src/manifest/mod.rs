//! `flagon.toml`: the app manifest, parsed strictly and validated before anything runs.
//!
//! Every table denies unknown keys, sizes and durations are validated newtypes, and every error
//! names the file, the key, the bad value and how to fix it. One module per section, each with
//! its schema and, beside it, its validation (`Manifest::validate_<section>`); this module
//! holds the whole manifest, parsing, and the checks' order.

mod admin;
mod app;
mod auth;
mod components;
mod database_url;
mod databases;
mod kv;
pub mod origin;
mod routes;
mod security;
mod server;
mod session;
mod statics;
mod values;
mod variables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use admin::{AdminSection, admin_port_clash};
pub use app::AppSection;
pub use auth::{AuthMode, AuthSection, ComponentRole, MiddlewareSection};
pub use components::{
    ComponentSection, FileGrant, Grants, Limits, OutboundGrant, WasmSource, World,
};
pub use databases::{AdapterKind, DatabaseSection, TlsMode};
pub use kv::{KvBackendKind, KvSection};
pub use routes::RouteSection;
pub use security::{DEFAULT_CSP, SecuritySection};
pub use server::{ServerSection, default_cache_dir};
pub use session::{SameSiteSetting, SessionSection};
pub use statics::{StaticSection, TemplatesSection};
use values::Id;
pub use values::{HumanDuration, IpNetwork, Method, Size};
pub use variables::{Variable, VariableSection, read_env_file};

/// The manifest file name looked up in an app directory.
pub const MANIFEST_FILE: &str = "flagon.toml";

/// The longest any configured timeout may be.
const HOUR: Duration = Duration::from_secs(3600);
/// Most `{parameters}` in one route path (the router's own limit is a little higher).
const MAX_ROUTE_PARAMS: usize = 16;

/// A manifest error: where it is, what is wrong, and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read `{file}`: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid manifest `{file}`: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("invalid manifest `{file}`: `{key}`: {message}\n  help: {help}")]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
        help: String,
    },
}

pub type Result<T, E = ManifestError> = std::result::Result<T, E>;

/// A parsed and validated manifest, with paths resolved against its directory.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file itself.
    pub file: PathBuf,
    /// The directory that relative paths in the manifest are resolved against.
    pub dir: PathBuf,
    pub app: AppSection,
    pub server: ServerSection,
    pub components: BTreeMap<String, ComponentSection>,
    pub routes: Vec<RouteSection>,
    pub variables: BTreeMap<String, VariableSection>,
    pub templates: TemplatesSection,
    pub statics: Vec<StaticSection>,
    pub session: SessionSection,
    pub security: SecuritySection,
    /// `[errors]`: status code -> template name.
    pub errors: BTreeMap<u16, String>,
    pub kv: BTreeMap<String, KvSection>,
    pub databases: BTreeMap<String, DatabaseSection>,
    pub auth: AuthSection,
    /// `[[middleware]]`, in order.
    pub middleware: Vec<MiddlewareSection>,
    /// `[admin]`: the admin listener, if the manifest asks for one.
    pub admin: Option<AdminSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    app: AppSection,
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    components: BTreeMap<Id, ComponentSection>,
    #[serde(default)]
    routes: Vec<RouteSection>,
    #[serde(default)]
    variables: BTreeMap<Id, VariableSection>,
    #[serde(default)]
    templates: TemplatesSection,
    #[serde(default, rename = "static")]
    statics: Vec<StaticSection>,
    #[serde(default)]
    session: SessionSection,
    #[serde(default)]
    security: SecuritySection,
    #[serde(default)]
    errors: BTreeMap<String, String>,
    #[serde(default)]
    kv: BTreeMap<Id, KvSection>,
    #[serde(default)]
    databases: BTreeMap<Id, DatabaseSection>,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    middleware: Vec<MiddlewareSection>,
    admin: Option<AdminSection>,
}

impl Manifest {
    /// Load the manifest at `path`: a `flagon.toml` file, or a directory containing one.
    pub fn load(path: &Path) -> Result<Self> {
        let file = if path.is_dir() {
            path.join(MANIFEST_FILE)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&file, &text)
    }

    /// Parse and validate manifest text; `file` is used for messages and relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<Self> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            file: file.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let dir = file
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."));
        let mut errors = BTreeMap::new();
        for (code, template) in raw.errors {
            match code.parse::<u16>() {
                Ok(n) if (400..=599).contains(&n) => {
                    errors.insert(n, template);
                }
                _ => {
                    return Err(ManifestError::Invalid {
                        file: file.to_path_buf(),
                        key: format!("errors.{code}"),
                        message: format!("`{code}` is not an error status (400-599)"),
                        help: "write e.g. `404 = \"errors/404.html\"` under `[errors]`".into(),
                    });
                }
            }
        }
        let manifest = Manifest {
            file: file.to_path_buf(),
            dir,
            app: raw.app,
            server: raw.server,
            components: raw.components.into_iter().map(|(k, v)| (k.0, v)).collect(),
            routes: raw.routes,
            variables: raw.variables.into_iter().map(|(k, v)| (k.0, v)).collect(),
            templates: raw.templates,
            statics: raw.statics,
            session: raw.session,
            security: raw.security,
            errors,
            kv: raw.kv.into_iter().map(|(k, v)| (k.0, v)).collect(),
            databases: raw.databases.into_iter().map(|(k, v)| (k.0, v)).collect(),
            auth: raw.auth,
            middleware: raw.middleware,
            admin: raw.admin,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    fn invalid(
        &self,
        key: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> ManifestError {
        ManifestError::Invalid {
            file: self.file.clone(),
            key: key.into(),
            message: message.into(),
            help: help.into(),
        }
    }

    fn validate(&self) -> Result<()> {
        self.validate_app()?;
        self.validate_server()?;
        self.validate_admin()?;
        self.validate_components()?;
        self.validate_routes()?;
        self.validate_auth()?;
        self.validate_statics()?;
        self.validate_session()?;
        self.validate_security()?;
        self.validate_kv()?;
        self.validate_databases()?;
        self.validate_variables()
    }

    /// Whether any component is granted the session.
    pub fn uses_session(&self) -> bool {
        self.components.values().any(|c| c.grants.session)
    }

    /// The largest `limits.memory` of any component or database adapter (the engine's
    /// per-memory maximum).
    pub fn max_component_memory(&self) -> u64 {
        let handlers = self.components.values().map(|c| c.limits.memory.0);
        let adapters = self.databases.values().map(DatabaseSection::memory);
        handlers
            .chain(adapters)
            .max()
            .unwrap_or(Limits::default().memory.0)
    }

    /// Instances one request may hold at once: its handler, each middleware around it (kept
    /// from `before` to `after`), and one authenticator at a time.
    pub fn instances_per_request(&self) -> u32 {
        let middleware = u32::try_from(self.middleware.len()).unwrap_or(u32::MAX);
        let authenticator = u32::from(
            self.components
                .keys()
                .any(|id| self.role(id) == ComponentRole::Authenticator),
        );
        1u32.saturating_add(middleware)
            .saturating_add(authenticator)
    }

    /// Adapter instances the databases keep alive, beside the handlers' per-request ones.
    pub fn adapter_instances(&self) -> u32 {
        self.databases.values().map(DatabaseSection::pool).sum()
    }

    /// The precompiled-component cache directory: `[server] cache_dir`, else the default
    /// (`$FLAGON_CACHE_DIR`, `$XDG_CACHE_HOME/flagon`, `~/.cache/flagon`).
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.server
            .cache_dir
            .as_ref()
            .map(|p| self.resolve(p))
            .or_else(default_cache_dir)
    }

    /// Resolve a path from the manifest against the manifest's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(Path::new("app/flagon.toml"), text)
    }

    const MINIMAL: &str = r#"
[app]
name = "t"
[components.hello]
source = "hello.wasm"
[[routes]]
path = "/hello/{name}"
component = "hello"
"#;

    #[test]
    fn minimal_manifest_gets_defaults() {
        let m = parse(MINIMAL).unwrap();
        assert_eq!(m.server.max_body, Size(1 << 20));
        assert_eq!(m.routes[0].methods, vec![Method(http::Method::GET)]);
        assert_eq!(m.components["hello"].limits.memory, Size(64 << 20));
        assert_eq!(
            m.resolve(Path::new("hello.wasm")),
            PathBuf::from("app/hello.wasm")
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_choices() {
        let err = parse(&MINIMAL.replace("source =", "sauce = \"x\"\nsource ="))
            .unwrap_err()
            .to_string();
        assert!(err.contains("app/flagon.toml"), "{err}");
        assert!(err.contains("unknown field `sauce`"), "{err}");
        assert!(err.contains("source"), "{err}");
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn bad_size_and_duration_say_how_to_write_them() {
        let err = parse(&format!("{MINIMAL}\n[server]\nmax_body = \"lots\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid size `lots`") && err.contains("64MiB"),
            "{err}"
        );
        let err = parse(&MINIMAL.replace(
            "source = \"hello.wasm\"",
            "source = \"h.wasm\"\nlimits = { timeout = \"soon\" }",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("invalid duration `soon`"), "{err}");
    }

    #[test]
    fn a_component_is_a_file_or_an_embedded_plugin() {
        let m = parse(&MINIMAL.replace("source = \"hello.wasm\"", "plugin = \"cors\"")).unwrap();
        match m.components["hello"].wasm(&m) {
            WasmSource::Embedded(p) => assert_eq!(p.name, "cors"),
            other => panic!("{other:?}"),
        }
        let cases = [
            (
                "plugin = \"corz\"",
                "components.hello.plugin",
                "\"auth-jwt\"",
            ),
            (
                "source = \"hello.wasm\"\nplugin = \"cors\"",
                "components.hello.plugin",
                "not both",
            ),
            (
                "plugin = \"sqlite\"",
                "components.hello.plugin",
                "adapter = \"sqlite\"",
            ),
            (
                "plugin = \"cors\"\nbuild = \"make\"",
                "components.hello.build",
                "not built",
            ),
            ("limits = {}", "components.hello", "has no `source`"),
        ];
        for (table, key, says) in cases {
            let err = parse(&MINIMAL.replace("source = \"hello.wasm\"", table))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains(says), "{table}: {err}");
        }
    }

    #[test]
    fn dev_random_variables_are_made_up_in_development_only() {
        let m = parse(&format!(
            "{MINIMAL}\n[variables]\npepper = {{ env = \"PEPPER\", secret = true, dev_random = true }}\n"
        ))
        .unwrap();
        let a = m.resolve_variables_for(|_| None, true).unwrap()["pepper"]
            .value
            .clone();
        let b = m.resolve_variables_for(|_| None, true).unwrap()["pepper"]
            .value
            .clone();
        // Made once per process and app: a reload keeps what was made with it working.
        assert!(a.len() >= 43 && a == b, "{a} {b}");
        let mut other = m.clone();
        other.file = other.file.with_file_name("other.toml");
        let c = other.resolve_variables_for(|_| None, true).unwrap()["pepper"]
            .value
            .clone();
        assert_ne!(a, c, "another app gets its own");
        let set = m
            .resolve_variables_for(|_| Some("given".into()), true)
            .unwrap();
        assert_eq!(set["pepper"].value, "given");
        let err = m.resolve_variables(|_| None).unwrap_err().to_string();
        assert!(err.contains("only `--dev` makes one up"), "{err}");
        let err = parse(&format!(
            "{MINIMAL}\n[variables]\npepper = {{ default = \"x\", dev_random = true }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("variables.pepper.dev_random"), "{err}");
    }

    #[test]
    fn unknown_component_in_route_lists_known_ones() {
        let err = parse(&MINIMAL.replace("component = \"hello\"", "component = \"helo\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`routes[0].component`"), "{err}");
        assert!(err.contains("unknown component `helo`"), "{err}");
        assert!(err.contains("`hello`"), "{err}");
    }

    #[test]
    fn colon_params_are_explained() {
        let err = parse(&MINIMAL.replace("{name}", ":name"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("{param}"), "{err}");
    }

    #[test]
    fn bad_method_and_ids() {
        let err = parse(&MINIMAL.replace(
            "component = \"hello\"",
            "component = \"hello\"\nmethods = [\"get\"]",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("invalid method `get`"), "{err}");
        let err = parse(&MINIMAL.replace("[components.hello]", "[components.Hello]"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid id `Hello`"), "{err}");
    }

    #[test]
    fn grants_must_name_declared_variables() {
        let text = MINIMAL.replace(
            "source = \"hello.wasm\"",
            "source = \"h.wasm\"\ngrants = { variables = [\"token\"] }",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("components.hello.grants.variables"), "{err}");
        assert!(err.contains("[variables]"), "{err}");
    }

    #[test]
    fn required_variables_say_where_they_are_looked_up() {
        let text = format!(
            "{MINIMAL}\n[variables]\ntoken = {{ env = \"API_TOKEN\", secret = true }}\nhi = {{ default = \"x\" }}\n"
        );
        let m = parse(&text).unwrap();
        let err = m.resolve_variables(|_| None).unwrap_err().to_string();
        assert!(err.contains("`API_TOKEN` is not set"), "{err}");
        let vars = m
            .resolve_variables(|k| (k == "API_TOKEN").then(|| "s3cret".to_string()))
            .unwrap();
        assert_eq!(vars["token"].value, "s3cret");
        assert_eq!(vars["hi"].value, "x");
        assert!(!format!("{vars:?}").contains("s3cret"));
    }

    #[test]
    fn limits_have_upper_bounds() {
        let err = parse(&format!("{MINIMAL}\n[server]\nmax_headers = 100000000\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.max_headers") && err.contains("1..=10000"),
            "{err}"
        );
        let err = parse(&MINIMAL.replace(
            "source = \"hello.wasm\"",
            "source = \"h.wasm\"\nlimits = { timeout = \"100000000 years\" }",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("limits.timeout"), "{err}");
        let many: String = (0..20).map(|i| format!("/{{p{i}}}")).collect();
        let err = parse(&MINIMAL.replace("/hello/{name}", &many))
            .unwrap_err()
            .to_string();
        assert!(err.contains("20 parameters"), "{err}");
    }

    #[test]
    fn variables_from_files_win_over_defaults_and_lose_to_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "from-file\n").unwrap();
        let text = format!(
            "{MINIMAL}\n[variables]\ntoken = {{ env = \"TOKEN\", file = \"token\", default = \"d\", secret = true }}\n\
             missing = {{ file = \"nope\" }}\n"
        );
        let m = Manifest::parse(&dir.path().join("flagon.toml"), &text).unwrap();
        let err = m.resolve_variables(|_| None).unwrap_err().to_string();
        assert!(
            err.contains("variables.missing") && err.contains("does not exist"),
            "{err}"
        );
        let text = text.replace("missing = { file = \"nope\" }\n", "");
        let m = Manifest::parse(&dir.path().join("flagon.toml"), &text).unwrap();
        assert_eq!(
            m.resolve_variables(|_| None).unwrap()["token"].value,
            "from-file"
        );
        let from_env = m.resolve_variables(|k| (k == "TOKEN").then(|| "from-env".into()));
        assert_eq!(from_env.unwrap()["token"].value, "from-env");
        std::fs::remove_file(dir.path().join("token")).unwrap();
        assert_eq!(m.resolve_variables(|_| None).unwrap()["token"].value, "d");
    }

    #[test]
    fn duplicate_route_names_are_refused() {
        let text = format!(
            "{MINIMAL}name = \"a\"\n[[routes]]\npath = \"/b\"\ncomponent = \"hello\"\nname = \"a\"\n"
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("routes[1].name") && err.contains("used twice"),
            "{err}"
        );
    }
}
