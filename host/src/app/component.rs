//! A component of the app: compiled (or read from the cache), checked against its grants,
//! configured by every capability, linked once, and called fresh for every request.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};

use crate::capabilities::{self, AppCaps, ComponentCaps, HostState, ImportReport, RequestCtx};
use crate::manifest::{ComponentRole, ComponentSection, Manifest, WasmSource, World};
use crate::runtime::bindings::extension::middleware::exports::flagon::app::intercept::Action;
use crate::runtime::bindings::{Request, RequestHead, Response};
use crate::runtime::engine;
use crate::runtime::{
    AuthOutcome, Authenticator, Failure, Handler, Middleware, MiddlewareInstance, Origin,
    WasiHttpHandler,
};
use crate::signature;

/// A component ready to serve requests.
pub struct LoadedComponent {
    pub id: String,
    /// Where its bytes came from: a file, or a plugin embedded in the host.
    pub source: WasmSource,
    pub origin: Origin,
    pub imports: Vec<ImportReport>,
    /// Whether the component uses the cookie session (its routes get CSRF checks).
    pub session: bool,
    /// What each capability granted it.
    pub caps: Arc<ComponentCaps>,
    pub role: ComponentRole,
    /// The world it exports: Flagon's, or the standard `wasi:http/proxy`.
    pub world: World,
    /// The linked component (the typed exports below hold it too), for [`Self::instantiate`].
    instance_pre: InstancePre<HostState>,
    exports: Exports,
}

