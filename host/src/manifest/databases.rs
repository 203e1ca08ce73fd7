//! `[databases.<name>]`: SQL databases, each served by a pool of DB adapter components, that
//! handler components can be granted (`grants.sql`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::{HumanDuration, Size};
use super::{HOUR, Manifest, Result};

/// `[databases.<name>]`. Example: `[databases.main]` `adapter = "sqlite"` `path = "data/app.db"`,
/// or `adapter = "postgres"` `host = "db.internal"` `user = "app"`
/// `secrets = { password = "db_password" }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `"sqlite"` or `"postgres"` (the built-in adapters), or the path of an adapter component
    /// (`.wasm`, relative to the manifest) exporting `flagon:app/sql-adapter`. Required unless
    /// `url_variable` gives it.
    #[serde(default)]
    pub adapter: String,
    /// A `[variables]` entry holding the database's URL instead of the keys below: `sqlite:<path>`
    /// or `postgres://user[:password]@host[:port]/database[?sslmode=disable]`.
    /// Example: `url_variable = "database_url"`
    pub url_variable: Option<String>,
    /// Postgres, or a component that talks to a server: the server's host name or address.
    /// The host resolves it at start and lets the adapter open TCP connections to exactly
    /// those addresses at `port`, and nothing else.
    pub host: Option<String>,
    /// The server's port (Postgres default 5432; a component needs it with `host`).
    pub port: Option<u16>,
    /// `"verify"` (default): TLS, the server's certificate checked against `ca_file` or the
    /// Mozilla roots and its name against `host`. `"off"`: plain TCP, allowed only to a
    /// loopback address (and logged as a warning).
    pub tls: Option<TlsMode>,
    /// PEM certificates to trust for the server instead of the Mozilla roots, relative to the
    /// manifest. Example: `ca_file = "certs/db-ca.pem"`
    pub ca_file: Option<PathBuf>,
    /// Postgres: the role to log in as.
    pub user: Option<String>,
    /// Postgres: the database to connect to (default: `user`).
    pub database: Option<String>,
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

/// `[databases.<name>] tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Verify,
    Off,
}

