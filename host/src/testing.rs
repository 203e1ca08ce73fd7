//! A test client for apps: load an app from its `flagon.toml` and send it requests without a
//! socket, as Flask's `app.test_client()` does.
//!
//! Every request goes through [`App::handle`], the function the server calls for each request
//! it parses, so the whole pipeline runs: the host check, static files, routing, sessions,
//! authenticators, middleware, body limits, forms, the CSRF check, the handler, error pages and
//! the security headers. Only the socket and HTTP parsing are left out.
//!
//! A [`TestClient`] behaves like one browser: it keeps a cookie jar, sends `Host` (the first of
//! `[server] allowed_hosts`), marks its unsafe requests same-origin (`Origin`, `Sec-Fetch-Site`)
//! and adds the CSRF token of the last page it loaded to what it posts. Clients of one
//! [`TestApp`] share the app (its databases and key-value stores) and nothing else. Each
//! [`TestApp`] has data of its own: its SQLite databases and embedded stores live in a new
//! temporary directory ([`TestAppBuilder::data_dir`]).
//!
//! ```no_run
//! use flagon::testing::TestApp;
//! use http::StatusCode;
//!
//! # async fn example() -> anyhow::Result<()> {
//! // The app's components must be built first (`flagon build examples/todo`).
//! let app = TestApp::builder("examples/todo")
//!     .env("TODO_APIKEY_PEPPER", "a pepper of at least thirty-two bytes, for tests")
//!     .load()
//!     .await?;
//! let mut browser = app.client();
//!
//! // Loading the form page gives the client the form's CSRF token ...
//! let page = browser.get("/signup").await;
//! assert_eq!(page.status(), StatusCode::OK);
//! // ... which the POST carries in its `csrf_token` field.
//! let r = browser
//!     .post_form("/signup", &[("username", "ada"), ("password", "correct horse battery")])
//!     .await;
//! assert_eq!(r.status(), StatusCode::SEE_OTHER, "{r:?}");
//! let todos = browser.follow(&r).await;
//! assert!(todos.text().contains("Welcome, ada!"), "{todos:?}");
//!
//! // Anything else: any method, headers, a JSON body.
//! let r = app
//!     .client()
//!     .request(http::Method::POST, "/api/todos")
//!     .header("authorization", "Bearer not-a-key")
//!     .json(&serde_json::json!({ "title": "Buy tea" }))
//!     .send()
//!     .await;
//! assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```
//!
//! The client is for tests: it panics, saying why, on a request it cannot build (a header
//! name that is not one, a path that is not a request target) and on a redirect
//! [`TestClient::follow`] cannot follow.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, Full};

use crate::app::{App, CacheDir, LoadOptions};
use crate::manifest::{AdapterKind, KvBackendKind, Manifest, Variable};

/// The client address requests come from unless a client or request says otherwise.
pub const DEFAULT_CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

/// An app loaded for tests. Cheap to clone: clones share the loaded app.
#[derive(Clone)]
pub struct TestApp {
    shared: Arc<Shared>,
    host: String,
}

/// What a test app and its clients share.
struct Shared {
    // Field order matters for drop: the app (its open databases) before its data directory.
    app: App,
    data_dir: PathBuf,
    _temporary: Option<TemporaryDir>,
}

/// A directory made for one test app, removed with it.
struct TemporaryDir(PathBuf);

impl TemporaryDir {
    /// A new, empty directory of this account's under the system's temporary directory.
    fn new() -> anyhow::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        let mut tries = 0;
        loop {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "flagon-test-data-{}-{n}-{nanos}",
                std::process::id()
            ));
            // `create_dir` fails on an existing name, so the directory is always a new one.
            match builder.create(&dir) {
                Ok(()) => return Ok(Self(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 100 => {
                    tries += 1;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", dir.display()));
                }
            }
        }
    }
}

impl Drop for TemporaryDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to load a [`TestApp`]; made by [`TestApp::builder`].
#[derive(Debug, Clone)]
pub struct TestAppBuilder {
    path: PathBuf,
    options: LoadOptions,
    data_dir: Option<PathBuf>,
}

impl TestApp {
    /// Load the app at `path` (a directory holding `flagon.toml`, or the file itself) with
    /// the defaults of [`TestApp::builder`].
    pub async fn load(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        Self::builder(path).load().await
    }

