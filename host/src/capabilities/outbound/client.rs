//! Outbound HTTP for guests, limited to the origins their manifest grants.
//!
//! A guest that can make HTTP requests from inside the server's network is the classic setting
//! for server-side request forgery (SSRF): a request to `http://169.254.169.254/` reads cloud
//! credentials, one to `http://127.0.0.1:6379/` talks to the local Redis. So the default is to
//! deny, and every request, including every redirect hop, passes these checks:
//!
//! 1. The URL is parsed with the `url` crate, which implements the WHATWG URL standard that
//!    browsers use. Alternative spellings of the same host (`http://2130706433/`,
//!    `http://0x7f.1/`, `http://[::ffff:127.0.0.1]/`, upper case, Unicode) are normalised before
//!    anything is compared, so no spelling reaches a host the allow-list did not name. URLs with
//!    credentials (`https://api.example.com@evil.com`) are refused outright because they exist
//!    mostly to fool the reader of a URL.
//! 2. The normalised scheme, host and port must match an [`AllowedOrigin`]. IP addresses match
//!    only an entry with exactly that (canonical) address; wildcards match names only.
//! 3. The connector resolves the host name itself, refuses the request when any resolved address
//!    is not public (loopback, private, link-local including cloud metadata, CGNAT, unique-local,
//!    multicast, documentation and the IPv4-in-IPv6 forms of these), and connects to the checked
//!    addresses. There is no second lookup, so DNS rebinding cannot swap the address between
//!    check and use. An origin granted as an IP literal (`http://127.0.0.1:8081`) or through
//!    [`AllowedOrigin::parse_with_private`] skips this check: the operator asked for it.
//! 4. Redirects are followed by this module, not by the HTTP client, so that each `location`
//!    goes through steps 1 to 3 again.
//!
//! Requests use HTTP/1.1 only (also over TLS, where ALPN offers only `http/1.1`): one protocol
//! keeps the framing rules that the header checks rely on simple, and guest calls to APIs do not
//! need multiplexing. TLS uses rustls with the `ring` provider and the Mozilla trust anchors
//! from `webpki-roots`, so certificate checks do not depend on the machine's CA store.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use url::{Host, Url};

use crate::manifest::origin::{AllowedOrigin, HostPattern, InvalidOrigin, Scheme};

/// Default for [`OutboundPolicy::timeout`]: long enough for a slow API, short enough that a
/// stuck upstream does not hold a guest instance for long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`OutboundPolicy::max_response_bytes`]; the body is buffered in host memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;
/// Default for [`OutboundPolicy::max_request_bytes`].
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// Default for [`OutboundPolicy::max_redirects`].
pub const DEFAULT_MAX_REDIRECTS: usize = 5;

/// How long an idle pooled connection is kept; upstreams commonly close theirs after 60 s or so.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per origin, so that one app cannot hold many sockets open.
const POOL_MAX_IDLE_PER_HOST: usize = 8;

/// Request headers a guest may not set. The host owns framing (`content-length`,
/// `transfer-encoding`), routing (`host`) and connection management (the hop-by-hop headers);
/// letting a guest set them would enable request smuggling or confuse the connection pool.
/// `proxy-*` headers are refused by prefix in [`validate_headers`].
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "http2-settings",
];

/// Headers that describe a request body; dropped with the body when a redirect turns the request
/// into a `GET` (as the Fetch standard does).
const BODY_HEADERS: &[HeaderName] = &[
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_LOCATION,
];

/// An outbound request failure. Every variant is safe to show to the guest: none contains a
/// request URL's path or query (which may carry tokens) or a header value.
#[derive(Clone, Debug, thiserror::Error)]
pub enum OutboundError {
    /// An `outbound` grant in the manifest is malformed; `reason` says how to write it.
    #[error(transparent)]
    InvalidOrigin(#[from] InvalidOrigin),
    /// The request (or redirect) URL cannot be used.
    #[error("invalid outbound url: {0}")]
    InvalidUrl(String),
    /// No grant matches the origin (`scheme://host:port`) of the request or of a redirect.
    #[error("outbound request to `{origin}` is not allowed: no `outbound` grant matches it")]
    NotAllowed { origin: String },
    /// The host resolved to an address that is not public, and its grant does not opt in.
    #[error(
        "outbound request to `{host}` refused: it resolves to `{ip}`, which is not a public \
         address (grant the IP literal, or grant the origin with private addresses allowed)"
    )]
    PrivateAddress { host: String, ip: IpAddr },
    /// The guest tried to set a header the host manages.
    #[error("request header `{name}` is managed by the host and may not be set")]
    ForbiddenHeader { name: String },
    /// A header name is not an HTTP token. The name is shown escaped.
    #[error(
        "invalid request header name `{name}`: use letters, digits and the symbols !#$%&'*+-.^_`|~"
    )]
    InvalidHeaderName { name: String },
    /// A header value contains CR, LF, NUL or another control character.
    #[error(
        "invalid value for request header `{name}`: control characters such as CR and LF are not allowed"
    )]
    InvalidHeaderValue { name: String },
    /// The method cannot be used for outbound requests.
    #[error("method `{method}` is not allowed for outbound requests")]
    MethodNotAllowed { method: String },
    /// The request body exceeds [`OutboundPolicy::max_request_bytes`].
    #[error("request body is larger than the limit of {max} bytes")]
    RequestTooLarge { max: usize },
    /// The response body exceeds [`OutboundPolicy::max_response_bytes`].
    #[error("response body is larger than the limit of {max} bytes")]
    TooLarge { max: usize },
    /// The request was redirected more than [`OutboundPolicy::max_redirects`] times.
    #[error("too many redirects (the limit is {max})")]
    TooManyRedirects { max: usize },
    /// The whole exchange, redirects included, took longer than [`OutboundPolicy::timeout`].
    #[error("outbound request timed out")]
    Timeout,
    /// Name resolution or the TCP connection failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// TLS setup or the handshake (including certificate verification) failed.
    #[error("tls error: {0}")]
    Tls(String),
    /// The HTTP exchange failed after connecting.
    #[error("http error: {0}")]
    Http(String),
}

