//! Write [Flagon](https://example.invalid/flagon) handler components in Rust.
//!
//! A handler is a type implementing [`Handler`], exported with [`export!`]:
//!
//! ```ignore
//! use flagon_sdk::{Handler, Request, Response, Error};
//!
//! struct App;
//!
//! impl Handler for App {
//!     fn handle(req: Request) -> Result<Response, Error> {
//!         let name = req.param("name").unwrap_or("world");
//!         Ok(Response::text(format!("Hello, {name}!")))
//!     }
//! }
//!
//! flagon_sdk::export!(App);
//! ```
//!
//! Point a `[components.<id>]` entry of `flagon.toml` at the built `.wasm` file. Every request
//! gets a fresh instance, so statics do not carry state from one request to the next.
//!
//! # Two builds: lean and full WASI
//!
//! - **Lean** (`cargo build --release --target wasm32-unknown-unknown`, what `flagon new` sets
//!   up): a core module that imports only the `flagon:app` interfaces the handler uses. The host
//!   makes it a component at load. No WASI at all, so a fresh instance is cheaper; what WASI
//!   would give, the SDK gives through `flagon:app`: [`time`] for clocks, [`random`] for random
//!   bytes, [`log`] for output, and a panic becomes an error log line (with the request id) and a
//!   500. What a lean handler gives up: `std::fs`, `std::env`, `std::time::SystemTime::now`,
//!   `std::thread::sleep` and stdout/stderr (`println!` prints nothing); `HashMap::new()` works,
//!   with fixed hash keys. The SDK installs its own `#[global_allocator]` (turn off the default
//!   `allocator` feature to bring another).
//! - **Full WASI** (`--target wasm32-wasip2`): a component importing what Rust's standard library
//!   refers to (clocks, random, stdout, the environment, files when granted), for handlers that
//!   use `std` directly or crates that need WASI.
//!
//! The same source builds both ways.

#![forbid(unsafe_op_in_unsafe_fn)]

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "flagon:app/handler",
        pub_export_macro: true,
        export_macro_name: "__export_handler",
        default_bindings_module: "flagon_sdk::bindings",
    });
}

use bindings::flagon::app::types as wit;

#[cfg(all(target_arch = "wasm32", target_os = "unknown", feature = "allocator"))]
mod lean_alloc;

#[cfg(all(target_arch = "wasm32", target_os = "unknown", feature = "allocator"))]
#[global_allocator]
static ALLOCATOR: lean_alloc::LeanAlloc = lean_alloc::LeanAlloc::new();

/// Who sent a request, as an authenticator established it: `subject`, `display_name`,
/// `roles`, `claims` and the `authenticator` that produced it.
pub use wit::Identity;
/// The HTTP method of a request.
pub use wit::Method;
/// A decoded form field, and a file uploaded in a multipart form.
pub use wit::{FormField, UploadedFile};

/// One incoming request, as the host parsed and routed it.
#[derive(Debug, Clone)]
pub struct Request {
    inner: wit::Request,
}

impl Request {
    #[doc(hidden)]
    pub fn from_wit(inner: wit::Request) -> Self {
        Self { inner }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.inner.method
    }

    /// The method as an uppercase string, e.g. `"GET"`.
    pub fn method_str(&self) -> &str {
        match &self.inner.method {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Other(m) => m,
        }
    }

    /// The request path, still percent-encoded, without the query string.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The `name` of the matched route in `flagon.toml`, if it has one.
    pub fn route(&self) -> Option<&str> {
        self.inner.route.as_deref()
    }

    /// A path parameter of the matched route (`{name}` or `{*name}`), percent-decoded.
    pub fn param(&self, name: &str) -> Option<&str> {
        find(&self.inner.params, name, false)
    }

    /// All path parameters, in route order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The raw query string without the leading `?` (empty when there is none).
    pub fn query_string(&self) -> &str {
        &self.inner.query
    }