    /// Start configuring how to load the app at `path` (a directory holding `flagon.toml`, or
    /// the file itself). The defaults: development mode on, no variable overrides, the app's
    /// data in a new temporary directory (see [`TestAppBuilder::data_dir`]), and precompiled
    /// components cached in `flagon-test-cache` under the system's temporary directory, so
    /// that loading the same components again does not compile them again.
    pub fn builder(path: impl AsRef<Path>) -> TestAppBuilder {
        TestAppBuilder {
            path: path.as_ref().to_path_buf(),
            options: LoadOptions {
                cache: CacheDir::Path(std::env::temp_dir().join("flagon-test-cache")),
                dev: true,
                ..LoadOptions::default()
            },
            data_dir: None,
        }
    }

    /// A new client with an empty cookie jar and no CSRF token, sending from
    /// [`DEFAULT_CLIENT`].
    pub fn client(&self) -> TestClient {
        TestClient {
            shared: self.shared.clone(),
            host: self.host.clone(),
            addr: DEFAULT_CLIENT,
            jar: Jar::default(),
            csrf: None,
        }
    }

    /// The `Host` clients send: the first of `[server] allowed_hosts` (a wildcard
    /// `*.example.com` becomes `www.example.com`), or `localhost` when the list is empty.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The loaded app, for what the client does not cover (its key-value stores, its routes).
    pub fn app(&self) -> &App {
        &self.shared.app
    }

    /// Where the app's SQLite databases and embedded key-value stores are (see
    /// [`TestAppBuilder::data_dir`]).
    pub fn data_dir(&self) -> &Path {
        &self.shared.data_dir
    }
}

impl TestAppBuilder {
    /// Development mode ([`LoadOptions::dev`], what `flagon serve --dev` does); on by
    /// default: an ephemeral session key when `[session]` names none, a random value for a
    /// `dev_random` variable nothing sets, the session cookie as `session` without `Secure`,
    /// and error pages with details. Turn it off to test the app as production runs it.
    pub fn dev(mut self, dev: bool) -> Self {
        self.options.dev = dev;
        self
    }

    /// Give the environment variable `name` this value for the app's `[variables]`, whatever
    /// the process environment or a `.env` file says. The process environment is not changed.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.env.insert(name.into(), value.into());
        self
    }

    /// Cache precompiled components in `dir` instead of the shared test cache.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.cache = CacheDir::Path(dir.into());
        self
    }

    /// Keep the app's data in `dir` instead of a new temporary directory: every SQLite
    /// database in `dir/sql/<name>/<name>.db` and every embedded key-value store in
    /// `dir/kv`, whatever paths the manifest gives them. `dir` is kept afterwards.
    ///
    /// By default each [`TestApp`] gets a new, empty directory, removed when the app and its
    /// clients are dropped, so every test starts from freshly migrated databases and empty
    /// stores, and tests may run in parallel. The host locks an SQLite file for the life of
    /// the process (as for `flagon serve`), so two apps in one test binary can never use the
    /// same file, not even one after the other: a directory given here serves one app per
    /// process. A database from `url_variable` moves when its URL is `sqlite:...`; to test
    /// on Postgres, set the variable with [`env`](TestAppBuilder::env). Not moved: Postgres
    /// databases, Redis stores and `grants.files` directories.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Read the manifest and load the app, as `flagon serve` would: the same errors for a bad
    /// manifest, a missing variable or a component that imports what it was not granted, and
    /// pending migrations applied.
    pub async fn load(self) -> anyhow::Result<TestApp> {
        let mut manifest = Manifest::load(&self.path)?;
        let (data_dir, temporary) = match &self.data_dir {
            Some(dir) => {
                let dir = std::path::absolute(dir)
                    .with_context(|| format!("resolving the data directory {}", dir.display()))?;
                (dir, None)
            }
            None => {
                let temporary = TemporaryDir::new()?;
                (temporary.0.clone(), Some(temporary))
            }
        };
        // The value of a database's `url_variable` decides whether it is SQLite. A variable
        // that does not resolve is left for `App::load` to report.
        let variables = if manifest
            .databases
            .values()
            .any(|d| d.url_variable.is_some())
        {
            let lookup = self.options.env_lookup()?;
            manifest
                .resolve_variables_for(lookup, self.options.dev)
                .ok()
        } else {
            None
        };
        move_data(&mut manifest, variables.as_ref(), &data_dir);
        let app = App::load(&manifest, &self.options)
            .await
            .with_context(|| format!("loading the app at {}", self.path.display()))?;
        let host = host_for(&app.server_settings().allowed_hosts);
        Ok(TestApp {
            shared: Arc::new(Shared {
                app,
                data_dir,
                _temporary: temporary,
            }),
            host,
        })
    }
}