/// What a guest may do with outbound HTTP: the granted origins and the limits. The default
/// grants nothing.
#[derive(Clone, Debug)]
pub struct OutboundPolicy {
    allowed: Vec<AllowedOrigin>,
    timeout: Duration,
    max_response_bytes: usize,
    max_redirects: usize,
    max_request_bytes: usize,
    /// Whether redirects are followed (and re-checked) here, or returned to the guest.
    follow_redirects: bool,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl OutboundPolicy {
    /// A policy allowing `allowed`, with the default limits.
    pub fn new(allowed: Vec<AllowedOrigin>) -> Self {
        Self {
            allowed,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            follow_redirects: true,
        }
    }

    /// A policy from manifest grant strings, each parsed with [`AllowedOrigin::parse`].
    pub fn from_grants<S: AsRef<str>>(grants: &[S]) -> Result<Self, OutboundError> {
        let allowed = grants
            .iter()
            .map(|g| AllowedOrigin::parse(g.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self::new(allowed))
    }

    /// Sets the total time limit: resolving, connecting, TLS, sending, every redirect and
    /// reading the body.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the largest response body read into memory.
    pub fn with_max_response_bytes(mut self, max: usize) -> Self {
        self.max_response_bytes = max;
        self
    }

    /// Sets how many redirects are followed; with 0, any redirect is an error.
    pub fn with_max_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }

    /// Returns redirects to the guest as they are, unfollowed: `wasi:http` clients follow
    /// redirects themselves, each one a new request that passes every check again.
    pub fn returning_redirects(mut self) -> Self {
        self.follow_redirects = false;
        self
    }

    /// Sets the largest request body a guest may send.
    pub fn with_max_request_bytes(mut self, max: usize) -> Self {
        self.max_request_bytes = max;
        self
    }

    /// The granted origins.
    pub fn allowed(&self) -> &[AllowedOrigin] {
        &self.allowed
    }

    /// The total time limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The response body limit in bytes.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// The redirect limit.
    pub fn max_redirects(&self) -> usize {
        self.max_redirects
    }

    /// The request body limit in bytes.
    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }

    /// Whether the target matches a grant, and if so whether any matching grant allows private
    /// addresses. `None` when nothing matches.
    fn check(&self, target: &Target) -> Option<bool> {
        self.allowed
            .iter()
            .filter(|o| origin_matches(o, target))
            .fold(None, |acc, o| {
                Some(acc.unwrap_or(false) || o.allow_private())
            })
    }
}

/// Whether `target` is what `origin` grants: the same scheme and port, and a matching host.
fn origin_matches(origin: &AllowedOrigin, target: &Target) -> bool {
    origin.scheme() == target.scheme
        && origin.port() == target.port
        && host_matches(origin.host(), &target.host)
}

fn host_matches(pattern: &HostPattern, host: &TargetHost) -> bool {
    match (pattern, host) {
        (HostPattern::Exact(name), TargetHost::Domain(d)) => name == d,
        (HostPattern::Subdomains(base), TargetHost::Domain(d)) => d
            .strip_suffix(base.as_str())
            .and_then(|prefix| prefix.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty()),
        (HostPattern::Ip(ip), TargetHost::Ip(t)) => ip == t,
        _ => false,
    }
}

/// A request from a guest.
#[derive(Clone)]
pub struct OutboundRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Shows the method, the header names and the body length only: the URL's query and the header
/// values often carry credentials.
impl fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The final response, after redirects. Header values that are not UTF-8 are converted lossily.
#[derive(Clone, Debug)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

type HttpClient = Client<GuardedConnector, Full<Bytes>>;

/// The outbound HTTP client of one app; cheap to clone, and meant to be shared by all of the
/// app's instances so that connections are pooled.
///
/// It holds two pools: one whose connector refuses non-public addresses, and one whose
/// connector does not, used only for origins granted with private addresses allowed. Keeping
/// them apart means a connection opened under the relaxed rule is never reused for a request
/// that should have been checked.
#[derive(Clone)]
pub struct OutboundClient {
    public_only: HttpClient,
    with_private: HttpClient,
}

impl fmt::Debug for OutboundClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundClient").finish_non_exhaustive()
    }
}