    /// Parse the query string into `T`. A query that does not fit `T` is a 400 error.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_urlencoded::from_str(&self.inner.query)
            .map_err(|e| Error::bad_request(format!("invalid query string: {e}")))
    }

    /// The first value of a header; the name is matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.inner.headers, name, true)
    }

    /// All headers as (lowercase name, value) pairs, grouped by name (values of one name in the
    /// order received).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The request body.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }

    /// The body as UTF-8 text; a body that is not UTF-8 is a 400 error.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.inner.body)
            .map_err(|_| Error::bad_request("request body is not valid UTF-8"))
    }

    /// Parse a JSON body into `T`.
    ///
    /// A body whose `Content-Type` is not JSON is a 415 error; JSON that does not fit `T` is a
    /// 400 error that says where it went wrong.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let ct = self.content_type();
        if !(ct == "application/json" || ct.ends_with("+json")) {
            return Err(Error::new(
                415,
                "expected a request body with `Content-Type: application/json`",
            ));
        }
        serde_json::from_slice(&self.inner.body)
            .map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
    }

    /// Parse the text fields of a form (`application/x-www-form-urlencoded` or
    /// `multipart/form-data`, decoded by the host) into `T`.
    ///
    /// Another `Content-Type` is a 415 error; a form that does not fit `T` is a 400 error.
    pub fn form<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let ct = self.content_type();
        if ct != "application/x-www-form-urlencoded" && ct != "multipart/form-data" {
            return Err(Error::new(
                415,
                "expected a form body (`application/x-www-form-urlencoded` or `multipart/form-data`)",
            ));
        }
        let encoded = serde_urlencoded::to_string(
            self.inner
                .form
                .iter()
                .filter(|f| f.file.is_none())
                .map(|f| (f.name.as_str(), f.value.as_str()))
                .collect::<Vec<_>>(),
        )
        .map_err(|e| Error::internal(format!("cannot re-encode form: {e}")))?;
        serde_urlencoded::from_str(&encoded)
            .map_err(|e| Error::bad_request(format!("invalid form: {e}")))
    }

    /// The first text value of the form field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.inner
            .form
            .iter()
            .find(|f| f.name == name && f.file.is_none())
            .map(|f| f.value.as_str())
    }

    /// Every field of the form, in order (text fields and uploaded files).
    pub fn form_fields(&self) -> &[FormField] {
        &self.inner.form
    }

    /// The first file uploaded under the field `name`.
    pub fn file(&self, name: &str) -> Option<&UploadedFile> {
        self.inner
            .form
            .iter()
            .filter(|f| f.name == name)
            .find_map(|f| f.file.as_ref())
    }

    /// The value of the cookie `name` from the `Cookie` header. (The host's own session
    /// cookie is read through [`session`], not here.)
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.inner
            .headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"'))
    }

    /// The media type of the body, lowercase, without parameters (e.g. `application/json`).
    pub fn content_type(&self) -> String {
        self.header("content-type")
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// The client's address as the host saw it.
    pub fn client(&self) -> &str {
        &self.inner.client
    }

    /// The id of this request, as it appears in the host's logs and error pages.
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// Who sent the request, on a route with `auth = "required"` or `"optional"` in
    /// `flagon.toml`; `None` on other routes and for anonymous requests. The host has already
    /// checked the route's `roles`.
    pub fn identity(&self) -> Option<&Identity> {
        self.inner.identity.as_ref()
    }

    /// Whether the request's identity has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.identity()
            .is_some_and(|i| i.roles.iter().any(|r| r == role))
    }
}

fn find<'a>(fields: &'a [(String, String)], name: &str, ignore_case: bool) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| {
            if ignore_case {
                k.eq_ignore_ascii_case(name)
            } else {
                k == name
            }
        })
        .map(|(_, v)| v.as_str())
}

/// The response a handler returns. Build one with [`Response::text`], [`Response::html`],
/// [`Response::json`], [`Response::redirect`] or [`Response::status`], then add headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// An empty response with this status code.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `200 OK` with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<String>) -> Self {
        Self::status(200)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(body.into().into_bytes())
    }

    /// `200 OK` with a `text/html; charset=utf-8` body. The host does not escape it: build HTML
    /// from untrusted input with the host's templates instead.
    pub fn html(body: impl Into<String>) -> Self {
        Self::status(200)
            .with_header("content-type", "text/html; charset=utf-8")
            .with_body(body.into().into_bytes())
    }

    /// `200 OK` with `value` serialised as JSON (a 500 if it cannot be serialised).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::status(200)
                .with_header("content-type", "application/json")
                .with_body(body),
            Err(e) => Error::internal(format!("could not serialise the JSON response: {e}")).into(),
        }
    }

    /// `303 See Other` to `location`: after a form post the browser follows with a GET.
    /// Use [`Response::with_status`] for 301, 302, 307 or 308.
    pub fn redirect(location: impl Into<String>) -> Self {
        Self::status(303).with_header("location", location)
    }

    /// Replace the status code.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Add a header (names are case-insensitive; the host validates names and values).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replace the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// The headers set so far.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    #[doc(hidden)]
    pub fn into_wit(self) -> wit::Response {
        wit::Response {
            status: self.status,
            headers: self.headers,
            body: self.body,
        }
    }
}

