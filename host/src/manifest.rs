//! `flagon.toml`: the app manifest, parsed strictly and validated before anything runs.
//!
//! Every table denies unknown keys, sizes and durations are validated newtypes, and every error
//! names the file, the key, the bad value and how to fix it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

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
}

/// `[app]`: the application itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// Example: `name = "todo"`
    pub name: String,
}

/// `[server]`: the listener and the limits that protect it. Every limit has a safe default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Example: `listen = "0.0.0.0:8080"` (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Largest request body accepted, unless a route sets its own (413 past it).
    /// Example: `max_body = "1MiB"`
    pub max_body: Size,
    /// Largest request head (request line + headers) accepted (431 past it). At least 8KiB.
    /// Example: `max_header_bytes = "16KiB"`
    pub max_header_bytes: Size,
    /// Most header fields in one request (431 past it). Example: `max_headers = 100`
    pub max_headers: usize,
    /// Time a client has to send a complete request head; slower connections are closed
    /// (slowloris protection). Example: `header_read_timeout = "10s"`
    pub header_read_timeout: HumanDuration,
    /// Time a client has to send the request body once its head is in; slower clients get 408.
    /// Example: `body_read_timeout = "30s"`
    pub body_read_timeout: HumanDuration,
    /// Open connections accepted at once; further clients wait in the listen backlog.
    /// Example: `max_connections = 4096`
    pub max_connections: usize,
    /// Component instances alive at once, across all components (the pooling allocator's
    /// size); requests past it get 503. Example: `max_instances = 1000`
    pub max_instances: u32,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    /// Example: `shutdown_grace = "30s"`
    pub shutdown_grace: HumanDuration,
    /// Where precompiled components are cached (default: `$XDG_CACHE_HOME/flagon` or
    /// `~/.cache/flagon`). Example: `cache_dir = "/var/cache/flagon"`
    pub cache_dir: Option<PathBuf>,
    /// Host names (and `*.domain` wildcards) this app answers to; a request whose `Host`
    /// matches none gets 400. Empty (the default) accepts any host: set it in production.
    /// Example: `allowed_hosts = ["example.com", "*.example.com"]`
    pub allowed_hosts: Vec<String>,
    /// Addresses of reverse proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` /
    /// `X-Forwarded-Host` headers are believed; from anyone else they are ignored.
    /// Example: `trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]`
    pub trusted_proxies: Vec<IpNetwork>,
    /// Most fields (parts) in one urlencoded or multipart form (400 past it).
    /// Example: `max_form_parts = 100`
    pub max_form_parts: usize,
    /// Largest non-file form field value (400 past it); uploaded files are bounded by the
    /// route's `max_body`. Example: `max_form_field = "64KiB"`
    pub max_form_field: Size,
}

/// An IP network such as `"10.0.0.0/8"`, or one address such as `"127.0.0.1"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IpNetwork(pub ipnet::IpNet);

impl TryFrom<String> for IpNetwork {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        let t = s.trim();
        t.parse::<ipnet::IpNet>()
            .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map(|n| IpNetwork(n.trunc()))
            .map_err(|_| {
                format!(
                    "invalid address `{s}`: write an IP address or a network such as \"10.0.0.0/8\""
                )
            })
    }
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body: Size(1024 * 1024),
            max_header_bytes: Size(16 * 1024),
            max_headers: 100,
            header_read_timeout: HumanDuration(Duration::from_secs(10)),
            body_read_timeout: HumanDuration(Duration::from_secs(30)),
            max_connections: 4096,
            max_instances: 1000,
            shutdown_grace: HumanDuration(Duration::from_secs(30)),
            cache_dir: None,
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            max_form_parts: 100,
            max_form_field: Size(64 * 1024),
        }
    }
}

/// `[templates]`: the app's minijinja templates, rendered by the host with auto-escaping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesSection {
    /// Directory of templates, relative to the manifest (default `templates`; it is optional
    /// unless a component is granted `templates`). Example: `dir = "templates"`
    pub dir: PathBuf,
}

impl Default for TemplatesSection {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("templates"),
        }
    }
}