/// Put the app's SQLite databases (also one whose `url_variable` holds a `sqlite:` URL) and
/// embedded key-value stores under `dir`.
fn move_data(manifest: &mut Manifest, variables: Option<&BTreeMap<String, Variable>>, dir: &Path) {
    for (name, db) in &mut manifest.databases {
        let sqlite = match &db.url_variable {
            None => db.kind() == AdapterKind::Sqlite,
            // `sqlite:<path>` takes a path only: anything else is for `App::load` to refuse.
            Some(var) => variables
                .and_then(|v| v.get(var))
                .and_then(|v| v.value.trim().strip_prefix("sqlite:"))
                .is_some_and(|path| !path.contains(['?', '#'])),
        };
        if sqlite {
            // What the URL would set: the adapter and the file.
            db.url_variable = None;
            db.adapter = "sqlite".to_owned();
            db.path = Some(dir.join("sql").join(name).join(format!("{name}.db")));
        }
    }
    for kv in manifest.kv.values_mut() {
        if kv.backend == KvBackendKind::Embedded {
            kv.path = Some(dir.join("kv"));
        }
    }
}

impl fmt::Debug for TestApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestApp")
            .field("name", &self.shared.app.name())
            .field("host", &self.host)
            .field("data_dir", &self.shared.data_dir)
            .finish_non_exhaustive()
    }
}

/// The host a client names: one the app answers to.
fn host_for(allowed: &[String]) -> String {
    match allowed.first() {
        None => "localhost".to_owned(),
        Some(h) => match h.strip_prefix("*.") {
            Some(domain) => format!("www.{domain}"),
            None => h.clone(),
        },
    }
}

/// One browser talking to a [`TestApp`]: a cookie jar, the CSRF token of the last page it
/// loaded, and the address it sends from.
///
/// Cookies from `Set-Cookie` are kept by name and `Path`, dropped at `Max-Age=0` or a past
/// `Expires`, and sent back as `Cookie` to the paths they cover. `Domain` is ignored (the
/// client only ever talks to one host) and `Secure` cookies are kept and sent although there
/// is no TLS: the client treats the app as its origin, so the session cookie of an app loaded
/// without development mode (`__Host-session`, `Secure`) works too.
pub struct TestClient {
    shared: Arc<Shared>,
    host: String,
    addr: SocketAddr,
    jar: Jar,
    csrf: Option<String>,
}

impl fmt::Debug for TestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cookies: Vec<&str> = self.jar.cookies.iter().map(|c| c.name.as_str()).collect();
        f.debug_struct("TestClient")
            .field("host", &self.host)
            .field("addr", &self.addr)
            .field("cookies", &cookies)
            .field("csrf_token", &self.csrf.is_some())
            .finish_non_exhaustive()
    }
}

