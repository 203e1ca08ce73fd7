//! One request through the app: the steps of `docs/architecture.md` ("One request"), each a
//! function, called in order from [`App::dispatch`].
//!
//! A step that ends the request early returns the response as its `Err`, so `dispatch` reads
//! as the list of steps.

#![expect(
    clippy::result_large_err,
    reason = "an early answer is the response itself; boxing it would allocate on every early return"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;

use super::App;
use super::component::LoadedComponent;
use super::guard::Authenticated;
use super::response::{SizeHintExact, into_http, wit_method};
use crate::capabilities::{Finished, RequestCtx};
use crate::http::Body;
use crate::http::body::{self, BodyError};
use crate::http::forms::{self, FormField, FormKind, FormLimits};
use crate::http::request_id::RequestId;
use crate::http::router::{Match, Route};
use crate::http::trace::Trace;
use crate::manifest::World;
use crate::metrics::RouteSeries;
use crate::runtime::Failure;
use crate::runtime::bindings::{self, Identity, RequestHead, Response as GuestResponse};
use crate::text::log_safe;
use crate::web::security::Peer;
use crate::web::session::{Session, SessionConfig, without_session_cookie};
use crate::web::static_files::Served;
use crate::web::{csrf, errors};

type HttpResponse = http::Response<Body>;
/// A step's outcome: go on with `T`, or answer now.
type Step<T> = Result<T, HttpResponse>;

/// What answered a request, for its metrics: a route (by index), a static mount, or nothing.
#[derive(Clone, Copy)]
enum Matched {
    Nothing,
    Static,
    Route(usize),
}

/// The route a request matched.
struct Routed<'a> {
    route: &'a Route,
    params: Vec<(String, String)>,
    head_from_get: bool,
}

/// Where routing sends a request: a route, or the host's answer to OPTIONS (which middleware
/// may answer instead, e.g. a CORS preflight).
enum Target<'a> {
    Route(Routed<'a>),
    Options {
        allow: &'a HeaderValue,
        route: &'a Route,
    },
}

/// The request's body: still to be read (the usual case), or read early for a middleware that
/// sees form fields.
enum RequestBody<B> {
    Unread(B),
    Read(Vec<FormField>, Bytes),
}

impl<B> RequestBody<B> {
    /// The form, if it was read.
    fn form(&self) -> &[FormField] {
        match self {
            RequestBody::Unread(_) => &[],
            RequestBody::Read(form, _) => form,
        }
    }
}

/// What the route's own steps need of the request.
struct Call<'a> {
    parts: &'a Parts,
    route: &'a Route,
    params: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    peer: &'a Peer<'a>,
    session: Option<&'a Arc<Mutex<Session>>>,
    identity: Option<Arc<Identity>>,
    id: &'a RequestId,
}

