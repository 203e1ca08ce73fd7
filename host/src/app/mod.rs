//! An app: the manifest loaded into components, a route table, the web layer and the
//! capabilities, and ([`pipeline`]) the path of one request through them.
//!
//! The top of the host: it uses every other folder but `cli`, and nothing below imports it.

mod admin;
pub mod component;
mod guard;
mod live;
mod pipeline;
mod response;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use wasmtime::component::Linker;

use crate::capabilities::{self, AppCaps, AppSetup, ComponentSetup, HostState};
use crate::http::router::Router;
use crate::http::{Body, Service};
use crate::manifest::{Manifest, ServerSection};
use crate::runtime::{EngineSettings, FlagonEngine, Origin};
use crate::web::Web;
pub use admin::AdminServer;
pub use component::LoadedComponent;
pub use live::Live;

/// Where precompiled components are cached.
#[derive(Debug, Clone, Default)]
pub enum CacheDir {
    /// `[server] cache_dir`, else the user's cache directory (see [`crate::manifest::default_cache_dir`]).
    #[default]
    Default,
    /// This directory.
    Path(PathBuf),
    /// No cache: compile at every start.
    Disabled,
}

/// How to load an app.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub cache: CacheDir,
    /// A `.env` file whose values stand in for unset environment variables (development).
    pub env_file: Option<PathBuf>,
    /// Development mode: an ephemeral session key when none is configured, non-`Secure`
    /// cookies, detailed error pages, templates re-read on every render. Never the default.
    pub dev: bool,
    /// Do not apply pending database migrations at load, nor run the extensions'
    /// `check-settings` (which may read the tables they create): for `flagon migrate`.
    pub skip_migrations: bool,
    /// Environment variables to use instead of the process environment and the `.env` file
    /// (`flagon::testing` sets them for tests). Empty by default.
    pub env: BTreeMap<String, String>,
}

impl LoadOptions {
    /// The environment lookup for `[variables]`: [`LoadOptions::env`], the process
    /// environment, then the `.env` file.
    pub fn env_lookup(&self) -> Result<impl Fn(&str) -> Option<String>> {
        let file = match &self.env_file {
            Some(path) => crate::manifest::read_env_file(path)?,
            None => Default::default(),
        };
        let overrides = self.env.clone();
        Ok(move |k: &str| {
            overrides
                .get(k)
                .cloned()
                .or_else(|| std::env::var(k).ok())
                .or_else(|| file.get(k).cloned())
        })
    }
}

pub struct App {
    // Field order matters for drop: components (and their InstancePre) before the engine.
    components: Vec<LoadedComponent>,
    router: Router,
    auth: guard::AuthSettings,
    middleware: Vec<guard::MiddlewareEntry>,
    web: Arc<Web>,
    caps: Arc<AppCaps>,
    server: ServerSection,
    name: String,
    /// Each route's series in `/metrics` (labelled by its name, else its pattern), by route
    /// index.
    route_series: Box<[crate::metrics::RouteSeries]>,
    /// Shared with the app loaded after this one on reload, when its limits are the same.
    engine: Arc<FlagonEngine>,
    engine_settings: EngineSettings,
}

impl App {
    /// Load every component of `manifest`, check its grants, and build the route table, the
    /// web layer (templates, static mounts, session keys) and the capabilities' app-wide
    /// state (key-value stores, the outbound client).
    pub async fn load(manifest: &Manifest, options: &LoadOptions) -> Result<Self> {
        Self::load_beside(manifest, options, None).await
    }

    /// Load `manifest` beside `running`, the app being served, for a reload: the engine is
    /// shared when the limits it was sized by are unchanged, and key-value stores and database
    /// pools whose settings did not change are kept, with their connections. `running` goes on
    /// serving meanwhile; an error leaves it as it was.
    pub async fn reload(manifest: &Manifest, options: &LoadOptions, running: &App) -> Result<Self> {
        Self::load_beside(manifest, options, Some(running)).await
    }

