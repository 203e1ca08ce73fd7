//! `flagon-cors`: Cross-Origin Resource Sharing as a Flagon middleware.
//!
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered in
//!   `before`: 204 with the allowed method and headers when the origin, the method and every
//!   requested header are allowed; 403 otherwise. The route is not called.
//! - Other requests go on; `after` adds `Access-Control-Allow-Origin` (the request's own origin,
//!   or `*` for a `"*"` list without credentials) and `Access-Control-Expose-Headers` when the
//!   origin is allowed.
//! - `Access-Control-Allow-Credentials: true` only with `credentials = true`, and then only for
//!   origins listed one by one (`"*"` is refused at load with credentials).
//! - `Vary: Origin` on every response, so a cache never serves one origin's answer to another.
//!
//! Settings: `origins` (exact `scheme://host[:port]`, or `"*"`), `methods` (`GET`, `HEAD`,
//! `POST`), `headers` (request headers allowed beyond the CORS-safelisted ones),
//! `expose_headers`, `credentials` (false), `max_age_secs` (600).

use serde::Deserialize;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "flagon:app/middleware",
    });
}

use bindings::exports::flagon::app::intercept::{Action, Guest};
use bindings::flagon::app::settings;
use bindings::flagon::app::types::{Method, RequestHead, Response};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    origins: Vec<String>,
    #[serde(default = "default_methods")]
    methods: Vec<String>,
    #[serde(default)]
    headers: Vec<String>,
    #[serde(default)]
    expose_headers: Vec<String>,
    #[serde(default)]
    credentials: bool,
    #[serde(default = "default_max_age")]
    max_age_secs: u32,
}

fn default_methods() -> Vec<String> {
    vec!["GET".into(), "HEAD".into(), "POST".into()]
}

fn default_max_age() -> u32 {
    600
}

fn load() -> Result<Settings, String> {
    let mut s: Settings = serde_json::from_str(&settings::get()).map_err(|e| e.to_string())?;
    if s.origins.is_empty() {
        return Err("`origins` lists at least one origin".into());
    }
    for o in &s.origins {
        if o == "*" {
            if s.credentials {
                return Err(
                    "`\"*\"` cannot be used with `credentials = true`: list the origins".into(),
                );
            }
            continue;
        }
        let ok = (o.starts_with("https://") || o.starts_with("http://"))
            && !o.ends_with('/')
            && o.split("://")
                .nth(1)
                .is_some_and(|h| !h.is_empty() && !h.contains(['/', '?', '#', '@', '*']));
        if !ok {
            return Err(format!("origin `{o}` is not `scheme://host[:port]`"));
        }
    }
    if s.methods
        .iter()
        .any(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err("`methods` are HTTP method names".into());
    }
    for list in [&s.headers, &s.expose_headers] {
        if list
            .iter()
            .any(|h| h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err("header names are letters, digits and `-`".into());
        }
    }
    for o in &mut s.origins {
        o.make_ascii_lowercase();
    }
    for m in &mut s.methods {
        m.make_ascii_uppercase();
    }
    for h in &mut s.headers {
        h.make_ascii_lowercase();
    }
    if s.max_age_secs > 86_400 {
        return Err("`max_age_secs` is at most 86400".into());
    }
    Ok(s)
}

fn header<'a>(head: &'a RequestHead, name: &str) -> Option<&'a str> {
    head.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The value for `Access-Control-Allow-Origin`, if `origin` is allowed.
fn allow_origin(s: &Settings, origin: &str) -> Option<String> {
    let lower = origin.to_ascii_lowercase();
    if s.origins.contains(&lower) {
        Some(origin.to_string())
    } else if s.origins.iter().any(|o| o == "*") {
        Some("*".into())
    } else {
        None
    }
}

fn add_vary(headers: &mut Vec<(String, String)>, what: &str) {
    match headers.iter_mut().find(|(k, _)| k == "vary") {
        Some((_, v)) if v.split(',').any(|p| p.trim().eq_ignore_ascii_case(what)) => {}
        Some((_, v)) => {
            v.push_str(", ");
            v.push_str(what);
        }
        None => headers.push(("vary".into(), what.into())),
    }
}

struct Cors;

impl Guest for Cors {
    fn check_settings() -> Result<(), String> {
        load().map(|_| ())
    }

    fn before(head: RequestHead) -> Action {
        let s = load().expect("settings were checked at load");
        let (Method::Options, Some(origin), Some(method)) = (
            &head.method,
            header(&head, "origin"),
            header(&head, "access-control-request-method"),
        ) else {
            return Action::Continue;
        };
        let mut headers = Vec::new();
        add_vary(&mut headers, "Origin");
        add_vary(&mut headers, "Access-Control-Request-Method");
        add_vary(&mut headers, "Access-Control-Request-Headers");
        let requested: Vec<String> = header(&head, "access-control-request-headers")
            .unwrap_or("")
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let allowed = allow_origin(&s, origin).filter(|_| {
            s.methods.iter().any(|m| m == method) && requested.iter().all(|h| s.headers.contains(h))
        });
        let Some(allowed) = allowed else {
            return Action::Respond(Response {
                status: 403,
                headers,
                body: Vec::new(),
            });
        };
        headers.push(("access-control-allow-origin".into(), allowed));
        headers.push(("access-control-allow-methods".into(), s.methods.join(", ")));
        if !requested.is_empty() {
            headers.push(("access-control-allow-headers".into(), requested.join(", ")));
        }
        headers.push(("access-control-max-age".into(), s.max_age_secs.to_string()));
        if s.credentials {
            headers.push(("access-control-allow-credentials".into(), "true".into()));
        }
        Action::Respond(Response {
            status: 204,
            headers,
            body: Vec::new(),
        })
    }

    fn after(head: RequestHead, mut response: Response) -> Response {
        let s = load().expect("settings were checked at load");
        // A route's own CORS headers are replaced: this middleware decides.
        response
            .headers
            .retain(|(k, _)| !k.starts_with("access-control-"));
        add_vary(&mut response.headers, "Origin");
        let Some(allowed) = header(&head, "origin").and_then(|o| allow_origin(&s, o)) else {
            return response;
        };
        response
            .headers
            .push(("access-control-allow-origin".into(), allowed));
        if s.credentials {
            response
                .headers
                .push(("access-control-allow-credentials".into(), "true".into()));
        }
        if !s.expose_headers.is_empty() {
            response.headers.push((
                "access-control-expose-headers".into(),
                s.expose_headers.join(", "),
            ));
        }
        response
    }
}

bindings::export!(Cors with_types_in bindings);