impl OutboundClient {
    /// Builds the TLS configuration and the two connection pools. Needs no runtime; `send` must
    /// run inside a Tokio runtime with I/O and time enabled.
    pub fn new() -> Result<Self, OutboundError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| OutboundError::Tls(format!("cannot configure tls: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = TlsConnector::from(Arc::new(config));

        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .set_host(false);
        Ok(Self {
            public_only: builder.build(GuardedConnector {
                tls: tls.clone(),
                allow_private: false,
            }),
            with_private: builder.build(GuardedConnector {
                tls,
                allow_private: true,
            }),
        })
    }

    /// Sends `req` if `policy` allows it, following redirects that the policy also allows, and
    /// returns the final response with its body read into memory.
    pub async fn send(
        &self,
        policy: &OutboundPolicy,
        req: OutboundRequest,
    ) -> Result<OutboundResponse, OutboundError> {
        if req.method == Method::CONNECT {
            return Err(OutboundError::MethodNotAllowed {
                method: req.method.to_string(),
            });
        }
        if req.body.len() > policy.max_request_bytes {
            return Err(OutboundError::RequestTooLarge {
                max: policy.max_request_bytes,
            });
        }
        let headers = validate_headers(&req.headers)?;
        let url = normalise_url(
            Url::parse(&req.url).map_err(|e| OutboundError::InvalidUrl(e.to_string()))?,
        )?;
        let exchange = self.exchange(policy, req.method, url, headers, Bytes::from(req.body));
        tokio::time::timeout(policy.timeout, exchange)
            .await
            .unwrap_or(Err(OutboundError::Timeout))
    }

    /// The request and its redirects, without the overall timeout.
    async fn exchange(
        &self,
        policy: &OutboundPolicy,
        mut method: Method,
        mut url: Url,
        mut headers: HeaderMap,
        mut body: Bytes,
    ) -> Result<OutboundResponse, OutboundError> {
        let mut redirects = 0;
        loop {
            let target = Target::of(&url)?;
            let allow_private = policy
                .check(&target)
                .ok_or_else(|| OutboundError::NotAllowed {
                    origin: target.to_string(),
                })?;
            let client = if allow_private {
                &self.with_private
            } else {
                &self.public_only
            };

            let uri: Uri = url
                .as_str()
                .parse()
                .map_err(|e| OutboundError::InvalidUrl(format!("the url cannot be sent: {e}")))?;
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri;
            *request.headers_mut() = headers.clone();
            request
                .headers_mut()
                .insert(header::HOST, target.host_header()?);
            let response = client.request(request).await.map_err(client_error)?;

            let status = response.status();
            let location = redirect_location(&response).filter(|_| policy.follow_redirects);
            let Some(location) = location else {
                return read_response(response, &method, policy.max_response_bytes).await;
            };
            if redirects >= policy.max_redirects {
                return Err(OutboundError::TooManyRedirects {
                    max: policy.max_redirects,
                });
            }
            redirects += 1;
            let location = std::str::from_utf8(location.as_bytes()).map_err(|_| {
                OutboundError::InvalidUrl("the redirect `location` is not valid UTF-8".into())
            })?;
            let next = normalise_url(url.join(location).map_err(|e| {
                OutboundError::InvalidUrl(format!("the redirect `location` is invalid: {e}"))
            })?)?;
            // The body of a redirect is not needed; dropping it closes that connection rather
            // than reading an unbounded body just to reuse it.
            drop(response);

            let to_get = status == StatusCode::SEE_OTHER && method != Method::HEAD
                || matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && method == Method::POST;
            if to_get {
                method = Method::GET;
                body = Bytes::new();
                for name in BODY_HEADERS {
                    headers.remove(name);
                }
            }
            // Credentials meant for one origin must not leak to another, even an allowed one.
            if Target::of(&next)? != target {
                headers.remove(header::AUTHORIZATION);
                headers.remove(header::COOKIE);
            }
            url = next;
        }
    }
}

/// The `location` of a response that is a redirect this module follows.
fn redirect_location(response: &Response<Incoming>) -> Option<HeaderValue> {
    match response.status() {
        StatusCode::MOVED_PERMANENTLY
        | StatusCode::FOUND
        | StatusCode::SEE_OTHER
        | StatusCode::TEMPORARY_REDIRECT
        | StatusCode::PERMANENT_REDIRECT => response.headers().get(header::LOCATION).cloned(),
        _ => None,
    }
}

/// Reads the body, refusing it as soon as it is known to exceed `max` bytes.
async fn read_response(
    response: Response<Incoming>,
    method: &Method,
    max: usize,
) -> Result<OutboundResponse, OutboundError> {
    let (parts, mut body) = response.into_parts();
    // A `HEAD`, 204 or 304 response has no body, but its `content-length` may describe one.
    let bodiless = *method == Method::HEAD
        || matches!(
            parts.status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        );
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .filter(|_| !bodiless)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(OutboundError::TooLarge { max });
    }
    let capacity = declared.map_or(0, |len| usize::try_from(len).unwrap_or(max).min(max));
    let mut buf = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| OutboundError::Http(format!("reading the body: {}", chain(&e))))?;
        if let Ok(data) = frame.into_data() {
            if buf.len().saturating_add(data.len()) > max {
                return Err(OutboundError::TooLarge { max });
            }
            buf.extend_from_slice(&data);
        }
    }
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(OutboundResponse {
        status: parts.status.as_u16(),
        headers,
        body: buf,
    })
}

/// Checks the guest's headers and converts them; see [`FORBIDDEN_HEADERS`].
fn validate_headers(headers: &[(String, String)]) -> Result<HeaderMap, OutboundError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        // `from_bytes` lowercases, so the forbidden-list comparison is case-insensitive.
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            OutboundError::InvalidHeaderName {
                name: name.escape_debug().to_string(),
            }
        })?;
        if FORBIDDEN_HEADERS.contains(&name.as_str()) || name.as_str().starts_with("proxy-") {
            return Err(OutboundError::ForbiddenHeader {
                name: name.as_str().to_owned(),
            });
        }
        let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
            OutboundError::InvalidHeaderValue {
                name: name.as_str().to_owned(),
            }
        })?;
        map.append(name, value);
    }
    Ok(map)
}

/// Applies the URL rules that do not depend on the policy: scheme, no credentials, a host, no
/// fragment, no trailing dot on the host.
fn normalise_url(mut url: Url) -> Result<Url, OutboundError> {
    if Scheme::from_url_scheme(url.scheme()).is_none() {
        return Err(OutboundError::InvalidUrl(format!(
            "the scheme `{}` is not allowed; use `http` or `https`",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OutboundError::InvalidUrl(
            "urls with user info (`user@` or `user:password@`) are not allowed; send credentials \
             in a header"
                .into(),
        ));
    }
    url.set_fragment(None);
    // `example.com.` and `example.com` are the same name to DNS; compare and connect without
    // the dot so that grants and certificates match.
    if let Some(Host::Domain(name)) = url.host()
        && let Some(stripped) = name.strip_suffix('.')
    {
        let stripped = stripped.to_owned();
        if stripped.is_empty() || stripped.ends_with('.') {
            return Err(OutboundError::InvalidUrl("the host is not valid".into()));
        }
        url.set_host(Some(&stripped))
            .map_err(|e| OutboundError::InvalidUrl(e.to_string()))?;
    }
    match url.host() {
        None => Err(OutboundError::InvalidUrl("the url has no host".into())),
        Some(Host::Domain("")) => Err(OutboundError::InvalidUrl("the host is empty".into())),
        Some(_) => Ok(url),
    }
}

/// The normalised origin of a request URL, as compared against the grants.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    scheme: Scheme,
    host: TargetHost,
    port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TargetHost {
    Domain(String),
    Ip(IpAddr),
}

impl Target {
    /// The origin of a URL that passed [`normalise_url`].
    fn of(url: &Url) -> Result<Self, OutboundError> {
        let scheme = Scheme::from_url_scheme(url.scheme()).ok_or_else(|| {
            OutboundError::InvalidUrl(format!("the scheme `{}` is not allowed", url.scheme()))
        })?;
        let host = match url.host() {
            Some(Host::Domain(name)) => TargetHost::Domain(name.to_owned()),
            Some(Host::Ipv4(ip)) => TargetHost::Ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => TargetHost::Ip(IpAddr::V6(ip)),
            None => return Err(OutboundError::InvalidUrl("the url has no host".into())),
        };
        let port = url.port().unwrap_or(scheme.default_port());
        Ok(Self { scheme, host, port })
    }

    /// The `host` header: the host, and the port when it is not the scheme's default.
    fn host_header(&self) -> Result<HeaderValue, OutboundError> {
        let host = match &self.host {
            TargetHost::Domain(name) => name.clone(),
            TargetHost::Ip(IpAddr::V4(ip)) => ip.to_string(),
            TargetHost::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
        };
        let value = if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        };
        HeaderValue::try_from(value)
            .map_err(|_| OutboundError::InvalidUrl("the host cannot be sent in a header".into()))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            TargetHost::Domain(name) => HostPattern::Exact(name.clone()),
            TargetHost::Ip(ip) => HostPattern::Ip(*ip),
        };
        write!(f, "{}://{host}:{}", self.scheme.as_str(), self.port)
    }
}