impl TestClient {
    /// Send this client's requests from `addr` (the default is [`DEFAULT_CLIENT`]), e.g. to
    /// test a rate limit per address. [`TestRequest::from_client`] changes one request.
    pub fn with_client_addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// The address this client's requests come from.
    pub fn client_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET path` (a path with an optional query, such as `/search?q=tea`).
    pub async fn get(&mut self, path: &str) -> TestResponse {
        self.request(Method::GET, path).send().await
    }

    /// `POST path` with `fields` as an `application/x-www-form-urlencoded` body, plus the
    /// `csrf_token` field when the client has a token (see [`TestClient::csrf_token`]).
    pub async fn post_form<K, V>(&mut self, path: &str, fields: &[(K, V)]) -> TestResponse
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.request(Method::POST, path).form(fields).send().await
    }

    /// `POST path` with `value` as a JSON body, plus `X-CSRF-Token` when the client has a
    /// token.
    pub async fn post_json<T: serde::Serialize + ?Sized>(
        &mut self,
        path: &str,
        value: &T,
    ) -> TestResponse {
        self.request(Method::POST, path).json(value).send().await
    }

    /// A request with any method, headers and body: finish it with [`TestRequest::send`].
    pub fn request(&mut self, method: Method, path: &str) -> TestRequest<'_> {
        TestRequest {
            client: self,
            method,
            target: path.to_owned(),
            headers: Vec::new(),
            body: RequestBody::Empty,
            csrf: true,
            addr: None,
        }
    }

    /// Follow the redirect `response` is: a `GET` of its `Location` for 301, 302 and 303 (as
    /// a browser navigates: cookies from the jar, none of the first request's headers), the
    /// same method, headers and body for 307 and 308. The new request comes from the same
    /// client address.
    ///
    /// # Panics
    ///
    /// If `response` is not one of those statuses, has no `Location`, or its `Location`
    /// leads to another host.
    pub async fn follow(&mut self, response: &TestResponse) -> TestResponse {
        let status = response.status;
        let Some(location) = response.location() else {
            panic!("follow: the {status} response has no Location header: {response:?}");
        };
        let sent = &response.sent;
        let target = self.resolve(&sent.target, &sent.host, location);
        match status {
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER => {
                let mut headers = HeaderMap::new();
                if let Some(host) = sent.headers.get(header::HOST) {
                    headers.insert(header::HOST, host.clone());
                }
                self.dispatch(Method::GET, &target, headers, Bytes::new(), sent.addr)
                    .await
            }
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => {
                self.dispatch(
                    sent.method.clone(),
                    &target,
                    sent.headers.clone(),
                    sent.body.clone(),
                    sent.addr,
                )
                .await
            }
            _ => panic!("follow: {status} is not a redirect: {response:?}"),
        }
    }

    /// The CSRF token the client adds to its unsafe requests: the last one it saw in an HTML
    /// response, in `<input name="csrf_token" value="...">` (what a template writes with
    /// `{{ csrf_token() }}`) or `<meta name="csrf-token" content="...">`.
    ///
    /// As in a browser, it is the token of the last page loaded: after a sign-in, which gives
    /// the session a new CSRF secret, load a page with a form (follow the redirect) before
    /// posting again.
    pub fn csrf_token(&self) -> Option<&str> {
        self.csrf.as_deref()
    }

    /// Use `token` as the CSRF token from now on (one an app hands out other than in HTML),
    /// or none.
    pub fn set_csrf_token(&mut self, token: Option<String>) {
        self.csrf = token;
    }

    /// The value of the cookie `name` in the jar, if it is there and has not expired.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name, SystemTime::now())
    }

    /// Put the cookie `name=value` in the jar for every path, as if the app had set it.
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.jar.put(StoredCookie {
            name: name.to_owned(),
            value: value.to_owned(),
            path: "/".to_owned(),
            expires: None,
        });
    }

    /// `location` resolved against the request `target` sent to `host`, as a path and query.
    fn resolve(&self, target: &str, host: &str, location: &str) -> String {
        let base = if target.starts_with('/') {
            url::Url::parse(&format!("http://{host}{target}"))
        } else {
            url::Url::parse(target)
        };
        let base = base.unwrap_or_else(|e| panic!("follow: cannot read {target:?} as a URL: {e}"));
        let next = base.join(location).unwrap_or_else(|e| {
            panic!("follow: cannot resolve the Location {location:?} against {base}: {e}")
        });
        if next.host_str() != base.host_str() || next.port() != base.port() {
            panic!(
                "follow: the Location {location:?} leaves the app ({next}); the test client talks only to {host}"
            );
        }
        match next.query() {
            Some(q) => format!("{}?{q}", next.path()),
            None => next.path().to_owned(),
        }
    }

    /// Send one request through the app and take in its cookies and CSRF token. `headers` are
    /// complete but for `Host` (added if missing) and `Cookie` (from the jar unless given).
    async fn dispatch(
        &mut self,
        method: Method,
        target: &str,
        mut headers: HeaderMap,
        body: Bytes,
        addr: SocketAddr,
    ) -> TestResponse {
        let uri: http::Uri = target
            .parse()
            .unwrap_or_else(|e| panic!("test request: {target:?} is not a request target: {e}"));
        if !headers.contains_key(header::HOST) {
            headers.insert(header::HOST, header_value("host", &self.host));
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(&self.host)
            .to_owned();
        let sent = Sent {
            method: method.clone(),
            target: target.to_owned(),
            host,
            headers: headers.clone(),
            body: body.clone(),
            addr,
        };
        let now = SystemTime::now();
        if !headers.contains_key(header::COOKIE)
            && let Some(cookies) = self.jar.header(uri.path(), now)
        {
            headers.insert(header::COOKIE, header_value("cookie", &cookies));
        }
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers;
        let (parts, body) = self.shared.app.handle(request, addr).await.into_parts();
        let body = body
            .collect()
            .await
            .unwrap_or_else(|e| panic!("test request: reading the response body failed: {e}"))
            .to_bytes();
        for set in parts.headers.get_all(header::SET_COOKIE) {
            if let Ok(set) = set.to_str() {
                self.jar.store(set, uri.path(), now);
            }
        }
        let html = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
        if html && let Some(token) = find_csrf_token(&String::from_utf8_lossy(&body)) {
            self.csrf = Some(token);
        }
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
            text: OnceLock::new(),
            sent,
        }
    }
}

/// A request being built by [`TestClient::request`]; [`TestRequest::send`] sends it.
///
/// Unless the request sets them itself, the client adds `Host`, `Cookie` from its jar, and, for
/// unsafe methods (all but GET, HEAD, OPTIONS and TRACE), `Origin: http://<host>` and
/// `Sec-Fetch-Site: same-origin`, as a browser posting a form of the app would, plus its CSRF
/// token: in the `csrf_token` field of a [`form`](TestRequest::form), else as `X-CSRF-Token`.
/// Set `Sec-Fetch-Site: cross-site` to play another site's page. No `Accept` is sent unless
/// set: add `Accept: text/html` to get the login redirect the host gives browsers on an
/// `auth = "required"` route, rather than the 401.
pub struct TestRequest<'c> {
    client: &'c mut TestClient,
    method: Method,
    target: String,
    headers: Vec<(String, String)>,
    body: RequestBody,
    csrf: bool,
    addr: Option<SocketAddr>,
}

