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
use crate::manifest::AdapterKind;
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
    compare(pool, files, recorded?)
}

fn compare(
    pool: &Pool,
    files: &[Migration],
    recorded: Vec<(i64, String, String)>,
) -> anyhow::Result<Status> {
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

/// How hosts that start together keep out of each other's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// Nothing to do: SQLite is one process's file (the host locks it); a custom adapter's
    /// server is unknown.
    None,
    /// A Postgres transaction-level advisory lock ([`ADVISORY_KEY`]) inside each migration's
    /// transaction (and the one that creates `_flagon_migrations`): a second host waits for
    /// it, then sees the migration recorded and skips it. Transaction-level, because the
    /// adapter resets the session (`pg_advisory_unlock_all()`) after every statement outside
    /// a transaction; the server frees it with the transaction if the host dies.
    Postgres,
}

impl Lock {
    pub fn for_adapter(kind: &AdapterKind) -> Self {
        match kind {
            AdapterKind::Postgres => Lock::Postgres,
            AdapterKind::Sqlite | AdapterKind::Component(_) => Lock::None,
        }
    }
}

/// The advisory lock key: the first 8 bytes of SHA-256("flagon migrations"), the same for
/// every Flagon host and app on a server.
pub const ADVISORY_KEY: i64 = 0x0ff0_60ee_3f29_c414;

/// How often a host waiting for another's migrations asks again.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// Apply every pending migration in order, each in its own transaction; returns those applied.
pub async fn apply(
    pool: &Arc<Pool>,
    files: &[Migration],
    lock: Lock,
) -> anyhow::Result<Vec<Migration>> {
    let mut lease = pool
        .lease()
        .await
        .map_err(|e| sql_err("no connection", e))?;
    let result = apply_on(&mut lease, pool, files, lock).await;
    lease.release().await;
    result
}

async fn apply_on(
    lease: &mut Lease,
    pool: &Pool,
    files: &[Migration],
    lock: Lock,
) -> anyhow::Result<Vec<Migration>> {
    let recorded = recorded_under(lease, pool, lock).await?;
    let pending = compare(pool, files, recorded)?.pending;
    let mut applied = Vec::new();
    for m in pending {
        let ran = apply_one(lease, pool, &m, lock)
            .await
            .with_context(|| format!("migration `{}` failed", m.path.display()))?;
        if ran {
            tracing::info!(database = %pool.name(), migration = %m.name, "migration applied");
            applied.push(m);
        }
    }
    Ok(applied)
}

/// [`recorded`], in a transaction under the lock when there is one: two hosts creating
/// `_flagon_migrations` at once would otherwise collide even with `IF NOT EXISTS`.
async fn recorded_under(
    lease: &mut Lease,
    pool: &Pool,
    lock: Lock,
) -> anyhow::Result<Vec<(i64, String, String)>> {
    if lock == Lock::None {
        return recorded(lease).await;
    }
    lease
        .begin()
        .await
        .map_err(|e| sql_err("cannot begin", e))?;
    let result = async {
        wait_for_lock(lease, pool).await?;
        recorded(lease).await
    }
    .await;
    match result {
        Ok(rows) => {
            lease
                .commit()
                .await
                .map_err(|e| sql_err("cannot commit", e))?;
            Ok(rows)
        }
        Err(e) => {
            let _ = lease.rollback().await;
            Err(e)
        }
    }
}

/// Inside a transaction: wait (up to the migration deadline) for the advisory lock, polling
/// so that no statement outlives the database's `statement_timeout`.
async fn wait_for_lock(lease: &mut Lease, pool: &Pool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        let rows = lease
            .query(
                "SELECT pg_try_advisory_xact_lock($1)",
                &[Value::Integer(ADVISORY_KEY)],
            )
            .await
            .map_err(|e| sql_err("cannot take the migration lock", e))?;
        if matches!(
            rows.rows.first().map(Vec::as_slice),
            Some([Value::Boolean(true)])
        ) {
            return Ok(());
        }
        if started.elapsed() > MIGRATION_TIMEOUT {
            bail!(
                "another host held the migration lock for over {}s",
                MIGRATION_TIMEOUT.as_secs()
            );
        }
        if !said {
            tracing::info!(database = %pool.name(), "waiting for another host's migrations");
            said = true;
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
}

/// Run one migration in its own transaction and record it. False when, under the lock,
/// another host turned out to have applied it meanwhile.
async fn apply_one(
    lease: &mut Lease,
    pool: &Pool,
    m: &Migration,
    lock: Lock,
) -> anyhow::Result<bool> {
    lease
        .begin()
        .await
        .map_err(|e| sql_err("cannot begin", e))?;
    if lock != Lock::None {
        let done = async {
            wait_for_lock(lease, pool).await?;
            let rows = lease
                .query(
                    "SELECT sha256 FROM _flagon_migrations WHERE version = $1",
                    &[Value::Integer(m.version)],
                )
                .await
                .map_err(|e| sql_err("cannot read `_flagon_migrations`", e))?;
            anyhow::Ok(!rows.rows.is_empty())
        }
        .await;
        match done {
            Ok(false) => {}
            Ok(true) => {
                let _ = lease.rollback().await;
                return Ok(false);
            }
            Err(e) => {
                let _ = lease.rollback().await;
                return Err(e);
            }
        }
    }
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
        .map_err(|e| sql_err("cannot commit", e))?;
    Ok(true)
}
