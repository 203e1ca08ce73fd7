//! Capabilities: everything a component can import beyond computing, one module each.
//!
//! A capability is a unit with a lifecycle, the shape of Spin's factors: [`Capability::link`]
//! adds its interfaces to the one linker, [`Capability::setup`] builds its app-wide state once
//! at load (and checks the manifest's settings for it), [`Capability::configure`] works out
//! what one component was granted, and [`Capability::prepare`] makes its state for one
//! instance. Host functions see all three through a [`Cx`].
//!
//! The [`registry!`] below lists them. From that one list come the state structs
//! ([`AppCaps`], [`ComponentCaps`], [`InstanceCaps`]), linking, the import check and the
//! per-instance set-up; adding a capability is one new module and one line there (see
//! `docs/architecture.md`, "Adding a capability").
//!
//! A component may import only what its manifest entry grants. [`check`] runs at load (and in
//! `flagon check`) against the component's declared imports, before anything is instantiated;
//! an import that no capability covers is refused rather than linked as a trap.
//!
//! Capabilities use the runtime (the `Store` state) and the web layer (sessions, templates);
//! neither of those imports anything from here.

pub mod config;
pub mod crypto;
pub mod kv;
pub mod log;
pub mod outbound;
pub mod session;
pub mod settings;
pub mod sql;
pub mod system;
pub mod templates;
pub mod types;
pub mod wasi;
pub mod wasi_http;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use http::{HeaderName, HeaderValue};
use wasmtime::Engine;
use wasmtime::component::{Component, HasData, Linker};

use crate::http::trace::Trace;
use crate::manifest::{ComponentSection, Manifest, Variable, World};
use crate::runtime::bindings::Identity;
use crate::runtime::guest_log::{GuestLog, Redactor};
use crate::runtime::{RuntimeCtx, RuntimeView};
use crate::web::Web;
use crate::web::session::Session;

/// A digest of the settings app-wide state was made from (a key-value store, a database pool),
/// so that a reload can keep what did not change: SHA-256 over every field, each
/// length-prefixed, so no two different configurations encode alike.
pub struct Fingerprint(ring::digest::Context);

impl Fingerprint {
    pub fn new() -> Self {
        Self(ring::digest::Context::new(&ring::digest::SHA256))
    }

    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub fn finish(self) -> [u8; 32] {
        let mut out = [0; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

/// The version of the `flagon:app` package this host implements.
pub const FLAGON_WIT_VERSION: &str = "0.1.0";

/// What a capability sees of the app when it is set up.
pub struct AppSetup<'a> {
    pub manifest: &'a Manifest,
    pub variables: &'a BTreeMap<String, Variable>,
    /// The web layer, already loaded (templates, session settings).
    pub web: &'a Arc<Web>,
    /// The engine, for capabilities that run components of their own (DB adapters).
    pub engine: &'a Engine,
    /// Where compiled components are cached, if anywhere.
    pub cache_dir: Option<&'a std::path::Path>,
    /// On reload, the running app's state: stores and database pools whose settings did not
    /// change are kept rather than opened again.
    pub previous: Option<&'a AppCaps>,
    /// The app is loaded on the same engine as `previous` (its pools' instances can be kept).
    pub same_engine: bool,
}

/// What a capability sees of one component when it is configured.
pub struct ComponentSetup<'a> {
    pub manifest: &'a Manifest,
    pub variables: &'a BTreeMap<String, Variable>,
    pub id: &'a str,
    pub section: &'a ComponentSection,
}

/// How a component is granted a capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The key under `grants`, e.g. `kv`.
    pub key: &'static str,
    /// The manifest line that grants it, e.g. `grants = { kv = ["name"] }`.
    pub example: &'static str,
}