enum RequestBody {
    Empty,
    Form(Vec<(String, String)>),
    Json(Vec<u8>),
    Raw(Bytes),
}

impl TestRequest<'_> {
    /// Add a header. Setting `Host`, `Cookie`, `Origin`, `Sec-Fetch-Site`, `Content-Type` or
    /// `X-CSRF-Token` replaces what the client would have sent.
    ///
    /// # Panics
    ///
    /// At [`send`](TestRequest::send), if `name` or `value` cannot be a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Send `fields` as an `application/x-www-form-urlencoded` body, with the client's CSRF
    /// token as the `csrf_token` field unless `fields` has one.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(mut self, fields: &[(K, V)]) -> Self {
        let fields = fields
            .iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        self.body = RequestBody::Form(fields);
        self
    }

    /// Send `value` as an `application/json` body.
    ///
    /// # Panics
    ///
    /// If `value` cannot be serialized as JSON.
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        let json = serde_json::to_vec(value)
            .unwrap_or_else(|e| panic!("test request: the JSON body does not serialize: {e}"));
        self.body = RequestBody::Json(json);
        self
    }

    /// Send these bytes as the body; set its `Content-Type` with [`header`](TestRequest::header).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = RequestBody::Raw(body.into());
        self
    }

    /// Send no CSRF token (the `Origin` and `Sec-Fetch-Site` headers stay): the host's CSRF
    /// check then refuses an unsafe request to a session route with 403.
    pub fn without_csrf(mut self) -> Self {
        self.csrf = false;
        self
    }

    /// Send this request from `addr` instead of the client's address.
    pub fn from_client(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Send the request through the app, keep the cookies it sets and the CSRF token of an
    /// HTML answer, and return the answer with its body read.
    pub async fn send(self) -> TestResponse {
        let Self {
            client,
            method,
            target,
            headers: given,
            body,
            csrf,
            addr,
        } = self;
        let mut headers = HeaderMap::new();
        for (name, value) in &given {
            let name = HeaderName::from_bytes(name.as_bytes())
                .unwrap_or_else(|e| panic!("test request: {name:?} is not a header name: {e}"));
            headers.append(name.clone(), header_value(name.as_str(), value));
        }
        let unsafe_method = !matches!(
            method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        let token = client.csrf.clone().filter(|_| csrf && unsafe_method);
        let (body, content_type) = match body {
            RequestBody::Empty => (Bytes::new(), None),
            RequestBody::Raw(b) => (b, None),
            RequestBody::Json(j) => (Bytes::from(j), Some("application/json")),
            RequestBody::Form(fields) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in &fields {
                    form.append_pair(k, v);
                }
                if let Some(token) = &token
                    && !fields.iter().any(|(k, _)| k == "csrf_token")
                {
                    form.append_pair("csrf_token", token);
                }
                (
                    Bytes::from(form.finish()),
                    Some("application/x-www-form-urlencoded"),
                )
            }
        };
        if let Some(t) = content_type
            && !headers.contains_key(header::CONTENT_TYPE)
        {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(t));
        }
        if unsafe_method {
            let host = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
                Some(h) => h.to_owned(),
                None => client.host.clone(),
            };
            if !headers.contains_key(header::ORIGIN) {
                headers.insert(
                    header::ORIGIN,
                    header_value("origin", &format!("http://{host}")),
                );
            }
            if !headers.contains_key("sec-fetch-site") {
                headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
            }
        }
        if let Some(token) = token
            && content_type != Some("application/x-www-form-urlencoded")
            && !headers.contains_key("x-csrf-token")
        {
            headers.insert("x-csrf-token", header_value("x-csrf-token", &token));
        }
        if !body.is_empty() && !headers.contains_key(header::CONTENT_LENGTH) {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let addr = addr.unwrap_or(client.addr);
        client.dispatch(method, &target, headers, body, addr).await
    }
}

