//! Per-request state: what one `Store` carries while one instance answers one request.
//!
//! A `HostState` is built for every request and dropped with its `Store`; nothing in it outlives
//! the request, and a `Store` is never reused (not after success, a trap or a timeout).

use std::sync::Arc;
use std::time::Instant;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::flagon::app::{config, kv, log, outbound_http, session, templates, types};
use crate::component::Guest;
use crate::guest_output::GuestOutput;
use crate::web::RequestCtx;

/// Most log lines one request may write through `flagon:app/log`; later lines are dropped and
/// counted, so a guest cannot flood the host's log.
pub const MAX_LOG_LINES_PER_REQUEST: u32 = 256;
/// Longest log message kept; longer ones are cut (on a char boundary) and marked.
pub const MAX_LOG_LINE_BYTES: usize = 4096;

pub struct HostState {
    /// Built on first use: most handlers never call WASI, and building a context (clocks,
    /// seeded random generators) costs more than the rest of the per-request state together.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) guest: Arc<Guest>,
    pub(crate) request_id: Arc<str>,
    /// When this request's time in the guest is up (checked at every epoch tick).
    pub(crate) deadline: Instant,
    log_lines: u32,
    /// The request's session, templates and stores.
    pub(crate) ctx: RequestCtx,
}

impl HostState {
    pub(crate) fn new(
        guest: Arc<Guest>,
        request_id: Arc<str>,
        deadline: Instant,
        ctx: RequestCtx,
    ) -> Self {
        let limits = guest.store_limits();
        Self {
            wasi: None,
            table: ResourceTable::new(),
            limits,
            guest,
            request_id,
            deadline,
            log_lines: 0,
            ctx,
        }
    }

    /// How many log lines this request tried to write past the limit.
    pub(crate) fn dropped_log_lines(&self) -> u32 {
        self.log_lines.saturating_sub(MAX_LOG_LINES_PER_REQUEST)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            // The WASI context grants nothing but the directories in `grants.files`: no
            // arguments, no environment, no network; stdin is empty; stdout and stderr become
            // log lines. Granted directories are opened beneath a capability handle (cap-std),
            // so `..` and symlinks cannot leave them.
            ctx: self.wasi.get_or_insert_with(|| {
                let credentials = self.ctx.credentials();
                let out = |stream| {
                    GuestOutput::new(
                        self.guest.clone(),
                        self.request_id.clone(),
                        credentials.clone(),
                        stream,
                    )
                };
                let mut builder = WasiCtx::builder();
                builder.stdout(out("stdout")).stderr(out("stderr"));
                for (host, guest, write) in self.guest.files.iter() {
                    let perms = if *write {
                        wasmtime_wasi::FsPerms::ReadWrite
                    } else {
                        wasmtime_wasi::FsPerms::ReadOnly
                    };
                    if let Err(e) = builder.preopened_dir(host, guest, perms) {
                        tracing::error!(component = %self.guest.id, request_id = %self.request_id, "cannot open granted directory `{}`: {e}", host.display());
                    }
                }
                builder.build()
            }),
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_io::IoView for HostState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        self.log_lines = self.log_lines.saturating_add(1);
        if self.log_lines > MAX_LOG_LINES_PER_REQUEST {
            return;
        }
        let message = self
            .guest
            .redact(&log_safe(&truncate(&message, MAX_LOG_LINE_BYTES)))
            .into_owned();
        let message = redact_credentials(&message, &self.ctx.credentials()).into_owned();
        let component = self.guest.id.as_str();
        let request_id = &*self.request_id;
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(target: "flagon::guest", $lvl, component, request_id, "{message}")
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

impl config::Host for HostState {
    fn get(&mut self, name: String) -> Option<String> {
        self.guest
            .variables
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }

    fn get_all(&mut self) -> Vec<(String, String)> {
        self.guest.variables.to_vec()
    }
}

impl templates::Host for HostState {
    fn render(&mut self, name: String, context: String) -> Result<String, String> {
        let globals = crate::templates::RequestGlobals {
            session: self.ctx.session.clone(),
        };
        let Some(t) = self.ctx.web.templates.as_ref() else {
            return Err("this app has no templates".into());
        };
        match t.render_json(&name, &context, globals) {
            Ok(html) => Ok(html),
            Err(e) => {
                tracing::error!(component = %self.guest.id, request_id = %self.request_id, "{}", log_safe(&e.summary));
                let message = e.summary.clone();
                self.ctx.render_failure.get_or_insert(e);
                Err(message)
            }
        }
    }
}

impl HostState {
    fn session(&mut self) -> std::sync::MutexGuard<'_, crate::session::Session> {
        // The capability check links this interface only for components granted the session,
        // and the host loads a session for every request to such a component.
        self.ctx.session_guard()
    }
}

impl session::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.session().get(&key)
    }

    fn set(&mut self, key: String, value: String) -> Result<(), String> {
        self.session().set(&key, &value).map_err(|e| e.to_string())
    }

    fn remove(&mut self, key: String) -> bool {
        self.session().remove(&key)
    }

    fn keys(&mut self) -> Vec<String> {
        self.session().keys()
    }

    fn clear(&mut self) {
        self.session().clear();
    }

    fn rotate(&mut self) {
        self.session().rotate();
    }

    fn flash(&mut self, category: String, message: String) -> Result<(), String> {
        self.session()
            .flash(&category, &message)
            .map_err(|e| e.to_string())
    }

    fn take_flashes(&mut self) -> Vec<(String, String)> {
        self.session().take_flashes()
    }

    fn csrf_token(&mut self) -> String {
        self.session().csrf_token()
    }
}