/// Maps a client error, recovering the [`OutboundError`] the connector returned, if any.
fn client_error(err: hyper_util::client::legacy::Error) -> OutboundError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(outbound) = e.downcast_ref::<OutboundError>() {
            return outbound.clone();
        }
        source = e.source();
    }
    if err.is_connect() {
        OutboundError::Connect(chain(&err))
    } else {
        OutboundError::Http(chain(&err))
    }
}

/// An error and its sources, joined with `: `.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    message
}

/// Resolves, checks and connects; the only place where addresses are looked up, so the address
/// that was checked is the one used.
#[derive(Clone)]
struct GuardedConnector {
    tls: TlsConnector,
    allow_private: bool,
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<Stream>;
    type Error = OutboundError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, OutboundError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(uri).await.map(TokioIo::new) })
    }
}

impl GuardedConnector {
    async fn connect(self, uri: Uri) -> Result<Stream, OutboundError> {
        let scheme = uri
            .scheme_str()
            .and_then(Scheme::from_url_scheme)
            .ok_or_else(|| {
                OutboundError::Connect("the url has no `http` or `https` scheme".into())
            })?;
        let host = uri
            .host()
            .ok_or_else(|| OutboundError::Connect("the url has no host".into()))?;
        let port = uri.port_u16().unwrap_or(scheme.default_port());

        let ip_literal = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => Some(IpAddr::V6(v6.parse::<Ipv6Addr>().map_err(|_| {
                OutboundError::Connect(format!("`{host}` is not a valid IPv6 address"))
            })?)),
            None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        };
        let addrs: Vec<SocketAddr> = match ip_literal {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| OutboundError::Connect(format!("cannot resolve `{host}`: {e}")))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(OutboundError::Connect(format!(
                "`{host}` did not resolve to any address"
            )));
        }
        if !self.allow_private {
            check_addresses(host, &addrs)?;
        }

        let tcp = connect_any(host, &addrs).await?;
        match scheme {
            Scheme::Http => Ok(Stream::Plain(tcp)),
            Scheme::Https => {
                let server_name = match ip_literal {
                    Some(ip) => ServerName::IpAddress(ip.into()),
                    None => ServerName::try_from(host.to_owned()).map_err(|e| {
                        OutboundError::Tls(format!("`{host}` is not a valid tls server name: {e}"))
                    })?,
                };
                let tls = self.tls.connect(server_name, tcp).await.map_err(|e| {
                    OutboundError::Tls(format!("handshake with `{host}` failed: {}", chain(&e)))
                })?;
                Ok(Stream::Tls(Box::new(tls)))
            }
        }
    }
}

/// Tries the addresses in resolver order; the overall timeout bounds the attempts.
async fn connect_any(host: &str, addrs: &[SocketAddr]) -> Result<TcpStream, OutboundError> {
    let mut last_error = format!("`{host}` has no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                // Requests are written in one go; Nagle would only add latency.
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last_error = format!("`{host}` at `{addr}`: {e}"),
        }
    }
    Err(OutboundError::Connect(last_error))
}

/// Refuses the whole resolution if any address is not public: with several addresses the
/// client may use any of them, and an attacker controlling DNS chooses the order.
fn check_addresses(host: &str, addrs: &[SocketAddr]) -> Result<(), OutboundError> {
    match addrs.iter().find(|a| !is_public(a.ip())) {
        Some(addr) => Err(OutboundError::PrivateAddress {
            host: host.to_owned(),
            ip: addr.ip(),
        }),
        None => Ok(()),
    }
}

/// IPv4 ranges that are not publicly routable (IANA special-purpose registry), with prefix
/// length.
const NON_PUBLIC_V4: &[(Ipv4Addr, u32)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8), // "this network", includes the unspecified address
    (Ipv4Addr::new(10, 0, 0, 0), 8), // private
    (Ipv4Addr::new(100, 64, 0, 0), 10), // carrier-grade NAT
    (Ipv4Addr::new(127, 0, 0, 0), 8), // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16), // link-local, includes cloud metadata 169.254.169.254
    (Ipv4Addr::new(172, 16, 0, 0), 12), // private
    (Ipv4Addr::new(192, 0, 0, 0), 24), // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24), // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24), // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16), // private
    (Ipv4Addr::new(198, 18, 0, 0), 15), // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24), // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4), // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4), // reserved, includes broadcast 255.255.255.255
];

/// IPv6 ranges inside global unicast (`2000::/3`) that are not publicly routable. Everything
/// outside `2000::/3` is refused anyway, except the IPv4-embedding forms checked separately.
const NON_PUBLIC_V6: &[(Ipv6Addr, u32)] = &[
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments, incl. Teredo
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation (RFC 9637)
];

