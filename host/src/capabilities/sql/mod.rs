//! `flagon:app/sql`: the `[databases.<name>]` of the app, each granted to a component by name
//! (`grants.sql`) and served by a [`pool::Pool`] of DB adapter instances.
//!
//! A handler never touches the database's file or socket: its statements and parameters go to
//! the adapter, and rows come back, bounded by the database's `max_rows` and `max_bytes`.
//! Transactions are resources of the handler's instance; one still open when the request ends
//! (or the handler traps) is rolled back when its lease is dropped.

pub mod migrations;
pub mod pool;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use wasmtime::component::{Linker, Resource};

use super::{AppSetup, CapData, Capability, ComponentSetup, Cx, Grant, HostState};
use crate::manifest::{AdapterKind, ComponentSection, Manifest, TlsMode};
use crate::runtime::bindings::adapter::exports::flagon::app::sql_driver::Limits;
use crate::runtime::bindings::flagon::app::sql::{self, Transaction};
use crate::runtime::bindings::flagon::app::sql_types::{self, Outcome, Rows, SqlError, Value};
use pool::{Lease, Pool, PoolConfig};

pub struct Sql;

/// The open transactions of one instance, by the handle's rep.
#[derive(Default)]
pub struct Transactions {
    next: u32,
    open: HashMap<u32, Lease>,
}

