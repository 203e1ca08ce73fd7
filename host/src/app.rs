//! An app: the manifest's components loaded, its routes in a table, and the per-request path
//! from a parsed HTTP request to a response.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use wasmtime::component::Linker;

use crate::bindings::{self, Method as WitMethod};
use crate::capabilities;
use crate::component::{Failure, LoadedComponent};
use crate::engine::{EngineSettings, FlagonEngine, Origin};
use crate::forms::{self, FormKind, FormLimits};
use crate::manifest::{Manifest, ServerSection};
use crate::request_id::RequestId;
use crate::router::{Match, Router};
use crate::security::{self, SameOrigin};
use crate::session::Session;
use crate::state::HostState;
use crate::static_files::{Served, StaticMount};
use crate::web::{RequestCtx, Web};

/// The response body type the host sends.
pub type Body = Full<Bytes>;

/// Where precompiled components are cached.
#[derive(Debug, Clone, Default)]
pub enum CacheDir {
    /// `[server] cache_dir`, else the user's cache directory (see [`crate::manifest::default_cache_dir`]).
    #[default]
    Default,
    /// This directory.
    Path(PathBuf),
    /// No cache: compile at every start.
    Disabled,
}

/// How to load an app.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub cache: CacheDir,
    /// A `.env` file whose values stand in for unset environment variables (development).
    pub env_file: Option<PathBuf>,
    /// Development mode: an ephemeral session key when none is configured, non-`Secure`
    /// cookies, detailed error pages, templates re-read on every render. Never the default.
    pub dev: bool,
}

impl LoadOptions {
    /// The environment lookup for `[variables]`: the process environment, then the `.env` file.
    pub fn env_lookup(&self) -> Result<impl Fn(&str) -> Option<String>> {
        let file = match &self.env_file {
            Some(path) => crate::manifest::read_env_file(path)?,
            None => Default::default(),
        };
        Ok(move |k: &str| std::env::var(k).ok().or_else(|| file.get(k).cloned()))
    }
}

pub struct App {
    // Field order matters for drop: components (and their InstancePre) before the engine.
    components: Vec<LoadedComponent>,
    router: Router,
    web: Arc<Web>,
    server: ServerSection,
    name: String,
    engine: FlagonEngine,
}

