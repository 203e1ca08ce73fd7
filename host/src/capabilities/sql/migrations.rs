//! `[databases.<name>] migrations = "migrations"`: numbered `.sql` files applied in order, each
//! in its own transaction, and recorded with its SHA-256 in `_flagon_migrations`.
//!
//! Applied at every start (before the server listens) and by `flagon migrate`; `flagon migrate
//! --status` only reports. An applied file whose contents changed stops the start, naming the
//! file: what ran is no longer what the repository says ran. Files are named
//! `<number>_<name>.sql` (`0001_create_todos.sql`); the number orders them and must be unique.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::pool::{Lease, Pool};
use crate::runtime::bindings::flagon::app::sql_types::{SqlError, Value};

/// The table that records what was applied.
pub const TABLE: &str = "_flagon_migrations";
/// Deadline of one migration file.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(600);

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    /// The file name, e.g. `0001_create_todos.sql`.
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    pub script: String,
}

/// What a database's migrations look like.
#[derive(Debug, Default)]
pub struct Status {
    /// Applied: (version, file name).
    pub applied: Vec<(i64, String)>,
    /// Not applied yet, in the order they would run.
    pub pending: Vec<Migration>,
}

/// The migration files in `dir`, in order.
pub fn read_dir(dir: &Path) -> anyhow::Result<Vec<Migration>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the migrations directory `{}`", dir.display()))?;
    let mut out: Vec<Migration> = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "sql") {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
        let version: i64 = match digits.parse() {
            Ok(v) if name[digits.len()..].starts_with('_') => v,
            _ => bail!(
                "migration `{}` is not named `<number>_<name>.sql` (e.g. `0001_create_todos.sql`)",
                path.display()
            ),
        };
        if let Some(other) = out.iter().find(|m| m.version == version) {
            bail!(
                "migrations `{}` and `{}` have the same number {version}",
                other.name,
                name
            );
        }
        let script = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, script.as_bytes());
        let sha256 = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        out.push(Migration {
            version,
            name,
            path,
            sha256,
            script,
        });
    }
    out.sort_by_key(|m| m.version);
    Ok(out)
}

fn sql_err(what: &str, e: SqlError) -> anyhow::Error {
    anyhow::anyhow!("{what}: {e:?}")
}

/// Compare `files` with what the database recorded. A changed applied file is an error.
pub async fn status(pool: &Arc<Pool>, files: &[Migration]) -> anyhow::Result<Status> {
    let mut lease = pool
        .lease()
        .await
        .map_err(|e| sql_err("no connection", e))?;
    let recorded = recorded(&mut lease).await;
    lease.release().await;
    let recorded = recorded?;
    let mut status = Status::default();
    for m in files {
        match recorded.iter().find(|(v, _, _)| *v == m.version) {
            Some((_, _, sha)) if *sha != m.sha256 => bail!(
                "migration `{}` was changed after it was applied (its SHA-256 is not the one \
                 recorded in `{TABLE}`)\n  help: put the change in a new migration file, and \
                 restore this one",
                m.path.display()
            ),
            Some(_) => status.applied.push((m.version, m.name.clone())),
            None => status.pending.push(m.clone()),
        }
    }
    for (version, name, _) in &recorded {
        if !files.iter().any(|m| m.version == *version) {
            tracing::warn!(database = %pool.name(), migration = %name, "an applied migration is no longer in the migrations directory");
            status.applied.push((*version, name.clone()));
        }
    }
    status.applied.sort();
    Ok(status)
}

/// (version, name, sha256) of every applied migration; creates the table on first use.
async fn recorded(lease: &mut Lease) -> anyhow::Result<Vec<(i64, String, String)>> {
    lease
        .execute(
            "CREATE TABLE IF NOT EXISTS _flagon_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL, applied_at TEXT NOT NULL)",
            &[],
        )
        .await
        .map_err(|e| sql_err("cannot create `_flagon_migrations`", e))?;
    let rows = lease
        .query(
            "SELECT version, name, sha256 FROM _flagon_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(|e| sql_err("cannot read `_flagon_migrations`", e))?;
    rows.rows
        .iter()
        .map(|row| match row.as_slice() {
            [Value::Integer(v), Value::Text(n), Value::Text(s)] => Ok((*v, n.clone(), s.clone())),
            other => bail!("unexpected row in `{TABLE}`: {other:?}"),
        })
        .collect()
}

/// Apply every pending migration in order, each in its own transaction; returns those applied.
pub async fn apply(pool: &Arc<Pool>, files: &[Migration]) -> anyhow::Result<Vec<Migration>> {
    let pending = status(pool, files).await?.pending;
    let mut applied = Vec::new();
    for m in pending {
        let mut lease = pool
            .lease()
            .await
            .map_err(|e| sql_err("no connection", e))?;
        let result = apply_one(&mut lease, &m).await;
        lease.release().await;
        result.with_context(|| format!("migration `{}` failed", m.path.display()))?;
        tracing::info!(database = %pool.name(), migration = %m.name, "migration applied");
        applied.push(m);
    }
    Ok(applied)
}

async fn apply_one(lease: &mut Lease, m: &Migration) -> anyhow::Result<()> {
    lease
        .begin()
        .await
        .map_err(|e| sql_err("cannot begin", e))?;
    if let Err(e) = lease.run_script(&m.script, MIGRATION_TIMEOUT).await {
        let _ = lease.rollback().await;
        return Err(sql_err("the script failed (nothing of it was kept)", e));
    }
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let params = [
        Value::Integer(m.version),
        Value::Text(m.name.clone()),
        Value::Text(m.sha256.clone()),
        Value::Text(now),
    ];
    if let Err(e) = lease
        .execute(
            "INSERT INTO _flagon_migrations (version, name, sha256, applied_at) VALUES ($1, $2, $3, $4)",
            &params,
        )
        .await
    {
        let _ = lease.rollback().await;
        return Err(sql_err("cannot record it", e));
    }
    lease
        .commit()
        .await
        .map_err(|e| sql_err("cannot commit", e))
}