/// Whether `ip` is a public unicast address that a guest may reach through a name grant.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !NON_PUBLIC_V4
        .iter()
        .any(|&(net, len)| prefix_matches(u32::from(ip).into(), u32::from(net).into(), len, 32))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    let in_net = |net: Ipv6Addr, len: u32| prefix_matches(bits, u128::from(net), len, 128);
    // The IPv4 address embedded in the low 32 bits.
    let low_v4 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);

    // IPv4-mapped (`::ffff:a.b.c.d`): the kernel sends these to the IPv4 address.
    if in_net(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96) {
        return is_public_v4(low_v4);
    }
    // NAT64 well-known prefix: a gateway forwards to the embedded IPv4 address.
    if in_net(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return is_public_v4(low_v4);
    }
    // 6to4: the embedded IPv4 address is in bits 16 to 48.
    if in_net(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        return is_public_v4(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    // Outside global unicast: unspecified, loopback, IPv4-compatible, discard-only, unique-local,
    // link-local, site-local, multicast and unassigned space.
    if !in_net(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        return false;
    }
    !NON_PUBLIC_V6.iter().any(|&(net, len)| in_net(net, len))
}

/// Whether the top `len` of `width` bits of `addr` and `net` agree.
fn prefix_matches(addr: u128, net: u128, len: u32, width: u32) -> bool {
    let mask = u128::MAX
        .checked_shl(128 - len)
        .unwrap_or(0)
        .checked_shr(128 - width)
        .unwrap_or(0);
    (addr ^ net) & mask == 0
}

/// A plain or TLS connection, so that one connector serves both schemes.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use http_body_util::combinators::BoxBody;
    use hyper::body::{Body, Frame, SizeHint};
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    use super::*;

    const BIG: usize = 20 * 1024 * 1024;
    static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

    /// `remaining` bytes of filler, streamed in chunks; with `declare`, a `content-length` too.
    struct Filler {
        remaining: usize,
        declare: bool,
    }

    impl Body for Filler {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if self.remaining == 0 {
                return Poll::Ready(None);
            }
            let n = self.remaining.min(CHUNK.len());
            self.remaining -= n;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..n])))))
        }

        fn size_hint(&self) -> SizeHint {
            if self.declare {
                SizeHint::with_exact(self.remaining as u64)
            } else {
                SizeHint::default()
            }
        }
    }

    type TestBody = BoxBody<Bytes, Infallible>;

    struct Server {
        port: u16,
        accepted: Arc<AtomicUsize>,
    }

    /// A test server on 127.0.0.1; its tasks end with the test's runtime.
    async fn serve() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, port));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server { port, accepted }
    }

    fn text(status: u16, body: impl Into<Bytes>) -> Response<TestBody> {
        Response::builder()
            .status(status)
            .body(Full::new(body.into()).boxed())
            .unwrap()
    }

    fn redirect(status: u16, to: &str) -> Response<TestBody> {
        Response::builder()
            .status(status)
            .header("location", to)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap()
    }

    async fn handle(req: Request<Incoming>, port: u16) -> Result<Response<TestBody>, Infallible> {
        let query: Vec<(String, String)> =
            url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let param = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let path = req.uri().path().to_owned();
        Ok(match path.as_str() {
            "/ok" => text(200, "hello"),
            "/echo" => {
                let method = req.method().clone();
                let body = req.into_body().collect().await.unwrap().to_bytes();
                text(200, format!("{method}\n{}", String::from_utf8_lossy(&body)))
            }
            "/echo-headers" => {
                let mut out = String::new();
                for (name, value) in req.headers() {
                    out.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
                }
                text(200, out)
            }
            "/big" => Response::new(
                Filler {
                    remaining: BIG,
                    declare: false,
                }
                .boxed(),
            ),
            "/big-declared" => Response::new(
                Filler {
                    remaining: BIG,
                    declare: true,
                }
                .boxed(),
            ),
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                text(200, "late")
            }
            "/redirect-ok" => redirect(302, "/ok"),
            "/redirect-evil" => redirect(302, &format!("http://127.0.0.2:{port}/ok")),
            "/redirect-unlisted" => redirect(302, "https://unlisted.example/ok"),
            "/redirect-loop" => redirect(302, "/redirect-loop"),
            "/redirect" => {
                let status = param("status").map_or(302, |s| s.parse().unwrap());
                redirect(status, &param("to").unwrap())
            }
            _ => text(404, "not found"),
        })
    }

    fn local(port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }

    fn policy(grants: &[String]) -> OutboundPolicy {
        OutboundPolicy::from_grants(grants).unwrap()
    }

    fn get(url: impl Into<String>) -> OutboundRequest {
        OutboundRequest {
            method: Method::GET,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    async fn send(
        policy: &OutboundPolicy,
        req: OutboundRequest,
    ) -> Result<OutboundResponse, OutboundError> {
        OutboundClient::new().unwrap().send(policy, req).await
    }

    fn header<'a>(response: &'a OutboundResponse, name: &str) -> Option<&'a str> {
        response
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `url` passes the URL rules and the allow-list, without sending anything.
    fn allowed(policy: &OutboundPolicy, url: &str) -> bool {
        let url = normalise_url(Url::parse(url).unwrap()).unwrap();
        policy.check(&Target::of(&url).unwrap()).is_some()
    }

    #[tokio::test]
    async fn allowed_get_works() {
        let server = serve().await;
        let policy = policy(&[local(server.port)]);
        let response = send(&policy, get(format!("{}/ok#fragment", local(server.port))))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello");
        assert_eq!(header(&response, "content-length"), Some("5"));
    }

    #[tokio::test]
    async fn client_is_shared_across_requests() {
        let server = serve().await;
        let policy = policy(&[local(server.port)]);
        let client = OutboundClient::new().unwrap();
        for _ in 0..3 {
            let response = client
                .send(&policy, get(format!("{}/ok", local(server.port))))
                .await
                .unwrap();
            assert_eq!(response.body, b"hello");
        }
        // The pool reuses the connection.
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn post_with_body() {
        let server = serve().await;
        let policy = policy(&[local(server.port)]);
        let request = OutboundRequest {
            method: Method::POST,
            url: format!("{}/echo", local(server.port)),
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: b"payload".to_vec(),
        };
        let response = send(&policy, request).await.unwrap();
        assert_eq!(response.body, b"POST\npayload");
    }

    #[tokio::test]
    async fn host_header_comes_from_the_url() {
        let server = serve().await;
        let policy = policy(&[local(server.port)]);
        let response = send(&policy, get(format!("{}/echo-headers", local(server.port))))
            .await
            .unwrap();
        let body = String::from_utf8(response.body).unwrap();
        assert!(
            body.contains(&format!("host: 127.0.0.1:{}\n", server.port)),
            "{body}"
        );
    }

    #[tokio::test]
    async fn unlisted_origin_is_refused_before_connecting() {
        let server = serve().await;
        let other = serve().await;
        let policy = policy(&[local(other.port)]);
        let err = send(&policy, get(format!("{}/ok", local(server.port))))
            .await
            .unwrap_err();
        assert!(
            matches!(err, OutboundError::NotAllowed { ref origin } if *origin == format!("http://127.0.0.1:{}", server.port)),
            "{err}"
        );
        // Same host and port, other scheme.
        let err = send(&policy, get(format!("https://127.0.0.1:{}/ok", other.port)))
            .await
            .unwrap_err();
        assert!(matches!(err, OutboundError::NotAllowed { .. }), "{err}");
        let deny_all = OutboundPolicy::default();
        let err = send(&deny_all, get(format!("{}/ok", local(server.port))))
            .await
            .unwrap_err();
        assert!(matches!(err, OutboundError::NotAllowed { .. }), "{err}");
        assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
        assert_eq!(other.accepted.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn userinfo_and_other_schemes_are_refused() {
        let server = serve().await;
        let port = server.port;
        let policy = policy(&[local(port), "https://api.example.com".into()]);
        for url in [
            "https://api.example.com@evil.com/".to_owned(),
            "https://user:pw@api.example.com/".to_owned(),
            "https://user@api.example.com/".to_owned(),
            "https://:pw@api.example.com/".to_owned(),
            format!("http://user@127.0.0.1:{port}/ok"),
            format!("http://127.0.0.1:{port}@evil.example/ok"),
        ] {
            let err = send(&policy, get(url.clone())).await.unwrap_err();
            assert!(matches!(err, OutboundError::InvalidUrl(_)), "{url}: {err}");
        }
        for url in [
            "ftp://api.example.com/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "data:text/plain,hi",
            "http://",
            "not a url",
            "http://127.0.0.1%40evil.example/",
        ] {
            let err = send(&policy, get(url)).await.unwrap_err();
            assert!(matches!(err, OutboundError::InvalidUrl(_)), "{url}: {err}");
        }
        // A `@` after `#` or `?` is not user info, and the host is the one before it.
        for url in [
            "https://evil.com#@api.example.com",
            "https://evil.com?@api.example.com",
        ] {
            let err = send(&policy, get(url)).await.unwrap_err();
            assert!(
                matches!(err, OutboundError::NotAllowed { .. }),
                "{url}: {err}"
            );
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn loopback_spellings_are_refused_when_only_a_name_is_allowed() {
        let server = serve().await;
        let port = server.port;
        let policy = policy(&[format!("http://localhost.example:{port}")]);
        for host in [
            "127.0.0.1",
            "2130706433",
            "0x7f.1",
            "0x7f000001",
            "127.1",
            "127.0.1",
            "0177.0.0.1",
            "0177.1",
            "127.0.0.1.",
            "%31%32%37.0.0.1",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[::1]",
            "[0:0:0:0:0:0:0:1]",
            "[::127.0.0.1]",
            "0",
            "0.0.0.0",
            "localhost",
        ] {
            let url = format!("http://{host}:{port}/ok");
            let err = send(&policy, get(url.clone())).await.unwrap_err();
            assert!(
                matches!(err, OutboundError::NotAllowed { .. }),
                "{url}: {err}"
            );
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn ip_spellings_match_their_canonical_grant_only() {
        let server = serve().await;
        let port = server.port;
        let policy = policy(&[local(port)]);
        for host in ["127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1"] {
            let response = send(&policy, get(format!("http://{host}:{port}/ok")))
                .await
                .unwrap();
            assert_eq!(response.body, b"hello", "{host}");
        }
        for host in ["[::ffff:127.0.0.1]", "[::1]", "127.0.0.2", "localhost"] {
            let err = send(&policy, get(format!("http://{host}:{port}/ok")))
                .await
                .unwrap_err();
            assert!(
                matches!(err, OutboundError::NotAllowed { .. }),
                "{host}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn name_resolving_to_loopback_needs_the_private_opt_in() {
        let server = serve().await;
        let port = server.port;
        let grant = format!("http://localhost:{port}");
        let strict = OutboundPolicy::new(vec![AllowedOrigin::parse(&grant).unwrap()]);
        let err = send(&strict, get(format!("{grant}/ok"))).await.unwrap_err();
        match err {
            OutboundError::PrivateAddress { host, ip } => {
                assert_eq!(host, "localhost");
                assert!(ip.is_loopback(), "{ip}");
            }
            other => panic!("expected `PrivateAddress`, got {other}"),
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 0);

        let opted_in =
            OutboundPolicy::new(vec![AllowedOrigin::parse_with_private(&grant).unwrap()]);
        let response = send(&opted_in, get(format!("{grant}/ok"))).await.unwrap();
        assert_eq!(response.body, b"hello");
    }

    #[tokio::test]
    async fn cloud_metadata_is_refused() {
        let policy = policy(&["http://metadata.example".into()]);
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/",
        ] {
            let err = send(&policy, get(url)).await.unwrap_err();
            assert!(
                matches!(err, OutboundError::NotAllowed { .. }),
                "{url}: {err}"
            );
        }
        // A name that resolves there is refused by the connector's check.
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let err =
            check_addresses("metadata.example", &[SocketAddr::new(metadata, 80)]).unwrap_err();
        assert!(
            matches!(err, OutboundError::PrivateAddress { ip, .. } if ip == metadata),
            "{err}"
        );
        // One bad address among good ones is enough.
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let mixed = [SocketAddr::new(public, 80), SocketAddr::new(metadata, 80)];
        assert!(check_addresses("mixed.example", &mixed).is_err());
        assert!(check_addresses("public.example", &mixed[..1]).is_ok());
    }

    #[test]
    fn address_classification() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::8.8.8.8",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "5f00::1",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert!(!is_public(parsed), "{ip} should not be public");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert!(is_public(parsed), "{ip} should be public");
        }
    }

    #[tokio::test]
    async fn redirect_to_allowed_origin_is_followed() {
        let server = serve().await;
        let policy = policy(&[local(server.port)]);
        let response = send(&policy, get(format!("{}/redirect-ok", local(server.port))))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello");
    }

    #[tokio::test]
    async fn redirect_to_unlisted_origin_is_refused() {
        let server = serve().await;
        let policy = policy(&[local(server.port)]);
        for path in ["/redirect-evil", "/redirect-unlisted"] {
            let err = send(&policy, get(format!("{}{path}", local(server.port))))
                .await
                .unwrap_err();
            assert!(
                matches!(err, OutboundError::NotAllowed { .. }),
                "{path}: {err}"
            );
        }
        let to_file = format!("{}/redirect?to=file:///etc/passwd", local(server.port));
        let err = send(&policy, get(to_file)).await.unwrap_err();
        assert!(matches!(err, OutboundError::InvalidUrl(_)), "{err}");
    }

    #[tokio::test]
    async fn redirect_to_a_name_resolving_to_loopback_is_refused() {
        let server = serve().await;
        let port = server.port;
        let policy = policy(&[local(port), format!("http://localhost:{port}")]);
        let to = format!("http://localhost:{port}/ok");
        let err = send(&policy, get(format!("{}/redirect?to={to}", local(port))))
            .await
            .unwrap_err();
        assert!(matches!(err, OutboundError::PrivateAddress { .. }), "{err}");
    }

    #[tokio::test]
    async fn redirect_loop_stops() {
        let server = serve().await;
        let policy = policy(&[local(server.port)]);
        let err = send(
            &policy,
            get(format!("{}/redirect-loop", local(server.port))),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                OutboundError::TooManyRedirects {
                    max: DEFAULT_MAX_REDIRECTS
                }
            ),
            "{err}"
        );
        let no_redirects = policy.clone().with_max_redirects(0);
        let err = send(
            &no_redirects,
            get(format!("{}/redirect-ok", local(server.port))),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, OutboundError::TooManyRedirects { max: 0 }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn redirects_switch_to_get_as_browsers_do() {
        let server = serve().await;
        let policy = policy(&[local(server.port)]);
        let post = |status: u16| OutboundRequest {
            method: Method::POST,
            url: format!("{}/redirect?status={status}&to=/echo", local(server.port)),
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"payload".to_vec(),
        };
        for (status, expected) in [
            (301, "GET\n"),
            (302, "GET\n"),
            (303, "GET\n"),
            (307, "POST\npayload"),
            (308, "POST\npayload"),
        ] {
            let response = send(&policy, post(status)).await.unwrap();
            assert_eq!(
                String::from_utf8(response.body).unwrap(),
                expected,
                "{status}"
            );
        }
        let put = OutboundRequest {
            method: Method::PUT,
            ..post(302)
        };
        let response = send(&policy, put).await.unwrap();
        assert_eq!(response.body, b"PUT\npayload");
    }

    #[tokio::test]
    async fn credentials_are_dropped_on_cross_origin_redirect() {
        let a = serve().await;
        let b = serve().await;
        let policy = policy(&[local(a.port), local(b.port)]);
        let request = |to: String| OutboundRequest {
            method: Method::GET,
            url: format!("{}/redirect?to={to}", local(a.port)),
            headers: vec![
                ("Authorization".into(), "Bearer secret".into()),
                ("Cookie".into(), "session=secret".into()),
                ("X-Keep".into(), "yes".into()),
            ],
            body: Vec::new(),
        };

        let cross = send(&policy, request(format!("{}/echo-headers", local(b.port))))
            .await
            .unwrap();
        let cross = String::from_utf8(cross.body).unwrap();
        assert!(!cross.contains("authorization"), "{cross}");
        assert!(!cross.contains("cookie"), "{cross}");
        assert!(cross.contains("x-keep: yes"), "{cross}");
        assert!(
            cross.contains(&format!("host: 127.0.0.1:{}", b.port)),
            "{cross}"
        );

        let same = send(&policy, request("/echo-headers".into()))
            .await
            .unwrap();
        let same = String::from_utf8(same.body).unwrap();
        assert!(same.contains("authorization: Bearer secret"), "{same}");
        assert!(same.contains("cookie: session=secret"), "{same}");
    }

    #[tokio::test]
    async fn total_timeout() {
        let server = serve().await;
        let policy = policy(&[local(server.port)]).with_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let err = send(&policy, get(format!("{}/slow", local(server.port))))
            .await
            .unwrap_err();
        assert!(matches!(err, OutboundError::Timeout), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn oversized_response_is_refused() {
        let server = serve().await;
        let policy = policy(&[local(server.port)]);
        for path in ["/big", "/big-declared"] {
            let err = send(&policy, get(format!("{}{path}", local(server.port))))
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    OutboundError::TooLarge {
                        max: DEFAULT_MAX_RESPONSE_BYTES
                    }
                ),
                "{path}: {err}"
            );
        }
        let head = OutboundRequest {
            method: Method::HEAD,
            ..get(format!("{}/big-declared", local(server.port)))
        };
        let response = send(&policy, head).await.unwrap();
        assert_eq!(header(&response, "content-length"), Some("20971520"));
        assert!(response.body.is_empty());
        let tiny = policy.clone().with_max_response_bytes(4);
        let err = send(&tiny, get(format!("{}/ok", local(server.port))))
            .await
            .unwrap_err();
        assert!(matches!(err, OutboundError::TooLarge { max: 4 }), "{err}");
        let exact = policy.with_max_response_bytes(5);
        let response = send(&exact, get(format!("{}/ok", local(server.port))))
            .await
            .unwrap();
        assert_eq!(response.body, b"hello");
    }

    #[tokio::test]
    async fn request_limits() {
        let server = serve().await;
        let policy = policy(&[local(server.port)]).with_max_request_bytes(4);
        let request = OutboundRequest {
            method: Method::POST,
            url: format!("{}/echo", local(server.port)),
            headers: Vec::new(),
            body: b"12345".to_vec(),
        };
        let err = send(&policy, request).await.unwrap_err();
        assert!(
            matches!(err, OutboundError::RequestTooLarge { max: 4 }),
            "{err}"
        );
        let connect = OutboundRequest {
            method: Method::CONNECT,
            ..get(format!("{}/ok", local(server.port)))
        };
        let err = send(&policy, connect).await.unwrap_err();
        assert!(
            matches!(err, OutboundError::MethodNotAllowed { .. }),
            "{err}"
        );
        assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn forbidden_and_invalid_request_headers_are_refused() {
        let server = serve().await;
        let policy = policy(&[local(server.port)]);
        let with_header = |name: &str, value: &str| OutboundRequest {
            headers: vec![(name.into(), value.into())],
            ..get(format!("{}/ok", local(server.port)))
        };
        for name in [
            "Host",
            "host",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Keep-Alive",
            "Upgrade",
            "TE",
            "Trailer",
            "Expect",
            "Proxy-Authorization",
            "proxy-connection",
        ] {
            let err = send(&policy, with_header(name, "x")).await.unwrap_err();
            assert!(
                matches!(err, OutboundError::ForbiddenHeader { .. }),
                "{name}: {err}"
            );
        }
        for name in ["", "bad header", "x\r\ninjected", "x:y", "caf\u{e9}"] {
            let err = send(&policy, with_header(name, "x")).await.unwrap_err();
            assert!(
                matches!(err, OutboundError::InvalidHeaderName { .. }),
                "{name:?}: {err}"
            );
        }
        for value in ["a\r\nx-injected: 1", "a\nb", "a\rb", "a\0b"] {
            let err = send(&policy, with_header("x-test", value))
                .await
                .unwrap_err();
            assert!(
                matches!(err, OutboundError::InvalidHeaderValue { .. }),
                "{value:?}: {err}"
            );
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
        let response = send(&policy, with_header("X-Custom", "fine value"))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_fails_the_handshake() {
        let server = serve().await;
        let policy = policy(&[format!("https://127.0.0.1:{}", server.port)]);
        let err = send(
            &policy,
            get(format!("https://127.0.0.1:{}/ok", server.port)),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, OutboundError::Tls(_)), "{err}");
    }

    #[test]
    fn wildcard_matching() {
        let policy = policy(&["https://*.example.org".into()]);
        for url in [
            "https://a.example.org/",
            "https://a.b.example.org/x?y",
            "https://A.Example.ORG/",
            "https://a.example.org./",
            "https://a.example.org:443/",
            "https://a.example.org\\@evil.com/",
        ] {
            assert!(allowed(&policy, url), "{url} should match");
        }
        for url in [
            "https://example.org/",
            "https://evilexample.org/",
            "https://a.evilexample.org/",
            "https://a.example.org.evil.com/",
            "https://a.example.org%2eevil.com/",
            "https://.example.org/",
            "http://a.example.org/",
            "https://a.example.org:8443/",
            "https://example.org.a/",
        ] {
            assert!(!allowed(&policy, url), "{url} should not match");
        }

        let exact = OutboundPolicy::from_grants(&["https://api.example.com"]).unwrap();
        assert!(allowed(&exact, "https://api.example.com/v1"));
        assert!(allowed(&exact, "https://API.EXAMPLE.COM./v1"));
        assert!(!allowed(&exact, "https://x.api.example.com/"));
        assert!(!allowed(&exact, "https://api.example.com.evil.com/"));
        assert!(!allowed(&exact, "http://api.example.com/"));
    }

    #[test]
    fn parse_accepts_canonical_origins() {
        let api = AllowedOrigin::parse("https://api.example.com").unwrap();
        assert_eq!(api.scheme(), Scheme::Https);
        assert_eq!(api.host(), &HostPattern::Exact("api.example.com".into()));
        assert_eq!(api.port(), 443);
        assert!(!api.allow_private());
        assert_eq!(
            AllowedOrigin::parse("https://api.example.com/").unwrap(),
            api
        );
        assert_eq!(
            AllowedOrigin::parse("https://api.example.com:443").unwrap(),
            api
        );
        assert_eq!(api.to_string(), "https://api.example.com");

        let wildcard = AllowedOrigin::parse("https://*.example.org:8443").unwrap();
        assert_eq!(
            wildcard.host(),
            &HostPattern::Subdomains("example.org".into())
        );
        assert_eq!(wildcard.to_string(), "https://*.example.org:8443");

        let ip = AllowedOrigin::parse("http://127.0.0.1:8081").unwrap();
        assert_eq!(ip.host(), &HostPattern::Ip("127.0.0.1".parse().unwrap()));
        assert!(ip.allow_private());
        let v6 = AllowedOrigin::parse("http://[::1]:8080").unwrap();
        assert!(v6.allow_private());
        assert_eq!(v6.to_string(), "http://[::1]:8080");

        let internal = AllowedOrigin::parse_with_private("http://billing.internal:8080").unwrap();
        assert!(internal.allow_private());
        assert_eq!(internal.port(), 8080);
    }

    #[test]
    fn parse_errors_explain_the_fix() {
        let cases: &[(&str, &str)] = &[
            ("https://api.example.com/v1", "remove the path"),
            ("https://api.example.com?x=1", "remove the path"),
            ("https://api.example.com#x", "remove the path"),
            ("https://user@api.example.com", "user info"),
            ("https://user:pw@api.example.com", "user info"),
            ("ftp://example.com", "`http` or `https`"),
            ("HTTPS://api.example.com", "`https`"),
            ("*", "scheme://host"),
            ("api.example.com", "scheme://host"),
            ("https://*", "wildcard"),
            ("https://*.", "name after `*.`"),
            ("https://a.*.example.org", "wildcard"),
            ("https://*example.org", "wildcard"),
            ("https://*.127.0.0.1", "wildcard"),
            ("https://*.com", "two or more labels"),
            ("https://", "host is missing"),
            ("https://:443", "host is missing"),
            ("https://API.example.com", "`api.example.com`"),
            ("https://b\u{fc}cher.example", "`xn--bcher-kva.example`"),
            ("https://api.example.com.", "trailing dot"),
            ("http://2130706433", "`127.0.0.1`"),
            ("http://127.1", "`127.0.0.1`"),
            ("http://0x7f.0.0.1", "`127.0.0.1`"),
            ("http://0177.0.0.1", "`127.0.0.1`"),
            ("http://[::FFFF:127.0.0.1]", "`[::ffff:7f00:1]`"),
            ("http://[0:0:0:0:0:0:0:1]", "`[::1]`"),
            ("http://::1", "host:port"),
            ("https://api.example.com:0", "port"),
            ("https://api.example.com:99999", "port"),
            ("https://api.example.com:", "port"),
            ("https://api.example.com:+1", "port"),
            ("https://exa mple.com", "not valid"),
        ];
        for (input, hint) in cases {
            match AllowedOrigin::parse(input) {
                Err(InvalidOrigin { origin, reason }) => {
                    assert_eq!(origin, *input);
                    assert!(reason.contains(hint), "{input}: {reason}");
                }
                other => panic!("{input}: expected `InvalidOrigin`, got {other:?}"),
            }
        }
    }

    #[test]
    fn request_debug_hides_secrets() {
        let request = OutboundRequest {
            method: Method::GET,
            url: "https://api.example.com/?token=secret".into(),
            headers: vec![("authorization".into(), "Bearer secret".into())],
            body: b"secret".to_vec(),
        };
        let debug = format!("{request:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("authorization"), "{debug}");
    }
}
