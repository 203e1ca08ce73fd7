//! What a guest returns, made into an HTTP response: everything the guest controls is
//! validated (status, header names and values, redirects, cookies).

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use crate::http::Body;
use crate::http::request_id::RequestId;
use crate::runtime::bindings::{Method as WitMethod, Response};
use crate::runtime::guest_log::log_safe;
use crate::web::Web;
use crate::web::security::redirect_allowed;
use crate::web::session::is_session_cookie;

pub(super) trait SizeHintExact {
    fn size_hint_exact(&self) -> Option<u64>;
}

impl SizeHintExact for Body {
    fn size_hint_exact(&self) -> Option<u64> {
        hyper::body::Body::size_hint(self).exact()
    }
}

pub(super) fn wit_method(m: &Method) -> WitMethod {
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
pub(super) fn into_http(
    r: Response,
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
            && !redirect_allowed(value.to_str().unwrap_or(""), &web.redirect_origins)
        {
            return fail(format!(
                "redirect to {:?} refused: only paths on this site and `[security] redirect_origins` are allowed",
                log_safe(value.to_str().unwrap_or(""))
            ));
        }
        if name == header::SET_COOKIE
            && let Some(setup) = &web.session
            && is_session_cookie(value.to_str().unwrap_or(""), &setup.config)
        {
            tracing::warn!(component, request_id = %request_id, "dropped a Set-Cookie for the host's session cookie; use the `session` interface");
            continue;
        }
        headers.append(name, value);
    }
    Ok(out)
}