/// `[[static]]`: a directory of files served by the host under a URL prefix.
/// Example: `[[static]]` `url = "/static"` `dir = "static"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSection {
    /// URL prefix, starting with `/`. Example: `url = "/static"`
    pub url: String,
    /// Directory served, relative to the manifest. Example: `dir = "static"`
    pub dir: PathBuf,
    /// `Cache-Control` for these files (default `no-cache`: always revalidate, which the ETag
    /// makes cheap). Example: `cache_control = "public, max-age=86400"`
    pub cache_control: Option<String>,
}

/// `[session]`: the host-owned cookie session (encrypted and authenticated; see the security
/// model). Used by components granted `session`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSection {
    /// The `[variables]` entry holding the secret key (at least 32 bytes, `secret = true`).
    /// Required outside development mode. Example: `secret = "session_key"`
    pub secret: Option<String>,
    /// Older keys: cookies made with them are still read, but never written (key rotation).
    /// Example: `fallback_secrets = ["old_session_key"]`
    pub fallback_secrets: Vec<String>,
    /// Cookie name; `__Host-` is prepended when the cookie is `Secure`.
    /// Example: `cookie_name = "session"`
    pub cookie_name: String,
    /// How long a session lasts after its last change. Example: `max_age = "14d"`
    pub max_age: HumanDuration,
    /// `SameSite` attribute: `"lax"` (default) or `"strict"`. Example: `same_site = "strict"`
    pub same_site: SameSiteSetting,
    /// Largest cookie (name and value); storing more is refused with an error to the guest.
    /// Example: `max_size = "4000B"`
    pub max_size: Size,
}

impl Default for SessionSection {
    fn default() -> Self {
        Self {
            secret: None,
            fallback_secrets: Vec::new(),
            cookie_name: "session".into(),
            max_age: HumanDuration(Duration::from_secs(14 * 24 * 3600)),
            same_site: SameSiteSetting::Lax,
            max_size: Size(4000),
        }
    }
}

/// The session cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSiteSetting {
    Lax,
    Strict,
}

/// `[security]`: response headers the host adds unless the guest set them. An empty string
/// turns a header off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
    /// Example: `content_security_policy = "default-src 'self'; img-src 'self' data:"`
    pub content_security_policy: String,
    /// `X-Frame-Options`: `"DENY"` (default), `"SAMEORIGIN"` or `""`.
    pub frame_options: String,
    /// Example: `referrer_policy = "no-referrer"`
    pub referrer_policy: String,
    /// Example: `cross_origin_opener_policy = "same-origin"`
    pub cross_origin_opener_policy: String,
    /// Send `Strict-Transport-Security` with this max-age (only set it when the site is served
    /// over HTTPS). Example: `hsts = "365d"`
    pub hsts: Option<HumanDuration>,
    /// Add `includeSubDomains` to HSTS. Example: `hsts_include_subdomains = true`
    pub hsts_include_subdomains: bool,
    /// Origins that guests may redirect to besides relative paths.
    /// Example: `redirect_origins = ["https://accounts.example.com"]`
    pub redirect_origins: Vec<String>,
}

/// The default policy: same-origin resources only, no plugins, no inline script or style, no
/// framing, forms post only to this origin.
pub const DEFAULT_CSP: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

impl Default for SecuritySection {
    fn default() -> Self {
        Self {
            content_security_policy: DEFAULT_CSP.into(),
            frame_options: "DENY".into(),
            referrer_policy: "strict-origin-when-cross-origin".into(),
            cross_origin_opener_policy: "same-origin".into(),
            hsts: None,
            hsts_include_subdomains: false,
            redirect_origins: Vec::new(),
        }
    }
}

/// `[kv.<name>]`: a named key-value store that components can be granted.
/// Example: `[kv.cache]` `backend = "redis"` `url = "redis_url"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvSection {
    /// `"embedded"` (default: a file under `path`, no setup) or `"redis"`.
    #[serde(default)]
    pub backend: KvBackendKind,
    /// Embedded: directory holding the store's file, relative to the manifest
    /// (default `data/kv`). Example: `path = "/var/lib/myapp/kv"`
    pub path: Option<PathBuf>,
    /// Redis: the `[variables]` entry holding the URL (it may carry a password).
    /// Example: `url = "redis_url"`
    pub url: Option<String>,
    /// Redis: prefix put before every key (default `flagon:<app>:<store>:`).
    pub prefix: Option<String>,
    /// Largest key in bytes (default 512). Example: `max_key = 256`
    pub max_key: Option<usize>,
    /// Largest value (default 1MiB). Example: `max_value = "64KiB"`
    pub max_value: Option<Size>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvBackendKind {
    #[default]
    Embedded,
    Redis,
}

