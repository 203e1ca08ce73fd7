//! `[databases.<name>]`: SQL databases, each served by a pool of DB adapter components, that
//! handler components can be granted (`grants.sql`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::{HumanDuration, Size};
use super::{HOUR, Manifest, Result};

/// `[databases.<name>]`. Example: `[databases.main]` `adapter = "sqlite"` `path = "data/app.db"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `"sqlite"` (the built-in SQLite adapter), or the path of an adapter component (`.wasm`,
    /// relative to the manifest) exporting `flagon:app/sql-adapter`.
    pub adapter: String,
    /// SQLite: the database file, relative to the manifest (default `data/sql/<name>/<name>.db`).
    /// The adapter is granted its directory and nothing else, so that directory must hold
    /// nothing but this database (checked at load).
    pub path: Option<PathBuf>,
    /// Adapter instances (one connection each) kept for this database (default 4; SQLite: 1,
    /// the only value it takes: without file locks under WASI its connections are serialized).
    pub pool: Option<u32>,
    /// Most rows one query returns (default 10000); past it the query fails with
    /// `too-many-rows`.
    pub max_rows: Option<u64>,
    /// Most bytes one query returns, or its parameters take (default 16MiB); past it the
    /// statement fails with `too-large`.
    pub max_bytes: Option<Size>,
    /// Deadline of each statement, and of waiting for a free connection (default 5s).
    pub timeout: Option<HumanDuration>,
    /// Linear memory of each adapter instance (default 64MiB).
    pub memory: Option<Size>,
    /// A directory of numbered `.sql` files (`0001_create_todos.sql`), relative to the
    /// manifest, applied in order at start and by `flagon migrate`.
    /// Example: `migrations = "migrations"`
    pub migrations: Option<PathBuf>,
    /// Settings passed to a custom adapter's `connect`, as strings.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Settings whose values come from `[variables]` (setting -> variable), for passwords:
    /// only the adapter gets them. Example: `secrets = { password = "db_password" }`
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// The built-in adapters, by the name `adapter` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterKind {
    Sqlite,
    /// An adapter component at this path (resolved against the manifest).
    Component(PathBuf),
}

pub const DEFAULT_POOL: u32 = 4;
pub const DEFAULT_MAX_ROWS: u64 = 10_000;
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_MEMORY: u64 = 64 * 1024 * 1024;
/// The most instances one database may keep.
const MAX_POOL: u32 = 256;

impl DatabaseSection {
    pub fn kind(&self) -> AdapterKind {
        match self.adapter.as_str() {
            "sqlite" => AdapterKind::Sqlite,
            path => AdapterKind::Component(PathBuf::from(path)),
        }
    }

    pub fn pool(&self) -> u32 {
        match self.kind() {
            AdapterKind::Sqlite => 1,
            AdapterKind::Component(_) => self.pool.unwrap_or(DEFAULT_POOL),
        }
    }

    pub fn max_rows(&self) -> u64 {
        self.max_rows.unwrap_or(DEFAULT_MAX_ROWS)
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.map_or(DEFAULT_MAX_BYTES, |s| s.0)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0)
    }

    pub fn memory(&self) -> u64 {
        self.memory.map_or(DEFAULT_MEMORY, |s| s.0)
    }
}