/// The built-in adapters, by the name `adapter` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterKind {
    Sqlite,
    Postgres,
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
            "postgres" => AdapterKind::Postgres,
            path => AdapterKind::Component(PathBuf::from(path)),
        }
    }

    pub fn pool(&self) -> u32 {
        match self.kind() {
            AdapterKind::Sqlite => 1,
            AdapterKind::Postgres | AdapterKind::Component(_) => self.pool.unwrap_or(DEFAULT_POOL),
        }
    }

    pub fn tls(&self) -> TlsMode {
        self.tls.unwrap_or(TlsMode::Verify)
    }

    /// The server's port, for adapters that talk to one.
    pub fn port(&self) -> Option<u16> {
        match self.kind() {
            AdapterKind::Postgres => Some(self.port.unwrap_or(5432)),
            _ => self.port,
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
        self.check_databases(false)
    }

    /// [`Manifest::validate_databases`] again, once `url_variable`s are filled in (a URL's
    /// password is a variable the manifest does not declare).
    pub(super) fn validate_databases_filled(&self) -> Result<()> {
        self.check_databases(true)
    }

    fn check_databases(&self, filled: bool) -> Result<()> {
        for (name, db) in &self.databases {
            let key = format!("databases.{name}");
            if db.url_variable.is_some() {
                // The rest is checked at load, once the URL is read.
                self.check_url_variable(&key, db)?;
                continue;
            }
            if db.adapter.is_empty() {
                return Err(self.invalid(
                    format!("{key}.adapter"),
                    "the database has no `adapter`",
                    "add `adapter = \"sqlite\"` (or `\"postgres\"`, or an adapter component's path), or `url_variable` naming a variable that holds the database's URL",
                ));
            }
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
                    self.refuse_server_keys(&key, db, "SQLite opens a file, not a server")?;
                    self.refuse_login_keys(&key, db, "SQLite has no login")?;
                }
                AdapterKind::Postgres => {
                    if db.host.is_none() {
                        return Err(self.invalid(
                            format!("{key}.host"),
                            "Postgres needs the server's host",
                            "add `host = \"127.0.0.1\"` (and `port` if not 5432)",
                        ));
                    }
                    if db.user.is_none() {
                        return Err(self.invalid(
                            format!("{key}.user"),
                            "Postgres needs the role to log in as",
                            "add `user = \"app\"`",
                        ));
                    }
                    if db.path.is_some() {
                        return Err(self.invalid(
                            format!("{key}.path"),
                            "`path` is for SQLite",
                            "remove it; Postgres takes `host`, `port`, `user`, `database`",
                        ));
                    }
                    if let Some(setting) = db.settings.keys().next() {
                        return Err(self.invalid(
                            format!("{key}.settings.{setting}"),
                            "the Postgres adapter takes no `settings`",
                            "use `host`, `port`, `user`, `database`, `tls`, `ca_file`",
                        ));
                    }
                    if let Some(setting) = db.secrets.keys().find(|k| *k != "password") {
                        return Err(self.invalid(
                            format!("{key}.secrets.{setting}"),
                            "the Postgres adapter takes one secret, `password`",
                            "use `secrets = { password = \"db_password\" }`",
                        ));
                    }
                    self.check_server_keys(&key, db)?;
                }
                AdapterKind::Component(path) => {
                    if path.extension().is_none_or(|e| e != "wasm") {
                        return Err(self.invalid(
                            format!("{key}.adapter"),
                            format!("unknown adapter `{}`", db.adapter),
                            "use `\"sqlite\"`, `\"postgres\"`, or the path of an adapter component ending in `.wasm`",
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
                    self.refuse_login_keys(
                        &key,
                        db,
                        "an adapter component takes its login in `settings` and `secrets`",
                    )?;
                    if db.host.is_some() != db.port.is_some() {
                        return Err(self.invalid(
                            format!("{key}.port"),
                            "`host` and `port` go together",
                            "set both (the adapter may then connect to that server), or neither",
                        ));
                    }
                    if let Some(setting) = db
                        .settings
                        .keys()
                        .chain(db.secrets.keys())
                        .find(|k| ["address", "host", "tls", "ca_pem"].contains(&k.as_str()))
                    {
                        return Err(self.invalid(
                            format!("{key}.settings.{setting}"),
                            "the host sets this one from `host`, `port`, `tls` and `ca_file`",
                            "use those keys, or another name for the adapter's own setting",
                        ));
                    }
                    if db.host.is_some() {
                        self.check_server_keys(&key, db)?;
                    } else {
                        self.refuse_server_keys(
                            &key,
                            db,
                            "without `host` the adapter gets no network",
                        )?;
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
                let from_url = filled && var.ends_with("#password");
                if !from_url && !self.variables.contains_key(var) {
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

    fn refuse_server_keys(&self, key: &str, db: &DatabaseSection, why: &str) -> Result<()> {
        for (set, name) in [
            (db.host.is_some(), "host"),
            (db.port.is_some(), "port"),
            (db.tls.is_some(), "tls"),
            (db.ca_file.is_some(), "ca_file"),
        ] {
            if set {
                return Err(self.invalid(format!("{key}.{name}"), why, format!("remove `{name}`")));
            }
        }
        Ok(())
    }

    fn refuse_login_keys(&self, key: &str, db: &DatabaseSection, why: &str) -> Result<()> {
        for (set, name) in [
            (db.user.is_some(), "user"),
            (db.database.is_some(), "database"),
        ] {
            if set {
                return Err(self.invalid(format!("{key}.{name}"), why, format!("remove `{name}`")));
            }
        }
        Ok(())
    }

    fn check_server_keys(&self, key: &str, db: &DatabaseSection) -> Result<()> {
        if db.host.as_deref().is_some_and(|h| {
            h.is_empty() || h.contains(|c: char| c.is_whitespace() || c == '/' || c == ',')
        }) {
            return Err(self.invalid(
                format!("{key}.host"),
                "not a host name or address",
                "use a name (`db.internal`) or an address (`10.0.0.5`, `::1`), without the port",
            ));
        }
        if db.port == Some(0) {
            return Err(self.invalid(format!("{key}.port"), "port 0", "use the server's port"));
        }
        if let Some(ca) = &db.ca_file {
            if db.tls() == TlsMode::Off {
                return Err(self.invalid(
                    format!("{key}.ca_file"),
                    "`ca_file` is for TLS, and `tls = \"off\"`",
                    "remove `ca_file`, or `tls = \"off\"`",
                ));
            }
            if !self.resolve(ca).is_file() {
                return Err(self.invalid(
                    format!("{key}.ca_file"),
                    format!("`{}` does not exist", self.resolve(ca).display()),
                    "point `ca_file` at the PEM file of the server's CA",
                ));
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