/// An error a handler returns with `?`; it becomes a plain-text response with its status.
///
/// Client errors (4xx) show their message, which should say what to fix. Server errors (5xx)
/// show only the status: the message goes to the log, attributed to the request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: u16,
    message: String,
}

impl Error {
    /// An error with any status code.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// `400 Bad Request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// `404 Not Found`.
    pub fn not_found() -> Self {
        Self::new(404, "not found")
    }

    /// `500 Internal Server Error`; the message is logged, not shown.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for Error {}

impl From<Error> for Response {
    fn from(err: Error) -> Self {
        if err.status >= 500 {
            log::error(&format!("handler error: {}", err.message));
            Response::status(err.status)
                .with_header("content-type", "text/plain; charset=utf-8")
                .with_body(format!("{}\n", reason(err.status)))
        } else {
            Response::status(err.status)
                .with_header("content-type", "text/plain; charset=utf-8")
                .with_body(format!("{}\n", err.message))
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Server Error",
    }
}

/// What a Flagon handler component implements.
pub trait Handler {
    /// Answer one request.
    fn handle(req: Request) -> Result<Response, Error>;
}

/// Structured logging through the host: lines carry the component id and the request id.
pub mod log {
    use crate::bindings::flagon::app::log::{Level, log};

    /// Log at trace level.
    pub fn trace(message: &str) {
        log(Level::Trace, message)
    }
    /// Log at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }
    /// Log at info level.
    pub fn info(message: &str) {
        log(Level::Info, message)
    }
    /// Log at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }
    /// Log at error level.
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// The variables granted to this component in `flagon.toml` (`grants.variables`).
///
/// Using this module makes the component import `flagon:app/config`; the host refuses to load it
/// unless the manifest grants it variables.
pub mod config {
    /// The value of a granted variable, or `None` if it was not granted.
    pub fn get(name: &str) -> Option<String> {
        crate::bindings::flagon::app::config::get(name)
    }

    /// All granted variables as (name, value) pairs.
    pub fn get_all() -> Vec<(String, String)> {
        crate::bindings::flagon::app::config::get_all()
    }
}

/// Password hashing, secure random numbers and HMAC, done by the host.
///
/// Using this module makes the component import `flagon:app/crypto`; the host refuses to load it
/// unless the manifest grants `crypto = true`.
pub mod crypto {
    use crate::Error;
    use crate::bindings::flagon::app::crypto as host;

    /// Hash a password with argon2id (19 MiB, 2 passes, random salt) into a PHC string to
    /// store. Fails (500) only for passwords over 4 KiB.
    pub fn hash_password(password: &str) -> Result<String, Error> {
        host::hash_password(password).map_err(Error::internal)
    }

    /// Check a password against a stored PHC string (in constant time for the comparison).
    pub fn verify_password(password: &str, hash: &str) -> bool {
        host::verify_password(password, hash)
    }

    /// `len` secure random bytes (at most 65536).
    pub fn random_bytes(len: u32) -> Result<Vec<u8>, Error> {
        host::random_bytes(len).map_err(Error::internal)
    }

    /// A URL-safe random token with 256 bits of entropy (43 characters).
    pub fn random_token() -> String {
        host::random_token(32).expect("32 bytes is a valid token size")
    }

    /// HMAC-SHA256 of `message` under `key`.
    pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
        host::hmac_sha256(key, message)
    }

    /// Check an HMAC-SHA256 tag in constant time.
    pub fn hmac_sha256_verify(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
        host::hmac_sha256_verify(key, message, tag)
    }
}

/// The app's templates, rendered by the host with auto-escaping.
///
/// Using this module makes the component import `flagon:app/templates`; grant it with
/// `grants = { templates = true }`.
pub mod templates {
    use serde::Serialize;