impl App {
    /// Answer one request. Never fails: every problem becomes an HTTP error response.
    pub async fn handle<B>(&self, req: http::Request<B>, client: SocketAddr) -> HttpResponse
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        // A trusted proxy's `X-Request-Id` and `traceparent` are kept, so its log and ours
        // share the ids.
        let from_proxy = self.web.hosts.trusted(client.ip());
        let request_id = RequestId::from_proxy(req.headers(), from_proxy)
            .with_trace(Trace::of(req.headers(), from_proxy));
        let method = req.method().clone();
        // A `Uri` clone shares its bytes; kept for the access log only.
        let uri = req.uri().clone();
        let json = errors::wants_json(req.headers());
        let mut matched = Matched::Nothing;
        let mut response = match self
            .dispatch(req, client, &request_id, json, &mut matched)
            .await
        {
            Ok(r) | Err(r) => r,
        };
        errors::negotiate(&mut response, json);
        self.web.headers.apply(response.headers_mut());
        response.headers_mut().insert(
            HeaderName::from_static("x-request-id"),
            request_id.header_value(),
        );
        // The query string is left out of the log: it may carry tokens.
        tracing::info!(
            target: "flagon::access",
            request_id = %request_id,
            trace_id = %request_id.trace_id(),
            client = %client,
            method = %method,
            path = uri.path(),
            status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
        );
        crate::metrics::http_request(
            match matched {
                Matched::Nothing => RouteSeries::none(),
                Matched::Static => RouteSeries::statics(),
                Matched::Route(i) => &self.route_series[i],
            },
            &method,
            response.status().as_u16(),
            started.elapsed(),
        );
        response
    }

    /// The steps, in order.
    async fn dispatch<B>(
        &self,
        req: http::Request<B>,
        client: SocketAddr,
        id: &RequestId,
        json: bool,
        matched: &mut Matched,
    ) -> Step<HttpResponse>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = req.into_parts();
        let peer = self.check_host(&parts, client, id)?;
        self.serve_static(&parts, id)
            .await
            .inspect_err(|_| *matched = Matched::Static)?;
        let Routed {
            route,
            params,
            head_from_get,
        } = match self.route(&parts, id)? {
            Target::Route(routed) => {
                *matched = Matched::Route(routed.route.index);
                routed
            }
            Target::Options { allow, route } => {
                *matched = Matched::Route(route.index);
                return Ok(self.options(&parts, route, allow, &peer, id).await);
            }
        };
        let component = &self.components[route.component];
        let middleware = self.middleware_for(parts.uri.path(), route.name.as_deref());
        let session = self.load_session(component, route, &middleware, &parts);
        let session_cookie = self.web.session.as_ref().map(|s| &s.config);
        let headers = guest_headers(&parts, session_cookie);
        // Authenticators and middleware see the head; most routes have neither and skip it.
        let mut head = (route.auth.is_some() || !middleware.is_empty())
            .then(|| request_head(&parts, route, &params, &headers, &peer, id));
        let auth = match &head {
            Some(head) if route.auth.is_some() => {
                self.authenticate(route, head, session.as_ref(), &parts.headers, id)
                    .await
            }
            _ => Ok(None),
        };
        if let (Some(head), Ok(identity)) = (&mut head, &auth) {
            head.identity = identity.as_deref().cloned();
        }
        let identity = auth.as_ref().ok().cloned().flatten();
        // A middleware that sees form fields (a login limit per account) needs the body read
        // before it runs; everyone else reads it after authorization.
        let body = if self.middleware_reads_form(&middleware, &parts) {
            let body = self.read_body(&parts, body, route, id).await?;
            let (form, body) = self.decode_form(&parts, body, id).await?;
            RequestBody::Read(form, body)
        } else {
            RequestBody::Unread(body)
        };

        let mut running = Vec::with_capacity(middleware.len());
        let response = 'answer: {
            if let Some(head) = &head {
                for &m in &middleware {
                    match self
                        .before(m, head, body.form(), session.as_ref(), &parts.headers, id)
                        .await
                    {
                        Ok(instance) => running.push(instance),
                        Err(answer) => break 'answer answer,
                    }
                }
            }
            let call = Call {
                parts: &parts,
                route,
                params,
                headers,
                peer: &peer,
                session: session.as_ref(),
                identity,
                id,
            };
            match self.answer(call, auth, body).await {
                Ok(r) | Err(r) => r,
            }
        };
        // Before the middleware's `after`, which sees (and may rebuild) the final form.
        let mut response = response;
        errors::negotiate(&mut response, json);
        let mut response = match &head {
            Some(head) => self.after(running, head, response, id).await,
            None => response,
        };
        self.write_session(&mut response, session.as_ref(), id);
        if head_from_get {
            strip_body(&mut response);
        }
        Ok(response)
    }

    /// The route's own steps, after the middleware's `before`: authorization, body, form,
    /// CSRF, the handler, its response and the error pages.
    async fn answer<B>(
        &self,
        call: Call<'_>,
        auth: Authenticated,
        body: RequestBody<B>,
    ) -> Step<HttpResponse>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let Call {
            parts,
            route,
            params,
            headers,
            peer,
            session,
            identity,
            id,
        } = call;
        self.authorize(route, auth, parts, id)?;
        let component = &self.components[route.component];
        // CSRF protects what the cookie grants: a handler that uses the session, or an identity
        // a session authenticator could take from it. (A middleware reading it does not count.)
        let cookie_acts = component.session
            || route
                .authenticators
                .iter()
                .any(|&a| self.components[a].session);
        let wasi_http = component.world == World::WasiHttp;
        let (form, body) = match body {
            // A wasi:http component reads the body itself; the form is decoded only for the
            // CSRF check, and the raw body is kept.
            RequestBody::Unread(body) if wasi_http => {
                let body = self.read_body(parts, body, route, id).await?;
                if cookie_acts {
                    (self.decode_form(parts, body.clone(), id).await?.0, body)
                } else {
                    (Vec::new(), body)
                }
            }
            RequestBody::Unread(body) => {
                let body = self.read_body(parts, body, route, id).await?;
                self.decode_form(parts, body, id).await?
            }
            RequestBody::Read(form, body) => (form, body),
        };
        {
            let session = session
                .filter(|_| cookie_acts)
                .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()));
            self.check_csrf(session.as_deref(), route, parts, &form, peer, id)?;
        }
        let guest_identity = (!wasi_http).then(|| identity.as_deref().cloned()).flatten();
        // The handler gets the session only if it was granted it (the authenticators may
        // have loaded it for themselves).
        let handler_session = session.filter(|_| component.session).cloned();
        let ctx = RequestCtx::new(id.shared(), handler_session, &parts.headers)
            .traced(id.trace())
            .with_identity(identity);
        let (outcome, finished) = if wasi_http {
            let request = proxy_request(parts, body, peer);
            let https = peer.scheme == "https";
            component
                .call_wasi_http(self.engine(), request, https, ctx)
                .await
        } else {
            let request = guest_request(
                parts,
                route,
                params,
                headers,
                body,
                form,
                peer,
                id,
                guest_identity,
            );
            component.call(self.engine(), &request, ctx).await
        };
        let response = self.guest_response(outcome, component, id);
        Ok(self.error_pages(response, &finished, id))
    }

    /// Host check: work out the client, scheme and host (believing `X-Forwarded-*` only from
    /// trusted proxies); a host outside `allowed_hosts`, or a malformed one, is a 400.
    fn check_host<'p>(
        &self,
        parts: &'p Parts,
        client: SocketAddr,
        id: &RequestId,
    ) -> Step<Peer<'p>> {
        self.web.hosts.peer(client, &parts.uri, &parts.headers).map_err(|_| {
            tracing::info!(request_id = %id, "refused a request for a host not in `[server] allowed_hosts`");
            self.web.error_page(
                StatusCode::BAD_REQUEST,
                id,
                Some("the Host header is not in `[server] allowed_hosts`"),
            )
        })
    }

    /// Static mounts: a path under a `[[static]]` prefix is answered by the mount, and nothing
    /// below runs. `Ok(())` when no mount matches.
    async fn serve_static(&self, parts: &Parts, id: &RequestId) -> Step<()> {
        let web = &*self.web;
        let Some((mount, rest)) = web.statics.find(parts.uri.path()) else {
            return Ok(());
        };
        Err(
            match mount.serve(&parts.method, rest, &parts.headers).await {
                Served::Response(r) => r,
                Served::NotFound => web.error_page(StatusCode::NOT_FOUND, id, None),
                Served::BadRequest => web.error_page(StatusCode::BAD_REQUEST, id, None),
                Served::MethodNotAllowed => {
                    let mut r = web.error_page(StatusCode::METHOD_NOT_ALLOWED, id, None);
                    r.headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                    r
                }
                Served::Unservable(e) => {
                    tracing::warn!(request_id = %id, "static file not served: {}", log_safe(&e.to_string()));
                    web.error_page(StatusCode::NOT_FOUND, id, None)
                }
            },
        )
    }

    /// Route by path and method, before the body is read: 404, 400 for a bad parameter, 405
    /// with `Allow`, 204 for OPTIONS; HEAD is answered by the GET route.
    fn route(&self, parts: &Parts, id: &RequestId) -> Step<Target<'_>> {
        let web = &*self.web;
        match self.router.at(&parts.method, parts.uri.path()) {
            Match::Found {
                route,
                params,
                head_from_get,
            } => Ok(Target::Route(Routed {
                route,
                params,
                head_from_get,
            })),
            Match::NotFound => Err(web.error_page(StatusCode::NOT_FOUND, id, None)),
            Match::BadParam => Err(web.error_page(StatusCode::BAD_REQUEST, id, None)),
            Match::MethodNotAllowed { allow } => {
                let mut r = web.error_page(StatusCode::METHOD_NOT_ALLOWED, id, None);
                r.headers_mut().insert(header::ALLOW, allow.clone());
                Err(r)
            }
            Match::Options { allow, route } => Ok(Target::Options { allow, route }),
        }
    }

    /// Body: read up to the route's `max_body` (413), within `body_read_timeout` (408 with
    /// `Connection: close`).
    async fn read_body<B>(
        &self,
        parts: &Parts,
        body: B,
        route: &Route,
        id: &RequestId,
    ) -> Step<Bytes>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let timeout = self.server.body_read_timeout.0;
        body::read(&parts.headers, body, route.max_body, timeout)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => self.web.error_page(StatusCode::PAYLOAD_TOO_LARGE, id, None),
                BodyError::Malformed => self.web.error_page(StatusCode::BAD_REQUEST, id, None),
                BodyError::TimedOut => {
                    let mut r = self.web.error_page(StatusCode::REQUEST_TIMEOUT, id, None);
                    r.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    r
                }
            })
    }

    /// Forms: urlencoded and multipart bodies decoded within the form limits (400 on any
    /// problem). For multipart, the raw body is dropped once the parts are decoded.
    async fn decode_form(
        &self,
        parts: &Parts,
        body: Bytes,
        id: &RequestId,
    ) -> Step<(Vec<FormField>, Bytes)> {
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
        parsed.map_err(|e| {
            tracing::info!(request_id = %id, "bad form: {}", log_safe(&e.to_string()));
            self.web
                .error_page(StatusCode::BAD_REQUEST, id, Some(&e.to_string()))
        })
    }

    /// Session load: for components granted the session, or routes whose authenticators or
    /// middleware are,
    /// open the cookie (a missing or bad cookie gives an empty session).
    fn load_session(
        &self,
        component: &LoadedComponent,
        route: &Route,
        middleware: &[usize],
        parts: &Parts,
    ) -> Option<Arc<Mutex<Session>>> {
        let wanted = component.session
            || route
                .authenticators
                .iter()
                .any(|&a| self.components[a].session)
            || self.middleware_reads_session(middleware);
        let setup = self.web.session.as_ref().filter(|_| wanted)?;
        let cookies = parts.headers.get_all(header::COOKIE).iter();
        Some(Arc::new(Mutex::new(Session::load(
            &setup.keys,
            &setup.config,
            cookies.map(HeaderValue::as_bytes),
            SystemTime::now(),
        ))))
    }

    /// CSRF: with a session, a route with `csrf = true` and an unsafe method needs a
    /// same-origin request carrying a token of the session; else 403.
    fn check_csrf(
        &self,
        session: Option<&Session>,
        route: &Route,
        parts: &Parts,
        form: &[FormField],
        peer: &Peer<'_>,
        id: &RequestId,
    ) -> Step<()> {
        let Some(session) = session else {
            return Ok(());
        };
        if !route.csrf || csrf::is_safe_method(&parts.method) {
            return Ok(());
        }
        csrf::check(session, &parts.headers, form, peer).map_err(|why| {
            tracing::warn!(request_id = %id, route = %route.path, "CSRF check failed: {why}");
            self.web.error_page(StatusCode::FORBIDDEN, id, Some(why))
        })
    }

    /// The guest's response, validated; or the error page for how the call failed (504 at the
    /// deadline, 503 with `Retry-After` when no instance slot is free, 500 for a trap or an
    /// invalid response).
    fn guest_response(
        &self,
        outcome: Result<GuestResponse, Failure>,
        component: &LoadedComponent,
        id: &RequestId,
    ) -> HttpResponse {
        let web = &*self.web;
        let guest = &component.id;
        match outcome {
            Ok(r) => into_http(r, guest, id, web).unwrap_or_else(|why| {
                web.error_page(StatusCode::INTERNAL_SERVER_ERROR, id, Some(&why))
            }),
            Err(failure) => self.failure_page(failure, guest, id),
        }
    }

    /// The error page for how a call into component `guest` failed: 504 at the deadline, 503
    /// with `Retry-After` when no instance slot is free, 500 for a trap.
    pub(super) fn failure_page(
        &self,
        failure: Failure,
        guest: &str,
        id: &RequestId,
    ) -> HttpResponse {
        let web = &*self.web;
        match failure {
            Failure::Timeout => {
                tracing::warn!(component = %guest, request_id = %id, "guest stopped at its deadline");
                web.error_page(StatusCode::GATEWAY_TIMEOUT, id, None)
            }
            Failure::Overloaded => {
                tracing::warn!(component = %guest, request_id = %id, "no free instance slot");
                let mut r = web.error_page(StatusCode::SERVICE_UNAVAILABLE, id, None);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            Failure::Trap(detail) => {
                // The detail (trap message and Wasm backtrace) is logged on one line, escaped,
                // so nothing in it can pass for another log line.
                let detail = log_safe(&detail);
                tracing::error!(component = %guest, request_id = %id, detail = %detail, "guest failed");
                web.error_page(StatusCode::INTERNAL_SERVER_ERROR, id, Some(&detail))
            }
        }
    }

    /// Render failure and error pages: a render that failed during the call makes the
    /// response the 500 page, whatever the guest returned; an empty guest error for a status
    /// with an `[errors]` template gets that page as its body (keeping the guest's headers,
    /// such as `WWW-Authenticate`).
    fn error_pages(
        &self,
        mut response: HttpResponse,
        finished: &Finished,
        id: &RequestId,
    ) -> HttpResponse {
        let web = &*self.web;
        if let Some(failure) = &finished.render_failure {
            // A page that failed to render is never half-sent.
            return web.error_page(StatusCode::INTERNAL_SERVER_ERROR, id, Some(&failure.detail));
        }
        let status = response.status();
        if status.as_u16() >= 400
            && response.body().size_hint_exact() == Some(0)
            && web.error_templates.contains_key(&status.as_u16())
        {
            use_page(&mut response, web.error_page(status, id, None));
        }
        response
    }

    /// Session cookie: below 500, `Set-Cookie` when the session changed, and `Vary: Cookie`
    /// when it was read. A failed request changes nothing.
    fn write_session(
        &self,
        response: &mut HttpResponse,
        session: Option<&Arc<Mutex<Session>>>,
        id: &RequestId,
    ) {
        let (Some(setup), Some(session)) = (&self.web.session, session) else {
            return;
        };
        if response.status().as_u16() >= 500 {
            return;
        }
        let session = session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cookie) = session.set_cookie(&setup.keys, &setup.config, SystemTime::now()) {
            match HeaderValue::try_from(cookie) {
                Ok(v) => {
                    response.headers_mut().append(header::SET_COOKIE, v);
                }
                Err(_) => {
                    tracing::error!(request_id = %id, "session cookie is not a valid header value")
                }
            }
        }
        if session.accessed() {
            response
                .headers_mut()
                .append(header::VARY, HeaderValue::from_static("Cookie"));
        }
    }
}

