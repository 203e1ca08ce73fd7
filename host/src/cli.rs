//! The `flagon` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use crate::app::{App, CacheDir, LoadOptions};
use crate::capabilities::Capability;
use crate::component::LoadedComponent;
use crate::engine::{EngineSettings, FlagonEngine};
use crate::manifest::Manifest;
use crate::server::{self, Server};

#[derive(Debug, Parser)]
#[command(
    name = "flagon",
    version,
    about = "Serve web apps made of sandboxed WebAssembly components"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve an app.
    Serve {
        /// The app directory or its `flagon.toml`.
        #[arg(default_value = ".")]
        app: PathBuf,
        /// Listen on this address instead of `[server] listen`. Example: 0.0.0.0:8080
        #[arg(long, env = "FLAGON_LISTEN")]
        listen: Option<SocketAddr>,
        /// Run every component's build command first.
        #[arg(long)]
        build: bool,
        /// Do not use or write the precompiled-component cache.
        #[arg(long)]
        no_cache: bool,
        /// Read unset environment variables for `[variables]` from this `.env` file.
        #[arg(long, value_name = "PATH")]
        env_file: Option<PathBuf>,
        /// Development mode: detailed error pages, templates re-read on every request, cookies
        /// without `Secure` (for plain http://localhost), an ephemeral session key if none is
        /// set, and the app's `.env` file read. Never use it in production.
        #[arg(long)]
        dev: bool,
    },
    /// Run each component's build command.
    Build {
        /// The app directory or its `flagon.toml`.
        #[arg(default_value = ".")]
        app: PathBuf,
        /// Build only this component.
        #[arg(long)]
        component: Option<String>,
    },
    /// Check the manifest, every component, and what each imports against what it was granted.
    Check {
        /// The app directory or its `flagon.toml`.
        #[arg(default_value = ".")]
        app: PathBuf,
        /// Read unset environment variables for `[variables]` from this `.env` file.
        #[arg(long, value_name = "PATH")]
        env_file: Option<PathBuf>,
    },
    /// List the routes, like `flask routes`.
    Routes {
        /// The app directory or its `flagon.toml`.
        #[arg(default_value = ".")]
        app: PathBuf,
    },
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
            app,
            listen,
            build,
            no_cache,
            env_file,
            dev,
        } => serve(
            &app,
            listen,
            build,
            LoadOptions {
                cache: if no_cache {
                    CacheDir::Disabled
                } else {
                    CacheDir::Default
                },
                env_file,
                dev,
            },
        ),
        Command::Build { app, component } => {
            let manifest = Manifest::load(&app)?;
            crate::build::build_components(&manifest, component.as_deref())
        }
        Command::Check { app, env_file } => check(
            &app,
            &LoadOptions {
                cache: CacheDir::Default,
                env_file,
                dev: false,
            },
        ),
        Command::Routes { app } => routes(&app),
    }
}