    use crate::Error;
    use crate::bindings::flagon::app::templates as host;

    /// Render the template `name` (a path under the app's `templates/`) with `context`, which
    /// must serialize to a JSON object. A failed render is a 500 (the host logs the template
    /// and line, and answers 500 whatever the handler returns).
    pub fn render<C: Serialize + ?Sized>(name: &str, context: &C) -> Result<String, Error> {
        let json = serde_json::to_string(context)
            .map_err(|e| Error::internal(format!("template context: {e}")))?;
        host::render(name, &json).map_err(Error::internal)
    }
}

impl Response {
    /// Render the template `name` with `context` into a 200 response whose `Content-Type`
    /// follows the template's extension (`.html` -> `text/html`, `.txt` -> `text/plain`, ...).
    pub fn render<C: Serialize + ?Sized>(name: &str, context: &C) -> Result<Self, Error> {
        let body = templates::render(name, context)?;
        let ext = name
            .trim_end_matches(".j2")
            .trim_end_matches(".jinja")
            .rsplit('.')
            .next()
            .unwrap_or("");
        let ct = match ext {
            "txt" | "text" => "text/plain; charset=utf-8",
            "json" => "application/json",
            "xml" => "application/xml; charset=utf-8",
            "svg" => "image/svg+xml",
            "css" => "text/css; charset=utf-8",
            _ => "text/html; charset=utf-8",
        };
        Ok(Response::status(200)
            .with_header("content-type", ct)
            .with_body(body))
    }
}

/// The visitor's session, kept by the host in an encrypted cookie.
///
/// Using this module makes the component import `flagon:app/session`; grant it with
/// `grants = { session = true }`. Routes of such components get CSRF checks for unsafe methods:
/// put `{{ csrf_token() }}` in a form field named `csrf_token`, or send an `X-CSRF-Token` header.
pub mod session {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use crate::Error;
    use crate::bindings::flagon::app::session as host;

    /// Sign the visitor in for routes that `plugins/auth-session` authenticates: a new CSRF
    /// secret and session lifetime ([`rotate`], so a planted session is worth nothing), then
    /// the identity under `identity`. Check the password first
    /// ([`crate::crypto::verify_password`]).
    pub fn sign_in(subject: &str, name: Option<&str>, roles: &[&str]) -> Result<(), Error> {
        rotate();
        set_json(
            "identity",
            &serde_json::json!({ "subject": subject, "name": name, "roles": roles }),
        )
    }

    /// Sign out: empty the session (values, flashes and the CSRF secret).
    pub fn sign_out() {
        clear();
    }

    /// The value stored under `key`.
    pub fn get(key: &str) -> Option<String> {
        host::get(key)
    }

    /// The JSON value stored under `key` with [`set_json`], if it parses as `T`.
    pub fn get_json<T: DeserializeOwned>(key: &str) -> Option<T> {
        host::get(key).and_then(|v| serde_json::from_str(&v).ok())
    }

    /// Store `value` under `key`. Fails (500) if the session cookie would grow past its size
    /// limit: keep an id in the session and the data in `kv` or a database.
    pub fn set(key: &str, value: &str) -> Result<(), Error> {
        host::set(key, value).map_err(Error::internal)
    }

    /// Store `value` as JSON under `key`.
    pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
        let json = serde_json::to_string(value).map_err(|e| Error::internal(e.to_string()))?;
        set(key, &json)
    }

    /// Remove `key`; true when it was present.
    pub fn remove(key: &str) -> bool {
        host::remove(key)
    }

    /// Every key in the session.
    pub fn keys() -> Vec<String> {
        host::keys()
    }

    /// Empty the session (log out).
    pub fn clear() {
        host::clear()
    }

    /// New CSRF secret and lifetime, same values: call it when privileges change (log in).
    pub fn rotate() {
        host::rotate()
    }

    /// Queue a message for the next page (`get_flashed_messages()` in templates).
    pub fn flash(category: &str, message: &str) -> Result<(), Error> {
        host::flash(category, message).map_err(Error::internal)
    }

    /// Take the queued (category, message) pairs.
    pub fn take_flashes() -> Vec<(String, String)> {
        host::take_flashes()
    }