/// The request's headers as guests see them: lowercase names, lossy UTF-8 values, and never
/// the host's session cookie.
pub(super) fn guest_headers(
    parts: &Parts,
    session_cookie: Option<&SessionConfig>,
) -> Vec<(String, String)> {
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (k, v) in &parts.headers {
        let value = String::from_utf8_lossy(v.as_bytes());
        let value = match session_cookie {
            Some(cfg) if k == header::COOKIE => match without_session_cookie(&value, cfg) {
                Some(rest) => rest.into_owned(),
                None => continue,
            },
            _ => value.into_owned(),
        };
        headers.push((k.as_str().to_string(), value));
    }
    headers
}

/// What authenticators and middleware see: the request without its body and form.
pub(super) fn request_head(
    parts: &Parts,
    route: &Route,
    params: &[(String, String)],
    headers: &[(String, String)],
    peer: &Peer<'_>,
    id: &RequestId,
) -> RequestHead {
    RequestHead {
        method: wit_method(&parts.method),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        route: route.name.as_deref().map(str::to_string),
        params: params.to_vec(),
        headers: headers.to_vec(),
        client: peer.client.to_string(),
        request_id: id.to_string(),
        identity: None,
        form: Vec::new(),
    }
}

/// Give an empty-bodied error `response` the body of the error page `page`, keeping its
/// status and headers (`Retry-After`, `WWW-Authenticate`, ...) but for the type and caching.
pub(super) fn use_page(response: &mut HttpResponse, page: HttpResponse) {
    let (mut page_parts, page_body) = page.into_parts();
    *response.body_mut() = page_body;
    if let Some(marker) = page_parts.extensions.remove::<errors::ErrorPage>() {
        response.extensions_mut().insert(marker);
    }
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
        if let Some(v) = page_parts.headers.get(&name) {
            response.headers_mut().insert(name, v.clone());
        }
    }
}