/// One capability: its interfaces, its grant, and its state at the three lifetimes.
pub trait Capability: 'static {
    /// Shown by `flagon check` beside each import it covers, e.g. `Kv`.
    const NAME: &'static str;
    /// The WIT interfaces it provides, `package/interface` without a version.
    const INTERFACES: &'static [&'static str];
    /// How it is granted; `None` for what every component gets.
    const GRANT: Option<Grant>;

    /// App-wide state, built once at load (clients, stores, templates).
    type App: Send + Sync + 'static;
    /// What one component was granted, worked out at load.
    type Component: Send + Sync + 'static;
    /// State for one instance, in its `Store` for one request.
    type Instance: Send + 'static;

    /// Whether `section` grants this capability (always true when `GRANT` is `None`).
    fn granted(section: &ComponentSection) -> bool;

    /// What `flagon check` lists of this capability under "granted".
    fn describe(_manifest: &Manifest, _section: &ComponentSection) -> Vec<String> {
        Vec::new()
    }

    /// Add the host functions of its interfaces to the linker (once per app).
    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()>;

    /// Build the app-wide state; a bad setting is an error naming the manifest key.
    fn setup(app: &AppSetup<'_>) -> impl Future<Output = anyhow::Result<Self::App>> + Send;

    /// Work out what `component` was granted.
    fn configure(
        app: &Self::App,
        component: &ComponentSetup<'_>,
    ) -> anyhow::Result<Self::Component>;

    /// Fresh per-instance state.
    fn prepare(component: &Self::Component) -> Self::Instance;
}

/// What a capability's host functions see during a call: its own state at each lifetime, and
/// the request.
pub struct Cx<'a, C: Capability> {
    pub app: &'a C::App,
    pub component: &'a C::Component,
    pub instance: &'a mut C::Instance,
    pub request: &'a mut RequestCtx,
    /// The component answering (its id, for log lines).
    pub guest: &'a ComponentCaps,
}

impl<C: Capability> Cx<'_, C> {
    /// Where this request's guest log lines go, and what is redacted from them.
    pub fn guest_log(&mut self) -> &GuestLog {
        self.request.guest_log(self.guest)
    }
}

/// The [`HasData`] for linking a capability's interfaces: its host functions are implemented
/// on [`Cx`].
pub struct CapData<C>(PhantomData<C>);

impl<C: Capability> HasData for CapData<C> {
    type Data<'a> = Cx<'a, C>;
}

/// Implemented by the registry for every capability it lists.
pub trait HasCapability<C: Capability> {
    fn cx(&mut self) -> Cx<'_, C>;
}

/// The data of one `Store`: what the runtime needs, the request, and each capability's state.
/// Built for every request and dropped with its `Store`; nothing in it outlives the request.
pub struct HostState {
    runtime: RuntimeCtx,
    pub request: RequestCtx,
    component: Arc<ComponentCaps>,
    pub instance: InstanceCaps,
}

impl HostState {
    /// The state for one request to `component`.
    pub fn new(component: &Arc<ComponentCaps>, request: RequestCtx) -> Self {
        Self {
            runtime: RuntimeCtx::new(component.memory).with_metrics(component.metrics.clone()),
            instance: prepare_all(component),
            request,
            component: component.clone(),
        }
    }

    /// Capability `C`'s view of this state.
    pub fn cx<C: Capability>(&mut self) -> Cx<'_, C>
    where
        Self: HasCapability<C>,
    {
        HasCapability::<C>::cx(self)
    }

    /// What the request keeps once the instance is gone: the session and a failed render.
    /// Called once, after the call; the `Store` is dropped afterwards.
    pub fn finish(&mut self) -> Finished {
        log::report_dropped(self.instance.log, &self.component.id, &self.request);
        Finished {
            session: self.request.session.take(),
            render_failure: self.instance.templates.take(),
        }
    }
}

impl RuntimeView for HostState {
    fn runtime(&mut self) -> &mut RuntimeCtx {
        &mut self.runtime
    }
}

/// What [`HostState::finish`] returns.
#[derive(Default)]
pub struct Finished {
    pub session: Option<Arc<Mutex<Session>>>,
    /// The first template render that failed: the request ends in a 500.
    pub render_failure: Option<crate::web::templates::RenderError>,
}

/// The request as capabilities see it: who is calling, its session, and what to keep out of
/// the log.
pub struct RequestCtx {
    pub request_id: Arc<str>,
    pub session: Option<Arc<Mutex<Session>>>,
    /// Authenticators and middleware may read the session but not change it.
    pub session_read_only: bool,
    /// The identity the authenticators established (templates show it as `current_user`).
    pub identity: Option<Arc<Identity>>,
    /// This request's `Authorization`/`Cookie` headers; their values are redacted from
    /// everything the guest logs.
    credential_headers: Vec<(HeaderName, HeaderValue)>,
    /// Built from `credential_headers` on the first log line (most requests never log, so
    /// the request path does not pay for it).
    log: Option<GuestLog>,
    /// The request's trace context, continued in its outbound requests.
    pub trace: Option<Arc<Trace>>,
}

