//! The steps extensions take part in: authentication (the `[auth]` authenticators), the host's
//! authorization decision (401, the login redirect, 403), and the `[[middleware]]` around a
//! route. The components own the credentials logic; the host owns the order and the answer.

#![expect(
    clippy::result_large_err,
    reason = "an early answer is the response itself; boxing it would allocate on every early return"
)]

use std::sync::{Arc, Mutex};

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::App;
use super::response::into_http;
use crate::capabilities::HostState;
use crate::capabilities::RequestCtx;
use crate::http::Body;
use crate::http::forms::{self, FormField, FormKind};
use crate::http::request_id::RequestId;
use crate::http::router::Route;
use crate::manifest::{AuthMode, Manifest, MiddlewareSection};
use crate::runtime::MiddlewareInstance;
use crate::runtime::bindings::extension::exports::flagon::app::authenticate::AuthError;
use crate::runtime::bindings::extension::middleware::exports::flagon::app::intercept::Action;
use crate::runtime::bindings::{Identity, RequestHead, Response as GuestResponse};
use crate::text::log_safe;
use crate::web::security::redirect_allowed;
use crate::web::session::Session;

type HttpResponse = http::Response<Body>;

/// Most roles and claims an identity may carry, and the longest string in it.
const MAX_IDENTITY_ITEMS: usize = 256;
const MAX_IDENTITY_STRING: usize = 4096;

/// What authentication established: an identity, none, or why it was refused.
pub(super) type Authenticated = Result<Option<Arc<Identity>>, AuthRefusal>;

/// Why the authenticators gave no identity although they ran.
pub(super) enum AuthRefusal {
    /// Credentials present but invalid: 401.
    Invalid,
    /// An authenticator could not decide: 503.
    Unavailable,
    /// An authenticator failed (trap, deadline, invalid identity): its error page.
    Failed(HttpResponse),
}

/// `[auth]` as the request path uses it.
#[derive(Debug)]
pub(super) struct AuthSettings {
    /// `WWW-Authenticate` of a 401 without credentials.
    challenge: HeaderValue,
    /// ... and with invalid ones (`error="invalid_token"` for a Bearer challenge, RFC 6750).
    challenge_invalid: HeaderValue,
    /// The login route's path, for the browser redirect.
    login_path: Option<String>,
}

impl AuthSettings {
    pub(super) fn new(manifest: &Manifest) -> Self {
        let challenge = manifest.auth.challenge.clone().unwrap_or_else(|| {
            let realm = manifest.app.name.replace(['"', '\\'], "");
            format!("Bearer realm=\"{realm}\"")
        });
        let invalid = if challenge.trim_start().starts_with("Bearer") {
            format!("{challenge}, error=\"invalid_token\"")
        } else {
            challenge.clone()
        };
        let value = |v: &str| {
            HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
        };
        let login_path = manifest.auth.login_route.as_ref().and_then(|name| {
            let route = manifest
                .routes
                .iter()
                .find(|r| r.name.as_ref() == Some(name));
            route.map(|r| r.path.clone())
        });
        Self {
            challenge: value(&challenge),
            challenge_invalid: value(&invalid),
            login_path,
        }
    }
}

/// One `[[middleware]]` entry, resolved.
#[derive(Debug)]
pub(super) struct MiddlewareEntry {
    section: MiddlewareSection,
    /// Index in the app's component list.
    component: usize,
}

impl MiddlewareEntry {
    pub(super) fn all(manifest: &Manifest) -> Vec<Self> {
        manifest
            .middleware
            .iter()
            .map(|m| Self {
                section: m.clone(),
                component: manifest
                    .components
                    .keys()
                    .position(|k| *k == m.component)
                    .expect("the manifest checked that middleware name known components"),
            })
            .collect()
    }
}

/// A middleware whose `before` said `continue`, waiting for `after`.
pub(super) struct Running {
    component: usize,
    instance: MiddlewareInstance<HostState>,
    /// The head `before` saw, when it was this middleware's own (with form fields).
    head: Option<RequestHead>,
}

