//! One database's DB adapter instances: long-lived, one connection each, each in its own
//! `Store` with its own memory limit and WASI context, driven through `flagon:app/sql-driver`.
//!
//! Unlike handlers, adapter instances outlive requests: a connection is expensive to make and
//! holds no request state. What keeps that safe:
//!
//! - an adapter sees nothing of any request: no headers, session, cookies or variables, only
//!   its settings and the statements and parameters a handler sends;
//! - every call has a deadline (the database's `timeout`, enforced by epoch interruption inside
//!   the guest and by a timer outside it); an instance that traps or overruns is dropped, with
//!   its connection (an open transaction dies with it), and the pool makes a new one when next
//!   needed;
//! - an instance goes back to the pool only after `reset` succeeded (nothing left open, session
//!   settings restored); a transaction that is dropped, or still open when its request ends, is
//!   rolled back by that `reset`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Component, HasData, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::wasi::{link_baseline, link_sockets};
use crate::metrics::SqlOp;
use crate::runtime::bindings::adapter::SqlAdapter;
use crate::runtime::bindings::adapter::SqlAdapterPre;
use crate::runtime::bindings::adapter::exports::flagon::app::sql_driver::Limits;
use crate::runtime::bindings::flagon::app::log;
use crate::runtime::bindings::flagon::app::sql_types::{Outcome, Rows, SqlError, Value};
use crate::runtime::guest_log::{
    GuestLog, GuestOutput, MAX_LOG_LINE_BYTES, MAX_LOG_LINES_PER_REQUEST, Redactor,
};
use crate::runtime::{Failure, RuntimeCtx, RuntimeView, classify_error, engine, guard_store};

/// How one database's adapter is set up.
pub struct PoolConfig {
    /// The database's name, `[databases.<name>]`.
    pub name: String,
    /// The adapter component, compiled.
    pub component: Component,
    /// Passed to `connect`, secrets resolved.
    pub settings: Vec<(String, String)>,
    /// Values redacted from everything the adapter logs (its secret settings).
    pub secrets: Arc<[String]>,
    /// A host directory the adapter sees as `/data` (read-write), if any.
    pub data_dir: Option<PathBuf>,
    /// The addresses the adapter may open TCP connections to, if any (its server's, resolved
    /// by the host). Without them the adapter gets no `wasi:sockets` at all.
    pub network: Option<Arc<[SocketAddr]>>,
    /// Instances (connections) at most.
    pub size: u32,
    pub memory: usize,
    /// Deadline of each call, and of waiting for a free instance.
    pub timeout: Duration,
    pub limits: Limits,
    /// What the pool was made from (see [`Pool::fingerprint`]).
    pub fingerprint: [u8; 32],
}

/// The instances of one database.
pub struct Pool {
    name: Arc<str>,
    engine: Engine,
    pre: SqlAdapterPre<AdapterState>,
    settings: Vec<(String, String)>,
    log: GuestLog,
    data_dir: Option<PathBuf>,
    network: Option<Arc<[SocketAddr]>>,
    memory: usize,
    timeout: Duration,
    limits: Limits,
    /// One permit per instance that may exist.
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<Conn>>,
    fingerprint: [u8; 32],
    /// Calls, errors, latency and leases in `/metrics`.
    metrics: crate::metrics::Sql,
    /// The adapter's instances in `/metrics`, as component `sql:<database>`.
    guest: Arc<crate::metrics::Guest>,
}

/// One adapter instance: its `Store` and its exports.
struct Conn {
    store: Store<AdapterState>,
    driver: SqlAdapter,
}

/// The data of an adapter's `Store`.
pub struct AdapterState {
    runtime: RuntimeCtx,
    wasi: WasiCtx,
    log: GuestLog,
    /// Lines logged during the current call.
    lines: u32,
}

impl RuntimeView for AdapterState {
    fn runtime(&mut self) -> &mut RuntimeCtx {
        &mut self.runtime
    }
}

impl WasiView for AdapterState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.runtime.table,
        }
    }
}

impl wasmtime_wasi_io::IoView for AdapterState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.runtime.table
    }
}

struct AdapterLog;

impl HasData for AdapterLog {
    type Data<'a> = &'a mut AdapterState;
}

