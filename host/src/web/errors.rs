//! Error pages: the app's `[errors]` template for a status if it has one, else plain text with
//! the status and the request id. Nothing else reaches the client (details only with `--dev`).

use bytes::Bytes;
use http::StatusCode;
use http::header::{self, HeaderValue};

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
    ) -> http::Response<Body> {
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
                    let mut r = http::Response::new(Body::new(Bytes::from(html)));
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
        let mut r = http::Response::new(Body::new(Bytes::from(text)));
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