/// The component's exports, by the role the manifest gives it.
enum Exports {
    Handler(Handler<HostState>),
    Authenticator(Authenticator<HostState>),
    Middleware(Middleware<HostState>),
    WasiHttp(WasiHttpHandler<HostState>),
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
        let source = section.wasm(manifest);
        let Checked {
            component,
            origin,
            imports,
            world,
            ..
        } = compile_and_check(engine, manifest, id, section, &source, cache_dir)?;
        let caps = capabilities::configure(app, setup)
            .with_context(|| format!("failed to configure component `{id}`"))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("failed to link component `{id}`"))?;
        let mut role = manifest.role(id);
        let timeout = section.limits.timeout.0;
        if world == World::WasiHttp {
            // The manifest refused a `wasi-http` component in any other role.
            let exports = WasiHttpHandler::new(instance_pre.clone(), timeout)
                .map(Exports::WasiHttp)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "component `{id}` is a `wasi-http` component but does not export `wasi:http/incoming-handler@0.2.x` ({})",
                        manifest.file.display()
                    )
                })?;
            if role != ComponentRole::Handler {
                bail!(
                    "component `{id}` exports `wasi:http/incoming-handler`, so it can only answer routes, not be {} ({})",
                    if role == ComponentRole::Authenticator {
                        "an authenticator"
                    } else {
                        "a middleware"
                    },
                    manifest.file.display()
                );
            }
            return Ok(Self {
                id: id.to_string(),
                source,
                origin,
                imports,
                session: section.grants.session,
                caps: Arc::new(caps),
                role,
                world,
                instance_pre,
                exports,
            });
        }
        let make = |role: ComponentRole, pre: InstancePre<HostState>| match role {
            ComponentRole::Handler => Handler::new(pre, timeout).map(Exports::Handler),
            ComponentRole::Authenticator => {
                Authenticator::new(pre, timeout).map(Exports::Authenticator)
            }
            ComponentRole::Middleware => Middleware::new(pre, timeout).map(Exports::Middleware),
        };
        // A component nothing uses yet is loaded (and checked) as whatever world it exports.
        let unused =
            role == ComponentRole::Handler && !manifest.routes.iter().any(|r| r.component == id);
        if unused {
            let exported = [ComponentRole::Authenticator, ComponentRole::Middleware]
                .into_iter()
                .find(|r| make(*r, instance_pre.clone()).is_ok());
            role = exported.unwrap_or(ComponentRole::Handler);
        }
        let exports = make(role, instance_pre.clone())
        .map_err(anyhow::Error::from)
        .with_context(|| {
            let (what, used) = match role {
                ComponentRole::Handler if unused => ("`handle`", "a handler (no route uses it yet)"),
                ComponentRole::Handler => ("`handle`", "a route's `component`"),
                ComponentRole::Authenticator => {
                    ("`flagon:app/authenticate`", "an authenticator in `[auth]`")
                }
                ComponentRole::Middleware => {
                    ("`flagon:app/intercept`", "a `[[middleware]]` component")
                }
            };
            format!(
                "component `{id}` is used as {used} but does not export {what} from the `flagon:app/{}` world ({})",
                role.world(),
                manifest.file.display()
            )
        })?;
        Ok(Self {
            id: id.to_string(),
            source,
            origin,
            imports,
            session: section.grants.session,
            caps: Arc::new(caps),
            role,
            world,
            instance_pre,
            exports,
        })
    }

    /// The compiled component.
    pub fn component(&self) -> &Component {
        self.instance_pre.component()
    }

    /// A fresh instance in a `Store` of its own, under the same limits as a request's, but not
    /// called: what instantiation alone costs (`flagon-bench` times it and the memory a live
    /// instance holds). Dropping the `Store` returns the instance's pool slot.
    pub async fn instantiate(
        &self,
        engine: &Engine,
        ctx: RequestCtx,
    ) -> Result<wasmtime::Store<HostState>, Failure> {
        let mut state = HostState::new(&self.caps, ctx);
        let timeout = std::time::Duration::from_secs(10);
        crate::runtime::RuntimeView::runtime(&mut state)
            .set_deadline(Some(std::time::Instant::now() + timeout));
        let mut store = wasmtime::Store::new(engine, state);
        crate::runtime::guard_store(&mut store);
        self.instance_pre
            .instantiate_async(&mut store)
            .await
            .map_err(crate::runtime::classify_error)?;
        Ok(store)
    }

    /// A request context with no session and no headers, for calling the component directly
    /// (benchmarks, embedding).
    pub fn request_ctx(&self, request_id: Arc<str>) -> RequestCtx {
        RequestCtx::new(request_id, None, &http::HeaderMap::new())
    }

    /// Run the extension's `check-settings` on an instance of its own (at load); a handler has
    /// none. An error names the component and its `settings`.
    pub async fn check_settings(&self, engine: &Engine) -> Result<()> {
        let ctx = self.request_ctx(Arc::from("load")).read_only();
        let state = HostState::new(&self.caps, ctx);
        let outcome = match &self.exports {
            Exports::Handler(_) | Exports::WasiHttp(_) => return Ok(()),
            Exports::Authenticator(a) => a.check_settings(engine, state).await,
            Exports::Middleware(m) => m.check_settings(engine, state).await,
        };
        let id = &self.id;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => bail!(
                "component `{id}` refused its settings: {}\n  help: fix `[components.{id}] settings`",
                crate::text::log_safe(&why)
            ),
            Err(failure) => bail!(
                "component `{id}` failed while checking its settings: {}",
                crate::text::log_safe(&failure.to_string())
            ),
        }
    }

    /// Ask this authenticator who sent `head`, on a fresh instance.
    pub async fn authenticate(
        &self,
        engine: &Engine,
        head: &RequestHead,
        ctx: RequestCtx,
    ) -> Result<AuthOutcome, Failure> {
        let Exports::Authenticator(a) = &self.exports else {
            return Err(Failure::Trap(format!(
                "component `{}` is not an authenticator",
                self.id
            )));
        };
        let state = HostState::new(&self.caps, ctx);
        let (outcome, mut store) = a.authenticate(engine, state, head).await;
        store.data_mut().finish();
        outcome
    }

    /// Call this middleware's `before` on a fresh instance, kept for `after` on `continue`.
    pub async fn before(
        &self,
        engine: &Engine,
        head: &RequestHead,
        ctx: RequestCtx,
    ) -> Result<(Action, MiddlewareInstance<HostState>), Failure> {
        let Exports::Middleware(m) = &self.exports else {
            return Err(Failure::Trap(format!(
                "component `{}` is not a middleware",
                self.id
            )));
        };
        m.before(engine, HostState::new(&self.caps, ctx), head)
            .await
    }

    /// Run one request through a fresh instance; what the call left behind (the session the
    /// guest changed, a failed template render) comes back with the outcome.
    pub async fn call(
        &self,
        engine: &Engine,
        request: &Request,
        ctx: RequestCtx,
    ) -> (Result<Response, Failure>, capabilities::Finished) {
        let Exports::Handler(handler) = &self.exports else {
            let failure = Failure::Trap(format!("component `{}` is not a handler", self.id));
            return (Err(failure), capabilities::Finished::default());
        };
        let state = HostState::new(&self.caps, ctx);
        let (outcome, mut store) = handler.call(engine, state, request).await;
        let finished = store.data_mut().finish();
        // The Store (and the instance) ends here, whatever happened.
        drop(store);
        (outcome, finished)
    }

    /// Run one request through a fresh instance of this `wasi:http/proxy` component: `request`
    /// as a `wasi:http` incoming request for `authority` (over `https` if the client used it),
    /// its answer read back into a [`Response`] of at most the component's memory limit.
    pub async fn call_wasi_http(
        &self,
        engine: &Engine,
        request: http::Request<bytes::Bytes>,
        https: bool,
        ctx: RequestCtx,
    ) -> (Result<Response, Failure>, capabilities::Finished) {
        let Exports::WasiHttp(proxy) = &self.exports else {
            let failure = Failure::Trap(format!(
                "component `{}` is not a wasi:http component",
                self.id
            ));
            return (Err(failure), capabilities::Finished::default());
        };
        let state = HostState::new(&self.caps, ctx);
        let (outcome, mut store) = proxy
            .call(engine, state, request, https, self.caps.memory)
            .await;
        let finished = store.data_mut().finish();
        drop(store);
        let outcome = outcome.and_then(|r| {
            let mut headers = Vec::with_capacity(r.headers.len());
            for (name, value) in &r.headers {
                let value = value.to_str().map_err(|_| {
                    Failure::Trap(format!(
                        "the value of response header `{name}` is not UTF-8"
                    ))
                })?;
                headers.push((name.as_str().to_string(), value.to_string()));
            }
            Ok(Response {
                status: r.status,
                headers,
                body: Vec::from(r.body),
            })
        });
        (outcome, finished)
    }
}