impl crate::runtime::bindings::flagon::app::sql_types::Host for &mut AdapterState {}

impl log::Host for &mut AdapterState {
    fn log(&mut self, level: log::Level, message: String) {
        self.lines = self.lines.saturating_add(1);
        if self.lines > MAX_LOG_LINES_PER_REQUEST {
            return;
        }
        let message = self.log.clean(&message, MAX_LOG_LINE_BYTES);
        let database = &*self.log.component;
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(target: "flagon::adapter", $lvl, database, "{message}")
            };
        }
        match level {
            log::Level::Trace => emit!(tracing::Level::TRACE),
            log::Level::Debug => emit!(tracing::Level::DEBUG),
            log::Level::Info => emit!(tracing::Level::INFO),
            log::Level::Warn => emit!(tracing::Level::WARN),
            log::Level::Error => emit!(tracing::Level::ERROR),
        }
    }
}

/// The interfaces an adapter may import: the WASI baseline (its context preopens only the
/// data directory), `log`, the SQL types, and `wasi:sockets` if it has a server to reach
/// (`network`).
pub fn allowed_import(name: &str, network: bool) -> bool {
    let path = name.split_once('@').map_or(name, |(p, _)| p);
    <crate::capabilities::wasi::Wasi as crate::capabilities::Capability>::INTERFACES.contains(&path)
        || path == "flagon:app/log"
        || path == "flagon:app/sql-types"
        || (network && path.starts_with("wasi:sockets/"))
}