/// `[components.<id>]`: a Wasm component and what it may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSection {
    /// Path of the `.wasm` component, relative to the manifest.
    /// Example: `source = "target/wasm32-wasip2/release/hello.wasm"`
    pub source: PathBuf,
    /// Shell command that builds `source`, run by `flagon build` and `flagon serve --build`.
    /// Example: `build = "cargo build --release --target wasm32-wasip2"`
    pub build: Option<String>,
    /// Directory the build command runs in, relative to the manifest (default: the manifest's).
    /// Example: `workdir = "components/hello"`
    pub workdir: Option<PathBuf>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub grants: Grants,
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
    pub fn parse(
        &self,
    ) -> std::result::Result<crate::outbound::AllowedOrigin, crate::outbound::OutboundError> {
        match self {
            OutboundGrant::Origin(o)
            | OutboundGrant::Detailed {
                origin: o,
                allow_private: false,
            } => crate::outbound::AllowedOrigin::parse(o),
            OutboundGrant::Detailed { origin, .. } => {
                crate::outbound::AllowedOrigin::parse_with_private(origin)
            }
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

/// `[[routes]]`: a path pattern answered by a component.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// `{name}` matches one segment, `{*name}` the rest of the path.
    /// Example: `path = "/users/{id}"`
    pub path: String,
    /// Methods this route answers (default `["GET"]`); HEAD is answered from GET.
    /// Example: `methods = ["GET", "POST"]`
    #[serde(default = "default_methods")]
    pub methods: Vec<Method>,
    /// The `[components.<id>]` that handles it. Example: `component = "hello"`
    pub component: String,
    /// A unique name, passed to the guest and used to build URLs. Example: `name = "user"`
    pub name: Option<String>,
    /// Body limit for this route, overriding `[server] max_body`. Example: `max_body = "10MiB"`
    pub max_body: Option<Size>,
    /// CSRF protection for unsafe methods when the component uses the session (default
    /// true). Turn it off only for routes authenticated by something other than the cookie,
    /// e.g. an API token. Example: `csrf = false`
    #[serde(default = "yes")]
    pub csrf: bool,
}

fn yes() -> bool {
    true
}

fn default_methods() -> Vec<Method> {
    vec![Method(http::Method::GET)]
}

/// `[variables.<name>]`: a value components can be granted.
/// Example: `greeting = { default = "Hello", env = "GREETING" }`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableSection {
    /// Environment variable to read the value from; wins over `default` when set.
    pub env: Option<String>,
    /// File to read the value from when `env` is unset (relative to the manifest), e.g. a
    /// mounted Kubernetes or Docker secret; one trailing newline is dropped.
    /// Example: `file = "/run/secrets/api_token"`
    pub file: Option<PathBuf>,
    /// Value used when neither `env` nor `file` provides one. A variable without a default is
    /// required.
    pub default: Option<String>,
    /// Secret values are never printed by Flagon (logs, `flagon check`).
    #[serde(default)]
    pub secret: bool,
}

impl fmt::Debug for VariableSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VariableSection")
            .field("env", &self.env)
            .field("file", &self.file)
            .field(
                "default",
                &self.default.as_ref().map(|d| {
                    if self.secret {
                        "<redacted>"
                    } else {
                        d.as_str()
                    }
                }),
            )
            .field("secret", &self.secret)
            .finish()
    }
}

/// A size such as `"64MiB"`, `"512KiB"` or `"1MB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Size(pub u64);

impl TryFrom<String> for Size {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        bytesize::ByteSize::from_str(s.trim())
            .map(|b| Size(b.as_u64()))
            .map_err(|_| {
                format!(
                    "invalid size `{s}`: write a number and a unit, e.g. \"64MiB\" or \"512KiB\""
                )
            })
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bytesize::ByteSize(self.0).display().iec())
    }
}

/// A duration such as `"2s"`, `"500ms"` or `"1m 30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HumanDuration(pub Duration);

impl TryFrom<String> for HumanDuration {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| format!("invalid duration `{s}` ({e}): write e.g. \"2s\" or \"500ms\""))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// An HTTP method token, uppercase. Example: `"POST"`
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Method(pub http::Method);

