//! Capabilities: which imports the host offers, what grant each needs, and how they are linked.
//!
//! A component may import only what its manifest entry grants. The check runs at load (and in
//! `flagon check`) against the component's declared imports, before anything is instantiated,
//! and an import the host does not know is refused rather than linked as a trap.
//!
//! Adding a capability: give it a [`Capability`] variant, classify its interface in
//! [`classify`], decide its grant in [`Capability::granted`], and link it in [`link`].

use std::fmt;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Result};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings as wasi;
use wasmtime_wasi::random::WasiRandom;

use crate::bindings::flagon::app as flagon;
use crate::manifest::ComponentSection;
use crate::state::HostState;

/// The version of the `flagon:app` package this host implements.
pub const FLAGON_WIT_VERSION: &str = "0.1.0";

/// What an import gives a guest, for deciding whether it was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Pure computation support every guest gets: WASI I/O streams, clocks, random numbers,
    /// and the CLI and filesystem interfaces that language runtimes import. These are
    /// harmless because the context is empty: no arguments or environment, no preopened
    /// directories, stdin empty, stdout/stderr turned into log lines.
    Baseline,
    /// `flagon:app/types`: type definitions only.
    Types,
    /// `flagon:app/log`: every component may log; lines are rate- and size-limited.
    Log,
    /// `flagon:app/config`: needs `grants.variables`.
    Config,
    /// `flagon:app/crypto`: needs `grants.crypto`.
    Crypto,
    /// `flagon:app/templates`: needs `grants.templates`.
    Templates,
    /// `flagon:app/session`: needs `grants.session`.
    Session,
    /// `flagon:app/kv`: needs `grants.kv` (and then only the listed stores).
    Kv,
    /// `flagon:app/outbound-http`: needs `grants.outbound` (and then only those origins).
    Outbound,
}

impl Capability {
    /// Whether `section` grants this capability.
    pub fn granted(self, section: &ComponentSection) -> bool {
        match self {
            Capability::Baseline | Capability::Types | Capability::Log => true,
            Capability::Config => section.grants.variables.is_some(),
            Capability::Crypto => section.grants.crypto,
            Capability::Templates => section.grants.templates,
            Capability::Session => section.grants.session,
            Capability::Kv => section.grants.kv.as_ref().is_some_and(|k| !k.is_empty()),
            Capability::Outbound => section
                .grants
                .outbound
                .as_ref()
                .is_some_and(|o| !o.is_empty()),
        }
    }

    /// The manifest line that grants this capability.
    fn grant_hint(self) -> &'static str {
        match self {
            Capability::Config => "grants = { variables = [\"name\"] }",
            Capability::Crypto => "grants = { crypto = true }",
            Capability::Templates => "grants = { templates = true }",
            Capability::Session => "grants = { session = true }",
            Capability::Kv => "grants = { kv = [\"name\"] }",
            Capability::Outbound => "grants = { outbound = [\"https://api.example.com\"] }",
            _ => "",
        }
    }
}

/// Why a component cannot be loaded with its grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportError {
    NotGranted { import: String, hint: &'static str },
    NotOffered { import: String, reason: String },
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::NotGranted { import, hint } => write!(
                f,
                "imports `{import}`, which it was not granted\n  help: add `{hint}` to its `[components.<id>]` table"
            ),
            ImportError::NotOffered { import, reason } => {
                write!(
                    f,
                    "imports `{import}`, which Flagon does not offer: {reason}"
                )
            }
        }
    }
}

/// One import of a component and what became of it.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub name: String,
    pub outcome: Result<Capability, ImportError>,
}

/// Classify every import of `component` and check it against `section`'s grants.
pub fn check(
    engine: &Engine,
    component: &Component,
    section: &ComponentSection,
) -> Vec<ImportReport> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| {
            let outcome = match classify(name) {
                Ok(cap) if cap.granted(section) => Ok(cap),
                Ok(cap) => Err(ImportError::NotGranted {
                    import: name.to_string(),
                    hint: cap.grant_hint(),
                }),
                Err(reason) => Err(ImportError::NotOffered {
                    import: name.to_string(),
                    reason,
                }),
            };
            ImportReport {
                name: name.to_string(),
                outcome,
            }
        })
        .collect()
}