impl App {
    /// The `[[middleware]]` entries that apply to `path` matched to the route `route`, in order.
    pub(super) fn middleware_for(&self, path: &str, route: Option<&str>) -> Vec<usize> {
        if self.middleware.is_empty() {
            return Vec::new();
        }
        // Prefixes are matched on the decoded path, so `/%61pi` cannot slip past `/api`.
        let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        let path = path.as_ref();
        (0..self.middleware.len())
            .filter(|&i| self.middleware[i].section.applies(path, route))
            .collect()
    }

    /// Whether a middleware in `middleware` sees form fields and the request has a urlencoded
    /// body for it.
    pub(super) fn middleware_reads_form(&self, middleware: &[usize], parts: &Parts) -> bool {
        middleware
            .iter()
            .any(|&m| !self.middleware[m].section.form_fields.is_empty())
            && matches!(forms::kind(&parts.headers), FormKind::UrlEncoded)
    }

    /// Whether a middleware in `middleware` reads the session.
    pub(super) fn middleware_reads_session(&self, middleware: &[usize]) -> bool {
        middleware
            .iter()
            .any(|&m| self.components[self.middleware[m].component].session)
    }

    /// Authentication: ask the route's authenticators in order; the first identity wins, and
    /// invalid credentials stop the search.
    pub(super) async fn authenticate(
        &self,
        route: &Route,
        head: &RequestHead,
        session: Option<&Arc<Mutex<Session>>>,
        headers: &HeaderMap,
        id: &RequestId,
    ) -> Authenticated {
        for &a in &route.authenticators {
            let component = &self.components[a];
            let session = session.filter(|_| component.session).cloned();
            let ctx = RequestCtx::new(id.shared(), session, headers)
                .traced(id.trace())
                .read_only();
            let guest = &component.id;
            match component.authenticate(self.engine(), head, ctx).await {
                Ok(Ok(None)) => continue,
                Ok(Ok(Some(mut identity))) => {
                    if let Err(why) = check_identity(&identity) {
                        tracing::error!(component = %guest, request_id = %id, "invalid identity from authenticator: {why}");
                        let page = self.web.error_page(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            id,
                            Some(&format!(
                                "authenticator `{guest}` returned an invalid identity: {why}"
                            )),
                        );
                        return Err(AuthRefusal::Failed(page));
                    }
                    identity.authenticator = guest.clone();
                    tracing::debug!(component = %guest, request_id = %id, subject = %log_safe(&identity.subject), "authenticated");
                    return Ok(Some(Arc::new(identity)));
                }
                Ok(Err(AuthError::Invalid(why))) => {
                    tracing::info!(component = %guest, request_id = %id, "credentials refused: {}", log_safe(&why));
                    return Err(AuthRefusal::Invalid);
                }
                Ok(Err(AuthError::Unavailable(why))) => {
                    tracing::warn!(component = %guest, request_id = %id, "authenticator unavailable: {}", log_safe(&why));
                    return Err(AuthRefusal::Unavailable);
                }
                Err(failure) => {
                    return Err(AuthRefusal::Failed(self.failure_page(failure, guest, id)));
                }
            }
        }
        Ok(None)
    }

    /// Authorization, decided by the host from the route's `auth` and `roles`: invalid
    /// credentials 401; no identity on a required route 401 with `WWW-Authenticate`, or for a
    /// browser the login redirect; an identity without the role 403.
    pub(super) fn authorize(
        &self,
        route: &Route,
        auth: Authenticated,
        parts: &Parts,
        id: &RequestId,
    ) -> Result<(), HttpResponse> {
        let Some(mode) = route.auth else {
            return Ok(());
        };
        let identity = match auth {
            Ok(identity) => identity,
            Err(AuthRefusal::Invalid) => {
                return Err(self.unauthorized(&self.auth.challenge_invalid, id));
            }
            Err(AuthRefusal::Unavailable) => {
                let mut r = self
                    .web
                    .error_page(StatusCode::SERVICE_UNAVAILABLE, id, None);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return Err(r);
            }
            Err(AuthRefusal::Failed(page)) => return Err(page),
        };
        match identity {
            None if mode == AuthMode::Required => {
                if let Some(login) = self.login_redirect(parts) {
                    return Err(login);
                }
                Err(self.unauthorized(&self.auth.challenge, id))
            }
            Some(identity)
                if !route.roles.is_empty()
                    && !identity.roles.iter().any(|r| route.roles.contains(r)) =>
            {
                tracing::info!(request_id = %id, route = %route.path, subject = %log_safe(&identity.subject), "forbidden: the identity has none of the route's roles");
                Err(self.web.error_page(StatusCode::FORBIDDEN, id, None))
            }
            _ => Ok(()),
        }
    }