impl App {
    /// Load every component of `manifest`, check its grants, and build the route table and
    /// the web layer (templates, static mounts, session keys, key-value stores).
    pub async fn load(manifest: &Manifest, options: &LoadOptions) -> Result<Self> {
        let variables = manifest.resolve_variables(options.env_lookup()?)?;
        let engine = FlagonEngine::new(&EngineSettings {
            max_instances: manifest.server.max_instances,
            max_memory: manifest.max_component_memory(),
        })?;
        let mut linker = Linker::<HostState>::new(&engine.engine);
        capabilities::link(&mut linker)
            .map_err(anyhow::Error::from)
            .context("failed to link host capabilities")?;

        let cache_dir = match &options.cache {
            CacheDir::Default => manifest.cache_dir(),
            CacheDir::Path(p) => Some(p.clone()),
            CacheDir::Disabled => None,
        };

        let mut components = Vec::with_capacity(manifest.components.len());
        for id in manifest.components.keys() {
            let started = Instant::now();
            let loaded = LoadedComponent::load(
                &engine.engine,
                &linker,
                manifest,
                id,
                &variables,
                cache_dir.as_deref(),
            )?;
            tracing::info!(
                component = %id,
                source = %loaded.path.display(),
                cached = loaded.origin == Origin::Cache,
                millis = started.elapsed().as_millis() as u64,
                "component loaded"
            );
            components.push(loaded);
        }
        let router = Router::new(manifest)?;
        let web = Arc::new(Web::load(manifest, &variables, options.dev).await?);
        Ok(Self {
            components,
            router,
            web,
            server: manifest.server.clone(),
            name: manifest.app.name.clone(),
            engine,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn server_settings(&self) -> &ServerSection {
        &self.server
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn web(&self) -> &Web {
        &self.web
    }

    /// A fresh request context with no session, for calling a component directly
    /// (benchmarks, embedding).
    pub fn request_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.web.clone(), None)
    }

    pub fn components(&self) -> &[LoadedComponent] {
        &self.components
    }

    /// The wasmtime engine every component of this app was compiled for.
    pub fn engine(&self) -> &wasmtime::Engine {
        &self.engine.engine
    }

    /// Answer one request. Never fails: every problem becomes an HTTP error response.
    pub async fn handle<B>(&self, req: http::Request<B>, client: SocketAddr) -> http::Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let request_id = RequestId::new();
        let method = req.method().clone();
        // A `Uri` clone shares its bytes; kept for the access log only.
        let uri = req.uri().clone();
        let mut response = self.dispatch(req, client, &request_id).await;
        self.web.headers.apply(response.headers_mut());
        response.headers_mut().insert(
            HeaderName::from_static("x-request-id"),
            request_id.header_value(),
        );
        // The query string is left out of the log: it may carry tokens.
        tracing::info!(
            target: "flagon::access",
            request_id = %request_id,
            client = %client,
            method = %method,
            path = uri.path(),
            status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
        );
        response
    }

    async fn dispatch<B>(
        &self,
        req: http::Request<B>,
        client: SocketAddr,
        request_id: &RequestId,
    ) -> http::Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let web = &*self.web;
        let (parts, body) = req.into_parts();
        let Ok(peer) = web.hosts.peer(client, &parts.uri, &parts.headers) else {
            tracing::info!(request_id = %request_id, "refused a request for a host not in `[server] allowed_hosts`");
            return web.error_page(
                StatusCode::BAD_REQUEST,
                request_id,
                Some("the Host header is not in `[server] allowed_hosts`"),
            );
        };
        let path = parts.uri.path();
        if let Some((mount, rest)) = web.statics.find(path) {
            return self.serve_static(mount, rest, &parts, request_id).await;
        }
        let (route, params, head_from_get) = match self.router.at(&parts.method, path) {
            Match::Found {
                route,
                params,
                head_from_get,
            } => (route, params, head_from_get),
            Match::NotFound => return web.error_page(StatusCode::NOT_FOUND, request_id, None),
            Match::BadParam => return web.error_page(StatusCode::BAD_REQUEST, request_id, None),
            Match::MethodNotAllowed { allow } => {
                let mut r = web.error_page(StatusCode::METHOD_NOT_ALLOWED, request_id, None);
                r.headers_mut().insert(header::ALLOW, allow.clone());
                return r;
            }
            Match::Options { allow } => {
                let mut r = http::Response::new(Body::default());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r.headers_mut().insert(header::ALLOW, allow.clone());
                return r;
            }
        };

        // The body is read only once the route is known, and only up to the route's limit.
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > route.max_body) {
            return web.error_page(StatusCode::PAYLOAD_TOO_LARGE, request_id, None);
        }
        let limit = usize::try_from(route.max_body).unwrap_or(usize::MAX);
        let read = tokio::time::timeout(
            self.server.body_read_timeout.0,
            Limited::new(body, limit).collect(),
        );
        let body = match read.await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return web.error_page(StatusCode::PAYLOAD_TOO_LARGE, request_id, None);
            }
            Ok(Err(_)) => return web.error_page(StatusCode::BAD_REQUEST, request_id, None),
            Err(_elapsed) => {
                let mut r = web.error_page(StatusCode::REQUEST_TIMEOUT, request_id, None);
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return r;
            }
        };

        let limits = FormLimits {
            max_parts: self.server.max_form_parts,
            max_field: usize::try_from(self.server.max_form_field.0).unwrap_or(usize::MAX),
        };
        let parsed = match forms::kind(&parts.headers) {
            FormKind::None => Ok((Vec::new(), body)),
            FormKind::UrlEncoded => forms::parse_urlencoded(&body, limits).map(|f| (f, body)),
            // The parts carry the data; the raw body is not copied in a second time.
            FormKind::Multipart(boundary) => forms::parse_multipart(body, &boundary, limits)
                .await
                .map(|f| (f, Bytes::new())),
        };
        let (form, body) = match parsed {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(request_id = %request_id, "bad form: {e}");
                return web.error_page(StatusCode::BAD_REQUEST, request_id, Some(&e.to_string()));
            }
        };

        let component = &self.components[route.component];
        let session = match (&web.session, component.guest.session) {
            (Some(setup), true) => Some(Session::load(
                &setup.keys,
                &setup.config,
                parts
                    .headers
                    .get_all(header::COOKIE)
                    .iter()
                    .map(HeaderValue::as_bytes),
                SystemTime::now(),
            )),
            _ => None,
        };
        if let Some(session) = &session
            && route.csrf
            && !is_safe_method(&parts.method)
            && let Err(why) = check_csrf(session, &parts.headers, &form, &peer)
        {
            tracing::warn!(request_id = %request_id, route = %route.path, "CSRF check failed: {why}");
            return web.error_page(StatusCode::FORBIDDEN, request_id, Some(why));
        }

        let wit_request = bindings::Request {
            method: wit_method(&parts.method),
            path: path.to_string(),
            params,
            query: parts.uri.query().unwrap_or("").to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: Vec::from(body),
            client: peer.client.to_string(),
            request_id: request_id.to_string(),
            route: route.name.as_deref().map(str::to_string),
            form,
        };

        let mut ctx = RequestCtx::new(self.web.clone(), session);
        ctx.credential_headers = crate::state::credential_headers(&parts.headers);
        let (outcome, ctx) = component
            .call(&self.engine.engine, request_id.shared(), &wit_request, ctx)
            .await;
        let guest = &component.guest.id;
        let mut response = match outcome {
            Ok(r) => match into_http(r, guest, request_id, web) {
                Ok(r) => r,
                Err(why) => {
                    web.error_page(StatusCode::INTERNAL_SERVER_ERROR, request_id, Some(&why))
                }
            },
            Err(Failure::Timeout) => {
                tracing::warn!(component = %guest, request_id = %request_id, "guest stopped at its deadline");
                web.error_page(StatusCode::GATEWAY_TIMEOUT, request_id, None)
            }
            Err(Failure::Overloaded) => {
                tracing::warn!(component = %guest, request_id = %request_id, "no free instance slot");
                let mut r = web.error_page(StatusCode::SERVICE_UNAVAILABLE, request_id, None);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            Err(Failure::Trap(detail)) => {
                // The detail (trap message and Wasm backtrace) is logged on one line, escaped,
                // so nothing in it can pass for another log line.
                let detail = crate::state::log_safe(&detail);
                tracing::error!(component = %guest, request_id = %request_id, detail = %detail, "guest failed");
                web.error_page(StatusCode::INTERNAL_SERVER_ERROR, request_id, Some(&detail))
            }
        };
        if let Some(failure) = &ctx.render_failure {
            // A page that failed to render is never half-sent, whatever the guest returned.
            response = web.error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                request_id,
                Some(&failure.detail),
            );
        } else if response.status().as_u16() >= 400
            && response.body().size_hint_exact() == Some(0)
            && web
                .error_templates
                .contains_key(&response.status().as_u16())
        {
            // An empty error from the guest gets the app's error page (keeping its headers,
            // such as `WWW-Authenticate`).
            let page = web.error_page(response.status(), request_id, None);
            let (page_parts, page_body) = page.into_parts();
            *response.body_mut() = page_body;
            for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
                if let Some(v) = page_parts.headers.get(&name) {
                    response.headers_mut().insert(name, v.clone());
                }
            }
        }
        // The session is written only when the guest answered: a failed request changes
        // nothing.
        if let (Some(setup), Some(session)) = (&web.session, &ctx.session)
            && response.status().as_u16() < 500
        {
            let session = session.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(cookie) = session.set_cookie(&setup.keys, &setup.config, SystemTime::now())
            {
                match HeaderValue::try_from(cookie) {
                    Ok(v) => {
                        response.headers_mut().append(header::SET_COOKIE, v);
                    }
                    Err(_) => {
                        tracing::error!(request_id = %request_id, "session cookie is not a valid header value")
                    }
                }
            }
            if session.accessed() {
                response
                    .headers_mut()
                    .append(header::VARY, HeaderValue::from_static("Cookie"));
            }
        }
        if head_from_get {
            // Keep the GET response's length, drop its body.
            let len = response.body().size_hint_exact();
            *response.body_mut() = Body::default();
            if let Some(len) = len {
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
        }
        response
    }

    async fn serve_static(
        &self,
        mount: &StaticMount,
        rest: &str,
        parts: &http::request::Parts,
        request_id: &RequestId,
    ) -> http::Response<Body> {
        let web = &*self.web;
        match mount.serve(&parts.method, rest, &parts.headers).await {
            Served::Response(r) => r.map(Body::new),
            Served::NotFound => web.error_page(StatusCode::NOT_FOUND, request_id, None),
            Served::BadRequest => web.error_page(StatusCode::BAD_REQUEST, request_id, None),
            Served::MethodNotAllowed => {
                let mut r = web.error_page(StatusCode::METHOD_NOT_ALLOWED, request_id, None);
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                r
            }
            Served::Unservable(e) => {
                tracing::warn!(request_id = %request_id, "static file not served: {e}");
                web.error_page(StatusCode::NOT_FOUND, request_id, None)
            }
        }
    }
}

