//! A loaded component: compiled (or read from the cache), checked against its grants, linked
//! once into an `InstancePre`, and instantiated fresh for every request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use wasmtime::component::Linker;
use wasmtime::{
    Engine, PoolConcurrencyLimitError, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline,
};

use crate::bindings::{HandlerPre, Request, Response};
use crate::capabilities::{self, ImportReport};
use crate::engine::{self, Origin};
use crate::manifest::{ComponentSection, Manifest, Variable};
use crate::state::HostState;
use crate::web::RequestCtx;

/// What every request's `Store` needs to know about the component it runs.
#[derive(Debug)]
pub struct Guest {
    pub id: String,
    /// Most linear memory per instance, in bytes.
    pub memory: usize,
    /// Time one request may spend in the guest.
    pub timeout: Duration,
    /// The variables granted to this component, and only those.
    pub variables: Box<[(String, String)]>,
    /// Values of the app's secret variables, redacted from everything the guest logs.
    pub secrets: Box<[String]>,
    /// The key-value stores granted to this component.
    pub kv: Box<[String]>,
    /// Whether the component uses the cookie session (its routes get CSRF checks).
    pub session: bool,
    /// Granted directories: host path, guest path, writable.
    pub files: Box<[(PathBuf, String, bool)]>,
    /// Where the component may send HTTP requests (`grants.outbound`), if anywhere.
    pub outbound: Option<crate::outbound::OutboundPolicy>,
}

/// Secret values shorter than this are not redacted: they would match ordinary text.
const MIN_REDACTED_SECRET: usize = 4;

impl Guest {
    /// `text` with every secret value replaced by `[redacted]`.
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let mut out = std::borrow::Cow::Borrowed(text);
        for secret in self
            .secrets
            .iter()
            .filter(|s| s.len() >= MIN_REDACTED_SECRET)
        {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[redacted]").into();
            }
        }
        out
    }

    pub(crate) fn store_limits(&self) -> StoreLimits {
        StoreLimitsBuilder::new()
            .memory_size(self.memory)
            // Failing growth returns -1 to the guest (its allocator reports out-of-memory and
            // usually aborts, which traps); the host itself never allocates past the limit.
            .trap_on_grow_failure(false)
            .build()
    }
}

/// A component ready to serve requests.
pub struct LoadedComponent {
    pub guest: Arc<Guest>,
    pub path: PathBuf,
    pub origin: Origin,
    pub imports: Vec<ImportReport>,
    pre: HandlerPre<HostState>,
}

/// Why a request to a guest produced no response.
#[derive(Debug)]
pub enum Failure {
    /// The guest ran past its deadline and was stopped.
    Timeout,
    /// Every instance slot is in use.
    Overloaded,
    /// The guest trapped (panic, stack overflow, out-of-bounds access, ...) or failed to
    /// instantiate. The detail is for the log only.
    Trap(String),
}