impl TryFrom<String> for Method {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        if s.is_empty() || s.bytes().any(|b| !b.is_ascii_uppercase()) {
            return Err(format!(
                "invalid method `{s}`: write an uppercase method such as \"GET\" or \"POST\""
            ));
        }
        http::Method::from_bytes(s.as_bytes())
            .map(Method)
            .map_err(|_| format!("invalid method `{s}`"))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// A component or variable id: lowercase letters, digits, `-` and `_`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
struct Id(String);

impl TryFrom<String> for Id {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        let ok = s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok && s.len() <= 64 {
            Ok(Id(s))
        } else {
            Err(format!(
                "invalid id `{s}`: use lowercase letters, digits, `-` and `_`, starting with a letter (at most 64)"
            ))
        }
    }
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
        const MIN_HEADER_BYTES: u64 = 8 * 1024;
        if self.app.name.trim().is_empty() {
            return Err(self.invalid(
                "app.name",
                "the app name is empty",
                "set `name = \"myapp\"` in `[app]`",
            ));
        }
        let s = &self.server;
        if s.max_header_bytes.0 < MIN_HEADER_BYTES {
            return Err(self.invalid(
                "server.max_header_bytes",
                format!("`{}` is below the minimum of 8KiB", s.max_header_bytes),
                "set `max_header_bytes = \"8KiB\"` or more",
            ));
        }
        // Upper bounds keep a typo from exhausting memory or overflowing a deadline.
        for (key, value, max) in [
            ("server.max_headers", s.max_headers as u64, 10_000),
            (
                "server.max_connections",
                s.max_connections as u64,
                1_000_000,
            ),
            ("server.max_instances", u64::from(s.max_instances), 100_000),
        ] {
            if value == 0 || value > max {
                return Err(self.invalid(
                    key,
                    format!("`{value}` is outside 1..={max}"),
                    format!("remove `{key}` to use the default"),
                ));
            }
        }
        for (key, value, max) in [
            ("server.header_read_timeout", s.header_read_timeout, HOUR),
            ("server.body_read_timeout", s.body_read_timeout, HOUR),
            ("server.shutdown_grace", s.shutdown_grace, HOUR),
        ] {
            if value.0.is_zero() || value.0 > max {
                return Err(self.invalid(
                    key,
                    format!("`{value}` is outside 1ms..1h"),
                    format!("remove `{key}` to use the default"),
                ));
            }
        }

