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
//! Build it with `cargo build --release --target wasm32-wasip2` and point a `[components.<id>]`
//! entry of `flagon.toml` at the `.wasm` file. Every request gets a fresh instance, so statics do
//! not carry state from one request to the next.

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

/// The HTTP method of a request.
pub use wit::Method;

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

    /// Parse an `application/x-www-form-urlencoded` body into `T`.
    ///
    /// Another `Content-Type` is a 415 error; a form that does not fit `T` is a 400 error.
    pub fn form<T: DeserializeOwned>(&self) -> Result<T, Error> {
        if self.content_type() != "application/x-www-form-urlencoded" {
            return Err(Error::new(
                415,
                "expected a request body with `Content-Type: application/x-www-form-urlencoded`",
            ));
        }
        serde_urlencoded::from_bytes(&self.inner.body)
            .map_err(|e| Error::bad_request(format!("invalid form body: {e}")))
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
            let response = match H::handle(Request::from_wit(request)) {
                Ok(r) => r,
                Err(e) => Response::from(e),
            };
            response.into_wit()
        }
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
