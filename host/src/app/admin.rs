//! The admin listener (`[admin] listen`, `flagon serve --admin-listen`): `GET /healthz` (the
//! process is alive), `GET /readyz` (ready for traffic: every database and Redis store answers,
//! and the process is not draining) and `GET /metrics` (Prometheus text, from
//! [`crate::metrics`]).
//!
//! It is a [`Server`] of its own, beside the public one, with small limits of its own (a few
//! connections, short timeouts), so a flood on the public port cannot starve the probes and a
//! scraper cannot take the public listener's connection slots. It serves nothing of the app.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

use super::{App, Live};
use crate::capabilities::kv::store::KvError;
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
    /// Bind `addr` and serve the probes and metrics of `live` on it. Refused on the port of
    /// `public`, the public listener's bound address; a warning when `addr` is not loopback.
    pub async fn start(live: Arc<Live>, addr: SocketAddr, public: SocketAddr) -> Result<Self> {
        if admin_port_clash(addr, public) {
            bail!(
                "the admin address `{addr}` (`--admin-listen` or `[admin] listen`) is on the port \
                 of the public listener (`{public}`): health and metrics are never served on the \
                 public listener\n  help: give the admin listener a port of its own, e.g. \
                 `--admin-listen 127.0.0.1:9464`"
            );
        }
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
    let path = parts.uri.path();
    if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return text(StatusCode::NOT_FOUND, "not found\n".into());
    }
    if parts.method != Method::GET {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
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
                let failed = match tokio::time::timeout(CHECK_TIMEOUT, pool.check()).await {
                    Ok(Ok(())) => return None,
                    Ok(Err(e)) => sql_reason(&e),
                    Err(_) => unanswered(),
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