    /// A CSRF token for this session, for a form field `csrf_token` or an `X-CSRF-Token`
    /// header.
    pub fn csrf_token() -> String {
        host::csrf_token()
    }
}

/// Named key-value stores (`[kv.<name>]` in the manifest).
///
/// Using this module makes the component import `flagon:app/kv`; grant stores with
/// `grants = { kv = ["cache"] }`.
pub mod kv {
    use std::time::Duration;

    use crate::Error;
    use crate::bindings::flagon::app::kv as host;

    /// A handle on the store `name`; every call fails if it was not granted.
    #[derive(Debug, Clone, Copy)]
    pub struct Store<'a> {
        name: &'a str,
    }

    /// The store `name`.
    pub fn store(name: &str) -> Store<'_> {
        Store { name }
    }

    impl Store<'_> {
        pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
            host::get(self.name, key).map_err(Error::internal)
        }

        /// The value as UTF-8 text (a 500 error if it is not).
        pub fn get_string(&self, key: &str) -> Result<Option<String>, Error> {
            match self.get(key)? {
                None => Ok(None),
                Some(v) => String::from_utf8(v)
                    .map(Some)
                    .map_err(|_| Error::internal(format!("value of `{key}` is not UTF-8"))),
            }
        }

        pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
            host::set(self.name, key, value.as_ref(), None).map_err(Error::internal)
        }

        /// Store a value that expires after `ttl`.
        pub fn set_with_ttl(
            &self,
            key: &str,
            value: impl AsRef<[u8]>,
            ttl: Duration,
        ) -> Result<(), Error> {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            host::set(self.name, key, value.as_ref(), Some(ms)).map_err(Error::internal)
        }

        pub fn delete(&self, key: &str) -> Result<bool, Error> {
            host::delete(self.name, key).map_err(Error::internal)
        }

        pub fn exists(&self, key: &str) -> Result<bool, Error> {
            host::exists(self.name, key).map_err(Error::internal)
        }

        /// Add `delta` to the integer under `key` (missing counts as 0); returns the sum.
        pub fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
            host::increment(self.name, key, delta).map_err(Error::internal)
        }

        /// [`Store::increment`], and a key this call creates expires after `ttl_ms`
        /// milliseconds (an existing key keeps its expiry): a counter for a fixed window.
        pub fn increment_new(&self, key: &str, delta: i64, ttl_ms: u64) -> Result<i64, Error> {
            host::increment_new(self.name, key, delta, ttl_ms).map_err(Error::internal)
        }

        /// Keys starting with `prefix`, sorted (at most 1000).
        pub fn keys(&self, prefix: &str) -> Result<Vec<String>, Error> {
            host::list_keys(self.name, prefix).map_err(Error::internal)
        }
    }
}

pub mod sql;

/// The time, from the host (`flagon:app/clock`, no grant needed). Works in both builds; in a
/// lean build it is the way to read a clock, since `std::time::SystemTime::now` panics there.
pub mod time {
    use crate::bindings::flagon::app::clock;

    /// Wall-clock time as nanoseconds since the Unix epoch (UTC).
    pub fn now() -> u64 {
        clock::now()
    }

    /// Wall-clock time as whole seconds since the Unix epoch (UTC).
    pub fn unix_seconds() -> u64 {
        clock::now() / 1_000_000_000
    }

    /// A point on the host's monotonic clock, for measuring elapsed time.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub struct Instant(u64);

    impl Instant {
        /// Now, on the monotonic clock.
        pub fn now() -> Self {
            Self(clock::monotonic())
        }

        /// How long ago this instant was.
        pub fn elapsed(&self) -> core::time::Duration {
            core::time::Duration::from_nanos(clock::monotonic().saturating_sub(self.0))
        }
    }
}

/// Secure random bytes from the host (`flagon:app/random`, no grant needed): the operating
/// system's source, in both builds. For tokens and password hashes see [`crypto`].
pub mod random {
    use crate::bindings::flagon::app::random;

    /// The most bytes one call to the host returns; [`fill`] asks as often as it needs.
    pub const MAX_BYTES: usize = 65536;

    /// `len` random bytes.
    pub fn bytes(len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        fill(&mut out);
        out
    }