fn is_safe_method(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The CSRF check for an unsafe request to a session route: the browser must not say it is
/// cross-site, and the request must carry a token of this session.
fn check_csrf(
    session: &Session,
    headers: &http::HeaderMap,
    form: &[bindings::FormField],
    peer: &security::Peer<'_>,
) -> Result<(), &'static str> {
    if let SameOrigin::No(why) = security::same_origin(headers, peer) {
        return Err(why);
    }
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            form.iter()
                .find(|f| f.name == "csrf_token" && f.file.is_none())
                .map(|f| f.value.as_str())
        });
    match token {
        None => Err("no CSRF token (form field `csrf_token` or header `X-CSRF-Token`)"),
        Some(t) if session.verify_csrf(t) => Ok(()),
        Some(_) => Err("the CSRF token does not belong to this session"),
    }
}

trait SizeHintExact {
    fn size_hint_exact(&self) -> Option<u64>;
}

impl SizeHintExact for Body {
    fn size_hint_exact(&self) -> Option<u64> {
        hyper::body::Body::size_hint(self).exact()
    }
}

fn wit_method(m: &Method) -> WitMethod {
    match *m {
        Method::GET => WitMethod::Get,
        Method::HEAD => WitMethod::Head,
        Method::POST => WitMethod::Post,
        Method::PUT => WitMethod::Put,
        Method::DELETE => WitMethod::Delete,
        Method::PATCH => WitMethod::Patch,
        Method::OPTIONS => WitMethod::Options,
        _ => WitMethod::Other(m.as_str().to_string()),
    }
}

