//! `flagon migrate`: apply the databases' pending migrations, or list them with `--status`.

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::app::{App, LoadOptions};
use crate::capabilities::sql::migrations;
use crate::manifest::Manifest;

pub(super) fn migrate(path: &Path, status_only: bool, mut options: LoadOptions) -> Result<()> {
    let manifest = Manifest::load(path)?;
    if options.dev {
        super::serve::read_dotenv(&manifest, &mut options);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        // Loaded without migrating, so that `--status` changes nothing; the app's checks all
        // run (an app that cannot start cannot be migrated either).
        let app = App::load(&manifest, &options).await?;
        let mut any = false;
        for (name, db) in &manifest.databases {
            let Some(dir) = &db.migrations else { continue };
            any = true;
            let pool = &app.capabilities().sql[name];
            let files = migrations::read_dir(&manifest.resolve(dir))?;
            let applied_now = if status_only {
                Vec::new()
            } else {
                migrations::apply(pool, &files, migrations::Lock::for_adapter(&db.kind()))
                    .await
                    .with_context(|| format!("database `{name}`"))?
            };
            let status = migrations::status(pool, &files)
                .await
                .with_context(|| format!("database `{name}`"))?;
            println!("database {name} ({}):", dir.display());
            for (_, file) in &status.applied {
                let now = applied_now.iter().any(|m| &m.name == file);
                println!("  applied  {file}{}", if now { "  (just now)" } else { "" });
            }
            for m in &status.pending {
                println!("  pending  {}", m.name);
            }
            if status.applied.is_empty() && status.pending.is_empty() {
                println!("  (no migration files)");
            }
        }
        if !any {
            println!(
                "no database has `migrations` set in {}",
                manifest.file.display()
            );
        }
        Ok(())
    })
}
