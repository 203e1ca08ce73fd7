//! The `flagon` command line: the clap definitions here, one module per command.

mod build;
mod check;
mod migrate;
mod new;
mod routes;
mod serve;
mod test;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::app::{CacheDir, LoadOptions};
use crate::manifest::Manifest;

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
    /// Apply the databases' pending migrations (`[databases.<name>] migrations`), or with
    /// `--status` list applied and pending ones without applying anything.
    Migrate {
        /// The app directory or its `flagon.toml`.
        #[arg(default_value = ".")]
        app: PathBuf,
        /// Only list applied and pending migrations.
        #[arg(long)]
        status: bool,
        /// Read unset environment variables for `[variables]` from this `.env` file.
        #[arg(long, value_name = "PATH")]
        env_file: Option<PathBuf>,
        /// Development mode, as `serve --dev` loads the app: an ephemeral session key and
        /// `dev_random` variables when unset, and the app's `.env` file read. For the database
        /// a `serve --dev` run uses.
        #[arg(long)]
        dev: bool,
    },
    /// Make a new app from the hello example of a language, with its SDK and Flagon's WIT
    /// copied in, ready for `flagon serve NAME --build --dev`.
    New {
        /// The new app's directory; its last part is the app's name (lowercase, digits, `-`).
        name: PathBuf,
        /// The language of its handler.
        #[arg(long, value_enum, default_value = "rust")]
        lang: new::Lang,
    },
    /// Run the app's request tests (`tests/*.toml`), in whatever language its components are
    /// written: each file is a sequence of requests from one browser-like client, with a
    /// cookie jar and the CSRF token of the last page, against the app loaded as
    /// `serve --dev` loads it, with data of its own. Build the components first.
    Test {
        /// The app directory or its `flagon.toml`.
        #[arg(default_value = ".")]
        app: PathBuf,
        /// Run every component's build command first.
        #[arg(long)]
        build: bool,
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
        } => serve::serve(
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
                skip_migrations: false,
                env: Default::default(),
            },
        ),
        Command::Build { app, component } => {
            let manifest = Manifest::load(&app)?;
            build::build_components(&manifest, component.as_deref())
        }
        Command::Check { app, env_file } => check::check(
            &app,
            &LoadOptions {
                cache: CacheDir::Default,
                env_file,
                dev: false,
                skip_migrations: true,
                env: Default::default(),
            },
        ),
        Command::Migrate {
            app,
            status,
            env_file,
            dev,
        } => migrate::migrate(
            &app,
            status,
            LoadOptions {
                cache: CacheDir::Default,
                env_file,
                dev,
                skip_migrations: true,
                env: Default::default(),
            },
        ),
        Command::New { name, lang } => new::new(&name, lang),
        Command::Test { app, build } => {
            if build {
                build::build_components(&Manifest::load(&app)?, None)?;
            }
            test::test(&app)
        }
        Command::Routes { app } => routes::routes(&app),
    }
}
