//! The `flagon` command line: the clap definitions here, one module per command.

mod build;
mod check;
mod migrate;
mod new;
mod routes;
mod serve;
mod sign;
mod test;
mod watch;

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
        /// Serve `/healthz`, `/readyz` and `/metrics` on this address instead of `[admin]
        /// listen` (without either, there is no admin listener). Keep it on loopback or a
        /// private network; never the public port. Example: 127.0.0.1:9464
        #[arg(long, env = "FLAGON_ADMIN_LISTEN", value_name = "ADDR")]
        admin_listen: Option<SocketAddr>,
        /// Run every component's build command first.
        #[arg(long)]
        build: bool,
        /// Development: watch the app's files; rebuild a component whose sources change (if it
        /// has a `build` command), and reload the app when the manifest, a template, a
        /// migration or a component changes. A reload that fails keeps the running app.
        #[arg(long)]
        watch: bool,
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
    /// Make an Ed25519 signing key: the private key (PKCS#8 PEM) goes to a new file of mode
    /// 0600, and the public key, for `[app] trusted_keys`, is printed as `ed25519:<base64>`.
    Keygen {
        /// The private key file to create; an existing file is never overwritten. Keep it out
        /// of the app's repository.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Sign components: write `<file>.sig` beside each `.wasm`, an Ed25519 signature over its
    /// SHA-256 and its id, for `[app] require_signatures`.
    Sign {
        /// The private key file (`flagon keygen --out`).
        #[arg(
            long,
            value_name = "PATH",
            required_unless_present = "key_env",
            conflicts_with = "key_env"
        )]
        key: Option<PathBuf>,
        /// The name of an environment variable holding the private key (PEM, or the PKCS#8 DER
        /// in base64), for CI secrets.
        #[arg(long, value_name = "VAR")]
        key_env: Option<String>,
        /// The id to sign as (default: the file's name without `.wasm`). At load, a component
        /// must be signed as its `[components.<id>]` id or as its file's name.
        #[arg(long)]
        id: Option<String>,
        /// The `.wasm` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check the `<file>.sig` beside each `.wasm`: its SHA-256, its Ed25519 signature, its id,
    /// and that its key is one of `--key`.
    Verify {
        /// A trusted public key, `ed25519:<base64>`, or a file holding one (`.pub`); repeat for
        /// more.
        #[arg(long, value_name = "KEY|PATH", required = true)]
        key: Vec<String>,
        /// The id it must be signed as (default: the file's name without `.wasm`).
        #[arg(long)]
        id: Option<String>,
        /// The `.wasm` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Make a component of a lean handler's core module (built for `wasm32-unknown-unknown`),
    /// as `serve` does at load: to sign it, inspect it, or serve it elsewhere. It must import
    /// only `flagon:app` interfaces.
    Componentize {
        /// The core module (`.wasm`).
        module: PathBuf,
        /// Where to write the component.
        #[arg(short, long)]
        out: PathBuf,
    },
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
            app,
            listen,
            admin_listen,
            build,
            watch,
            no_cache,
            env_file,
            dev,
        } => serve::serve(
            &app,
            listen,
            admin_listen,
            build,
            watch,
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
        Command::Keygen { out } => sign::keygen(&out),
        Command::Sign {
            key,
            key_env,
            id,
            files,
        } => sign::sign(key.as_deref(), key_env.as_deref(), id.as_deref(), &files),
        Command::Verify { key, id, files } => sign::verify(&key, id.as_deref(), &files),
        Command::Componentize { module, out } => componentize(&module, &out),
    }
}

fn componentize(module: &std::path::Path, out: &std::path::Path) -> Result<()> {
    use anyhow::Context as _;
    let bytes =
        std::fs::read(module).with_context(|| format!("cannot read `{}`", module.display()))?;
    if !crate::runtime::componentize::is_core_module(&bytes) {
        anyhow::bail!(
            "`{}` is not a core Wasm module (already a component?); serve it as it is",
            module.display()
        );
    }
    let component = crate::runtime::componentize::componentize(&bytes)
        .with_context(|| format!("cannot make a component of `{}`", module.display()))?;
    std::fs::write(out, &component).with_context(|| format!("cannot write `{}`", out.display()))?;
    println!(
        "wrote {} ({} bytes) from {}",
        out.display(),
        component.len(),
        module.display()
    );
    Ok(())
}
