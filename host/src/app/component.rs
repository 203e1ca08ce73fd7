//! A component of the app: compiled (or read from the cache), checked against its grants,
//! configured by every capability, linked once, and called fresh for every request.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::capabilities::{self, AppCaps, ComponentCaps, HostState, ImportReport, RequestCtx};
use crate::manifest::{ComponentSection, Manifest};
use crate::runtime::bindings::{Request, Response};
use crate::runtime::engine;
use crate::runtime::{Failure, Handler, Origin};

/// A component ready to serve requests.
pub struct LoadedComponent {
    pub id: String,
    pub path: PathBuf,
    pub origin: Origin,
    pub imports: Vec<ImportReport>,
    /// Whether the component uses the cookie session (its routes get CSRF checks).
    pub session: bool,
    /// What each capability granted it.
    pub caps: Arc<ComponentCaps>,
    handler: Handler<HostState>,
}

impl LoadedComponent {
    /// Load, check, configure and pre-link the component `id` of `manifest`.
    pub fn load(
        engine: &Engine,
        linker: &Linker<HostState>,
        setup: &capabilities::ComponentSetup<'_>,
        app: &Arc<AppCaps>,
        cache_dir: Option<&Path>,
    ) -> Result<Self> {
        let (manifest, id, section) = (setup.manifest, setup.id, setup.section);
        let path = manifest.resolve(&section.source);
        let (component, origin, imports) =
            compile_and_check(engine, manifest, id, section, &path, cache_dir)?;
        let caps = capabilities::configure(app, setup)
            .with_context(|| format!("failed to configure component `{id}`"))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("failed to link component `{id}`"))?;
        let handler = Handler::new(instance_pre, section.limits.timeout.0)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "component `{id}` does not export `handle` from the `flagon:app/handler` world"
                )
            })?;
        Ok(Self {
            id: id.to_string(),
            path,
            origin,
            imports,
            session: section.grants.session,
            caps: Arc::new(caps),
            handler,
        })
    }

    /// A request context with no session and no headers, for calling the component directly
    /// (benchmarks, embedding).
    pub fn request_ctx(&self, request_id: Arc<str>) -> RequestCtx {
        RequestCtx::new(request_id, None, &http::HeaderMap::new())
    }

    /// Run one request through a fresh instance; what the call left behind (the session the
    /// guest changed, a failed template render) comes back with the outcome.
    pub async fn call(
        &self,
        engine: &Engine,
        request: &Request,
        ctx: RequestCtx,
    ) -> (Result<Response, Failure>, capabilities::Finished) {
        let state = HostState::new(&self.caps, ctx);
        let (outcome, mut store) = self.handler.call(engine, state, request).await;
        let finished = store.data_mut().finish();
        // The Store (and the instance) ends here, whatever happened.
        drop(store);
        (outcome, finished)
    }
}

/// Compile (or load from the cache) and check the imports against the grants; used by
/// [`LoadedComponent::load`] and by `flagon check`.
pub fn compile_and_check(
    engine: &Engine,
    manifest: &Manifest,
    id: &str,
    section: &ComponentSection,
    path: &Path,
    cache_dir: Option<&Path>,
) -> Result<(Component, Origin, Vec<ImportReport>)> {
    let wasm = std::fs::read(path).with_context(|| {
        let hint = if section.build.is_some() {
            "run `flagon build` (or `flagon serve --build`) first"
        } else {
            "check `source`, or add a `build` command"
        };
        format!(
            "cannot read component `{id}` from `{}` (`components.{id}.source` in `{}`); {hint}",
            path.display(),
            manifest.file.display()
        )
    })?;
    let (component, origin) =
        engine::load_component(engine, &wasm, cache_dir).with_context(|| {
            format!(
                "`{}` is not a valid Wasm component (component `{id}`)",
                path.display()
            )
        })?;
    let imports = capabilities::check(engine, &component, section);
    let refused: Vec<String> = imports
        .iter()
        .filter_map(|i| i.outcome.as_ref().err())
        .map(|e| format!("component `{id}` {e}"))
        .collect();
    if !refused.is_empty() {
        bail!(
            "refusing to load component `{id}` ({}):\n{}",
            manifest.file.display(),
            refused
                .join("\n")
                .replace("[components.<id>]", &format!("[components.{id}]"))
        );
    }
    Ok((component, origin, imports))
}
