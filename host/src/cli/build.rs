//! `flagon build`: run each component's `build` command, with progress.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::manifest::Manifest;

/// Run the build command of every component that has one (in manifest order), or only of
/// `only` when given. Output goes straight to the terminal; the first failure stops the build.
pub fn build_components(manifest: &Manifest, only: Option<&str>) -> Result<()> {
    let todo: Vec<(&String, &String, std::path::PathBuf)> = manifest
        .components
        .iter()
        .filter(|(id, _)| only.is_none_or(|o| o == id.as_str()))
        .filter_map(|(id, c)| {
            let dir = c
                .workdir
                .as_ref()
                .map_or_else(|| manifest.dir.clone(), |w| manifest.resolve(w));
            c.build.as_ref().map(|cmd| (id, cmd, dir))
        })
        .collect();
    if let Some(o) = only
        && !manifest.components.contains_key(o)
    {
        bail!("no component `{o}` in `{}`", manifest.file.display());
    }
    if todo.is_empty() {
        eprintln!(
            "nothing to build: no component in `{}` has a `build` command",
            manifest.file.display()
        );
        return Ok(());
    }
    let total = todo.len();
    for (_, cmd, _) in &todo {
        check_tools(cmd)?;
    }
    for (n, (id, cmd, dir)) in todo.into_iter().enumerate() {
        eprintln!(
            "[{}/{total}] building `{id}`: {cmd}  (in {})",
            n + 1,
            dir.display()
        );
        let started = Instant::now();
        let status = shell(cmd)
            .current_dir(&dir)
            .status()
            .with_context(|| format!("failed to start the build command of component `{id}`"))?;
        if !status.success() {
            bail!(
                "the build command of component `{id}` failed ({status}): `{cmd}` in {}\n  help: fix the build, or run the command yourself to see its full output",
                dir.display()
            );
        }
        let source = manifest.components[id].wasm(manifest);
        if source.path().is_some_and(|p| !p.exists()) {
            bail!(
                "component `{id}` built, but `{source}` does not exist\n  help: point `components.{id}.source` in `{}` at the file the build produces",
                manifest.file.display()
            );
        }
        eprintln!(
            "[{}/{total}] built `{id}` in {:.1?}",
            n + 1,
            started.elapsed()
        );
    }
    Ok(())
}

const SHELL_BUILTINS: &[&str] = &[
    "cd", "export", "set", "exec", "echo", "test", "[", "true", "false", ":", ".", "source", "if",
    "then", "else", "fi", "exit",
];

/// What to install for a program a build command starts with, by name.
const TOOLS: &[(&str, &str)] = &[
    (
        "cargo",
        "install Rust with rustup (https://rustup.rs), then `rustup target add wasm32-wasip2`",
    ),
    ("rustup", "install Rust with rustup (https://rustup.rs)"),
    (
        "node",
        "install Node.js 20 or later (Debian: `apt-get install nodejs npm`)",
    ),
    (
        "npm",
        "install Node.js 20 or later with npm (Debian: `apt-get install nodejs npm`)",
    ),
    (
        "npx",
        "install Node.js 20 or later with npm (Debian: `apt-get install nodejs npm`)",
    ),
    (
        "python3",
        "install Python 3.11 or later with pip and venv (Debian: `apt-get install python3 python3-venv`)",
    ),
    ("make", "install make (Debian: `apt-get install make`)"),
    (
        "clang-19",
        "install clang 19 for wasm32 (Debian: `apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32`)",
    ),
];

/// Fail before building when a build command starts with a program that is not installed, or
/// builds for `wasm32-wasip2` without the target, saying exactly what to install.
fn check_tools(cmd: &str) -> Result<()> {
    for part in cmd.split(['&', '|', ';']) {
        let words = part
            .split_whitespace()
            .map(|w| w.trim_start_matches(['(', '{']));
        let Some(program) = words
            .into_iter()
            .find(|w| !w.is_empty() && !w.contains('='))
        else {
            continue;
        };
        // Paths and shell built-ins need no lookup.
        if program.contains('/') || SHELL_BUILTINS.contains(&program) {
            continue;
        }
        if !on_path(program) {
            let hint = TOOLS.iter().find(|(name, _)| *name == program).map_or(
                "install it, or change the component's `build` command",
                |(_, h)| *h,
            );
            bail!(
                "the build command `{cmd}` needs `{program}`, which is not installed\n  help: {hint}"
            );
        }
        if program == "cargo" && part.contains("wasm32-wasip2") && !wasip2_installed() {
            bail!(
                "the build command `{cmd}` builds for `wasm32-wasip2`, but that target is not installed\n  help: run `rustup target add wasm32-wasip2`"
            );
        }
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let candidate = dir.join(program);
            candidate.is_file() || candidate.with_extension("exe").is_file()
        })
    })
}

/// Whether rustup has the `wasm32-wasip2` target; true when that cannot be asked (no rustup:
/// the toolchain may carry the target itself).
fn wasip2_installed() -> bool {
    match Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == "wasm32-wasip2"),
        _ => true,
    }
}

#[cfg(unix)]
fn shell(cmd: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd);
    c
}

#[cfg(not(unix))]
fn shell(cmd: &str) -> Command {
    let mut c = Command::new("cmd");
    c.arg("/C").arg(cmd);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_named_with_what_to_install() {
        let err = check_tools("FOO=1 flagon-no-such-tool-42 --release").unwrap_err();
        let err = err.to_string();
        assert!(err.contains("needs `flagon-no-such-tool-42`"), "{err}");
        assert!(err.contains("not installed"), "{err}");
        // Built-ins, paths and installed programs pass.
        check_tools("cd sub && sh -c true; ./build.sh || (sh x)").unwrap();
    }
}