fn header_value(name: &str, value: &str) -> HeaderValue {
    HeaderValue::from_str(value)
        .unwrap_or_else(|e| panic!("test request: {value:?} cannot be the value of {name}: {e}"))
}

/// What was sent, for [`TestClient::follow`].
#[derive(Clone)]
struct Sent {
    method: Method,
    target: String,
    host: String,
    /// Without `Cookie` unless the request set it.
    headers: HeaderMap,
    body: Bytes,
    addr: SocketAddr,
}

/// The app's answer, its body read.
pub struct TestResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// The body as text, when it is not UTF-8 (lossy).
    text: OnceLock<String>,
    sent: Sent,
}

impl TestResponse {
    /// The status code; compare it with a `StatusCode` or a number
    /// (`assert_eq!(r.status(), 303)`).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The first value of the header `name`, if it is there and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// All headers (`headers().get_all("set-cookie")` for repeated ones).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The `Location` header of a redirect.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The body.
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// The body as text; invalid UTF-8 becomes U+FFFD.
    pub fn text(&self) -> &str {
        match std::str::from_utf8(&self.body) {
            Ok(text) => text,
            Err(_) => self
                .text
                .get_or_init(|| String::from_utf8_lossy(&self.body).into_owned()),
        }
    }

    /// The body parsed as JSON into `T`; the error shows the status and the body.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "the {} response to {} {} is not the JSON expected: {}",
                self.status,
                self.sent.method,
                self.sent.target,
                shorten(self.text())
            )
        })
    }
}

/// Status, headers and (the start of) the body, for assertion messages: `"{r:?}"`.
impl fmt::Debug for TestResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestResponse")
            .field(
                "request",
                &format_args!("{} {}", self.sent.method, self.sent.target),
            )
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &shorten(self.text()))
            .finish()
    }
}

fn shorten(text: &str) -> Cow<'_, str> {
    const MAX: usize = 2000;
    if text.len() <= MAX {
        return Cow::Borrowed(text);
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}... ({} bytes)", &text[..end], text.len()))
}

/// A cookie kept by the jar.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredCookie {
    name: String,
    value: String,
    path: String,
    expires: Option<SystemTime>,
}