/// Map an import name such as `wasi:cli/stdout@0.2.4` to the capability it needs.
pub fn classify(import: &str) -> Result<Capability, String> {
    let (path, version) = import.split_once('@').unwrap_or((import, ""));
    let Some((package, interface)) = path.split_once('/') else {
        return Err("bare function imports are not part of any Flagon world".into());
    };
    match package {
        "wasi:io" | "wasi:clocks" | "wasi:random" | "wasi:cli" | "wasi:filesystem" => {
            if !version.starts_with("0.2.") {
                return Err(format!(
                    "this host implements WASI 0.2.x; rebuild the component for `wasm32-wasip2` (it wants `{version}`)"
                ));
            }
            let known = match package {
                "wasi:io" => matches!(interface, "error" | "poll" | "streams"),
                "wasi:clocks" => matches!(interface, "wall-clock" | "monotonic-clock"),
                "wasi:random" => matches!(interface, "random" | "insecure" | "insecure-seed"),
                "wasi:cli" => matches!(
                    interface,
                    "environment"
                        | "exit"
                        | "stdin"
                        | "stdout"
                        | "stderr"
                        | "terminal-input"
                        | "terminal-output"
                        | "terminal-stdin"
                        | "terminal-stdout"
                        | "terminal-stderr"
                ),
                _ => matches!(interface, "types" | "preopens"),
            };
            if known {
                Ok(Capability::Baseline)
            } else {
                Err(format!(
                    "`{package}/{interface}` is not an interface this host links"
                ))
            }
        }
        "wasi:sockets" => Err("components get no network sockets".into()),
        "wasi:http" => Err(
            "`wasi:http` is not linked; send requests through `flagon:app/outbound-http` with `grants.outbound`".into(),
        ),
        "flagon:app" => {
            if version != FLAGON_WIT_VERSION {
                return Err(format!(
                    "this host implements `flagon:app@{FLAGON_WIT_VERSION}`; rebuild the component against it (it wants `{version}`)"
                ));
            }
            match interface {
                "types" => Ok(Capability::Types),
                "log" => Ok(Capability::Log),
                "config" => Ok(Capability::Config),
                "crypto" => Ok(Capability::Crypto),
                "templates" => Ok(Capability::Templates),
                "session" => Ok(Capability::Session),
                "kv" => Ok(Capability::Kv),
                "outbound-http" => Ok(Capability::Outbound),
                other => Err(format!(
                    "`flagon:app/{other}` is not implemented by this host"
                )),
            }
        }
        other => Err(format!("the package `{other}` is not known to this host")),
    }
}

/// Link every capability the host offers. Components are checked against their grants before
/// they are pre-instantiated with this linker, so linking all of them here is safe.
pub fn link(linker: &mut Linker<HostState>) -> Result<()> {
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
    flagon::types::add_to_linker::<_, HasSelf<_>>(l, |t| t)?;
    flagon::log::add_to_linker::<_, HasSelf<_>>(l, |t| t)?;
    flagon::config::add_to_linker::<_, HasSelf<_>>(l, |t| t)?;
    flagon::crypto::add_to_linker::<_, HasSelf<_>>(l, |t| t)?;
    flagon::templates::add_to_linker::<_, HasSelf<_>>(l, |t| t)?;
    flagon::session::add_to_linker::<_, HasSelf<_>>(l, |t| t)?;
    flagon::kv::add_to_linker::<_, HasSelf<_>>(l, |t| t)?;
    flagon::outbound_http::add_to_linker::<_, HasSelf<_>>(l, |t| t)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify("wasi:cli/stdout@0.2.4"), Ok(Capability::Baseline));
        assert_eq!(classify("wasi:io/streams@0.2.0"), Ok(Capability::Baseline));
        assert_eq!(classify("flagon:app/config@0.1.0"), Ok(Capability::Config));
        assert_eq!(classify("flagon:app/crypto@0.1.0"), Ok(Capability::Crypto));
        assert!(
            classify("wasi:sockets/tcp@0.2.0")
                .unwrap_err()
                .contains("sockets")
        );
        assert!(classify("wasi:http/outgoing-handler@0.2.0").is_err());
        assert!(classify("wasi:cli/run@0.2.0").is_err());
        assert!(
            classify("wasi:cli/stdout@0.3.0")
                .unwrap_err()
                .contains("0.2.x")
        );
        assert!(
            classify("flagon:app/log@0.2.0")
                .unwrap_err()
                .contains("0.1.0")
        );
        assert!(classify("evil:pkg/thing").unwrap_err().contains("evil:pkg"));
        assert!(classify("host-func").is_err());
    }
}