impl Pool {
    /// A digest of everything the pool was made from (the adapter's bytes, its settings with
    /// the secrets, its addresses, size, memory, timeout and limits). A reload keeps a pool
    /// whose fingerprint has not changed, connections and all.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Link and pre-instantiate the adapter, then make one instance and connect it, so that
    /// bad settings (a missing directory, a refused password) stop the start.
    pub async fn open(engine: &Engine, config: PoolConfig) -> anyhow::Result<Arc<Self>> {
        let name: Arc<str> = Arc::from(config.name.as_str());
        let refused: Vec<String> = config
            .component
            .component_type()
            .imports(engine)
            .map(|(import, _)| import.to_string())
            .filter(|import| !allowed_import(import, config.network.is_some()))
            .collect();
        if !refused.is_empty() {
            anyhow::bail!(
                "the adapter imports {}, which adapters are not given (only the WASI baseline, \
                 `flagon:app/log` and `flagon:app/sql-types`, and `wasi:sockets` when the \
                 database has a `host`)",
                refused.join(", ")
            );
        }
        let mut linker = Linker::<AdapterState>::new(engine);
        link_baseline(&mut linker)?;
        if config.network.is_some() {
            link_sockets(&mut linker)?;
        }
        log::add_to_linker::<_, AdapterLog>(&mut linker, |s| s)?;
        crate::runtime::bindings::flagon::app::sql_types::add_to_linker::<_, AdapterLog>(
            &mut linker,
            |s| s,
        )?;
        let pre = linker
            .instantiate_pre(&config.component)
            .map_err(anyhow::Error::from)?;
        let pre = SqlAdapterPre::new(pre)
            .map_err(anyhow::Error::from)
            .context("the component does not export `flagon:app/sql-driver`")?;
        let pool = Arc::new(Self {
            log: GuestLog {
                component: Arc::from(format!("sql:{name}")),
                request_id: Arc::from("-"),
                redactor: Arc::new(Redactor::new(config.secrets.clone(), Vec::new())),
            },
            name,
            engine: engine.clone(),
            pre,
            settings: config.settings,
            data_dir: config.data_dir,
            network: config.network,
            memory: config.memory,
            timeout: config.timeout,
            limits: config.limits,
            fingerprint: config.fingerprint,
            metrics: crate::metrics::Sql::new(&config.name, config.size),
            guest: crate::metrics::Guest::new(&format!("sql:{}", config.name)),
            slots: Arc::new(Semaphore::new(config.size as usize)),
            idle: Mutex::new(Vec::new()),
        });
        let first = pool.connect().await.map_err(|e| match e {
            ConnectError::Failed(e) => {
                anyhow::anyhow!("the adapter failed to connect: {}", describe(&e))
            }
            ConnectError::Trap(t) => anyhow::anyhow!("the adapter failed to start: {t}"),
        })?;
        pool.idle_conns().push(first);
        Ok(pool)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn idle_conns(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Instances alive now (idle or leased), for tests and metrics.
    pub fn idle(&self) -> usize {
        self.idle_conns().len()
    }

    /// A new instance, connected.
    async fn connect(&self) -> Result<Conn, ConnectError> {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestOutput::new(self.log.clone(), "stdout"))
            .stderr(GuestOutput::new(self.log.clone(), "stderr"));
        if let Some(dir) = &self.data_dir {
            wasi.preopened_dir(dir, "/data", wasmtime_wasi::FsPerms::ReadWrite)
                .map_err(|e| {
                    ConnectError::Trap(format!(
                        "cannot open the data directory `{}`: {e}",
                        dir.display()
                    ))
                })?;
        }
        if let Some(allowed) = &self.network {
            // TCP connections to the database's addresses and nothing else: no listening, no
            // binding to a chosen address, no UDP, no name lookups.
            let allowed = allowed.clone();
            wasi.allow_tcp(true)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .socket_addr_check(move |addr, use_| {
                    let ok = match use_ {
                        SocketAddrUse::TcpConnect => allowed.contains(&addr),
                        // The implicit bind of a connect, to the wildcard address.
                        SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                        _ => false,
                    };
                    Box::pin(async move { ok })
                });
        }
        let state = AdapterState {
            runtime: RuntimeCtx::new(self.memory).with_metrics(self.guest.clone()),
            wasi: wasi.build(),
            log: self.log.clone(),
            lines: 0,
        };
        let mut store = Store::new(&self.engine, state);
        guard_store(&mut store);
        arm(&mut store, self.timeout);
        let limit = self.timeout + engine::EPOCH_TICK * 20;
        let made = tokio::time::timeout(limit, async {
            let driver = self.pre.instantiate_async(&mut store).await?;
            store.data_mut().runtime.instantiated();
            let connected = driver
                .flagon_app_sql_driver()
                .call_connect(&mut store, &self.settings)
                .await?;
            Ok::<_, wasmtime::Error>((driver, connected))
        })
        .await;
        match made {
            Err(_) => {
                self.failed(&Failure::Timeout);
                Err(ConnectError::Trap(
                    "connecting took longer than the timeout".into(),
                ))
            }
            Ok(Err(e)) => {
                let failure = classify_error(e);
                self.failed(&failure);
                Err(ConnectError::Trap(failure_text(failure)))
            }
            Ok(Ok((_, Err(e)))) => Err(ConnectError::Failed(e)),
            Ok(Ok((driver, Ok(())))) => Ok(Conn { store, driver }),
        }
    }

    /// Count a failed call into an adapter instance (a trap, a timeout, a full pool).
    fn failed(&self, failure: &Failure) {
        match failure {
            Failure::Timeout => self.guest.timed_out(),
            Failure::Overloaded => self.guest.overloaded(),
            Failure::Trap(_) => self.guest.trapped(),
        }
    }

    /// An instance for one statement or one transaction: an idle one, or a new one if the
    /// pool has room. Waits at most the timeout for a free one.
    pub async fn lease(self: &Arc<Self>) -> Result<Lease, SqlError> {
        let leased = async {
            let permit = tokio::time::timeout(self.timeout, self.slots.clone().acquire_owned())
                .await
                .map_err(|_| SqlError::Timeout)?
                .map_err(|_| SqlError::ConnectionLost)?;
            self.lease_with(permit).await
        }
        .await;
        if leased.is_err() {
            self.metrics.error();
        }
        leased
    }

    /// [`Pool::lease`] with the slot taken.
    async fn lease_with(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Result<Lease, SqlError> {
        let idle = self.idle_conns().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect().await.map_err(|e| match e {
                // The reason is the operator's (the server is down, a password changed); the
                // handler learns that the database is unreachable for now.
                ConnectError::Failed(e) => {
                    let reason = self.log.clean(&describe(&e), MAX_LOG_LINE_BYTES);
                    tracing::error!(database = %self.name, "cannot connect: {reason}");
                    SqlError::ConnectionLost
                }
                ConnectError::Trap(t) => {
                    tracing::error!(database = %self.name, "the adapter failed to start: {t}");
                    SqlError::ConnectionLost
                }
            })?,
        };
        Ok(Lease(Some(Leased {
            pool: self.clone(),
            conn,
            _permit: permit,
            _in_use: self.metrics.lease(),
        })))
    }
}

enum ConnectError {
    /// `connect` returned an error.
    Failed(SqlError),
    /// The instance trapped, overran, or could not be made.
    Trap(String),
}

fn failure_text(f: Failure) -> String {
    match f {
        Failure::Timeout => "it ran past its deadline".into(),
        Failure::Overloaded => "no instance slot was free".into(),
        Failure::Trap(t) => t,
    }
}

/// An error as the operator reads it at start.
fn describe(e: &SqlError) -> String {
    match e {
        SqlError::Other(m) | SqlError::Syntax(m) => m.clone(),
        other => format!("{other:?}"),
    }
}

/// Give the next call `timeout`.
fn arm(store: &mut Store<AdapterState>, timeout: Duration) {
    let state = store.data_mut();
    state.lines = 0;
    state.runtime.set_deadline(Some(Instant::now() + timeout));
    store.set_epoch_deadline(1);
}

/// One leased instance. Dropping it without [`Lease::release`] (a transaction abandoned, a
/// request that ended) resets it on a task of its own, which rolls back anything still open.
pub struct Lease(Option<Leased>);

struct Leased {
    pool: Arc<Pool>,
    conn: Conn,
    /// Held until the instance is back in the pool (or dropped).
    _permit: OwnedSemaphorePermit,
    /// Counts it in `sql_pool_in_use` meanwhile.
    _in_use: crate::metrics::InUse,
}

/// Run one driver call on the leased instance under the pool's deadline. A trap or an overrun
/// drops the instance (the lease is empty afterwards) and becomes `timeout` or
/// `connection-lost` for the caller.
macro_rules! guarded {
    ($lease:expr, |$driver:ident, $store:ident| $call:expr) => {{
        let timeout = $lease.0.as_ref().map_or(Duration::ZERO, |l| l.pool.timeout);
        guarded!($lease, timeout, |$driver, $store| $call)
    }};
    ($lease:expr, $timeout:expr, |$driver:ident, $store:ident| $call:expr) => {{
        match $lease.0.take() {
            None => Err(SqlError::ConnectionLost),
            Some(mut leased) => {
                let timeout = $timeout;
                arm(&mut leased.conn.store, timeout);
                let limit = timeout + engine::EPOCH_TICK * 20;
                let outcome = {
                    let Conn {
                        store: $store,
                        driver,
                    } = &mut leased.conn;
                    let $driver = driver.flagon_app_sql_driver();
                    tokio::time::timeout(limit, $call).await
                };
                match outcome {
                    // The adapter lost its connection: drop the instance, and the pool makes
                    // a new one (a new connection) when next needed.
                    Ok(Ok(Err(SqlError::ConnectionLost))) => {
                        Err(leased.discard(Failure::Trap("its connection was lost".into())))
                    }
                    Ok(Ok(result)) => {
                        $lease.0 = Some(leased);
                        result
                    }
                    Ok(Err(e)) => {
                        let failure = classify_error(e);
                        leased.pool.failed(&failure);
                        Err(leased.discard(failure))
                    }
                    Err(_) => {
                        leased.pool.failed(&Failure::Timeout);
                        Err(leased.discard(Failure::Timeout))
                    }
                }
            }
        }
    }};
}

/// Count and time one call on `lease` in its database's series.
macro_rules! observed {
    ($lease:expr, $op:ident, $call:expr) => {{
        match $lease.0.as_ref().map(|l| l.pool.clone()) {
            Some(pool) => pool.metrics.observe(SqlOp::$op, async { $call }).await,
            // The instance is gone (what `guarded!` answers on an empty lease).
            None => Err(SqlError::ConnectionLost),
        }
    }};
}

impl Pool {
    /// Whether the database answers, for `/readyz`: a trivial statement (`SELECT 1`) on an
    /// instance of the pool. A pool whose every instance is leased is busy, not down, and is
    /// not made to wait (its requests' own errors show whether the database answers). Not
    /// counted in the SQL series.
    pub async fn check(self: &Arc<Self>) -> Result<(), SqlError> {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Ok(());
        };
        let mut lease = self.lease_with(permit).await?;
        let limits = lease.limits();
        let rows = guarded!(lease, |d, store| d.call_query(
            store,
            "SELECT 1",
            &[],
            limits
        ));
        lease.release().await;
        rows.map(drop)
    }
}

