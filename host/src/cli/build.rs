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
