//! The CSRF check for unsafe requests to routes whose component uses the cookie session.

use http::Method;

use super::security::{self, SameOrigin};
use super::session::Session;
use crate::http::forms::FormField;

/// Methods that must not change anything, and so need no CSRF token.
pub fn is_safe_method(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The CSRF check for an unsafe request to a session route: the browser must not say it is
/// cross-site, and the request must carry a token of this session.
pub fn check(
    session: &Session,
    headers: &http::HeaderMap,
    form: &[FormField],
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
