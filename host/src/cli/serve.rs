//! `flagon serve`: load the app and serve it until SIGINT or SIGTERM; reload it on SIGHUP, and
//! with `--watch` when its files change.
//!
//! A reload loads the new app beside the running one ([`App::reload`]) and swaps it in whole
//! ([`Live::swap`]): requests in flight finish on the old app, and an app that fails to load
//! (a bad manifest, a component that does not build or link) leaves the old one serving, with
//! the error logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio::sync::mpsc;

use super::watch::{Plan, Watch};

use crate::app::{App, Live, LoadOptions};
use crate::http::{Server, shutdown_signal};
use crate::manifest::Manifest;
use crate::text::log_safe;

/// In development mode, the app's `.env` file (beside the manifest) supplies unset variables,
/// unless `--env-file` names another.
pub(super) fn read_dotenv(manifest: &Manifest, options: &mut LoadOptions) {
    let dotenv = manifest.dir.join(".env");
    if options.env_file.is_none() && dotenv.is_file() {
        tracing::info!("reading unset variables from `{}`", dotenv.display());
        options.env_file = Some(dotenv);
    }
}

pub(super) fn serve(
    path: &Path,
    listen: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    build: bool,
    watch: bool,
    mut options: LoadOptions,
) -> Result<()> {
    let manifest = Manifest::load(path)?;
    if options.dev {
        tracing::warn!(
            "DEVELOPMENT MODE (--dev): detailed error pages, non-Secure cookies; never use it in production"
        );
        read_dotenv(&manifest, &mut options);
    }
    if build {
        super::build::build_components(&manifest, None)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("flagon-worker")
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async move {
        // Before anything slow: SIGTERM while loading stops cleanly, and SIGHUP is not the
        // default action (which ends the process) at any point after start.
        let shutdown = shutdown_signal();
        let hangup = hangup_signal();
        let started = std::time::Instant::now();
        let app = Arc::new(App::load(&manifest, &options).await?);
        let live = Arc::new(Live::new(app.clone()));
        let addr = listen.unwrap_or(manifest.server.listen);
        let admin = admin.or(manifest.admin.as_ref().map(|a| a.listen));
        // Before either binds, so that the clash is what the error says.
        if let Some(admin) = admin {
            crate::app::AdminServer::check_address(admin, addr)?;
        }
        let server = Server::bind(live.clone(), addr).await?;
        tracing::info!(
            app = app.name(),
            components = app.components().len(),
            routes = app.router().routes().len(),
            millis = started.elapsed().as_millis() as u64,
            "listening on http://{}",
            server.local_addr()
        );
        drop(app);
        // Health, readiness and metrics on a listener of their own (`[admin]`,
        // `--admin-listen`); it outlives the public one's drain, so `/readyz` says `draining`.
        let admin = match admin {
            Some(addr) => {
                Some(crate::app::AdminServer::start(live.clone(), addr, server.local_addr()).await?)
            }
            None => None,
        };
        let watcher = if watch {
            let (watcher, changes) = Watch::start(&manifest.dir)?;
            tracing::info!("watching `{}` for changes", manifest.dir.display());
            Some((watcher, changes))
        } else {
            None
        };
        let reloads = tokio::spawn(reload_on_demand(
            live.clone(),
            path.to_path_buf(),
            options,
            hangup,
            watcher.map(|(w, changes)| (w, changes, Plan::new(&manifest))),
        ));
        let draining = live.clone();
        server
            .run(async move {
                shutdown.await;
                draining.start_draining();
            })
            .await?;
        if let Some(admin) = admin {
            admin.stop().await;
        }
        reloads.abort();
        tracing::info!("stopped");
        Ok(())
    })
}

/// SIGHUP's handler, installed now (see [`shutdown_signal`]); `None` where there is none.
#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot handle SIGHUP, so it will not reload the app: {e}");
            None
        }
    }
    #[cfg(not(unix))]
    None
}

/// Reload on SIGHUP, and on changes to the app's files when watching; one reload at a time.
async fn reload_on_demand(
    live: Arc<Live>,
    path: PathBuf,
    options: LoadOptions,
    #[cfg_attr(not(unix), allow(unused_mut))] mut hangup: Hangup,
    mut watch: Option<(Watch, mpsc::UnboundedReceiver<Vec<PathBuf>>, Plan)>,
) {
    loop {
        #[cfg(unix)]
        let hup = async {
            match &mut hangup {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<Option<()>>();
        let changed = async {
            match &mut watch {
                Some((_, changes, _)) => changes.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = hup => {
                tracing::info!("received SIGHUP: reloading");
                reload(&live, &path, &options).await;
            }
            Some(paths) = changed => {
                let Some((watcher, changes, plan)) = &mut watch else { continue };
                watcher.add_new(&paths);
                let change = plan.classify(paths.iter().map(PathBuf::as_path));
                if !change.reload {
                    continue;
                }
                if !change.rebuild.is_empty() {
                    if !rebuild(&path, &change.rebuild).await {
                        continue;
                    }
                    // What the build wrote (its `.wasm`) is what this reload loads.
                    while changes.try_recv().is_ok() {}
                }
                tracing::info!("files changed: reloading");
                if reload(&live, &path, &options).await
                    && let Ok(manifest) = Manifest::load(&path)
                    && let Some((_, _, plan)) = &mut watch
                {
                    // The manifest may have moved templates, sources or stores.
                    *plan = Plan::new(&manifest);
                }
            }
        }
    }
}

/// Run the build commands of `components`; false (with the error logged) if one failed.
async fn rebuild(path: &Path, components: &std::collections::BTreeSet<String>) -> bool {
    let path = path.to_path_buf();
    let components = components.clone();
    let built = tokio::task::spawn_blocking(move || {
        let manifest = Manifest::load(&path)?;
        for id in &components {
            if manifest.components.contains_key(id) {
                super::build::build_components(&manifest, Some(id))?;
            }
        }
        anyhow::Ok(())
    })
    .await;
    match built {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::error!(
                "rebuild failed; still serving the previous app: {}",
                log_safe(&format!("{e:#}"))
            );
            false
        }
        Err(e) => {
            tracing::error!("rebuild failed; still serving the previous app: {e}");
            false
        }
    }
}

/// Load the app again beside the running one and swap it in. False (with the error logged,
/// and the running app left serving) if the new one does not load.
async fn reload(live: &Live, path: &Path, options: &LoadOptions) -> bool {
    let started = std::time::Instant::now();
    let running = live.current();
    let loaded = async {
        let manifest = Manifest::load(path)?;
        if manifest.server.listen != running.server_settings().listen {
            tracing::warn!(
                "`[server] listen` changed; the listener keeps its address until a restart"
            );
        }
        App::reload(&manifest, options, &running).await
    }
    .await;
    drop(running);
    match loaded {
        Ok(app) => {
            let app = Arc::new(app);
            tracing::info!(
                app = app.name(),
                components = app.components().len(),
                routes = app.router().routes().len(),
                millis = started.elapsed().as_millis() as u64,
                "reloaded"
            );
            // The old app is dropped when the last request running on it ends (see
            // `Live::handle`), or here, off the runtime's workers, if none is.
            let old = live.swap(app);
            tokio::task::spawn_blocking(move || drop(old));
            crate::metrics::reloaded(true);
            true
        }
        Err(e) => {
            tracing::error!(
                "reload failed; still serving the previous app: {}",
                log_safe(&format!("{e:#}"))
            );
            crate::metrics::reloaded(false);
            false
        }
    }
}