impl Lease {
    pub async fn query(&mut self, statement: &str, params: &[Value]) -> Result<Rows, SqlError> {
        let limits = self.limits();
        observed!(
            self,
            Query,
            guarded!(self, |d, store| d
                .call_query(store, statement, params, limits))
        )
    }

    pub async fn execute(
        &mut self,
        statement: &str,
        params: &[Value],
    ) -> Result<Outcome, SqlError> {
        let limits = self.limits();
        observed!(
            self,
            Execute,
            guarded!(self, |d, store| d
                .call_execute(store, statement, params, limits))
        )
    }

    pub async fn begin(&mut self) -> Result<(), SqlError> {
        observed!(self, Begin, guarded!(self, |d, store| d.call_begin(store)))
    }

    pub async fn commit(&mut self) -> Result<(), SqlError> {
        observed!(
            self,
            Commit,
            guarded!(self, |d, store| d.call_commit(store))
        )
    }

    pub async fn rollback(&mut self) -> Result<(), SqlError> {
        observed!(
            self,
            Rollback,
            guarded!(self, |d, store| d.call_rollback(store))
        )
    }

    /// Run a migration script (several statements). Only the host calls this, with a
    /// deadline of its own: building an index on a large table takes longer than a request's
    /// statement may.
    pub async fn run_script(&mut self, script: &str, timeout: Duration) -> Result<(), SqlError> {
        observed!(
            self,
            Script,
            guarded!(self, timeout, |d, store| d.call_run_script(store, script))
        )
    }