    /// Fill `buf` with random bytes.
    pub fn fill(buf: &mut [u8]) {
        for chunk in buf.chunks_mut(MAX_BYTES) {
            // A chunk is at most MAX_BYTES long, which fits a u32.
            chunk.copy_from_slice(&random::bytes(chunk.len() as u32));
        }
    }

    /// A random `u64`.
    pub fn u64() -> u64 {
        let mut b = [0; 8];
        fill(&mut b);
        u64::from_le_bytes(b)
    }
}

#[doc(hidden)]
pub mod __private {
    use std::marker::PhantomData;

    use crate::bindings::Guest;
    use crate::bindings::flagon::app::types as wit;
    use crate::{Handler, Request, Response};

    /// Adapts a [`Handler`] to the generated `Guest` trait.
    pub struct Adapter<H>(PhantomData<H>);

    impl<H: Handler> Guest for Adapter<H> {
        fn handle(request: wit::Request) -> wit::Response {
            #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
            log_panics();
            let response = match H::handle(Request::from_wit(request)) {
                Ok(r) => r,
                Err(e) => Response::from(e),
            };
            response.into_wit()
        }
    }

    /// Without WASI a panic message would go nowhere: log it at error level (the host adds the
    /// component and request id), then let the panic trap as usual (the request gets a 500).
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    fn log_panics() {
        std::panic::set_hook(Box::new(|info| {
            crate::log::error(&format!("panicked: {info}"));
        }));
    }
}

/// Export a [`Handler`] implementation as this component's `handle` function.
#[macro_export]
macro_rules! export {
    ($handler:ty) => {
        type __FlagonExportedHandler = $crate::__private::Adapter<$handler>;
        $crate::bindings::__export_handler!(
            __FlagonExportedHandler with_types_in $crate::bindings
        );
    };
}

/// HTTP requests to the origins the manifest grants (`grants.outbound`), and nowhere else.
///
/// Using this module makes the component import `flagon:app/outbound-http`; grant it with
/// `grants = { outbound = ["https://api.example.com"] }`.
pub mod outbound {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use crate::bindings::flagon::app::outbound_http as host;
    use crate::{Error, Method};

    /// A request to send; build it with [`Request::get`], [`Request::post`] or [`Request::new`].
    #[derive(Debug, Clone)]
    pub struct Request {
        inner: host::OutgoingRequest,
    }

    impl Request {
        pub fn new(method: Method, url: impl Into<String>) -> Self {
            Self {
                inner: host::OutgoingRequest {
                    method,
                    url: url.into(),
                    headers: Vec::new(),
                    body: Vec::new(),
                },
            }
        }

        pub fn get(url: impl Into<String>) -> Self {
            Self::new(Method::Get, url)
        }

        pub fn post(url: impl Into<String>) -> Self {
            Self::new(Method::Post, url)
        }

        pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.inner.headers.push((name.into(), value.into()));
            self
        }

        pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
            self.inner.body = body.into();
            self
        }

        /// A JSON body with `Content-Type: application/json`.
        pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, Error> {
            let body = serde_json::to_vec(value).map_err(|e| Error::internal(e.to_string()))?;
            Ok(self.header("content-type", "application/json").body(body))
        }

        /// Send it. Refusals (origin not granted, private address, too large, timeout) and
        /// network failures are 502 errors carrying the host's reason.
        pub fn send(self) -> Result<Response, Error> {
            host::send(&self.inner)
                .map(|inner| Response { inner })
                .map_err(|e| Error::new(502, e))
        }
    }

    /// The final response, after redirects.
    #[derive(Debug, Clone)]
    pub struct Response {
        inner: host::IncomingResponse,
    }

    impl Response {
        pub fn status(&self) -> u16 {
            self.inner.status
        }

        /// The first value of header `name` (case-insensitive).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.inner
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        pub fn body(&self) -> &[u8] {
            &self.inner.body
        }

        /// The body as UTF-8 text (a 502 error if it is not).
        pub fn text(&self) -> Result<&str, Error> {
            std::str::from_utf8(&self.inner.body)
                .map_err(|_| Error::new(502, "the upstream response is not UTF-8"))
        }

        /// The body parsed as JSON (a 502 error if it does not fit `T`).
        pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
            serde_json::from_slice(&self.inner.body)
                .map_err(|e| Error::new(502, format!("invalid JSON from upstream: {e}")))
        }
    }
}