/// Headers a guest may not set: the host owns framing and the connection.
fn host_owned(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "upgrade"
            | "proxy-connection"
            | "te"
            | "trailer"
    )
}

/// Turn a guest's response into an HTTP response, validating everything the guest controls.
/// Anything invalid is an `Err` naming the problem (the caller answers 500 and the reason is
/// logged here).
fn into_http(
    r: bindings::Response,
    component: &str,
    request_id: &RequestId,
    web: &Web,
) -> Result<http::Response<Body>, String> {
    let fail = |why: String| {
        tracing::error!(component, request_id = %request_id, "invalid response from guest: {why}");
        Err(why)
    };
    let status = match StatusCode::from_u16(r.status) {
        Ok(s) if s.as_u16() >= 200 => s,
        _ => {
            return fail(format!(
                "status {} is not a final HTTP status (200-999)",
                r.status
            ));
        }
    };
    let mut out = http::Response::new(Body::new(Bytes::from(r.body)));
    *out.status_mut() = status;
    let headers = out.headers_mut();
    // Room for the guest's headers plus everything the host adds afterwards (security
    // headers, `x-request-id`, `vary`, a session cookie), so the map is allocated once.
    headers.reserve(r.headers.len() + web.headers.len() + 3);
    for (name, value) in r.headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            return fail(format!("invalid header name {name:?}"));
        };
        // `HeaderValue::from_str` refuses CR, LF and other control bytes, so a guest cannot
        // split the response or inject headers.
        let Ok(value) = HeaderValue::from_str(&value) else {
            return fail(format!("invalid value for header `{name}`"));
        };
        if host_owned(&name) {
            tracing::debug!(component, request_id = %request_id, "ignoring host-owned header `{name}` from guest");
            continue;
        }
        if name == header::LOCATION
            && !security::redirect_allowed(value.to_str().unwrap_or(""), &web.redirect_origins)
        {
            return fail(format!(
                "redirect to {:?} refused: only paths on this site and `[security] redirect_origins` are allowed",
                crate::state::log_safe(value.to_str().unwrap_or(""))
            ));
        }
        if name == header::SET_COOKIE
            && let Some(setup) = &web.session
            && crate::session::is_session_cookie(value.to_str().unwrap_or(""), &setup.config)
        {
            tracing::warn!(component, request_id = %request_id, "dropped a Set-Cookie for the host's session cookie; use the `session` interface");
            continue;
        }
        headers.append(name, value);
    }
    Ok(out)
}