        for (id, c) in &self.components {
            let key = format!("components.{id}");
            if c.source.as_os_str().is_empty() {
                return Err(self.invalid(
                    format!("{key}.source"),
                    "the source path is empty",
                    "point `source` at the component's `.wasm` file",
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

        let mut names = BTreeSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            let key = format!("routes[{i}]");
            if !self.components.contains_key(&r.component) {
                let known = self
                    .components
                    .keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>();
                return Err(self.invalid(
                    format!("{key}.component"),
                    format!("unknown component `{}`", r.component),
                    if known.is_empty() {
                        format!("define `[components.{}]` with a `source`", r.component)
                    } else {
                        format!(
                            "define `[components.{}]` or use one of: {}",
                            r.component,
                            known.join(", ")
                        )
                    },
                ));
            }
            if !r.path.starts_with('/') {
                return Err(self.invalid(
                    format!("{key}.path"),
                    format!("route path `{}` does not start with `/`", r.path),
                    format!("write `path = \"/{}\"`", r.path),
                ));
            }
            if r.path.contains("/:") || r.path.starts_with(':') {
                return Err(self.invalid(
                    format!("{key}.path"),
                    format!("route path `{}` uses `:param`", r.path),
                    "write parameters as `{param}`, and the rest of the path as `{*rest}`",
                ));
            }
            let params = r.path.matches('{').count() - r.path.matches("{{").count() * 2;
            if params > MAX_ROUTE_PARAMS {
                return Err(self.invalid(
                    format!("{key}.path"),
                    format!("route path `{}` has {params} parameters", r.path),
                    format!("use at most {MAX_ROUTE_PARAMS} parameters per route"),
                ));
            }
            if r.methods.is_empty() {
                return Err(self.invalid(
                    format!("{key}.methods"),
                    "the list is empty",
                    "list at least one method, e.g. `methods = [\"GET\"]`, or remove the key for GET",
                ));
            }
            if let Some(name) = &r.name {
                if name.is_empty() {
                    return Err(self.invalid(
                        format!("{key}.name"),
                        "the name is empty",
                        "give the route a name or remove the key",
                    ));
                }
                if !names.insert(name.as_str()) {
                    return Err(self.invalid(
                        format!("{key}.name"),
                        format!("route name `{name}` is used twice"),
                        "give every route a unique name",
                    ));
                }
            }
        }

        self.validate_web()?;

        for (name, v) in &self.variables {
            if let Some(env) = &v.env
                && (env.is_empty() || env.contains('='))
            {
                return Err(self.invalid(
                    format!("variables.{name}.env"),
                    format!("invalid environment variable name `{env}`"),
                    "write the name of an environment variable, e.g. `env = \"API_TOKEN\"`",
                ));
            }
        }
        Ok(())
    }

    /// The `[static]`, `[session]`, `[security]`, `[errors]`, `[kv]` and host/proxy settings.
    fn validate_web(&self) -> Result<()> {
        let mut prefixes = BTreeSet::new();
        for (i, st) in self.statics.iter().enumerate() {
            let key = format!("static[{i}]");
            let u = &st.url;
            let bad = !u.starts_with('/')
                || u.len() < 2
                || u.ends_with('/')
                || u.contains(['{', '}', '?', '#', '%', '\\'])
                || u.split('/')
                    .skip(1)
                    .any(|seg| seg.is_empty() || seg == "." || seg == "..");
            if bad {
                return Err(self.invalid(
                    format!("{key}.url"),
                    format!("`{u}` is not a URL prefix"),
                    "write a path such as `url = \"/static\"` (not `/`, no trailing `/`)",
                ));
            }
            if !prefixes.insert(u.as_str()) {
                return Err(self.invalid(
                    format!("{key}.url"),
                    format!("`{u}` is mounted twice"),
                    "give every `[[static]]` mount its own `url`",
                ));
            }
            if let Some(r) = self
                .routes
                .iter()
                .find(|r| r.path == *u || r.path.starts_with(&format!("{u}/")))
            {
                return Err(self.invalid(
                    format!("{key}.url"),
                    format!(
                        "route `{}` lies under the static mount `{u}` and would never be reached",
                        r.path
                    ),
                    "move the route or the mount",
                ));
            }
            if let Some(cc) = &st.cache_control
                && http::HeaderValue::from_str(cc).is_err()
            {
                return Err(self.invalid(
                    format!("{key}.cache_control"),
                    format!("`{cc}` is not a valid header value"),
                    "write e.g. `cache_control = \"public, max-age=3600\"`",
                ));
            }
        }

        let session = &self.session;
        for (k, name) in session.secret.iter().map(|n| ("session.secret", n)).chain(
            session
                .fallback_secrets
                .iter()
                .map(|n| ("session.fallback_secrets", n)),
        ) {
            match self.variables.get(name) {
                None => {
                    return Err(self.invalid(
                        k,
                        format!("unknown variable `{name}`"),
                        format!(
                            "declare it: `[variables.{name}]` with `env = \"FLAGON_SESSION_KEY\"` and `secret = true`; generate a key with `openssl rand -base64 48`"
                        ),
                    ));
                }
                Some(v) if !v.secret => {
                    return Err(self.invalid(
                        k,
                        format!("variable `{name}` holds a key but is not marked secret"),
                        format!("add `secret = true` to `[variables.{name}]`"),
                    ));
                }
                Some(v) if v.default.is_some() => {
                    return Err(self.invalid(
                        k,
                        format!("variable `{name}` has a `default`, so the key would live in the manifest"),
                        format!("remove `default` from `[variables.{name}]` and set the key through `env` or `file`"),
                    ));
                }
                Some(_) => {}
            }
        }
        let name_ok = !session.cookie_name.is_empty()
            && session.cookie_name.len() <= 64
            && session
                .cookie_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok || session.cookie_name.starts_with("__") {
            return Err(self.invalid(
                "session.cookie_name",
                format!("`{}` is not a usable cookie name", session.cookie_name),
                "use letters, digits, `_` and `-` (Flagon adds the `__Host-` prefix itself)",
            ));
        }
        let max_age = session.max_age.0;
        if max_age < Duration::from_secs(60) || max_age > Duration::from_secs(400 * 24 * 3600) {
            return Err(self.invalid(
                "session.max_age",
                format!("`{}` is outside 1m..400d", session.max_age),
                "set e.g. `max_age = \"14d\"` (browsers cap cookies at 400 days)",
            ));
        }
        if !(256..=4096).contains(&session.max_size.0) {
            return Err(self.invalid(
                "session.max_size",
                format!("`{}` is outside 256B..4KiB", session.max_size),
                "remove `max_size` to use the default (browsers keep at most 4096 bytes per cookie)",
            ));
        }

        let sec = &self.security;
        for (k, v) in [
            (
                "security.content_security_policy",
                &sec.content_security_policy,
            ),
            ("security.referrer_policy", &sec.referrer_policy),
            (
                "security.cross_origin_opener_policy",
                &sec.cross_origin_opener_policy,
            ),
        ] {
            if http::HeaderValue::from_str(v).is_err() {
                return Err(self.invalid(
                    k,
                    format!("`{v}` is not a valid header value"),
                    "use printable ASCII on one line, or `\"\"` to send no header",
                ));
            }
        }
        if !matches!(sec.frame_options.as_str(), "DENY" | "SAMEORIGIN" | "") {
            return Err(self.invalid(
                "security.frame_options",
                format!(
                    "`{}` is not `DENY`, `SAMEORIGIN` or `\"\"`",
                    sec.frame_options
                ),
                "write `frame_options = \"SAMEORIGIN\"` to allow framing by your own pages",
            ));
        }
        if let Some(h) = sec.hsts
            && (h.0.is_zero() || h.0 > Duration::from_secs(2 * 366 * 24 * 3600))
        {
            return Err(self.invalid(
                "security.hsts",
                format!("`{h}` is outside 1s..2 years"),
                "write e.g. `hsts = \"365d\"`",
            ));
        }
        for (i, o) in sec.redirect_origins.iter().enumerate() {
            if crate::security::Origin::parse(o).is_none() {
                return Err(self.invalid(
                    format!("security.redirect_origins[{i}]"),
                    format!("`{o}` is not an origin"),
                    "write `scheme://host[:port]` with no path, e.g. `\"https://accounts.example.com\"`",
                ));
            }
        }
        for (i, h) in self.server.allowed_hosts.iter().enumerate() {
            let bare = h.strip_prefix("*.").unwrap_or(h);
            let ok = !bare.is_empty()
                && bare.chars().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || c == '.'
                        || c == '-'
                        || c == ':'
                        || c == '['
                        || c == ']'
                });
            if !ok {
                return Err(self.invalid(
                    format!("server.allowed_hosts[{i}]"),
                    format!("`{h}` is not a host name"),
                    "write lowercase names such as `\"example.com\"` or `\"*.example.com\"`, without scheme or port",
                ));
            }
        }
        if !(1..=10_000).contains(&self.server.max_form_parts) {
            return Err(self.invalid(
                "server.max_form_parts",
                format!("`{}` is outside 1..=10000", self.server.max_form_parts),
                "remove `max_form_parts` to use the default",
            ));
        }

        for (name, kv) in &self.kv {
            let key = format!("kv.{name}");
            match kv.backend {
                KvBackendKind::Redis => {
                    let Some(url) = &kv.url else {
                        return Err(self.invalid(
                            format!("{key}.url"),
                            "a redis store needs a URL",
                            "add `url = \"redis_url\"` and declare `[variables.redis_url]` with `env = \"REDIS_URL\"`, `secret = true`",
                        ));
                    };
                    if !self.variables.contains_key(url) {
                        return Err(self.invalid(
                            format!("{key}.url"),
                            format!("unknown variable `{url}` (the URL is read from a variable, so a password in it stays out of the manifest)"),
                            format!("declare `[variables.{url}]` with `env = \"REDIS_URL\"`, `secret = true`"),
                        ));
                    }
                    if kv.path.is_some() {
                        return Err(self.invalid(
                            format!("{key}.path"),
                            "`path` is for embedded stores",
                            "remove `path`",
                        ));
                    }
                }
                KvBackendKind::Embedded => {
                    if kv.url.is_some() || kv.prefix.is_some() {
                        return Err(self.invalid(
                            key,
                            "`url` and `prefix` are for redis stores",
                            "add `backend = \"redis\"` or remove them",
                        ));
                    }
                }
            }
            if kv.max_key.is_some_and(|n| n == 0 || n > 64 * 1024) {
                return Err(self.invalid(
                    format!("{key}.max_key"),
                    "outside 1..=65536",
                    "remove `max_key` to use 512",
                ));
            }
            if kv
                .max_value
                .is_some_and(|n| n.0 == 0 || n.0 > 64 * 1024 * 1024)
            {
                return Err(self.invalid(
                    format!("{key}.max_value"),
                    "outside 1B..64MiB",
                    "remove `max_value` to use 1MiB",
                ));
            }
        }
        Ok(())
    }

