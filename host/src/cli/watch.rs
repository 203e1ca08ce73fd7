//! `flagon serve --watch`: watch the app's directory and say what a change needs.
//!
//! A changed source file of a component with a `build` command needs that component rebuilt,
//! then a reload; a changed manifest, template, migration, static file or `.wasm` needs a
//! reload only. Files the app itself writes (its databases, key-value stores and the compile
//! cache) and build output (`target/`, `node_modules/`, ...) are ignored, or every write of
//! the app would reload it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::manifest::{AdapterKind, KvBackendKind, Manifest};

/// Directories never watched, wherever they are: build output, dependencies, VCS data.
const IGNORED_DIRS: &[&str] = &[
    "target",
    "node_modules",
    ".git",
    ".venv",
    "__pycache__",
    ".flagon",
];

/// What a batch of changes needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Components to rebuild (by id, in manifest order), then reload.
    pub rebuild: BTreeSet<String>,
    /// Reload (always true when `rebuild` is not empty).
    pub reload: bool,
}

/// Which paths mean what, worked out from the manifest.
#[derive(Debug)]
pub struct Plan {
    /// The manifest's directory: what is watched.
    root: PathBuf,
    /// Written by the app itself: never a reason to reload.
    ignored: Vec<PathBuf>,
    /// Not sources of any component: templates, static files, migrations.
    assets: Vec<PathBuf>,
    /// Component `.wasm` files.
    outputs: Vec<PathBuf>,
    /// Components with a build command, and the directory it runs in.
    builds: Vec<(String, PathBuf)>,
}

impl Plan {
    pub fn new(manifest: &Manifest) -> Self {
        let mut ignored = Vec::new();
        if let Some(cache) = manifest.cache_dir() {
            ignored.push(cache);
        }
        for (name, db) in &manifest.databases {
            if db.kind() == AdapterKind::Sqlite
                && let Some(dir) = manifest.sqlite_path(name, db).parent()
            {
                ignored.push(dir.to_path_buf());
            }
        }
        for kv in manifest.kv.values() {
            if kv.backend == KvBackendKind::Embedded {
                ignored.push(manifest.resolve(kv.path.as_deref().unwrap_or("data/kv".as_ref())));
            }
        }
        let mut assets = vec![manifest.resolve(&manifest.templates.dir)];
        assets.extend(manifest.statics.iter().map(|s| manifest.resolve(&s.dir)));
        assets.extend(
            manifest
                .databases
                .values()
                .filter_map(|db| db.migrations.as_ref())
                .map(|m| manifest.resolve(m)),
        );
        // Files a reload reads but no build writes from sources here: components' `.wasm`
        // and their signatures, adapter components, CA files.
        let mut outputs: Vec<PathBuf> = manifest
            .components
            .values()
            .filter_map(|c| c.wasm(manifest).path().map(Path::to_path_buf))
            .flat_map(|wasm| {
                let sig = PathBuf::from(format!("{}.sig", wasm.display()));
                [wasm, sig]
            })
            .collect();
        for db in manifest.databases.values() {
            if let AdapterKind::Component(path) = db.kind() {
                let path = manifest.resolve(&path);
                outputs.push(PathBuf::from(format!("{}.sig", path.display())));
                outputs.push(path);
            }
            if let Some(ca) = &db.ca_file {
                outputs.push(manifest.resolve(ca));
            }
        }
        let builds: Vec<(String, PathBuf)> = manifest
            .components
            .iter()
            .filter(|(_, c)| c.build.is_some())
            .map(|(id, c)| {
                let dir = c
                    .workdir
                    .as_ref()
                    .map_or_else(|| manifest.dir.clone(), |w| manifest.resolve(w));
                (id.clone(), dir)
            })
            .collect();
        // Through the parent, so that a file that does not exist yet (a `.sig`) compares
        // like the paths `classify` sees.
        let canon = |p: PathBuf| match (p.parent(), p.file_name()) {
            (Some(dir), Some(name)) => dir
                .canonicalize()
                .map(|d| d.join(name))
                .unwrap_or_else(|_| p.clone()),
            _ => p.canonicalize().unwrap_or(p),
        };
        Self {
            root: canon(manifest.dir.clone()),
            ignored: ignored.into_iter().map(canon).collect(),
            assets: assets.into_iter().map(canon).collect(),
            outputs: outputs.into_iter().map(canon).collect(),
            builds: builds.into_iter().map(|(id, d)| (id, canon(d))).collect(),
        }
    }

    /// What the changed `paths` need.
    pub fn classify<'a>(&self, paths: impl IntoIterator<Item = &'a Path>) -> Change {
        let mut change = Change::default();
        for path in paths {
            // A deleted file cannot be canonicalised; its directory can.
            let path = match (path.parent(), path.file_name()) {
                (Some(dir), Some(name)) => dir
                    .canonicalize()
                    .map(|d| d.join(name))
                    .unwrap_or_else(|_| path.to_path_buf()),
                _ => path.to_path_buf(),
            };
            let Ok(relative) = path.strip_prefix(&self.root) else {
                continue;
            };
            let ignored_dir = relative
                .components()
                .any(|c| IGNORED_DIRS.iter().any(|d| c.as_os_str() == *d));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            // Editors' swap and backup files, and SQLite's side files.
            let scratch = name.ends_with('~')
                || name.ends_with(".swp")
                || name.ends_with(".swx")
                || name.starts_with(".#")
                || name.ends_with("-journal")
                || name.ends_with("-wal")
                || name.ends_with("-shm")
                || name.ends_with(".flagon-lock");
            if scratch || self.ignored.iter().any(|d| path.starts_with(d)) {
                continue;
            }
            if self.outputs.contains(&path) {
                change.reload = true;
                continue;
            }
            if ignored_dir {
                continue;
            }
            let is_manifest_file = path.parent() == Some(self.root.as_path())
                && (name == "flagon.toml" || name == ".env");
            if is_manifest_file || self.assets.iter().any(|a| path.starts_with(a)) {
                change.reload = true;
                continue;
            }
            let mut built = false;
            for (id, dir) in &self.builds {
                if path.starts_with(dir) {
                    change.rebuild.insert(id.clone());
                    built = true;
                }
            }
            change.reload |= built;
        }
        change
    }
}

