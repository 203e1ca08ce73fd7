//! `flagon serve`: load the app and serve it until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use crate::app::{App, LoadOptions};
use crate::http::{Server, shutdown_signal};
use crate::manifest::Manifest;

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
    build: bool,
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
        let started = std::time::Instant::now();
        let app = Arc::new(App::load(&manifest, &options).await?);
        let addr = listen.unwrap_or(manifest.server.listen);
        let server = Server::bind(app.clone(), addr).await?;
        tracing::info!(
            app = app.name(),
            components = app.components().len(),
            routes = app.router().routes().len(),
            millis = started.elapsed().as_millis() as u64,
            "listening on http://{}",
            server.local_addr()
        );
        server.run(shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}
