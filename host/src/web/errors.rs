//! Error pages: the app's `[errors]` template for a status if it has one, else plain text with
//! the status and the request id. Nothing else reaches the client (details only with `--dev`).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use super::Web;
use crate::http::Body;
use crate::http::request_id::RequestId;
use crate::text::log_safe;

impl Web {
    /// An error response: the app's template for this status if it has one, else a plain page
    /// with the status and the request id. `detail` is shown only in development mode.
    pub fn error_page(
        &self,
        status: StatusCode,
        request_id: &RequestId,
        detail: Option<&str>,
    ) -> Response<Body> {
        let mut r = self.error_page_html(status, request_id, detail);
        r.extensions_mut().insert(ErrorPage {
            request_id: request_id.to_string(),
            detail: detail.filter(|_| self.dev).map(str::to_string),
        });
        r
    }

    fn error_page_html(
        &self,
        status: StatusCode,
        request_id: &RequestId,
        detail: Option<&str>,
    ) -> Response<Body> {
        let reason = status.canonical_reason().unwrap_or("");
        if let (Some(name), Some(t)) = (
            self.error_templates.get(&status.as_u16()),
            self.templates.as_ref(),
        ) {
            let ctx = minijinja::context! {
                status => status.as_u16(),
                reason,
                request_id => request_id.to_string(),
                detail => if self.dev { detail } else { None },
            };
            match t.render(name, ctx, Default::default()) {
                Ok(html) => {
                    let mut r = Response::new(Body::new(Bytes::from(html)));
                    *r.status_mut() = status;
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/html; charset=utf-8"),
                    );
                    r.headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    return r;
                }
                Err(e) => {
                    tracing::error!(request_id = %request_id, "error page {}: {}", status.as_u16(), log_safe(&e.summary));
                }
            }
        }
        let mut text = format!("{} {reason}\nrequest id: {request_id}\n", status.as_u16());
        if self.dev
            && let Some(d) = detail
        {
            text.push_str("\n[development mode] ");
            text.push_str(d);
            text.push('\n');
        }
        let mut r = Response::new(Body::new(Bytes::from(text)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

/// Marks a response as the host's error page, so that a client asking for JSON gets it as
/// JSON instead ([`negotiate`]).
#[derive(Clone, Debug)]
pub struct ErrorPage {
    request_id: String,
    /// Development mode only.
    detail: Option<String>,
}

/// Whether the client asks for JSON rather than a page: its `Accept` names `application/json`
/// (or a `+json` type) and not `text/html`, as API clients and `fetch` calls do. Browsers
/// always list `text/html` for a navigation.
pub fn wants_json(headers: &HeaderMap) -> bool {
    let mut json = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let media = item.split(';').next().unwrap_or("").trim();
            if media.eq_ignore_ascii_case("text/html") {
                return false;
            }
            let media = media.to_ascii_lowercase();
            json |= media == "application/json" || media.ends_with("+json");
        }
    }
    json
}

/// The host's error page as JSON, `{"error": "Unauthorized", "status": 401, "request_id": ...}`
/// (with `detail` in development mode), when `json` (see [`wants_json`]) and the response is
/// one. Its status and other headers (`WWW-Authenticate`, `Allow`, `Retry-After`) stay.
pub fn negotiate(response: &mut Response<Body>, json: bool) {
    if !json {
        return;
    }
    let Some(page) = response.extensions_mut().remove::<ErrorPage>() else {
        return;
    };
    let status = response.status();
    let mut body = serde_json::json!({
        "error": status.canonical_reason().unwrap_or(""),
        "status": status.as_u16(),
        "request_id": page.request_id,
    });
    if let Some(detail) = page.detail {
        body["detail"] = detail.into();
    }
    *response.body_mut() = Body::new(Bytes::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().remove(header::CONTENT_LENGTH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_for_clients_that_ask_for_it_and_not_for_html() {
        let accept = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            wants_json(&h)
        };
        assert!(accept("application/json"));
        assert!(accept("application/problem+json, */*;q=0.1"));
        assert!(!accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!accept("application/json, text/html"));
        assert!(!accept("*/*"));
        assert!(!wants_json(&HeaderMap::new()));
    }
}
