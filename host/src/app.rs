//! An app: the manifest's components loaded, its routes in a table, and the per-request path
//! from a parsed HTTP request to a response.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

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
use crate::manifest::{Manifest, ServerSection};
use crate::request_id::RequestId;
use crate::router::{Match, Router};
use crate::state::HostState;

/// The response body type the host sends.
pub type Body = Full<Bytes>;

/// Where precompiled components are cached.
#[derive(Debug, Clone, Default)]
pub enum CacheDir {
    /// `[server] cache_dir`, else the user's cache directory (see [`crate::engine::default_cache_dir`]).
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
    server: ServerSection,
    name: String,
    engine: FlagonEngine,
}

impl App {
    /// Load every component of `manifest`, check its grants, and build the route table.
    pub fn load(manifest: &Manifest, options: &LoadOptions) -> Result<Self> {
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
        Ok(Self {
            components,
            router,
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
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let (route, params, head_from_get) = match self.router.at(&parts.method, path) {
            Match::Found {
                route,
                params,
                head_from_get,
            } => (route, params, head_from_get),
            Match::NotFound => return error_page(StatusCode::NOT_FOUND, request_id),
            Match::BadParam => return error_page(StatusCode::BAD_REQUEST, request_id),
            Match::MethodNotAllowed { allow } => {
                let mut r = error_page(StatusCode::METHOD_NOT_ALLOWED, request_id);
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
            return error_page(StatusCode::PAYLOAD_TOO_LARGE, request_id);
        }
        let limit = usize::try_from(route.max_body).unwrap_or(usize::MAX);
        let read = tokio::time::timeout(
            self.server.body_read_timeout.0,
            Limited::new(body, limit).collect(),
        );
        let body = match read.await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return error_page(StatusCode::PAYLOAD_TOO_LARGE, request_id);
            }
            Ok(Err(_)) => return error_page(StatusCode::BAD_REQUEST, request_id),
            Err(_elapsed) => {
                let mut r = error_page(StatusCode::REQUEST_TIMEOUT, request_id);
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return r;
            }
        };

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
            client: client.to_string(),
            request_id: request_id.to_string(),
            route: route.name.as_deref().map(str::to_string),
        };

        let component = &self.components[route.component];
        let outcome = component
            .call(&self.engine.engine, request_id.shared(), &wit_request)
            .await;
        let mut response = match outcome {
            Ok(r) => into_http(r, &component.guest.id, request_id),
            Err(Failure::Timeout) => {
                tracing::warn!(component = %component.guest.id, request_id = %request_id, "guest stopped at its deadline");
                error_page(StatusCode::GATEWAY_TIMEOUT, request_id)
            }
            Err(Failure::Overloaded) => {
                tracing::warn!(component = %component.guest.id, request_id = %request_id, "no free instance slot");
                let mut r = error_page(StatusCode::SERVICE_UNAVAILABLE, request_id);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            Err(Failure::Trap(detail)) => {
                // The detail (trap message and Wasm backtrace) is logged on one line, escaped,
                // so nothing in it can pass for another log line.
                tracing::error!(component = %component.guest.id, request_id = %request_id, detail = %crate::state::log_safe(&detail), "guest failed");
                error_page(StatusCode::INTERNAL_SERVER_ERROR, request_id)
            }
        };
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

/// Turn a guest's response into an HTTP response, validating everything the guest controls;
/// anything invalid becomes a 500 (and a log line saying what was wrong).
fn into_http(
    r: bindings::Response,
    component: &str,
    request_id: &RequestId,
) -> http::Response<Body> {
    let fail = |why: String| {
        tracing::error!(component, request_id = %request_id, "invalid response from guest: {why}");
        error_page(StatusCode::INTERNAL_SERVER_ERROR, request_id)
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
    headers.reserve(r.headers.len());
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
        headers.append(name, value);
    }
    out
}

/// A plain error page: the status and the request id, nothing else.
pub fn error_page(status: StatusCode, request_id: &RequestId) -> http::Response<Body> {
    let text = format!(
        "{} {}\nrequest id: {request_id}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut r = http::Response::new(Body::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