    fn unauthorized(&self, challenge: &HeaderValue, id: &RequestId) -> HttpResponse {
        let mut r = self.web.error_page(StatusCode::UNAUTHORIZED, id, None);
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge.clone());
        r
    }

    /// For a browser (a GET or HEAD accepting `text/html`) and a configured login route: a 303
    /// to it, with `next` when the request's own path passes the redirect checks.
    fn login_redirect(&self, parts: &Parts) -> Option<HttpResponse> {
        let login = self.auth.login_path.as_deref()?;
        let navigates = matches!(parts.method, http::Method::GET | http::Method::HEAD)
            && parts
                .headers
                .get_all(header::ACCEPT)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.contains("text/html")));
        if !navigates {
            return None;
        }
        let here = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let location = if here != login && redirect_allowed(here, &self.web.redirect_origins) {
            format!(
                "{login}?next={}",
                utf8_percent_encode(here, NON_ALPHANUMERIC)
            )
        } else {
            login.to_string()
        };
        let value = HeaderValue::from_str(&location).ok()?;
        let mut r = http::Response::new(Body::default());
        *r.status_mut() = StatusCode::SEE_OTHER;
        r.headers_mut().insert(header::LOCATION, value);
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(r)
    }

    /// One middleware's `before`: `Ok` to go on (with the instance kept for `after`), or the
    /// answer: its own response (validated as a handler's), or the error page if it failed.
    pub(super) async fn before(
        &self,
        m: usize,
        head: &RequestHead,
        form: &[FormField],
        session: Option<&Arc<Mutex<Session>>>,
        headers: &HeaderMap,
        id: &RequestId,
    ) -> Result<Running, HttpResponse> {
        let component = self.middleware[m].component;
        let guest = &self.components[component];
        let session = session.filter(|_| guest.session).cloned();
        let identity = head.identity.clone().map(Arc::new);
        let ctx = RequestCtx::new(id.shared(), session, headers)
            .traced(id.trace())
            .read_only()
            .with_identity(identity);
        // Only the fields its entry names, and only to this middleware.
        let fields = &self.middleware[m].section.form_fields;
        let own_head = (!fields.is_empty()).then(|| RequestHead {
            form: form
                .iter()
                .filter(|f| f.file.is_none() && fields.contains(&f.name))
                .map(|f| (f.name.clone(), f.value.clone()))
                .collect(),
            ..head.clone()
        });
        match guest
            .before(self.engine(), own_head.as_ref().unwrap_or(head), ctx)
            .await
        {
            Ok((Action::Continue, instance)) => Ok(Running {
                component,
                instance,
                head: own_head,
            }),
            Ok((Action::Respond(r), _instance)) => Err(self.validated(r, &guest.id, id)),
            Err(failure) => Err(self.failure_page(failure, &guest.id, id)),
        }
    }

    /// The `after` of every middleware that went on, in reverse order, each given the response
    /// so far. A failing `after` makes the response its error page.
    pub(super) async fn after(
        &self,
        running: Vec<Running>,
        head: &RequestHead,
        mut response: HttpResponse,
        id: &RequestId,
    ) -> HttpResponse {
        for Running {
            component,
            mut instance,
            head: own_head,
        } in running.into_iter().rev()
        {
            let head = own_head.as_ref().unwrap_or(head);
            let guest = &self.components[component].id;
            let Some(wit) = as_guest_response(&response) else {
                // Bodies streamed from files never pass through a guest.
                continue;
            };
            response = match instance.after(head, &wit).await {
                Ok(r) => self.validated(r, guest, id),
                Err(failure) => self.failure_page(failure, guest, id),
            };
            // Reports the log lines the instance dropped, as for a handler.
            instance.data_mut().finish();
        }
        response
    }

    /// OPTIONS on a path without an OPTIONS route: the middleware of its route may answer (a
    /// CORS preflight); otherwise 204 with `Allow`.
    pub(super) async fn options(
        &self,
        parts: &Parts,
        route: &Route,
        allow: &HeaderValue,
        peer: &crate::web::security::Peer<'_>,
        id: &RequestId,
    ) -> HttpResponse {
        let allowed = || {
            let mut r = http::Response::new(Body::default());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r.headers_mut().insert(header::ALLOW, allow.clone());
            r
        };
        let middleware = self.middleware_for(parts.uri.path(), route.name.as_deref());
        if middleware.is_empty() {
            return allowed();
        }
        let session_cookie = self.web.session.as_ref().map(|s| &s.config);
        let headers = super::pipeline::guest_headers(parts, session_cookie);
        let head = super::pipeline::request_head(parts, route, &[], &headers, peer, id);
        let mut running = Vec::with_capacity(middleware.len());
        let response = 'answer: {
            for m in middleware {
                match self.before(m, &head, &[], None, &parts.headers, id).await {
                    Ok(r) => running.push(r),
                    Err(answer) => break 'answer answer,
                }
            }
            allowed()
        };
        self.after(running, &head, response, id).await
    }

    /// A response from a middleware, validated as a handler's; invalid is the 500 page. An
    /// error status with an empty body becomes the app's error page for it (or the host's
    /// plain one), so a 429 from a rate limit looks like the rest of the app, and is JSON for
    /// a client that asks for JSON.
    fn validated(&self, r: GuestResponse, guest: &str, id: &RequestId) -> HttpResponse {
        match into_http(r, guest, id, &self.web) {
            Ok(mut r)
                if r.status().as_u16() >= 400 && r.body().bytes().is_some_and(|b| b.is_empty()) =>
            {
                let page = self.web.error_page(r.status(), id, None);
                super::pipeline::use_page(&mut r, page);
                r
            }
            Ok(r) => r,
            Err(why) => self
                .web
                .error_page(StatusCode::INTERNAL_SERVER_ERROR, id, Some(&why)),
        }
    }
}