impl HostState {
    /// The store `name`, if this component was granted it.
    fn kv_store(&self, name: &str) -> Result<Arc<crate::kv::KvStore>, String> {
        if !self.guest.kv.iter().any(|k| k == name) {
            return Err(format!(
                "key-value store `{name}` is not granted to this component (add it to `grants.kv`)"
            ));
        }
        self.ctx
            .web
            .kv
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no key-value store `{name}`"))
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, store: String, key: String) -> Result<Option<Vec<u8>>, String> {
        let s = self.kv_store(&store)?;
        s.get(&key).await.map_err(|e| e.to_string())
    }

    async fn set(
        &mut self,
        store: String,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), String> {
        let s = self.kv_store(&store)?;
        let ttl = ttl_ms.map(std::time::Duration::from_millis);
        s.set(&key, &value, ttl).await.map_err(|e| e.to_string())
    }

    async fn delete(&mut self, store: String, key: String) -> Result<bool, String> {
        let s = self.kv_store(&store)?;
        s.delete(&key).await.map_err(|e| e.to_string())
    }

    async fn exists(&mut self, store: String, key: String) -> Result<bool, String> {
        let s = self.kv_store(&store)?;
        s.exists(&key).await.map_err(|e| e.to_string())
    }

    async fn increment(&mut self, store: String, key: String, delta: i64) -> Result<i64, String> {
        let s = self.kv_store(&store)?;
        s.increment(&key, delta).await.map_err(|e| e.to_string())
    }

    async fn list_keys(&mut self, store: String, prefix: String) -> Result<Vec<String>, String> {
        let s = self.kv_store(&store)?;
        s.list_keys(&prefix).await.map_err(|e| e.to_string())
    }
}

impl outbound_http::Host for HostState {
    async fn send(
        &mut self,
        request: outbound_http::OutgoingRequest,
    ) -> Result<outbound_http::IncomingResponse, String> {
        let (Some(policy), Some(client)) = (&self.guest.outbound, &self.ctx.web.outbound) else {
            return Err(
                "outbound HTTP is not granted to this component (`grants.outbound`)".into(),
            );
        };
        let method = match &request.method {
            types::Method::Get => http::Method::GET,
            types::Method::Head => http::Method::HEAD,
            types::Method::Post => http::Method::POST,
            types::Method::Put => http::Method::PUT,
            types::Method::Delete => http::Method::DELETE,
            types::Method::Patch => http::Method::PATCH,
            types::Method::Options => http::Method::OPTIONS,
            types::Method::Other(m) => http::Method::from_bytes(m.as_bytes())
                .map_err(|_| format!("invalid method `{}`", log_safe(m)))?,
        };
        let req = crate::outbound::OutboundRequest {
            method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        };
        match client.send(policy, req).await {
            Ok(r) => Ok(outbound_http::IncomingResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(e) => {
                tracing::info!(component = %self.guest.id, request_id = %self.request_id, "outbound request failed: {e}");
                Err(e.to_string())
            }
        }
    }
}

/// Credentials shorter than this are not redacted: they would match ordinary text.
const MIN_REDACTED_CREDENTIAL: usize = 8;

/// `text` with each of the request's credentials (its `Authorization` and `Cookie` values)
/// replaced by `[redacted]`.
pub(crate) fn redact_credentials<'a>(
    text: &'a str,
    credentials: &[String],
) -> std::borrow::Cow<'a, str> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for c in credentials
        .iter()
        .filter(|c| c.len() >= MIN_REDACTED_CREDENTIAL)
    {
        if out.contains(c.as_str()) {
            out = out.replace(c.as_str(), "[redacted]").into();
        }
    }
    out
}

/// The request headers whose values are credentials, kept (cheaply: a `HeaderValue` clone
/// shares its bytes) so their values can be redacted if the guest logs them.
pub fn credential_headers(headers: &http::HeaderMap) -> Vec<(http::HeaderName, http::HeaderValue)> {
    [
        http::header::AUTHORIZATION,
        http::header::PROXY_AUTHORIZATION,
        http::header::COOKIE,
    ]
    .into_iter()
    .flat_map(|name| {
        headers
            .get_all(&name)
            .iter()
            .map(move |v| (name.clone(), v.clone()))
    })
    .collect()
}

/// The credential values in `headers` (from [`credential_headers`]): each `Authorization` and
/// `Proxy-Authorization` value (and its token part), and each cookie value. Longest first, so
/// a whole header is redacted before its parts.
pub fn request_credentials(headers: &[(http::HeaderName, http::HeaderValue)]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        if *name == http::header::COOKIE {
            for pair in v.split(';') {
                if let Some((_, value)) = pair.split_once('=') {
                    out.push(value.trim().to_string());
                }
            }
        } else if let Some((_, token)) = v.split_once(' ') {
            out.push(token.trim().to_string());
        }
        out.push(v);
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// Escape control characters (CR, LF, ESC, ...) in guest-provided text, so that a guest cannot
/// forge log lines or send terminal escape sequences through the host's log.
pub(crate) fn log_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated {} bytes]", &s[..end], s.len() - end).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn guest_text_cannot_forge_log_lines() {
        assert_eq!(super::log_safe("plain ü"), "plain ü");
        assert_eq!(
            super::log_safe("a\nINFO flagon::access: fake\r\u{1b}[31m"),
            "a\\nINFO flagon::access: fake\\r\\u{1b}[31m"
        );
    }

    #[test]
    fn truncate_keeps_char_boundaries() {
        assert_eq!(super::truncate("héllo", 10), "héllo");
        let t = super::truncate("héllo", 2);
        assert!(t.starts_with("h…"), "{t}");
    }
}