impl Capability for Sql {
    const NAME: &'static str = "Sql";
    const INTERFACES: &'static [&'static str] = &["flagon:app/sql", "flagon:app/sql-types"];
    const GRANT: Option<Grant> = Some(Grant {
        key: "sql",
        example: "grants = { sql = [\"main\"] }",
    });
    /// Every database of the app, its pool made (and one connection tried) at load.
    type App = BTreeMap<String, Arc<Pool>>;
    /// The databases granted to the component.
    type Component = Box<[String]>;
    type Instance = Transactions;

    fn granted(section: &ComponentSection) -> bool {
        section.grants.sql.as_ref().is_some_and(|k| !k.is_empty())
    }

    fn describe(manifest: &Manifest, section: &ComponentSection) -> Vec<String> {
        let names = section.grants.sql.iter().flatten();
        names
            .map(|n| {
                let adapter = manifest
                    .databases
                    .get(n)
                    .map_or("?", |d| d.adapter.as_str());
                format!("sql {n} ({adapter})")
            })
            .collect()
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        sql::add_to_linker::<_, CapData<Self>>(linker, HostState::cx::<Self>)?;
        sql_types::add_to_linker::<_, CapData<Self>>(linker, HostState::cx::<Self>)
    }

    async fn setup(app: &AppSetup<'_>) -> anyhow::Result<Self::App> {
        let manifest = app.manifest;
        // Every SQLite directory made and locked, then checked to hold nothing else, before
        // any adapter runs.
        let mut sqlite_dirs = BTreeMap::new();
        for (name, db) in &manifest.databases {
            if db.kind() == AdapterKind::Sqlite {
                let file = manifest.sqlite_path(name, db);
                let dir = prepare_sqlite_dir(manifest, name, &file).with_context(|| {
                    format!(
                        "cannot open database `{name}` (`[databases.{name}]` in `{}`)",
                        manifest.file.display()
                    )
                })?;
                sqlite_dirs.insert(name.clone(), dir);
            }
        }
        refuse_shared_files(manifest)?;
        let mut pools = BTreeMap::new();
        for (name, db) in &manifest.databases {
            let context = || {
                format!(
                    "cannot open database `{name}` (`[databases.{name}]` in `{}`)",
                    manifest.file.display()
                )
            };
            let network = match (&db.host, db.port()) {
                (Some(host), Some(port)) => Some(
                    server_addresses(manifest, name, db, host, port)
                        .await
                        .with_context(context)?,
                ),
                _ => None,
            };
            let (wasm, data_dir, mut settings) = match db.kind() {
                AdapterKind::Sqlite => {
                    let file = manifest.sqlite_path(name, db);
                    let dir = sqlite_dirs.remove(name).unwrap_or_default();
                    let file_name = file
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let settings = vec![
                        ("path".to_owned(), format!("/data/{file_name}")),
                        ("busy_timeout_ms".to_owned(), "0".to_owned()),
                    ];
                    (crate::plugins::sqlite().to_vec(), Some(dir), settings)
                }
                AdapterKind::Postgres => {
                    let user = db.user.clone().unwrap_or_default();
                    let settings = vec![
                        (
                            "database".to_owned(),
                            db.database.clone().unwrap_or(user.clone()),
                        ),
                        ("user".to_owned(), user),
                        (
                            "statement_timeout_ms".to_owned(),
                            db.timeout().as_millis().to_string(),
                        ),
                    ];
                    (crate::plugins::postgres().to_vec(), None, settings)
                }
                AdapterKind::Component(path) => {
                    let path = manifest.resolve(&path);
                    let wasm = std::fs::read(&path)
                        .with_context(|| format!("cannot read `{}`", path.display()))
                        .with_context(context)?;
                    (wasm, None, Vec::new())
                }
            };
            // The adapter's signature, on the bytes just read (`[app] require_signatures`): a
            // path's `.sig` beside it, or the embedded `sqlite` / `postgres` plugin's own.
            let adapter_file = manifest.resolve(Path::new(&db.adapter));
            let subject = match crate::plugins::find(&db.adapter) {
                Some(plugin) if !matches!(db.kind(), AdapterKind::Component(_)) => {
                    crate::signature::Subject::Embedded(plugin)
                }
                _ => crate::signature::Subject::File(&adapter_file),
            };
            let place = crate::signature::Place {
                table: &format!("databases.{name}"),
                id: name,
                manifest: &manifest.file,
            };
            crate::signature::check(&manifest.signature_policy(), subject, &wasm, place)?;
            let mut secrets = Vec::new();
            for (setting, var) in &db.secrets {
                // The manifest checked that every secret names a declared variable.
                let value = app.variables[var].value.clone();
                secrets.push(value.clone());
                settings.push((setting.clone(), value));
            }
            settings.extend(db.settings.iter().map(|(k, v)| (k.clone(), v.clone())));
            if let (Some(addresses), Some(host)) = (&network, &db.host) {
                let list: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
                settings.push(("address".to_owned(), list.join(",")));
                settings.push(("host".to_owned(), host.clone()));
                let tls = match db.tls() {
                    TlsMode::Verify => "verify",
                    TlsMode::Off => "off",
                };
                settings.push(("tls".to_owned(), tls.to_owned()));
                if let Some(ca) = &db.ca_file {
                    let ca = manifest.resolve(ca);
                    let pem = std::fs::read_to_string(&ca)
                        .with_context(|| format!("cannot read `{}`", ca.display()))
                        .with_context(context)?;
                    settings.push(("ca_pem".to_owned(), pem));
                }
            }
            let memory = usize::try_from(db.memory()).unwrap_or(usize::MAX);
            let limits = Limits {
                max_rows: db.max_rows(),
                max_bytes: db.max_bytes(),
            };
            let fingerprint = fingerprint(
                &wasm,
                &settings,
                network.as_deref(),
                db.pool(),
                memory,
                db.timeout(),
                limits,
            );
            // A reload keeps the previous app's pool when nothing it was made from changed.
            if let Some(previous) = app.previous.and_then(|p| p.sql.get(name)) {
                if previous.fingerprint() == fingerprint && app.same_engine {
                    tracing::debug!(database = %name, "database kept from the previous load");
                    pools.insert(name.clone(), previous.clone());
                    continue;
                }
                // Two pools on one SQLite file would be two writers that cannot see each
                // other's locks (WASI has none).
                if db.kind() == AdapterKind::Sqlite {
                    anyhow::bail!(
                        "`[databases.{name}]` in `{}` changed (or the engine's limits did), and a \
                         SQLite database cannot be reopened while the running app uses it\n  \
                         help: restart flagon to apply this change",
                        manifest.file.display()
                    );
                }
            }
            let (component, _) =
                crate::runtime::engine::load_component(app.engine, &wasm, app.cache_dir)
                    .with_context(context)?;
            let pool = Pool::open(
                app.engine,
                PoolConfig {
                    name: name.clone(),
                    component,
                    settings,
                    secrets: secrets.into(),
                    data_dir,
                    network,
                    size: db.pool(),
                    memory,
                    timeout: db.timeout(),
                    limits,
                    fingerprint,
                },
            )
            .await
            .with_context(context)?;
            tracing::info!(database = %name, adapter = %db.adapter, pool = db.pool(), "database ready");
            pools.insert(name.clone(), pool);
        }
        Ok(pools)
    }

    fn configure(_: &Self::App, c: &ComponentSetup<'_>) -> anyhow::Result<Self::Component> {
        // The manifest checked that every granted database is declared.
        Ok(c.section.grants.sql.iter().flatten().cloned().collect())
    }

    fn prepare(_: &Self::Component) -> Transactions {
        Transactions::default()
    }
}