impl StoredCookie {
    fn live(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// The cookies of one client, by name and path (RFC 6265, without domains).
#[derive(Debug, Default, Clone)]
struct Jar {
    cookies: Vec<StoredCookie>,
}

impl Jar {
    /// Take in one `Set-Cookie` value from a response to `request_path`. A value that does
    /// not parse is ignored, as browsers do.
    fn store(&mut self, set_cookie: &str, request_path: &str, now: SystemTime) {
        let Ok(c) = cookie::Cookie::parse(set_cookie) else {
            return;
        };
        if c.name().is_empty() {
            return;
        }
        let path = match c.path() {
            Some(p) if p.starts_with('/') => p.to_owned(),
            _ => default_path(request_path),
        };
        // Max-Age wins over Expires; zero or less deletes.
        let expires = match (c.max_age(), c.expires_datetime()) {
            (Some(age), _) => match u64::try_from(age.whole_seconds()) {
                Ok(secs) if secs > 0 => Some(now + Duration::from_secs(secs)),
                _ => Some(SystemTime::UNIX_EPOCH),
            },
            (None, Some(at)) => Some(SystemTime::from(at)),
            (None, None) => None,
        };
        let cookie = StoredCookie {
            name: c.name().to_owned(),
            value: c.value().to_owned(),
            path,
            expires,
        };
        if cookie.live(now) {
            self.put(cookie);
        } else {
            self.cookies
                .retain(|k| !(k.name == cookie.name && k.path == cookie.path));
        }
    }

    /// Add or replace (same name and path) a cookie.
    fn put(&mut self, cookie: StoredCookie) {
        match self
            .cookies
            .iter_mut()
            .find(|k| k.name == cookie.name && k.path == cookie.path)
        {
            Some(old) => *old = cookie,
            None => self.cookies.push(cookie),
        }
    }

    /// The `Cookie` header for a request to `path`: the live cookies whose path covers it,
    /// longer paths first. Drops expired cookies.
    fn header(&mut self, path: &str, now: SystemTime) -> Option<String> {
        self.cookies.retain(|c| c.live(now));
        let mut matching: Vec<&StoredCookie> = self
            .cookies
            .iter()
            .filter(|c| path_matches(path, &c.path))
            .collect();
        if matching.is_empty() {
            return None;
        }
        matching.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        let pairs: Vec<String> = matching
            .iter()
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        Some(pairs.join("; "))
    }

    fn get(&self, name: &str, now: SystemTime) -> Option<&str> {
        self.cookies
            .iter()
            .find(|c| c.name == name && c.live(now))
            .map(|c| c.value.as_str())
    }
}

/// RFC 6265, section 5.1.4: the directory of the request path.
fn default_path(request_path: &str) -> String {
    match request_path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => request_path[..i].to_owned(),
    }
}

/// RFC 6265, section 5.1.4: whether a cookie with `cookie_path` is sent to `request_path`.
fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// The last CSRF token in an HTML page: the `value` of an `<input name="csrf_token">` or the
/// `content` of a `<meta name="csrf-token">`, attributes in any order and quoted either way,
/// character references decoded.
fn find_csrf_token(html: &str) -> Option<String> {
    // ASCII lowercasing keeps every byte offset.
    let lower = html.to_ascii_lowercase();
    let mut found = None;
    let mut at = 0;
    while let Some(offset) = lower[at..].find('<') {
        let start = at + offset + 1;
        at = start;
        let (tag, wanted_name, value_attr) = if lower[start..].starts_with("input") {
            ("input", "csrf_token", "value")
        } else if lower[start..].starts_with("meta") {
            ("meta", "csrf-token", "content")
        } else {
            continue;
        };
        let after = start + tag.len();
        if !lower
            .as_bytes()
            .get(after)
            .is_some_and(|&b| b.is_ascii_whitespace() || b == b'/')
        {
            continue;
        }
        let (attributes, end) = attributes(html, after);
        at = end;
        let get = |name: &str| {
            attributes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| decode_entities(v))
        };
        if get("name").as_deref() == Some(wanted_name)
            && let Some(value) = get(value_attr)
            && !value.is_empty()
        {
            found = Some(value);
        }
    }
    found
}

/// The attributes of the tag whose name ends at `at` (names lowercased, values raw), and
/// where the tag ends.
fn attributes(html: &str, mut at: usize) -> (Vec<(String, &str)>, usize) {
    let bytes = html.as_bytes();
    let mut out = Vec::new();
    loop {
        while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b'/') {
            at += 1;
        }
        if at >= bytes.len() {
            return (out, at);
        }
        if bytes[at] == b'>' {
            return (out, at + 1);
        }
        let name_start = at;
        while at < bytes.len() && !matches!(bytes[at], b'=' | b'>' | b'/') {
            if bytes[at].is_ascii_whitespace() {
                break;
            }
            at += 1;
        }
        if at == name_start {
            // A stray `=`: skip it.
            at += 1;
            continue;
        }
        let name = html[name_start..at].to_ascii_lowercase();
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if bytes.get(at) != Some(&b'=') {
            out.push((name, ""));
            continue;
        }
        at += 1;
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let value = match bytes.get(at) {
            Some(&q @ (b'"' | b'\'')) => {
                let value_start = at + 1;
                let end = html[value_start..]
                    .find(q as char)
                    .map_or(bytes.len(), |i| value_start + i);
                at = (end + 1).min(bytes.len());
                &html[value_start..end]
            }
            _ => {
                let value_start = at;
                while at < bytes.len() && !bytes[at].is_ascii_whitespace() && bytes[at] != b'>' {
                    at += 1;
                }
                &html[value_start..at]
            }
        };
        out.push((name, value));
    }
}

