//! The WASI baseline every component gets, and `grants.files`.
//!
//! WASI I/O streams, clocks, random numbers, and the CLI and filesystem interfaces that
//! language runtimes import are harmless because the context is empty: no arguments or
//! environment, no preopened directories but those in `grants.files`, stdin empty, stdout and
//! stderr turned into log lines (`runtime::guest_log`). Granted directories are opened beneath
//! a capability handle (cap-std), so `..` and symlinks cannot leave them. `wasi:sockets` and
//! `wasi:http` are not linked at all.

use std::path::PathBuf;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings as wasi;
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::{AppSetup, Capability, ComponentSetup, HostState};
use crate::manifest::{ComponentSection, Manifest};
use crate::runtime::guest_log::GuestOutput;

pub struct Wasi;

/// A granted directory: host path, guest path, writable.
pub type FileGrant = (PathBuf, String, bool);

impl Capability for Wasi {
    const NAME: &'static str = "Baseline";
    const INTERFACES: &'static [&'static str] = &[
        "wasi:io/error",
        "wasi:io/poll",
        "wasi:io/streams",
        "wasi:clocks/wall-clock",
        "wasi:clocks/monotonic-clock",
        "wasi:random/random",
        "wasi:random/insecure",
        "wasi:random/insecure-seed",
        "wasi:cli/environment",
        "wasi:cli/exit",
        "wasi:cli/stdin",
        "wasi:cli/stdout",
        "wasi:cli/stderr",
        "wasi:cli/terminal-input",
        "wasi:cli/terminal-output",
        "wasi:cli/terminal-stdin",
        "wasi:cli/terminal-stdout",
        "wasi:cli/terminal-stderr",
        "wasi:filesystem/types",
        "wasi:filesystem/preopens",
    ];
    const GRANT: Option<super::Grant> = None;
    type App = ();
    /// The component's granted directories.
    type Component = Box<[FileGrant]>;
    /// Built on first use: most handlers never call WASI, and building a context (clocks,
    /// seeded random generators) costs more than the rest of the per-request state together.
    type Instance = Option<WasiCtx>;

    fn granted(_: &ComponentSection) -> bool {
        true
    }

    fn describe(manifest: &Manifest, section: &ComponentSection) -> Vec<String> {
        let files = section.grants.files.iter();
        files
            .map(|(guest, g)| {
                let mode = if g.writable() {
                    "read-write"
                } else {
                    "read-only"
                };
                let host = manifest.resolve(g.path());
                format!("files {guest} -> {} ({mode})", host.display())
            })
            .collect()
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        link_baseline(linker)
    }

    async fn setup(_: &AppSetup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn configure(_: &(), c: &ComponentSetup<'_>) -> anyhow::Result<Self::Component> {
        // The manifest checked that every granted directory exists.
        let files = c.section.grants.files.iter();
        Ok(files
            .map(|(guest, g)| (c.manifest.resolve(g.path()), guest.clone(), g.writable()))
            .collect())
    }

    fn prepare(_: &Self::Component) -> Option<WasiCtx> {
        None
    }
}

/// Link the WASI baseline ([`Wasi::INTERFACES`]) for any store whose data is a [`WasiView`]:
/// handlers, and DB adapters (whose context preopens only their data directory).
pub fn link_baseline<T: WasiView + wasmtime_wasi_io::IoView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    {
        wasmtime_wasi_io::add_to_linker_async(linker)?;
        let l = linker;
        wasi::clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, |t| t.clocks())?;
        wasi::clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(l, |t| t.clocks())?;
        wasi::random::random::add_to_linker::<_, WasiRandom>(l, |t| t.ctx().ctx.random())?;
        wasi::random::insecure::add_to_linker::<_, WasiRandom>(l, |t| t.ctx().ctx.random())?;
        wasi::random::insecure_seed::add_to_linker::<_, WasiRandom>(l, |t| t.ctx().ctx.random())?;
        wasi::cli::exit::add_to_linker::<_, WasiCli>(l, |t| t.cli())?;
        wasi::cli::environment::add_to_linker::<_, WasiCli>(l, |t| t.cli())?;
        wasi::cli::stdin::add_to_linker::<_, WasiCli>(l, |t| t.cli())?;
        wasi::cli::stdout::add_to_linker::<_, WasiCli>(l, |t| t.cli())?;
        wasi::cli::stderr::add_to_linker::<_, WasiCli>(l, |t| t.cli())?;
        wasi::cli::terminal_input::add_to_linker::<_, WasiCli>(l, |t| t.cli())?;
        wasi::cli::terminal_output::add_to_linker::<_, WasiCli>(l, |t| t.cli())?;
        wasi::cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, |t| t.cli())?;
        wasi::cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, |t| t.cli())?;
        wasi::cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, |t| t.cli())?;
        wasi::filesystem::types::add_to_linker::<_, WasiFilesystem>(l, |t| t.filesystem())?;
        wasi::filesystem::preopens::add_to_linker::<_, WasiFilesystem>(l, |t| t.filesystem())?;
        Ok(())
    }
}

/// `wasi:sockets` for a DB adapter granted a network address (never for handlers). What a
/// socket may reach is the context's business: an adapter's allows TCP connections to its
/// database's addresses only (`sql::pool`), and no UDP or name lookups.
pub fn link_sockets<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
    let l = linker;
    let options = wasi::sockets::network::LinkOptions::default();
    wasi::sockets::tcp::add_to_linker::<_, WasiSockets>(l, |t| t.sockets())?;
    wasi::sockets::tcp_create_socket::add_to_linker::<_, WasiSockets>(l, |t| t.sockets())?;
    wasi::sockets::udp::add_to_linker::<_, WasiSockets>(l, |t| t.sockets())?;
    wasi::sockets::udp_create_socket::add_to_linker::<_, WasiSockets>(l, |t| t.sockets())?;
    wasi::sockets::network::add_to_linker::<_, WasiSockets>(l, &options, |t| t.sockets())?;
    wasi::sockets::instance_network::add_to_linker::<_, WasiSockets>(l, |t| t.sockets())?;
    wasi::sockets::ip_name_lookup::add_to_linker::<_, WasiSockets>(l, |t| t.sockets())?;
    Ok(())
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let HostState {
            runtime,
            request,
            component,
            instance,
        } = self;
        WasiCtxView {
            ctx: instance.wasi.get_or_insert_with(|| {
                let log = request.guest_log(component).clone();
                let mut builder = WasiCtx::builder();
                builder
                    .stdout(GuestOutput::new(log.clone(), "stdout"))
                    .stderr(GuestOutput::new(log.clone(), "stderr"));
                for (host, guest, write) in component.wasi.iter() {
                    let perms = if *write {
                        wasmtime_wasi::FsPerms::ReadWrite
                    } else {
                        wasmtime_wasi::FsPerms::ReadOnly
                    };
                    if let Err(e) = builder.preopened_dir(host, guest, perms) {
                        tracing::error!(component = %component.id, request_id = %request.request_id, "cannot open granted directory `{}`: {e}", host.display());
                    }
                }
                builder.build()
            }),
            table: &mut runtime.table,
        }
    }
}

impl wasmtime_wasi_io::IoView for HostState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.runtime.table
    }
}