/// Apply every database's pending migrations (`[databases.<name>] migrations`). The app
/// runs this once every component has loaded, so that an app that fails to load (at start, or
/// on reload beside a running app) has changed no schema; the extensions' `check-settings`,
/// which may read the tables, run after it.
pub async fn migrate(
    manifest: &Manifest,
    pools: &BTreeMap<String, Arc<Pool>>,
) -> anyhow::Result<()> {
    for (name, db) in &manifest.databases {
        let (Some(dir), Some(pool)) = (&db.migrations, pools.get(name)) else {
            continue;
        };
        let context = || {
            format!(
                "cannot open database `{name}` (`[databases.{name}]` in `{}`)",
                manifest.file.display()
            )
        };
        let files = migrations::read_dir(&manifest.resolve(dir)).with_context(context)?;
        migrations::apply(pool, &files, migrations::Lock::for_adapter(&db.kind()))
            .await
            .with_context(context)?;
    }
    Ok(())
}

/// The digest of what a pool is made from ([`Pool::fingerprint`]).
fn fingerprint(
    wasm: &[u8],
    settings: &[(String, String)],
    network: Option<&[SocketAddr]>,
    size: u32,
    memory: usize,
    timeout: std::time::Duration,
    limits: Limits,
) -> [u8; 32] {
    let mut f = super::Fingerprint::new();
    f.field(ring::digest::digest(&ring::digest::SHA256, wasm).as_ref());
    for (k, v) in settings {
        f.field(k.as_bytes()).field(v.as_bytes());
    }
    let network: Vec<String> = network
        .iter()
        .flat_map(|n| n.iter())
        .map(|a| a.to_string())
        .collect();
    f.field(network.join(",").as_bytes())
        .field(&size.to_le_bytes())
        .field(&(memory as u64).to_le_bytes())
        .field(&timeout.as_nanos().to_le_bytes())
        .field(format!("{limits:?}").as_bytes());
    f.finish()
}

/// The addresses of a database server (`host`, `port`), resolved once at start: the adapter may
/// connect to these and nothing else. Plain TCP (`tls = "off"`) is refused unless every
/// address is loopback, and warned about when it is.
async fn server_addresses(
    manifest: &Manifest,
    name: &str,
    db: &crate::manifest::DatabaseSection,
    host: &str,
    port: u16,
) -> anyhow::Result<Arc<[SocketAddr]>> {
    let addresses: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("cannot resolve `{host}` (`[databases.{name}] host`)"))?
            .collect(),
    };
    if addresses.is_empty() {
        anyhow::bail!("`{host}` has no address (`[databases.{name}] host`)");
    }
    // In a fixed order: round-robin DNS lists them differently each time, and a reload keeps a
    // pool only if its settings, these included, are the same.
    let mut addresses = addresses;
    addresses.sort();
    addresses.dedup();
    if db.tls() == TlsMode::Off {
        if let Some(remote) = addresses.iter().find(|a| !a.ip().is_loopback()) {
            anyhow::bail!(
                "invalid manifest `{}`: `databases.{name}.tls`: plain TCP to `{host}` ({}) would \
                 send the password and every row unencrypted across the network\n  help: use \
                 `tls = \"verify\"` (with `ca_file` for a private CA); `tls = \"off\"` is only \
                 for a server on this machine's loopback",
                manifest.file.display(),
                remote.ip()
            );
        }
        tracing::warn!(database = %name, "plain TCP to the database (tls = \"off\"): allowed because the server is on loopback");
    }
    Ok(addresses.into())
}