/// A response as a middleware's `after` sees it; `None` for a file body.
fn as_guest_response(r: &HttpResponse) -> Option<GuestResponse> {
    let body = r.body().bytes()?;
    Some(GuestResponse {
        status: r.status().as_u16(),
        headers: r
            .headers()
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_string(), v)
            })
            .collect(),
        body: body.to_vec(),
    })
}

/// An identity the host accepts: a subject, and bounded lists and strings.
fn check_identity(identity: &Identity) -> Result<(), String> {
    if identity.subject.trim().is_empty() {
        return Err("the subject is empty".into());
    }
    if identity.roles.len() > MAX_IDENTITY_ITEMS || identity.claims.len() > MAX_IDENTITY_ITEMS {
        return Err(format!("more than {MAX_IDENTITY_ITEMS} roles or claims"));
    }
    let strings = std::iter::once(&identity.subject)
        .chain(identity.display_name.iter())
        .chain(identity.roles.iter())
        .chain(identity.claims.iter().flat_map(|(k, v)| [k, v]));
    for s in strings {
        if s.len() > MAX_IDENTITY_STRING {
            return Err(format!(
                "a string is longer than {MAX_IDENTITY_STRING} bytes"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(subject: &str) -> Identity {
        Identity {
            subject: subject.into(),
            display_name: None,
            roles: vec![],
            claims: vec![],
            authenticator: String::new(),
        }
    }

    #[test]
    fn identities_are_bounded() {
        assert!(check_identity(&identity("u1")).is_ok());
        assert!(check_identity(&identity(" ")).is_err());
        assert!(check_identity(&identity(&"x".repeat(5000))).is_err());
        let mut many = identity("u");
        many.roles = vec!["r".into(); 300];
        assert!(check_identity(&many).is_err());
    }
}