impl RequestCtx {
    /// The request `request_id` to `component`, with the session the host loaded for it (if
    /// the component is granted one) and the request's headers (for redaction).
    pub fn new(
        request_id: Arc<str>,
        session: Option<Arc<Mutex<Session>>>,
        headers: &http::HeaderMap,
    ) -> Self {
        Self {
            request_id,
            session,
            session_read_only: false,
            identity: None,
            credential_headers: log::credential_headers(headers),
            log: None,
            trace: None,
        }
    }

    /// The same request seen by an authenticator or middleware: the session read-only.
    pub fn read_only(mut self) -> Self {
        self.session_read_only = true;
        self
    }

    /// With the request's trace context, continued in what the guest sends out.
    pub fn traced(mut self, trace: Option<&Arc<Trace>>) -> Self {
        self.trace = trace.cloned();
        self
    }

    /// With the identity the authenticators established.
    pub fn with_identity(mut self, identity: Option<Arc<Identity>>) -> Self {
        self.identity = identity;
        self
    }

    /// Where this request's guest log lines go (attributed to `guest`), and what is redacted
    /// from them: the app's secrets and this request's credentials.
    pub fn guest_log(&mut self, guest: &ComponentCaps) -> &GuestLog {
        self.log.get_or_insert_with(|| GuestLog {
            component: guest.id.clone(),
            request_id: self.request_id.clone(),
            redactor: Arc::new(Redactor::new(
                guest.secrets.clone(),
                log::request_credentials(&self.credential_headers),
            )),
        })
    }

    /// The session, created empty if the host loaded none.
    pub fn session_guard(&mut self) -> MutexGuard<'_, Session> {
        self.session
            .get_or_insert_with(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// One capability as the registry lists it, for the checks that go over all of them.
#[derive(Debug)]
pub struct Entry {
    pub name: &'static str,
    pub interfaces: &'static [&'static str],
    pub grant: Option<Grant>,
    granted: fn(&ComponentSection) -> bool,
    describe: fn(&Manifest, &ComponentSection) -> Vec<String>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Entry {
    const fn of<C: Capability>() -> Self {
        Self {
            name: C::NAME,
            interfaces: C::INTERFACES,
            grant: C::GRANT,
            granted: C::granted,
            describe: C::describe,
        }
    }

    /// Whether `section` grants it.
    pub fn granted(&self, section: &ComponentSection) -> bool {
        (self.granted)(section)
    }

    /// What `flagon check` lists of it under "granted".
    pub fn describe(&self, manifest: &Manifest, section: &ComponentSection) -> Vec<String> {
        (self.describe)(manifest, section)
    }
}

/// Why a component cannot be loaded with its grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportError {
    NotGranted { import: String, hint: &'static str },
    NotOffered { import: String, reason: String },
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::NotGranted { import, hint } => write!(
                f,
                "imports `{import}`, which it was not granted\n  help: add `{hint}` to its `[components.<id>]` table"
            ),
            ImportError::NotOffered { import, reason } => {
                write!(
                    f,
                    "imports `{import}`, which Flagon does not offer: {reason}"
                )
            }
        }
    }
}

/// One import of a component and what became of it.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub name: String,
    pub outcome: Result<&'static Entry, ImportError>,
}

/// The world `component` exports: the one its `world` names, else `wasi-http` when it exports
/// `wasi:http/incoming-handler` and nothing of Flagon's, else Flagon's.
pub fn world_of(engine: &Engine, component: &Component, section: &ComponentSection) -> World {
    if let Some(world) = section.world {
        return world;
    }
    let ty = component.component_type();
    let mut exports = ty.exports(engine).map(|(name, _)| name);
    let proxy = exports.any(|name| {
        name.split_once('@').is_some_and(|(i, v)| {
            i == crate::runtime::wasi_http::INCOMING_HANDLER && v.starts_with("0.2.")
        })
    });
    if proxy {
        World::WasiHttp
    } else {
        World::Flagon
    }
}