/// The request as the guest sees it: method, raw path, decoded parameters, raw query,
/// headers (without the host's session cookie), body, client, request id, route name, form
/// and identity.
#[expect(
    clippy::too_many_arguments,
    reason = "each is one part of the request, from the step that made it"
)]
fn guest_request(
    parts: &Parts,
    route: &Route,
    params: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Bytes,
    form: Vec<FormField>,
    peer: &Peer<'_>,
    id: &RequestId,
    identity: Option<Identity>,
) -> bindings::Request {
    bindings::Request {
        method: wit_method(&parts.method),
        path: parts.uri.path().to_string(),
        params,
        query: parts.uri.query().unwrap_or("").to_string(),
        headers,
        body: Vec::from(body),
        client: peer.client.to_string(),
        request_id: id.to_string(),
        route: route.name.as_deref().map(str::to_string),
        form: if form.is_empty() {
            Vec::new()
        } else {
            form.into_iter().map(wit_form_field).collect()
        },
        identity,
    }
}

/// The request as a `wasi:http` component sees it: method, headers and body as they came, and
/// an absolute URI with the scheme and host the client used (after `trusted_proxies`).
fn proxy_request(parts: &Parts, body: Bytes, peer: &Peer<'_>) -> http::Request<Bytes> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = match (&peer.host, peer.port) {
        (Some(host), Some(port)) if host.contains(':') => format!("[{host}]:{port}"),
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) if host.contains(':') => format!("[{host}]"),
        (Some(host), None) => host.to_string(),
        (None, _) => String::new(),
    };
    let uri = http::Uri::try_from(format!("{}://{authority}{path}", peer.scheme))
        .unwrap_or_else(|_| parts.uri.clone());
    let mut request = http::Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = parts.headers.clone();
    request
}

fn wit_form_field(f: FormField) -> bindings::FormField {
    bindings::FormField {
        name: f.name,
        value: f.value,
        file: f.file.map(|u| bindings::UploadedFile {
            filename: u.filename,
            content_type: u.content_type,
            data: u.data,
        }),
    }
}

/// HEAD answered by a GET route: keep the GET response's length, drop its body.
fn strip_body(response: &mut HttpResponse) {
    let len = response.body().size_hint_exact();
    *response.body_mut() = Body::default();
    if let Some(len) = len {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
}