impl LoadedComponent {
    /// Load, check and pre-link the component `id` of `manifest`.
    pub fn load(
        engine: &Engine,
        linker: &Linker<HostState>,
        manifest: &Manifest,
        id: &str,
        variables: &std::collections::BTreeMap<String, Variable>,
        cache_dir: Option<&Path>,
    ) -> Result<Self> {
        let section = &manifest.components[id];
        let path = manifest.resolve(&section.source);
        let (component, origin, imports) =
            Self::compile_and_check(engine, manifest, id, section, &path, cache_dir)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("failed to link component `{id}`"))?;
        let pre = HandlerPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "component `{id}` does not export `handle` from the `flagon:app/handler` world"
                )
            })?;
        let outbound = match &section.grants.outbound {
            Some(grants) if !grants.is_empty() => {
                // The manifest checked every grant when it was parsed.
                let allowed = grants.iter().filter_map(|g| g.parse().ok()).collect();
                Some(
                    crate::outbound::OutboundPolicy::new(allowed)
                        .with_timeout(section.limits.timeout.0),
                )
            }
            _ => None,
        };
        let granted = section.grants.variables.iter().flatten();
        let guest = Guest {
            id: id.to_string(),
            memory: usize::try_from(section.limits.memory.0).unwrap_or(usize::MAX),
            timeout: section.limits.timeout.0,
            variables: granted
                .map(|name| (name.clone(), variables[name].value.clone()))
                .collect(),
            secrets: variables
                .values()
                .filter(|v| v.secret)
                .map(|v| v.value.clone())
                .collect(),
            kv: section.grants.kv.iter().flatten().cloned().collect(),
            session: section.grants.session,
            files: section
                .grants
                .files
                .iter()
                .map(|(guest, g)| (manifest.resolve(g.path()), guest.clone(), g.writable()))
                .collect(),
            outbound,
        };
        Ok(Self {
            guest: Arc::new(guest),
            path,
            origin,
            imports,
            pre,
        })
    }

    /// Compile (or load from the cache) and check the imports against the grants; used by
    /// `load` and by `flagon check`.
    pub fn compile_and_check(
        engine: &Engine,
        manifest: &Manifest,
        id: &str,
        section: &ComponentSection,
        path: &Path,
        cache_dir: Option<&Path>,
    ) -> Result<(wasmtime::component::Component, Origin, Vec<ImportReport>)> {
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

    /// Run one request through a fresh instance; the request context comes back with the
    /// outcome (the session the guest changed, a failed template render).
    pub async fn call(
        &self,
        engine: &Engine,
        request_id: Arc<str>,
        request: &Request,
        ctx: RequestCtx,
    ) -> (Result<Response, Failure>, RequestCtx) {
        let started = Instant::now();
        let deadline = started + self.guest.timeout;
        let mut store = Store::new(
            engine,
            HostState::new(self.guest.clone(), request_id, deadline, ctx),
        );
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_callback(|ctx| {
            Ok(if Instant::now() >= ctx.data().deadline {
                UpdateDeadline::Interrupt
            } else {
                // Not yet: let other requests on this thread run, then check again next tick.
                // tokio's `yield_now` defers the wake-up until the worker has polled the I/O
                // driver, so a spinning guest cannot starve the network and timers.
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        store.set_epoch_deadline(1);

        let run = async {
            let handler = self.pre.instantiate_async(&mut store).await?;
            handler.call_handle(&mut store, request).await
        };
        // The epoch deadline stops guest code; this outer timeout also covers time spent in
        // host calls, so nothing a guest does can hold a request past its deadline for long.
        // Most handlers never wait on the host: the first poll runs the fiber to completion,
        // and only a call that is still pending afterwards arms a timer (saving a timer-wheel
        // insert and removal on every request).
        let limit = self.guest.timeout + engine::EPOCH_TICK * 20;
        let outcome = {
            let mut run = std::pin::pin!(run);
            let first =
                std::future::poll_fn(|cx| std::task::Poll::Ready(run.as_mut().poll(cx))).await;
            match first {
                std::task::Poll::Ready(done) => Ok(done),
                std::task::Poll::Pending => {
                    let until = tokio::time::Instant::from_std(started + limit);
                    tokio::time::timeout_at(until, run).await
                }
            }
        };
        let dropped = store.data().dropped_log_lines();
        if dropped > 0 {
            tracing::warn!(component = %self.guest.id, request_id = %store.data().request_id, dropped, "guest log lines dropped (limit per request)");
        }
        let result = match outcome {
            Err(_elapsed) => Err(Failure::Timeout),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(classify_error(e)),
        };
        // The Store (and the instance) ends here: a Store never serves a second request.
        (result, store.into_data().ctx)
    }
}

fn classify_error(e: wasmtime::Error) -> Failure {
    if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        return Failure::Overloaded;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Timeout,
        _ => Failure::Trap(format!("{e:#}")),
    }
}
