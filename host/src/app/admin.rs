//! The admin listener (`[admin] listen`, `flagon serve --admin-listen`): `GET /healthz` (the
//! process is alive), `GET /readyz` (ready for traffic: every database and Redis store answers,
//! and the process is not draining) and `GET /metrics` (Prometheus text, from
//! [`crate::metrics`]); `HEAD` answers each like `GET`, without the body.
//!
//! It is a [`Server`] of its own, beside the public one, with small limits of its own (a few
//! connections, short timeouts), so a flood on the public port cannot starve the probes and a
//! scraper cannot take the public listener's connection slots. It serves nothing of the app.
//! Past its connection limit, a connection waits in the listen backlog until a slot is free
//! (that is how [`Server`] bounds connections; refusing instead would need an accept loop of
//! its own): with probes and one scraper the limit is never near.
//!
//! Starting it turns on guest CPU metering ([`crate::metrics::enable_cpu_metering`]): without
//! it nobody reads `flagon_guest_cpu_seconds_total`, and guest calls save two system calls
//! per poll.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

use super::{App, Live};
use crate::capabilities::kv::store::KvError;
use crate::capabilities::sql::pool::Pool;
use crate::http::{Body, Server, Service};
use crate::manifest::{HumanDuration, ServerSection, Size, admin_port_clash};
use crate::runtime::bindings::flagon::app::sql_types::SqlError;
use crate::text::log_safe;

/// How long each store or database has to answer a readiness check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The admin listener's own limits: probes and a scraper, not the public.
fn admin_limits() -> ServerSection {
    ServerSection {
        max_connections: 16,
        max_headers: 50,
        max_header_bytes: Size(8 * 1024),
        header_read_timeout: HumanDuration(Duration::from_secs(5)),
        body_read_timeout: HumanDuration(Duration::from_secs(5)),
        write_timeout: HumanDuration(Duration::from_secs(10)),
        idle_timeout: HumanDuration(Duration::from_secs(30)),
        shutdown_grace: HumanDuration(Duration::from_secs(2)),
        ..ServerSection::default()
    }
}

/// The admin listener, running until [`AdminServer::stop`].
pub struct AdminServer {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl AdminServer {
    /// Why the admin listener cannot be on `admin` beside the public listener on `public` (they
    /// share a port; port 0 is never a clash). Needs no socket: call it with the configured
    /// addresses before either is bound, and [`AdminServer::start`] checks again with the bound
    /// public address.
    pub fn check_address(admin: SocketAddr, public: SocketAddr) -> Result<()> {
        if admin_port_clash(admin, public) {
            bail!(
                "the admin address `{admin}` (`--admin-listen` or `[admin] listen`) is on the port \
                 of the public listener (`{public}`): health and metrics are never served on the \
                 public listener\n  help: give the admin listener a port of its own, e.g. \
                 `--admin-listen 127.0.0.1:9464`"
            );
        }
        Ok(())
    }

    /// Bind `addr` and serve the probes and metrics of `live` on it. Refused on the port of
    /// `public`, the public listener's bound address; a warning when `addr` is not loopback.
    /// Turns guest CPU metering on once bound.
    pub async fn start(live: Arc<Live>, addr: SocketAddr, public: SocketAddr) -> Result<Self> {
        Self::check_address(addr, public)?;
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "the admin listener `{addr}` is not on loopback: `/metrics` and `/readyz` tell \
                 whoever reaches it about the app; keep it on a private network or firewall it"
            );
        }
        let admin = Arc::new(Admin {
            live,
            limits: admin_limits(),
        });
        let server = Server::bind(admin, addr)
            .await
            .context("cannot start the admin listener")?;
        let addr = server.local_addr();
        crate::metrics::enable_cpu_metering();
        tracing::info!("admin listening on http://{addr}");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Ok(Self { addr, stop, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, and let the probes in flight finish.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("the admin listener failed: {e:#}"),
            Err(e) => tracing::warn!("the admin listener failed: {e}"),
        }
    }
}

/// What the admin listener serves.
struct Admin {
    live: Arc<Live>,
    limits: ServerSection,
}

impl Service for Admin {
    fn call(
        &self,
        req: http::Request<hyper::body::Incoming>,
        _client: SocketAddr,
    ) -> impl Future<Output = http::Response<Body>> + Send {
        // The body is never read: nothing here takes one.
        let (parts, _body) = req.into_parts();
        answer(self.live.clone(), parts)
    }

    fn limits(&self) -> &ServerSection {
        &self.limits
    }
}

async fn answer(live: Arc<Live>, parts: http::request::Parts) -> http::Response<Body> {
    let mut r = answer_get(live, &parts).await;
    // HEAD (what load balancers probe with): the GET answer, its length kept, its body dropped.
    if parts.method == Method::HEAD {
        let len = r.body().bytes().map_or(0, |b| b.len());
        *r.body_mut() = Body::default();
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    r
}

async fn answer_get(live: Arc<Live>, parts: &http::request::Parts) -> http::Response<Body> {
    let path = parts.uri.path();
    if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return text(StatusCode::NOT_FOUND, "not found\n".into());
    }
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            if live.draining() {
                return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into());
            }
            let app = live.current();
            match app.readiness().await {
                Ok(()) => text(StatusCode::OK, "ready\n".into()),
                Err(failures) => {
                    let mut body = failures.join("\n");
                    body.push('\n');
                    text(StatusCode::SERVICE_UNAVAILABLE, body)
                }
            }
        }
        _ => {
            // Prometheus asks for OpenMetrics first; curl and older scrapers get the classic
            // text format.
            let openmetrics = parts
                .headers
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("application/openmetrics-text"));
            let (body, content_type) = if openmetrics {
                (
                    crate::metrics::encode_openmetrics(),
                    crate::metrics::OPENMETRICS_CONTENT_TYPE,
                )
            } else {
                (
                    crate::metrics::encode_prometheus(),
                    crate::metrics::PROMETHEUS_CONTENT_TYPE,
                )
            };
            let mut r = text(StatusCode::OK, body);
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
    }
}