/// Classify every import of `component` and check it against `section`'s grants, for a
/// component of `world`.
pub fn check(
    engine: &Engine,
    component: &Component,
    section: &ComponentSection,
    world: World,
) -> Vec<ImportReport> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| {
            let outcome = match classify_in(name, world) {
                Ok(cap) if cap.granted(section) => Ok(cap),
                Ok(cap) => Err(ImportError::NotGranted {
                    import: name.to_string(),
                    hint: cap.grant.map_or("", |g| g.example),
                }),
                Err(reason) => Err(ImportError::NotOffered {
                    import: name.to_string(),
                    reason,
                }),
            };
            ImportReport {
                name: name.to_string(),
                outcome,
            }
        })
        .collect()
}

/// Map an import name such as `wasi:cli/stdout@0.2.4` to the capability that provides it.
pub fn classify(import: &str) -> Result<&'static Entry, String> {
    classify_in(import, World::Flagon)
}

/// [`classify`] for a component of `world`: only a `wasi-http` component may import
/// `wasi:http` (its requests go out under `grants.outbound`).
pub fn classify_in(import: &str, world: World) -> Result<&'static Entry, String> {
    let (path, version) = import.split_once('@').unwrap_or((import, ""));
    let Some((package, interface)) = path.split_once('/') else {
        return Err("bare function imports are not part of any Flagon world".into());
    };
    match package {
        "wasi:sockets" => return Err("components get no network sockets".into()),
        "wasi:http" if world != World::WasiHttp => {
            return Err(
                "`wasi:http` is for standard `wasi:http/proxy` components (`world = \"wasi-http\"`); a Flagon handler sends requests through `flagon:app/outbound-http` with `grants.outbound`".into(),
            );
        }
        _ => {}
    }
    let in_package = |i: &&str| i.split_once('/').is_some_and(|(p, _)| p == package);
    if !REGISTRY.iter().any(|e| e.interfaces.iter().any(in_package)) {
        return Err(format!("the package `{package}` is not known to this host"));
    }
    if package == "flagon:app" && version != FLAGON_WIT_VERSION {
        return Err(format!(
            "this host implements `flagon:app@{FLAGON_WIT_VERSION}`; rebuild the component against it (it wants `{version}`)"
        ));
    }
    if package.starts_with("wasi:") && !version.starts_with("0.2.") {
        return Err(format!(
            "this host implements WASI 0.2.x; rebuild the component for `wasm32-wasip2` (it wants `{version}`)"
        ));
    }
    match REGISTRY.iter().find(|e| e.interfaces.contains(&path)) {
        Some(entry) => Ok(entry),
        None if package == "flagon:app" => Err(format!(
            "`flagon:app/{interface}` is not implemented by this host"
        )),
        None => Err(format!(
            "`{package}/{interface}` is not an interface this host links"
        )),
    }
}

/// Build every capability's app-wide state.
pub async fn setup(app: &AppSetup<'_>) -> anyhow::Result<Arc<AppCaps>> {
    setup_all(app).await.map(Arc::new)
}

/// Configure every capability for one component.
pub fn configure(
    app: &Arc<AppCaps>,
    component: &ComponentSetup<'_>,
) -> anyhow::Result<ComponentCaps> {
    let memory = usize::try_from(component.section.limits.memory.0).unwrap_or(usize::MAX);
    let secrets = component
        .variables
        .values()
        .filter(|v| v.secret)
        .map(|v| v.value.clone())
        .collect();
    configure_all(app.clone(), component, memory, secrets)
}