impl Manifest {
    /// Checks every `[databases.<name>]`: a known adapter, settings in bounds, secrets that
    /// name declared variables.
    pub(super) fn validate_databases(&self) -> Result<()> {
        for (name, db) in &self.databases {
            let key = format!("databases.{name}");
            match db.kind() {
                AdapterKind::Sqlite => {
                    if db.pool.is_some_and(|n| n != 1) {
                        return Err(self.invalid(
                            format!("{key}.pool"),
                            "SQLite takes one connection: WASI has no file locks, so the host \
                             serializes its statements",
                            "remove `pool`",
                        ));
                    }
                    if !db.settings.is_empty() || !db.secrets.is_empty() {
                        return Err(self.invalid(
                            key,
                            "`settings` and `secrets` are for adapter components",
                            "remove them; SQLite takes `path`",
                        ));
                    }
                }
                AdapterKind::Component(path) => {
                    if path.extension().is_none_or(|e| e != "wasm") {
                        return Err(self.invalid(
                            format!("{key}.adapter"),
                            format!("unknown adapter `{}`", db.adapter),
                            "use `\"sqlite\"`, or the path of an adapter component ending in `.wasm`",
                        ));
                    }
                    if !self.resolve(&path).is_file() {
                        return Err(self.invalid(
                            format!("{key}.adapter"),
                            format!("`{}` does not exist", self.resolve(&path).display()),
                            "build the adapter component, or fix the path",
                        ));
                    }
                    if db.path.is_some() {
                        return Err(self.invalid(
                            format!("{key}.path"),
                            "`path` is for SQLite",
                            "pass what the adapter needs in `settings`",
                        ));
                    }
                }
            }
            if db.pool.is_some_and(|n| n == 0 || n > MAX_POOL) {
                return Err(self.invalid(
                    format!("{key}.pool"),
                    format!("outside 1..={MAX_POOL}"),
                    format!("remove `pool` to use {DEFAULT_POOL}"),
                ));
            }
            if db.max_rows.is_some_and(|n| n == 0) {
                return Err(self.invalid(
                    format!("{key}.max_rows"),
                    "must be at least 1",
                    format!("remove `max_rows` to use {DEFAULT_MAX_ROWS}"),
                ));
            }
            if db
                .max_bytes
                .is_some_and(|s| s.0 < 1024 || s.0 > 1024 * 1024 * 1024)
            {
                return Err(self.invalid(
                    format!("{key}.max_bytes"),
                    "outside 1KiB..1GiB",
                    "remove `max_bytes` to use 16MiB",
                ));
            }
            if db
                .timeout
                .is_some_and(|t| t.0 < Duration::from_millis(1) || t.0 > HOUR)
            {
                return Err(self.invalid(
                    format!("{key}.timeout"),
                    "outside 1ms..1h",
                    "remove `timeout` to use 5s",
                ));
            }
            if db
                .memory
                .is_some_and(|s| s.0 < 1024 * 1024 || s.0 > 4 * 1024 * 1024 * 1024)
            {
                return Err(self.invalid(
                    format!("{key}.memory"),
                    "outside 1MiB..4GiB",
                    "remove `memory` to use 64MiB",
                ));
            }
            if let Some(dir) = &db.migrations
                && !self.resolve(dir).is_dir()
            {
                return Err(self.invalid(
                    format!("{key}.migrations"),
                    format!("`{}` is not a directory", self.resolve(dir).display()),
                    "create it, or point `migrations` at the directory of `.sql` files",
                ));
            }
            for (setting, var) in &db.secrets {
                if !self.variables.contains_key(var) {
                    return Err(self.invalid(
                        format!("{key}.secrets.{setting}"),
                        format!("unknown variable `{var}`"),
                        format!(
                            "declare `[variables.{var}]` with `env = \"{}\"`, `secret = true`",
                            var.to_uppercase()
                        ),
                    ));
                }
                if db.settings.contains_key(setting) {
                    return Err(self.invalid(
                        format!("{key}.secrets.{setting}"),
                        "also set in `settings`",
                        "keep it in one place",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The SQLite file of database `name` (`path`, default `data/sql/<name>/<name>.db`),
    /// resolved. Each database gets a directory of its own by default, because its adapter is
    /// granted the whole directory.
    pub fn sqlite_path(&self, name: &str, db: &DatabaseSection) -> PathBuf {
        match &db.path {
            Some(p) => self.resolve(p),
            None => self
                .dir
                .join("data")
                .join("sql")
                .join(name)
                .join(format!("{name}.db")),
        }
    }
}