/// Decode the character references of an attribute value: the named ones an escaper writes
/// (`&amp;` `&lt;` `&gt;` `&quot;` `&apos;`) and numeric ones (`&#61;`, `&#x3D;`). Anything
/// else stays as written.
fn decode_entities(value: &str) -> String {
    if !value.contains('&') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest[1..]
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| {
                let name = &rest[1..1 + end];
                let c = match name {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    _ => match name.strip_prefix('#') {
                        Some(hex) if hex.starts_with(['x', 'X']) => {
                            u32::from_str_radix(&hex[1..], 16)
                                .ok()
                                .and_then(char::from_u32)
                        }
                        Some(dec) => dec.parse().ok().and_then(char::from_u32),
                        None => None,
                    },
                };
                c.map(|c| (c, end + 2))
            });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_found_in_inputs_and_meta_tags() {
        let token = |html: &str| find_csrf_token(html);
        assert_eq!(
            token(r#"<form><input type="hidden" name="csrf_token" value="abc-_1"></form>"#)
                .as_deref(),
            Some("abc-_1")
        );
        // Attributes in another order, other quotes, unquoted, upper case, self-closing.
        assert_eq!(
            token(r#"<INPUT Value='v1' TYPE=hidden name = csrf_token />"#).as_deref(),
            Some("v1")
        );
        assert_eq!(
            token(r#"<input value=v2 name=csrf_token>"#).as_deref(),
            Some("v2")
        );
        // Character references as the host's escaper writes them.
        assert_eq!(
            token(r#"<input name="csrf_token" value="a&#61;b&amp;c&#x2F;d&quot;&bogus;">"#)
                .as_deref(),
            Some("a=b&c/d\"&bogus;")
        );
        assert_eq!(
            token(r#"<head><meta content="m1" name="csrf-token"></head>"#).as_deref(),
            Some("m1")
        );
        // The last one on the page wins; other fields and tags do not count.
        assert_eq!(
            token(concat!(
                r#"<input name="csrf_token" value="first">"#,
                r#"<input name="user" value="ada"><inputs name="csrf_token" value="no">"#,
                r#"<meta name="description" content="no">"#,
                r#"<input name="csrf_token" value="second">"#,
            ))
            .as_deref(),
            Some("second")
        );
        assert_eq!(token(r#"<input name="user" value="ada">"#), None);
        assert_eq!(token(r#"<input name="csrf_token" value="">"#), None);
        assert_eq!(
            token("<input name=\"csrf_token\" value=\"cut"),
            Some("cut".into())
        );
        assert_eq!(token("<"), None);
        assert_eq!(token("<input"), None);
        assert_eq!(token("é<input name=csrf_token value=é>"), Some("é".into()));
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn the_jar_keeps_replaces_and_deletes_cookies() {
        let mut jar = Jar::default();
        jar.store(
            "session=s1; Path=/; Max-Age=60; HttpOnly; Secure",
            "/login",
            at(0),
        );
        jar.store("theme=dark", "/settings/page", at(0));
        assert_eq!(jar.get("session", at(0)), Some("s1"));
        assert_eq!(jar.header("/", at(0)).as_deref(), Some("session=s1"));
        // No Path: the request path's directory.
        assert_eq!(
            jar.header("/settings/x", at(0)).as_deref(),
            Some("theme=dark; session=s1")
        );
        assert_eq!(
            jar.header("/settingsx", at(0)).as_deref(),
            Some("session=s1")
        );
        // Replaced by name and path; Max-Age runs out.
        jar.store("session=s2; Path=/; Max-Age=60", "/", at(10));
        assert_eq!(jar.get("session", at(10)), Some("s2"));
        assert_eq!(jar.get("session", at(71)), None);
        assert_eq!(jar.header("/", at(71)), None);
        // Max-Age=0 and a past Expires delete.
        jar.store("a=1; Path=/", "/", at(0));
        jar.store("b=2; Path=/", "/", at(0));
        jar.store("a=; Path=/; Max-Age=0", "/", at(1));
        jar.store(
            "b=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            "/",
            at(1),
        );
        assert_eq!(jar.get("a", at(1)), None);
        assert_eq!(jar.get("b", at(1)), None);
        // A deletion for another path leaves the cookie alone; garbage is ignored.
        jar.store("c=3; Path=/", "/", at(0));
        jar.store("c=; Path=/other; Max-Age=0", "/", at(0));
        jar.store("=nameless", "/", at(0));
        jar.store("", "/", at(0));
        assert_eq!(jar.get("c", at(0)), Some("3"));
    }

    #[test]
    fn cookie_paths_match_as_in_rfc_6265() {
        assert_eq!(default_path("/"), "/");
        assert_eq!(default_path("/login"), "/");
        assert_eq!(default_path("/a/b/c"), "/a/b");
        assert!(path_matches("/a", "/"));
        assert!(path_matches("/a/b", "/a"));
        assert!(path_matches("/a/b", "/a/"));
        assert!(path_matches("/a", "/a"));
        assert!(!path_matches("/ab", "/a"));
        assert!(!path_matches("/", "/a"));
    }

    #[test]
    fn the_host_is_one_the_app_answers_to() {
        assert_eq!(host_for(&[]), "localhost");
        assert_eq!(
            host_for(&["example.com".into(), "x.org".into()]),
            "example.com"
        );
        assert_eq!(host_for(&["*.example.com".into()]), "www.example.com");
    }
}
