//! What a guest returns, made into an HTTP response: everything the guest controls is
//! validated (status, header names and values, redirects, cookies).

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use crate::http::Body;
use crate::http::request_id::RequestId;
use crate::runtime::bindings::{Method as WitMethod, Response};
use crate::text::log_safe;
use crate::web::Web;
use crate::web::security::{redirect_allowed, refresh_allowed};
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
        tracing::error!(component, request_id = %request_id, "invalid response from guest: {}", log_safe(&why));
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
    for (name, text) in r.headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            return fail(format!("invalid header name {name:?}"));
        };
        // `HeaderValue::from_str` refuses CR, LF and other control bytes, so a guest cannot
        // split the response or inject headers.
        let Ok(value) = HeaderValue::from_str(&text) else {
            return fail(format!("invalid value for header `{name}`"));
        };
        if host_owned(&name) {
            tracing::debug!(component, request_id = %request_id, "ignoring host-owned header `{name}` from guest");
            continue;
        }
        // The checks below read the guest's own text (always UTF-8), never a lossy or empty
        // stand-in, so a value the header type cannot show as text cannot slip past them.
        let refused = (name == header::LOCATION
            && !redirect_allowed(&text, &web.redirect_origins))
            // `Refresh` redirects as `Location` does (browsers follow it).
            || (name.as_str() == "refresh" && !refresh_allowed(&text, &web.redirect_origins));
        if refused {
            // Without its query and fragment: they may carry tokens.
            let shown = text.split(['?', '#']).next().unwrap_or("");
            return fail(format!(
                "`{name}` to {:?} refused: only paths on this site and `[security] redirect_origins` are allowed",
                shown
            ));
        }
        if name == header::SET_COOKIE
            && let Some(setup) = &web.session
            && is_session_cookie(&text, &setup.config)
        {
            tracing::warn!(component, request_id = %request_id, "dropped a Set-Cookie for the host's session cookie; use the `session` interface");
            continue;
        }
        headers.append(name, value);
    }
    Ok(out)
}