/// Lists the capabilities and generates what goes over all of them. The order is the order
/// `flagon check` lists grants in.
macro_rules! registry {
    ($($field:ident: $cap:ty),* $(,)?) => {
        /// Every capability's app-wide state.
        pub struct AppCaps {
            $(pub $field: <$cap as Capability>::App,)*
        }

        /// What one component was granted, capability by capability (built at load).
        pub struct ComponentCaps {
            /// The component's id.
            pub id: Arc<str>,
            /// Most linear memory per instance, in bytes.
            pub memory: usize,
            /// Its instances, calls and failures in `/metrics`.
            pub metrics: Arc<crate::metrics::Guest>,
            /// Values of the app's secret variables, redacted from everything the guest logs.
            pub secrets: Arc<[String]>,
            $(pub $field: <$cap as Capability>::Component,)*
            pub app: Arc<AppCaps>,
        }

        /// Every capability's state for one instance.
        pub struct InstanceCaps {
            $(pub $field: <$cap as Capability>::Instance,)*
        }

        $(impl HasCapability<$cap> for HostState {
            fn cx(&mut self) -> Cx<'_, $cap> {
                Cx {
                    app: &self.component.app.$field,
                    component: &self.component.$field,
                    instance: &mut self.instance.$field,
                    request: &mut self.request,
                    guest: &self.component,
                }
            }
        })*

        /// Every capability, in registry order.
        pub static REGISTRY: &[Entry] = &[$(Entry::of::<$cap>(),)*];

        /// Link every capability. Components are checked against their grants before they
        /// are pre-instantiated with this linker, so linking all of them here is safe.
        pub fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
            $(<$cap as Capability>::link(linker)?;)*
            Ok(())
        }

        async fn setup_all(app: &AppSetup<'_>) -> anyhow::Result<AppCaps> {
            Ok(AppCaps {
                $($field: <$cap as Capability>::setup(app).await?,)*
            })
        }

        fn configure_all(
            app: Arc<AppCaps>,
            component: &ComponentSetup<'_>,
            memory: usize,
            secrets: Arc<[String]>,
        ) -> anyhow::Result<ComponentCaps> {
            Ok(ComponentCaps {
                id: component.id.into(),
                memory,
                metrics: crate::metrics::Guest::new(component.id),
                secrets,
                $($field: <$cap as Capability>::configure(&app.$field, component)?,)*
                app,
            })
        }

        fn prepare_all(component: &ComponentCaps) -> InstanceCaps {
            InstanceCaps {
                $($field: <$cap as Capability>::prepare(&component.$field),)*
            }
        }
    };
}

registry! {
    log: log::Log,
    config: config::Config,
    settings: settings::Settings,
    system: system::System,
    crypto: crypto::Crypto,
    templates: templates::Templates,
    session: session::SessionCap,
    kv: kv::Kv,
    outbound: outbound::Outbound,
    sql: sql::Sql,
    wasi: wasi::Wasi,
    wasi_http: wasi_http::WasiHttpCap,
    types: types::Types,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let name = |import| classify(import).map(|e| e.name);
        assert_eq!(name("wasi:cli/stdout@0.2.4"), Ok("Baseline"));
        assert_eq!(name("wasi:io/streams@0.2.0"), Ok("Baseline"));
        assert_eq!(name("flagon:app/config@0.1.0"), Ok("Config"));
        assert_eq!(name("flagon:app/crypto@0.1.0"), Ok("Crypto"));
        assert!(
            classify("wasi:sockets/tcp@0.2.0")
                .unwrap_err()
                .contains("sockets")
        );
        assert!(classify("wasi:http/outgoing-handler@0.2.0").is_err());
        let http = |import| classify_in(import, World::WasiHttp).map(|e| e.name);
        assert_eq!(http("wasi:http/outgoing-handler@0.2.0"), Ok("WasiHttp"));
        assert_eq!(http("wasi:http/types@0.2.12"), Ok("WasiHttp"));
        assert!(http("wasi:http/types@0.3.0").unwrap_err().contains("0.2.x"));
        assert!(http("wasi:sockets/tcp@0.2.0").is_err());
        assert!(classify("wasi:cli/run@0.2.0").is_err());
        assert!(
            classify("wasi:cli/stdout@0.3.0")
                .unwrap_err()
                .contains("0.2.x")
        );
        assert!(
            classify("flagon:app/log@0.2.0")
                .unwrap_err()
                .contains("0.1.0")
        );
        assert!(classify("evil:pkg/thing").unwrap_err().contains("evil:pkg"));
        assert!(classify("host-func").is_err());
    }

    #[test]
    fn every_interface_belongs_to_one_capability() {
        let mut seen = std::collections::BTreeSet::new();
        for entry in REGISTRY {
            for i in entry.interfaces {
                assert!(seen.insert(*i), "`{i}` is listed twice");
            }
            if let Some(grant) = entry.grant {
                assert!(grant.example.contains(grant.key), "{entry:?}");
            }
        }
    }
}