    /// Whether any component is granted the session.
    pub fn uses_session(&self) -> bool {
        self.components.values().any(|c| c.grants.session)
    }

    /// The largest `limits.memory` of any component (the engine's per-memory maximum).
    pub fn max_component_memory(&self) -> u64 {
        self.components
            .values()
            .map(|c| c.limits.memory.0)
            .max()
            .unwrap_or(Limits::default().memory.0)
    }

    /// The precompiled-component cache directory: `[server] cache_dir`, else the default
    /// (`$FLAGON_CACHE_DIR`, `$XDG_CACHE_HOME/flagon`, `~/.cache/flagon`).
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.server
            .cache_dir
            .as_ref()
            .map(|p| self.resolve(p))
            .or_else(crate::engine::default_cache_dir)
    }

    /// Resolve a path from the manifest against the manifest's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }

    /// The value of every variable: from the environment (`env`), else from a file (`file`,
    /// e.g. a mounted Kubernetes secret), else its `default`.
    ///
    /// Fails on the first required variable that has no value, naming where it was looked up,
    /// and on a `file` that exists but cannot be read.
    pub fn resolve_variables(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, Variable>> {
        let mut out = BTreeMap::new();
        for (name, v) in &self.variables {
            let mut value = v.env.as_deref().and_then(&env);
            if value.is_none()
                && let Some(file) = &v.file
            {
                let path = self.resolve(file);
                match std::fs::read_to_string(&path) {
                    Ok(text) => value = Some(trim_line_end(text)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(self.invalid(
                            format!("variables.{name}.file"),
                            format!("cannot read `{}`: {e}", path.display()),
                            "make the file readable by the account running Flagon",
                        ));
                    }
                }
            }
            let Some(value) = value.or_else(|| v.default.clone()) else {
                let mut looked = Vec::new();
                if let Some(e) = &v.env {
                    looked.push(format!("the environment variable `{e}` is not set"));
                }
                if let Some(f) = &v.file {
                    looked.push(format!(
                        "the file `{}` does not exist",
                        self.resolve(f).display()
                    ));
                }
                let looked = if looked.is_empty() {
                    "it has no `env`, `file` or `default`".to_string()
                } else {
                    format!("{} and there is no `default`", looked.join(", "))
                };
                return Err(self.invalid(
                    format!("variables.{name}"),
                    format!("required variable `{name}` has no value: {looked}"),
                    match (&v.env, &v.file) {
                        (Some(e), _) => {
                            format!("set `{e}` in the environment, or add `default = \"...\"`")
                        }
                        (None, Some(f)) => format!("create `{}`", self.resolve(f).display()),
                        (None, None) => format!(
                            "add `env = \"{}\"` or `default = \"...\"`",
                            name.to_uppercase()
                        ),
                    },
                ));
            };
            out.insert(
                name.clone(),
                Variable {
                    value,
                    secret: v.secret,
                },
            );
        }
        Ok(out)
    }
}

/// Read a `.env` file (`NAME=value` lines, `#` comments, optional quotes) into a map whose
/// values stand in for environment variables that are not set.
pub fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let iter = dotenvy::from_path_iter(path).map_err(|source| ManifestError::Read {
        file: path.to_path_buf(),
        source: std::io::Error::other(source.to_string()),
    })?;
    let mut out = BTreeMap::new();
    for item in iter {
        let (k, v) = item.map_err(|e| ManifestError::Parse {
            file: path.to_path_buf(),
            message: format!("{e}; write one `NAME=value` per line"),
        })?;
        out.insert(k, v);
    }
    Ok(out)
}

/// Secret files usually end with one newline that is not part of the value.
fn trim_line_end(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// A resolved variable value.
#[derive(Clone)]
pub struct Variable {
    pub value: String,
    pub secret: bool,
}

impl fmt::Debug for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("Variable(<redacted>)")
        } else {
            write!(f, "Variable({:?})", self.value)
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