/// A compiled component whose imports passed the check.
pub struct Checked {
    pub component: Component,
    pub origin: Origin,
    pub imports: Vec<ImportReport>,
    /// The world it exports (`world` in its table, or what it was found to export).
    pub world: World,
    /// What the signature check found (`[app] require_signatures`, `trusted_keys`).
    pub signature: signature::Verdict,
}

/// Check the signature, compile (or load from the cache) and check the imports against the
/// grants; used by [`LoadedComponent::load`] and by `flagon check`.
pub fn compile_and_check(
    engine: &Engine,
    manifest: &Manifest,
    id: &str,
    section: &ComponentSection,
    source: &WasmSource,
    cache_dir: Option<&Path>,
) -> Result<Checked> {
    let wasm = source.read().with_context(|| {
        let hint = if section.build.is_some() {
            "run `flagon build` (or `flagon serve --build`) first"
        } else {
            "check `source`, or add a `build` command"
        };
        format!(
            "cannot read component `{id}` from `{source}` (`components.{id}.source` in `{}`); {hint}",
            manifest.file.display()
        )
    })?;
    // On the bytes just read, which are the ones compiled: nothing can change in between.
    let subject = match source {
        WasmSource::File(path) => signature::Subject::File(path),
        WasmSource::Embedded(plugin) => signature::Subject::Embedded(plugin),
    };
    let place = signature::Place {
        table: &format!("components.{id}"),
        id,
        manifest: &manifest.file,
    };
    let signature = signature::check(&manifest.signature_policy(), subject, &wasm, place)?;
    // A lean handler is a core module: made a component here, after the signature check on
    // the bytes as read.
    let wasm = crate::runtime::componentize::to_component(&wasm).with_context(|| {
        format!(
            "`{source}` is a core Wasm module that cannot be made a component (component `{id}`)"
        )
    })?;
    let (component, origin) = engine::load_component(engine, &wasm, cache_dir)
        .with_context(|| format!("`{source}` is not a valid Wasm component (component `{id}`)"))?;
    let world = capabilities::world_of(engine, &component, section);
    let imports = capabilities::check(engine, &component, section, world);
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
    Ok(Checked {
        component,
        origin,
        imports,
        world,
        signature,
    })
}