fn serve(
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
        let dotenv = manifest.dir.join(".env");
        if options.env_file.is_none() && dotenv.is_file() {
            tracing::info!("reading unset variables from `{}`", dotenv.display());
            options.env_file = Some(dotenv);
        }
    }
    if build {
        crate::build::build_components(&manifest, None)?;
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
        server.run(server::shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn check(path: &Path, options: &LoadOptions) -> Result<()> {
    let manifest = Manifest::load(path)?;
    println!(
        "manifest `{}`: ok (app `{}`)",
        manifest.file.display(),
        manifest.app.name
    );
    let variables = manifest.resolve_variables(options.env_lookup()?)?;
    for (name, v) in &variables {
        let shown = if v.secret {
            "<secret>".to_string()
        } else {
            format!("{:?}", v.value)
        };
        println!("variable `{name}` = {shown}");
    }
    let engine = FlagonEngine::new(&EngineSettings {
        max_instances: 1,
        max_memory: manifest.max_component_memory(),
    })?;
    let cache = manifest.cache_dir();
    let mut failures = 0;
    for (id, section) in &manifest.components {
        let path = manifest.resolve(&section.source);
        println!("\ncomponent `{id}` ({})", path.display());
        println!(
            "  limits: memory {}, timeout {}",
            section.limits.memory, section.limits.timeout
        );
        let mut granted = vec!["log".to_string()];
        if let Some(v) = &section.grants.variables {
            granted.push(format!("variables [{}]", v.join(", ")));
        }
        if section.grants.crypto {
            granted.push("crypto".into());
        }
        if section.grants.templates {
            granted.push("templates".into());
        }
        if section.grants.session {
            granted.push("session".into());
        }
        if let Some(k) = &section.grants.kv {
            granted.push(format!("kv [{}]", k.join(", ")));
        }
        if let Some(o) = &section.grants.outbound {
            let origins: Vec<String> = o
                .iter()
                .map(|g| match g.parse() {
                    Ok(origin) if origin.allow_private() => format!("{origin} (private allowed)"),
                    Ok(origin) => origin.to_string(),
                    Err(_) => "?".into(),
                })
                .collect();
            granted.push(format!("outbound [{}]", origins.join(", ")));
        }
        for (guest, g) in &section.grants.files {
            granted.push(format!(
                "files {guest} -> {} ({})",
                manifest.resolve(g.path()).display(),
                if g.writable() {
                    "read-write"
                } else {
                    "read-only"
                }
            ));
        }
        let granted = granted.join(", ");
        println!("  granted: {granted}");
        match LoadedComponent::compile_and_check(
            &engine.engine,
            &manifest,
            id,
            section,
            &path,
            cache.as_deref(),
        ) {
            Ok((_, _, imports)) => {
                let uses = |cap: Capability| imports.iter().any(|i| i.outcome == Ok(cap));
                let uses_config = uses(Capability::Config);
                for i in &imports {
                    println!(
                        "  imports {} ({:?})",
                        i.name,
                        i.outcome.as_ref().expect("checked")
                    );
                }
                if section.grants.variables.is_some() && !uses_config {
                    println!(
                        "  unused grant: `variables` (the component does not import `flagon:app/config`)"
                    );
                }
                for (granted, cap, name, iface) in [
                    (
                        section.grants.crypto,
                        Capability::Crypto,
                        "crypto",
                        "crypto",
                    ),
                    (
                        section.grants.templates,
                        Capability::Templates,
                        "templates",
                        "templates",
                    ),
                    (
                        section.grants.session,
                        Capability::Session,
                        "session",
                        "session",
                    ),
                    (section.grants.kv.is_some(), Capability::Kv, "kv", "kv"),
                    (
                        section.grants.outbound.is_some(),
                        Capability::Outbound,
                        "outbound",
                        "outbound-http",
                    ),
                ] {
                    if granted && !uses(cap) {
                        println!(
                            "  unused grant: `{name}` (the component does not import `flagon:app/{iface}`)"
                        );
                    }
                }
                println!("  ok");
            }
            Err(e) => {
                failures += 1;
                println!("  error: {e:#}");
            }
        }
    }
    crate::router::Router::new(&manifest)?;
    println!("\nroutes: {} ok", manifest.routes.len());
    if failures > 0 {
        bail!("{failures} component(s) failed the check");
    }
    Ok(())
}

fn routes(path: &Path) -> Result<()> {
    let manifest = Manifest::load(path)?;
    let router = crate::router::Router::new(&manifest)?;
    let rows: Vec<[String; 4]> = router
        .routes()
        .iter()
        .map(|r| {
            let mut methods: Vec<String> = r.methods.iter().map(ToString::to_string).collect();
            if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
                methods.push("HEAD".into());
            }
            [
                r.name.as_deref().unwrap_or("-").to_string(),
                methods.join(", "),
                r.path.clone(),
                r.component_id.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["Name", "Methods", "Rule", "Component"], &rows)
    );
    Ok(())
}

fn table(header: &[&str; 4], rows: &[[String; 4]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 4]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 3 {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(*header);
    out.push_str(&line(
        widths.map(|w| "-".repeat(w)).each_ref().map(String::as_str),
    ));
    for row in rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}