    /// The database's result caps (zero once the instance is gone).
    pub fn limits(&self) -> Limits {
        self.0.as_ref().map_or(
            Limits {
                max_rows: 0,
                max_bytes: 0,
            },
            |l| l.pool.limits,
        )
    }

    /// Reset the instance and put it back in the pool (or drop it if the reset fails).
    pub async fn release(mut self) {
        if let Some(leased) = self.0.take() {
            leased.recycle().await;
        }
    }
}

impl Leased {
    /// Drop a broken instance, logging why, and say what the caller gets.
    fn discard(self, why: Failure) -> SqlError {
        let error = match why {
            Failure::Timeout => SqlError::Timeout,
            _ => SqlError::ConnectionLost,
        };
        let reason = failure_text(why);
        let reason = self.pool.log.clean(&reason, MAX_LOG_LINE_BYTES);
        tracing::error!(database = %self.pool.name, "adapter instance dropped: {reason}");
        error
    }

    async fn recycle(mut self) {
        let timeout = self.pool.timeout;
        arm(&mut self.conn.store, timeout);
        let limit = timeout + engine::EPOCH_TICK * 20;
        let Conn { store, driver } = &mut self.conn;
        let reset = tokio::time::timeout(limit, driver.flagon_app_sql_driver().call_reset(store));
        match reset.await {
            Ok(Ok(Ok(()))) => {
                let Leased {
                    pool,
                    conn,
                    _permit,
                    _in_use,
                } = self;
                pool.idle_conns().push(conn);
                drop(_permit);
                drop(_in_use);
            }
            Ok(Ok(Err(e))) => {
                tracing::warn!(database = %self.pool.name, "adapter instance dropped: reset failed: {}", self.pool.log.clean(&describe(&e), MAX_LOG_LINE_BYTES));
            }
            Ok(Err(e)) => {
                let failure = classify_error(e);
                self.pool.failed(&failure);
                self.discard(failure);
            }
            Err(_) => {
                self.pool.failed(&Failure::Timeout);
                self.discard(Failure::Timeout);
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(leased) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(leased.recycle());
                }
                // No runtime (the process is ending): the connection closes with the instance,
                // which rolls back what it had open.
                Err(_) => drop(leased),
            }
        }
    }
}