/// Create the SQLite file's directory (0700) if needed and take an exclusive OS lock on a
/// `.flagon-lock` file beside the database, held for the life of the process, so that a second
/// flagon cannot open the same database (WASI has no file locks, so SQLite inside the sandbox
/// cannot tell). Returns the directory the adapter is granted.
fn prepare_sqlite_dir(manifest: &Manifest, name: &str, file: &Path) -> anyhow::Result<PathBuf> {
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.dir.clone());
    if !dir.is_dir() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .with_context(|| format!("cannot create the directory `{}`", dir.display()))?;
    }
    let lock_path = PathBuf::from(format!("{}.flagon-lock", file.display()));
    // This process holds the lock already (an app loaded before this one, on reload).
    // Each file is held under the database name that first opened it: a reload that gives
    // the same file another name would open a second pool on it beside the first.
    static HELD: std::sync::Mutex<BTreeMap<PathBuf, String>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut held = HELD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = dir
        .canonicalize()
        .map(|d| d.join(lock_path.file_name().unwrap_or_default()))
        .unwrap_or_else(|_| lock_path.clone());
    match held.get(&key) {
        Some(holder) if holder == name => {
            return dir
                .canonicalize()
                .with_context(|| format!("cannot resolve `{}`", dir.display()));
        }
        Some(holder) => anyhow::bail!(
            "`{}` is open as database `{holder}` in this process, and a SQLite file cannot be \
             opened twice\n  help: restart flagon to apply this change",
            file.display()
        ),
        None => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let lock = options
        .open(&lock_path)
        .with_context(|| format!("cannot open `{}`", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "`{}` is in use by another process (is another flagon serving this app?)",
            file.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock `{}`", lock_path.display()));
        }
    }
    // Held (and the lock with it) until the process exits.
    std::mem::forget(lock);
    held.insert(key, name.to_owned());
    dir.canonicalize()
        .with_context(|| format!("cannot resolve `{}`", dir.display()))
}

/// A SQLite adapter is granted its database's whole directory, so that directory must hold
/// nothing else: no handler may be granted a directory that holds it or lies inside it, and it
/// may not hold the app, a kv store, static files, templates or another database.
fn refuse_shared_files(manifest: &Manifest) -> anyhow::Result<()> {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let sqlite_dirs: Vec<(&String, PathBuf)> = manifest
        .databases
        .iter()
        .filter(|(_, db)| db.kind() == AdapterKind::Sqlite)
        .filter_map(|(name, db)| {
            let file = manifest.sqlite_path(name, db);
            file.parent().map(|d| (name, canon(d)))
        })
        .collect();
    let refuse = |key: String, what: &str, name: &str| {
        anyhow::anyhow!(
            "invalid manifest `{}`: `{key}`: the directory of database `{name}` would hold {what}, \
             and its adapter is granted that whole directory\n  help: keep the database in a \
             directory of its own (`[databases.{name}] path`, default `data/sql/{name}/{name}.db`)",
            manifest.file.display()
        )
    };
    for (name, db_dir) in &sqlite_dirs {
        let inside = |p: &Path| {
            let p = canon(p);
            p.starts_with(db_dir)
        };
        for (id, c) in &manifest.components {
            for (guest, grant) in &c.grants.files {
                let host = canon(&manifest.resolve(grant.path()));
                if host.starts_with(db_dir) || db_dir.starts_with(&host) {
                    anyhow::bail!(
                        "invalid manifest `{}`: `components.{id}.grants.files.\"{guest}\"`: \
                         `{}` holds the files of database `{name}`, which only its adapter may \
                         reach\n  help: keep the database in a directory of its own (`[databases.{name}] path`)",
                        manifest.file.display(),
                        host.display()
                    );
                }
            }
            if c.wasm(manifest).path().is_some_and(inside) {
                return Err(refuse(
                    format!("components.{id}.source"),
                    "a component",
                    name,
                ));
            }
        }
        if inside(&manifest.dir) {
            return Err(refuse(
                format!("databases.{name}.path"),
                "the app itself",
                name,
            ));
        }
        for (kv, section) in &manifest.kv {
            if section.backend == crate::manifest::KvBackendKind::Embedded {
                let dir = manifest.resolve(section.path.as_deref().unwrap_or("data/kv".as_ref()));
                if inside(&dir) {
                    return Err(refuse(format!("kv.{kv}.path"), "a key-value store", name));
                }
            }
        }
        for (i, st) in manifest.statics.iter().enumerate() {
            if inside(&manifest.resolve(&st.dir)) {
                return Err(refuse(format!("static[{i}].dir"), "static files", name));
            }
        }
        if inside(&manifest.resolve(&manifest.templates.dir)) {
            return Err(refuse("templates.dir".into(), "the templates", name));
        }
        for (other, other_dir) in &sqlite_dirs {
            if other != name && other_dir.starts_with(db_dir) {
                return Err(refuse(
                    format!("databases.{other}.path"),
                    &format!("database `{other}` too"),
                    name,
                ));
            }
        }
    }
    Ok(())
}