fn text(status: StatusCode, body: String) -> http::Response<Body> {
    let mut r = http::Response::new(Body::new(Bytes::from(body)));
    *r.status_mut() = status;
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

impl App {
    /// Whether the app can serve: every database answers a trivial statement and every Redis
    /// store answers `PING`, each within a short timeout, all checked at once. `Err` lists
    /// what failed, one line each, naming the store or database and never its address or
    /// credentials (the detail goes to the log).
    pub async fn readiness(&self) -> Result<(), Vec<String>> {
        let mut checks = tokio::task::JoinSet::new();
        for (name, pool) in &self.caps.sql {
            let (name, pool) = (name.clone(), pool.clone());
            checks.spawn(async move {
                let failed = match check_database(&pool).await {
                    Some(Ok(())) => return None,
                    Some(Err(e)) => sql_reason(&e),
                    None => unanswered(),
                };
                Some(format!("database `{name}`: {failed}"))
            });
        }
        for (name, store) in &self.caps.kv {
            let (name, store) = (name.clone(), store.clone());
            checks.spawn(async move {
                let failed = match tokio::time::timeout(CHECK_TIMEOUT, store.ping()).await {
                    Ok(Ok(())) => return None,
                    Ok(Err(e)) => kv_reason(&e),
                    Err(_) => unanswered(),
                };
                Some(format!("kv store `{name}`: {failed}"))
            });
        }
        let mut failures: Vec<String> = checks.join_all().await.into_iter().flatten().collect();
        if failures.is_empty() {
            return Ok(());
        }
        failures.sort();
        for f in &failures {
            tracing::warn!("not ready: {}", log_safe(f));
        }
        Err(failures)
    }
}

/// A database check's result, `None` until it ends (or, from [`check_database`], past its wait).
type CheckResult = Option<Result<(), SqlError>>;

/// The database checks running, by pool (its address: the check's task holds the pool, so the
/// address is not reused while the entry is there).
static SQL_CHECKS: LazyLock<Mutex<HashMap<usize, tokio::sync::watch::Receiver<CheckResult>>>> =
    LazyLock::new(Mutex::default);

/// Removes a pool's entry from [`SQL_CHECKS`] when its check ends, or its task is dropped.
struct Running(usize);

impl Drop for Running {
    fn drop(&mut self) {
        SQL_CHECKS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// [`Pool::check`] for `/readyz`: its result, or `None` when it did not end within
/// [`CHECK_TIMEOUT`].
///
/// The check runs in a task of its own and is never cancelled: it ends at the pool's own
/// deadlines (the database's `timeout` for connecting and for the statement, as every call
/// does). Cancelling it mid-statement when a probe gives up would drop the adapter instance
/// and its connection, so on a slow database every probe would reconnect, adding load where
/// there is too much already. So a probe only stops waiting; and a probe that comes while a
/// check of the same pool still runs waits for that one, so a slow database has at most one
/// check (one pool slot) in flight however often it is probed.
async fn check_database(pool: &Arc<Pool>) -> CheckResult {
    let mut result = {
        let mut running = SQL_CHECKS.lock().unwrap_or_else(PoisonError::into_inner);
        let key = Arc::as_ptr(pool) as usize;
        running
            .entry(key)
            .or_insert_with(|| {
                let (tx, rx) = tokio::sync::watch::channel(None);
                let pool = pool.clone();
                tokio::spawn(async move {
                    // The entry is removed before `pool` is dropped, whether the check ends or
                    // the task is dropped (the runtime stopping); and before the result is
                    // sent, so a probe that comes after it starts a check of its own.
                    let pool = pool;
                    let running = Running(key);
                    let outcome = pool.check().await;
                    drop(running);
                    let _ = tx.send(Some(outcome));
                });
                rx
            })
            .clone()
    };
    let ended = tokio::time::timeout(CHECK_TIMEOUT, result.wait_for(Option::is_some)).await;
    match ended {
        Ok(Ok(outcome)) => outcome.clone(),
        // The task ended without an answer (it panicked): not ready, and the next probe
        // checks again.
        Ok(Err(_)) => Some(Err(SqlError::ConnectionLost)),
        Err(_elapsed) => None,
    }
}

fn unanswered() -> String {
    format!("no answer within {}s", CHECK_TIMEOUT.as_secs())
}

/// What a failed database check says: the kind of failure, never the adapter's text (which may
/// quote the server). The pool has logged the detail.
fn sql_reason(e: &SqlError) -> String {
    match e {
        SqlError::ConnectionLost => "cannot connect (see the log)".into(),
        SqlError::Timeout => "timed out".into(),
        other => {
            tracing::warn!(
                "readiness check failed: {}",
                log_safe(&format!("{other:?}"))
            );
            "the check statement failed (see the log)".into()
        }
    }
}

/// What a failed Redis check says; the store's errors name the store only, with any password
/// scrubbed, but the text stays in the log.
fn kv_reason(e: &KvError) -> String {
    tracing::warn!("readiness check failed: {}", log_safe(&e.to_string()));
    "redis did not answer PING (see the log)".into()
}