/// Watches the app's directory; changes arrive, batched, on the returned channel.
///
/// Each directory is watched on its own (not one recursive watch), skipping [`IGNORED_DIRS`]:
/// a `target/` or `node_modules/` holds thousands of directories, each of which would cost an
/// inotify watch. Directories made later are added as their creation is seen ([`Watch::add`]).
pub struct Watch {
    watcher: notify::RecommendedWatcher,
}

/// How long the directory must be quiet before a batch of changes is acted on: an editor's
/// save or a build writes several files.
const SETTLE: Duration = Duration::from_millis(300);

/// Most directories watched: past it, the rest are not (and a warning says so).
const MAX_WATCHED_DIRS: usize = 4096;

impl Watch {
    /// Watch `root` and the directories below it; every batch of changed paths is sent on the
    /// channel.
    pub fn start(root: &Path) -> Result<(Self, mpsc::UnboundedReceiver<Vec<PathBuf>>)> {
        let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<PathBuf>();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            for path in event.paths {
                let _ = raw_tx.send(path);
            }
        })
        .context("cannot watch the app's files")?;
        let mut watch = Self { watcher };
        watch
            .watcher
            .watch(root, RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch `{}`", root.display()))?;
        watch.add(root);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(first) = raw_rx.recv().await {
                let mut batch = BTreeSet::from([first]);
                loop {
                    match tokio::time::timeout(SETTLE, raw_rx.recv()).await {
                        Ok(Some(path)) => {
                            batch.insert(path);
                        }
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                if tx.send(batch.into_iter().collect()).is_err() {
                    return;
                }
            }
        });
        Ok((watch, rx))
    }

    /// Watch the directories below `dir` (not `dir` itself), skipping [`IGNORED_DIRS`]. A path
    /// that is not a directory is ignored, so every changed path can be passed here.
    pub fn add(&mut self, dir: &Path) {
        let mut todo = vec![dir.to_path_buf()];
        let mut watched = 0;
        while let Some(dir) = todo.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let ignored = IGNORED_DIRS.iter().any(|d| entry.file_name() == *d);
                if ignored || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if watched == MAX_WATCHED_DIRS {
                    tracing::warn!(
                        "watching only {MAX_WATCHED_DIRS} directories under `{}`",
                        dir.display()
                    );
                    return;
                }
                let path = entry.path();
                if self
                    .watcher
                    .watch(&path, RecursiveMode::NonRecursive)
                    .is_ok()
                {
                    watched += 1;
                    todo.push(path);
                }
            }
        }
    }

    /// After a change: watch any directory it made.
    pub fn add_new(&mut self, paths: &[PathBuf]) {
        for path in paths {
            let ignored = path
                .components()
                .any(|c| IGNORED_DIRS.iter().any(|d| c.as_os_str() == *d));
            if !ignored && path.is_dir() {
                let _ = self.watcher.watch(path, RecursiveMode::NonRecursive);
                self.add(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dir: &Path) -> Plan {
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        std::fs::create_dir_all(dir.join("data/kv")).unwrap();
        std::fs::create_dir_all(dir.join("target/wasm32-wasip2/release")).unwrap();
        let text = r#"
            [app]
            name = "w"
            [components.web]
            source = "target/wasm32-wasip2/release/web.wasm"
            build = "cargo build --release --target wasm32-wasip2"
            grants = { kv = ["cache"] }
            [kv.cache]
            [[routes]]
            path = "/"
            component = "web"
        "#;
        std::fs::write(dir.join("flagon.toml"), text).unwrap();
        Plan::new(&Manifest::load(dir).unwrap())
    }

    #[test]
    fn sources_rebuild_assets_reload_and_the_apps_own_writes_are_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let plan = plan(dir);
        let rebuild = |ids: &[&str]| Change {
            rebuild: ids.iter().map(|s| s.to_string()).collect(),
            reload: true,
        };
        let reload = Change {
            rebuild: BTreeSet::new(),
            reload: true,
        };
        let one = |p: &str| plan.classify([dir.join(p).as_path()]);
        assert_eq!(one("src/lib.rs"), rebuild(&["web"]));
        assert_eq!(one("Cargo.toml"), rebuild(&["web"]));
        assert_eq!(one("flagon.toml"), reload);
        assert_eq!(one("templates/index.html"), reload);
        assert_eq!(one("target/wasm32-wasip2/release/web.wasm"), reload);
        assert_eq!(one("target/wasm32-wasip2/release/web.wasm.sig"), reload);
        // Build output, the app's own store, editor scratch files.
        assert_eq!(one("target/release/deps/x.rlib"), Change::default());
        assert_eq!(one("data/kv/cache.redb"), Change::default());
        assert_eq!(one("src/.lib.rs.swp"), Change::default());
        assert_eq!(one("src/lib.rs~"), Change::default());
        // Outside the app.
        assert_eq!(plan.classify([Path::new("/etc/passwd")]), Change::default());
    }
}
