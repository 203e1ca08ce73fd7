//! `flagon-c`: the two steps of a C handler's build that need the component-model tools.
//!
//! ```text
//! flagon-c bindings --wit <dir> [--world flagon:app/handler] --out <dir>
//! flagon-c componentize <module.wasm> [--wit <dir>] [--world flagon:app/handler] -o <component.wasm>
//! ```
//!
//! `bindings` writes wit-bindgen's C bindings of the world: `handler.h`, `handler.c` and
//! `handler_component_type.o` (the world's type, linked into the module as a custom section).
//!
//! `componentize` turns the core module clang and wasm-ld made (WASI preview1, reactor) into a
//! component: it embeds the world if the module does not carry it already, and adapts the
//! preview1 imports with wasmtime 48's reactor adapter. It then checks what the component
//! imports, and refuses `wasi:http` and `wasi:sockets`, which Flagon never links for handlers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::Files;
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

const DEFAULT_WORLD: &str = "flagon:app/handler";

const USAGE: &str = "\
usage:
  flagon-c bindings --wit <dir> [--world flagon:app/handler] --out <dir>
  flagon-c componentize <module.wasm> [--wit <dir>] [--world flagon:app/handler] -o <component.wasm>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flagon-c: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The options both commands take.
#[derive(Default)]
struct Opts {
    wit: Option<PathBuf>,
    world: Option<String>,
    out: Option<PathBuf>,
    input: Option<PathBuf>,
}

fn parse(args: &[String], out_flags: &[&str], takes_input: bool) -> Result<Opts> {
    let mut opts = Opts::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("`{flag}` needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--wit" => opts.wit = Some(value("--wit")?.into()),
            "--world" => opts.world = Some(value("--world")?),
            flag if out_flags.contains(&flag) => opts.out = Some(value(flag)?.into()),
            "-h" | "--help" => bail!("{USAGE}"),
            flag if flag.starts_with('-') => bail!("unknown option `{flag}`\n{USAGE}"),
            path if takes_input && opts.input.is_none() => opts.input = Some(path.into()),
            extra => bail!("unexpected argument `{extra}`\n{USAGE}"),
        }
    }
    Ok(opts)
}

fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("bindings") => {
            let opts = parse(&args[1..], &["--out"], false)?;
            let wit = opts.wit.context("`bindings` needs `--wit <dir>`")?;
            let out = opts.out.context("`bindings` needs `--out <dir>`")?;
            bindings(&wit, opts.world.as_deref().unwrap_or(DEFAULT_WORLD), &out)
        }
        Some("componentize") => {
            let opts = parse(&args[1..], &["-o", "--output"], true)?;
            let input = opts
                .input
                .context("`componentize` needs the core module to read")?;
            let out = opts
                .out
                .context("`componentize` needs `-o <component.wasm>`")?;
            componentize(
                &input,
                opts.wit.as_deref(),
                opts.world.as_deref().unwrap_or(DEFAULT_WORLD),
                &out,
            )
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n{USAGE}"),
        None => bail!("{USAGE}"),
    }
}

/// Parse the WIT package in `dir` and select `world` in it.
fn load_world(dir: &Path, world: &str) -> Result<(Resolve, wit_parser::WorldId)> {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve
        .push_path(dir)
        .with_context(|| format!("cannot read the WIT package in `{}`", dir.display()))?;
    let id = resolve
        .select_world(&[pkg], Some(world))
        .with_context(|| format!("no world `{world}` in `{}`", dir.display()))?;
    Ok((resolve, id))
}

fn bindings(wit: &Path, world: &str, out: &Path) -> Result<()> {
    let (mut resolve, id) = load_world(wit, world)?;
    let mut files = Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, id, &mut files)
        .with_context(|| format!("cannot generate C bindings for `{world}`"))?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create `{}`", out.display()))?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(())
}

/// Whether the module already carries a world (wit-bindgen's `*_component_type.o`).
fn has_component_type(module: &[u8]) -> Result<bool> {
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::CustomSection(s) = payload?
            && s.name().starts_with("component-type")
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn componentize(input: &Path, wit: Option<&Path>, world: &str, out: &Path) -> Result<()> {
    let mut module =
        std::fs::read(input).with_context(|| format!("cannot read `{}`", input.display()))?;
    if !wasmparser::Parser::is_core_wasm(&module) {
        bail!(
            "`{}` is not a core WebAssembly module (is it already a component?)",
            input.display()
        );
    }
    if !has_component_type(&module)? {
        let wit = wit.with_context(|| {
            format!(
                "`{}` carries no component type: link `handler_component_type.o` into it, or pass `--wit <dir>`",
                input.display()
            )
        })?;
        let (resolve, id) = load_world(wit, world)?;
        wit_component::embed_component_metadata(&mut module, &resolve, id, StringEncoding::UTF8)
            .context("cannot embed the world in the module")?;
    }
    let component = ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .with_context(|| format!("cannot read the module `{}`", input.display()))?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .context("cannot load the WASI preview1 reactor adapter")?
        .encode()
        .with_context(|| format!("cannot make a component of `{}`", input.display()))?;

    let imports = component_imports(&component)?;
    let refused: Vec<&String> = imports
        .iter()
        .filter(|i| i.starts_with("wasi:http/") || i.starts_with("wasi:sockets/"))
        .collect();
    if !refused.is_empty() {
        bail!(
            "the component imports {}, which Flagon never links for handlers\n  help: do not call socket functions (socket, connect, getaddrinfo, ...); use flagon_outbound_send for HTTP",
            refused
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    std::fs::write(out, &component).with_context(|| format!("cannot write `{}`", out.display()))?;
    let flagon: Vec<&str> = imports
        .iter()
        .filter_map(|i| i.strip_prefix("flagon:app/"))
        .map(|i| i.split('@').next().unwrap_or(i))
        .collect();
    eprintln!(
        "flagon-c: wrote {} ({} KiB), importing flagon:app/{{{}}}",
        out.display(),
        component.len().div_ceil(1024),
        flagon.join(", ")
    );
    Ok(())
}

/// The names of the component's own imports (not those of the modules inside it).
fn component_imports(component: &[u8]) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload? {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    names.push(import?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(names)
}