impl Cx<'_, Sql> {
    /// The pool of `database`, if this component was granted it.
    fn pool(&self, database: &str) -> Result<Arc<Pool>, SqlError> {
        if !self.component.iter().any(|d| d == database) {
            return Err(SqlError::NotGranted(format!(
                "database `{database}` is not granted to this component (add it to `grants.sql`)"
            )));
        }
        self.app
            .get(database)
            .cloned()
            .ok_or_else(|| SqlError::NotGranted(format!("no database `{database}`")))
    }

    fn transaction(&mut self, this: &Resource<Transaction>) -> Result<&mut Lease, SqlError> {
        self.instance
            .open
            .get_mut(&this.rep())
            .ok_or_else(|| SqlError::Other("the transaction has ended".into()))
    }
}

/// Parameters over the database's byte limit are refused before they reach the adapter.
fn check_params(params: &[Value], limits: Limits) -> Result<(), SqlError> {
    let bytes: u64 = params
        .iter()
        .map(|v| match v {
            Value::Text(s) => s.len() as u64,
            Value::Blob(b) => b.len() as u64,
            _ => 8,
        })
        .sum();
    if bytes > limits.max_bytes {
        return Err(SqlError::TooLarge(limits.max_bytes));
    }
    Ok(())
}

impl sql_types::Host for Cx<'_, Sql> {}

impl sql::Host for Cx<'_, Sql> {
    async fn query(
        &mut self,
        database: String,
        statement: String,
        params: Vec<Value>,
    ) -> Result<Rows, SqlError> {
        let pool = self.pool(&database)?;
        check_params(&params, pool.limits())?;
        let mut lease = pool.lease().await?;
        let rows = lease.query(&statement, &params).await;
        lease.release().await;
        rows
    }

    async fn execute(
        &mut self,
        database: String,
        statement: String,
        params: Vec<Value>,
    ) -> Result<Outcome, SqlError> {
        let pool = self.pool(&database)?;
        check_params(&params, pool.limits())?;
        let mut lease = pool.lease().await?;
        let outcome = lease.execute(&statement, &params).await;
        lease.release().await;
        outcome
    }

    async fn begin(&mut self, database: String) -> Result<Resource<Transaction>, SqlError> {
        let pool = self.pool(&database)?;
        let mut lease = pool.lease().await?;
        if let Err(e) = lease.begin().await {
            lease.release().await;
            return Err(e);
        }
        let id = self.instance.next;
        self.instance.next = self.instance.next.wrapping_add(1);
        self.instance.open.insert(id, lease);
        Ok(Resource::new_own(id))
    }
}

impl sql::HostTransaction for Cx<'_, Sql> {
    async fn query(
        &mut self,
        this: Resource<Transaction>,
        statement: String,
        params: Vec<Value>,
    ) -> Result<Rows, SqlError> {
        let lease = self.transaction(&this)?;
        check_params(&params, lease.limits())?;
        lease.query(&statement, &params).await
    }

    async fn execute(
        &mut self,
        this: Resource<Transaction>,
        statement: String,
        params: Vec<Value>,
    ) -> Result<Outcome, SqlError> {
        let lease = self.transaction(&this)?;
        check_params(&params, lease.limits())?;
        lease.execute(&statement, &params).await
    }

    async fn commit(&mut self, this: Resource<Transaction>) -> Result<(), SqlError> {
        let Some(mut lease) = self.instance.open.remove(&this.rep()) else {
            return Err(SqlError::Other("the transaction has ended".into()));
        };
        let done = lease.commit().await;
        lease.release().await;
        done
    }

    async fn rollback(&mut self, this: Resource<Transaction>) -> Result<(), SqlError> {
        let Some(mut lease) = self.instance.open.remove(&this.rep()) else {
            return Err(SqlError::Other("the transaction has ended".into()));
        };
        let done = lease.rollback().await;
        lease.release().await;
        done
    }

    async fn drop(&mut self, this: Resource<Transaction>) -> wasmtime::Result<()> {
        // Dropped without commit: `release` resets the connection, which rolls it back.
        if let Some(lease) = self.instance.open.remove(&this.rep()) {
            lease.release().await;
        }
        Ok(())
    }
}