    async fn load_beside(
        manifest: &Manifest,
        options: &LoadOptions,
        running: Option<&App>,
    ) -> Result<Self> {
        let mut variables = manifest.resolve_variables_for(options.env_lookup()?, options.dev)?;
        // A database given by a URL in a variable (`url_variable`) is filled in from it here.
        let filled = manifest.with_database_urls(&mut variables)?;
        let manifest = filled.as_ref().unwrap_or(manifest);
        let engine_settings = EngineSettings {
            max_instances: manifest
                .server
                .max_instances
                .saturating_mul(manifest.instances_per_request())
                // Twice the adapters: on reload, a database whose settings changed has a new
                // pool while the old one serves the requests still running on the old app.
                .saturating_add(manifest.adapter_instances().saturating_mul(2)),
            max_memory: manifest.max_component_memory(),
        };
        let engine = match running {
            Some(old) if old.engine_settings == engine_settings => old.engine.clone(),
            _ => Arc::new(FlagonEngine::new(&engine_settings)?),
        };
        let same_engine = running.is_some_and(|old| Arc::ptr_eq(&old.engine, &engine));
        let mut linker = Linker::<HostState>::new(&engine.engine);
        capabilities::link(&mut linker)
            .map_err(anyhow::Error::from)
            .context("failed to link host capabilities")?;

        let cache_dir = match &options.cache {
            CacheDir::Default => manifest.cache_dir(),
            CacheDir::Path(p) => Some(p.clone()),
            CacheDir::Disabled => None,
        };

        let web = Arc::new(Web::load(manifest, &variables, options.dev).await?);
        let caps = capabilities::setup(&AppSetup {
            manifest,
            variables: &variables,
            web: &web,
            engine: &engine.engine,
            cache_dir: cache_dir.as_deref(),
            previous: running.map(|old| &*old.caps),
            same_engine,
        })
        .await?;
        let mut components = Vec::with_capacity(manifest.components.len());
        for (id, section) in &manifest.components {
            let started = Instant::now();
            let setup = ComponentSetup {
                manifest,
                variables: &variables,
                id,
                section,
            };
            let loaded = LoadedComponent::load(
                &engine.engine,
                &linker,
                &setup,
                &caps,
                cache_dir.as_deref(),
            )?;
            tracing::info!(
                component = %id,
                source = %loaded.source,
                cached = loaded.origin == Origin::Cache,
                millis = started.elapsed().as_millis() as u64,
                "component loaded"
            );
            components.push(loaded);
        }
        let router = Router::new(manifest)?;
        // Only once everything above loaded: an app that fails to load changes no schema.
        // Loaded for `flagon migrate`, the migrations do not run here, nor the extensions'
        // checks, which may read a table they create (auth-apikey-sql); both run at `serve`.
        if !options.skip_migrations {
            capabilities::sql::migrate(manifest, &caps.sql).await?;
            for loaded in &components {
                loaded.check_settings(&engine.engine).await?;
            }
        }
        let route_series = manifest
            .routes
            .iter()
            .map(|r| {
                let label = crate::metrics::RouteLabel::route(r.name.as_deref().unwrap_or(&r.path));
                crate::metrics::RouteSeries::new(label)
            })
            .collect();
        crate::metrics::loaded();
        Ok(Self {
            components,
            router,
            auth: guard::AuthSettings::new(manifest),
            middleware: guard::MiddlewareEntry::all(manifest),
            web,
            caps,
            server: manifest.server.clone(),
            name: manifest.app.name.clone(),
            route_series,
            engine,
            engine_settings,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn server_settings(&self) -> &ServerSection {
        &self.server
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn web(&self) -> &Web {
        &self.web
    }

    /// The capabilities' app-wide state (key-value stores, the outbound client).
    pub fn capabilities(&self) -> &AppCaps {
        &self.caps
    }

    pub fn components(&self) -> &[LoadedComponent] {
        &self.components
    }

    /// The wasmtime engine every component of this app was compiled for.
    pub fn engine(&self) -> &wasmtime::Engine {
        &self.engine.engine
    }
}

impl Service for App {
    fn call(
        &self,
        req: http::Request<hyper::body::Incoming>,
        client: SocketAddr,
    ) -> impl Future<Output = http::Response<Body>> + Send {
        self.handle(req, client)
    }

    fn limits(&self) -> &ServerSection {
        &self.server
    }
}
