//! `flagon-ratelimit`: a fixed-window rate limit as a Flagon middleware.
//!
//! Each request that the entry applies to (and whose method is in `methods`, if set) adds one
//! to a counter in a granted kv store, keyed by the window and by what `by` lists: the client
//! address, the identity's subject (the client address for anonymous requests) and the route.
//! Past `limit` in a window the request is answered 429 with `Retry-After`; every counted
//! response carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and
//! `RateLimit-Policy`.
//!
//! The count is one atomic `increment-new` per request (a redb write transaction, or a Lua
//! script in Redis), so the limit holds exactly under concurrent requests, and across hosts
//! that share a Redis store. The counter's key expires with its window.
//!
//! With `count_status` (say `[422]`, the status of a failed login), only responses with one of
//! those statuses count: `before` reads the counter (an `increment-new` by 0) and answers 429
//! once it has reached `limit`; `after` adds one when the response's status is listed.
//!
//! Settings: `store` (a kv store in `grants.kv`), `limit`, `window_secs`, `by` (`["client"]`;
//! any of `client`, `identity`, `route` and `form:<field>`, the value of a form field the
//! `[[middleware]]` entry lists in `form_fields`, compared without case), `methods` (all),
//! `count_status` (none: every request counts), `name` (`ratelimit`, the key prefix: entries
//! sharing a name share counters), `fail_open` (false: when the store fails, 503).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "flagon:app/middleware",
    });
}

use bindings::exports::flagon::app::intercept::{Action, Guest};
use bindings::flagon::app::types::{Method, RequestHead, Response};
use bindings::flagon::app::{kv, log, settings};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    store: String,
    limit: u64,
    window_secs: u64,
    #[serde(default = "by_client")]
    by: Vec<By>,
    methods: Option<Vec<String>>,
    #[serde(default = "default_name")]
    name: String,
    #[serde(default)]
    fail_open: bool,
    #[serde(default)]
    count_status: Vec<u16>,
}

#[derive(Deserialize, Clone, PartialEq, Eq)]
#[serde(try_from = "String")]
enum By {
    Client,
    Identity,
    Route,
    /// A form field, which the entry's `form_fields` must list for the host to pass it.
    Form(String),
}

impl TryFrom<String> for By {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "client" => Ok(By::Client),
            "identity" => Ok(By::Identity),
            "route" => Ok(By::Route),
            _ => match s.strip_prefix("form:") {
                Some(field) if !field.is_empty() => Ok(By::Form(field.to_string())),
                _ => Err(format!(
                    "`by` entry `{s}` is not one of \"client\", \"identity\", \"route\", \"form:<field>\""
                )),
            },
        }
    }
}

/// The most bytes of a subject or form value a key holds (the kv store takes keys of 512
/// bytes by default); longer values share a counter with their prefix, which only makes the
/// limit stricter for them.
const MAX_PART: usize = 200;

/// `s` cut to at most [`MAX_PART`] bytes, on a character boundary.
fn bounded(s: &str) -> &str {
    let mut end = s.len().min(MAX_PART);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn by_client() -> Vec<By> {
    vec![By::Client]
}

fn default_name() -> String {
    "ratelimit".into()
}

fn load() -> Result<Settings, String> {
    let s: Settings = serde_json::from_str(&settings::get()).map_err(|e| e.to_string())?;
    if s.limit == 0 || s.limit > 1_000_000_000 {
        return Err("`limit` must be within 1..1000000000".into());
    }
    if s.window_secs == 0 || s.window_secs > 86_400 {
        return Err("`window_secs` must be within 1..86400".into());
    }
    if s.by.is_empty() {
        return Err(
            "`by` lists at least one of \"client\", \"identity\", \"route\", \"form:<field>\""
                .into(),
        );
    }
    if let Some(bad) = s.count_status.iter().find(|c| !(100..=599).contains(*c)) {
        return Err(format!(
            "`count_status` holds {bad}, which is not an HTTP status"
        ));
    }
    if s.name.is_empty() || s.name.contains(':') {
        return Err("`name` must be non-empty and without `:`".into());
    }
    Ok(s)
}

/// What `before` counted, for `after`'s headers: (limit, remaining, reset seconds, window).
#[derive(Clone, Copy)]
struct Counted {
    limit: u64,
    remaining: u64,
    reset: u64,
    window: u64,
}

thread_local! {
    static COUNTED: Cell<Option<Counted>> = const { Cell::new(None) };
    /// With `count_status`: the key `before` read, for `after` to count on.
    static PENDING: RefCell<Option<(String, u64)>> = const { RefCell::new(None) };
}

fn method_name(m: &Method) -> &str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Patch => "PATCH",
        Method::Options => "OPTIONS",
        Method::Other(o) => o,
    }
}

/// The client's IP address without the port.
fn client_ip(client: &str) -> String {
    client
        .parse::<SocketAddr>()
        .map_or_else(|_| client.to_string(), |a| a.ip().to_string())
}

fn headers(c: Counted) -> Vec<(String, String)> {
    vec![
        ("ratelimit-limit".into(), c.limit.to_string()),
        ("ratelimit-remaining".into(), c.remaining.to_string()),
        ("ratelimit-reset".into(), c.reset.to_string()),
        (
            "ratelimit-policy".into(),
            format!("{};w={}", c.limit, c.window),
        ),
    ]
}

/// The counter's key for this request in this window, or `None` when a `form:` field it is
/// keyed by is missing.
fn key(s: &Settings, head: &RequestHead, window: u64) -> Option<String> {
    let mut key = format!("{}:{}:{window}", s.name, s.window_secs);
    for by in &s.by {
        let part = match by {
            By::Client => format!("c={}", client_ip(&head.client)),
            By::Identity => match &head.identity {
                Some(i) => format!("i={}", bounded(&i.subject)),
                None => format!("c={}", client_ip(&head.client)),
            },
            By::Route => format!("r={}", head.route.as_deref().unwrap_or(&head.path)),
            By::Form(field) => {
                let (_, value) = head.form.iter().find(|(k, _)| k == field)?;
                // `Alice` and ` alice` are the same account to a login form.
                let value = value.trim().to_lowercase();
                if value.is_empty() {
                    return None;
                }
                format!("f.{field}={}", bounded(&value))
            }
        };
        key.push(':');
        key.push_str(&part);
    }
    Some(key)
}

/// The store failed: 503, or on with `fail_open`.
fn store_failed(s: &Settings, e: &str) -> Action {
    log::log(log::Level::Error, &format!("rate limit store failed: {e}"));
    if s.fail_open {
        return Action::Continue;
    }
    // An empty body: the host answers with the app's error page for the status.
    Action::Respond(Response {
        status: 503,
        headers: vec![("retry-after".into(), "1".into())],
        body: Vec::new(),
    })
}

struct RateLimit;

impl Guest for RateLimit {
    fn check_settings() -> Result<(), String> {
        let s = load()?;
        // A store that is not granted (or down) stops the start, not every request.
        kv::exists(&s.store, &format!("{}:check", s.name))
            .map(|_| ())
            .map_err(|e| format!("store `{}`: {e}", s.store))
    }

    fn before(head: RequestHead) -> Action {
        let s = match load() {
            Ok(s) => s,
            Err(e) => panic!("settings were checked at load: {e}"),
        };
        let method = method_name(&head.method);
        if let Some(methods) = &s.methods
            && !methods.iter().any(|m| m.eq_ignore_ascii_case(method))
        {
            return Action::Continue;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let window = now / s.window_secs;
        let reset = (window + 1) * s.window_secs - now;
        let Some(key) = key(&s, &head, window) else {
            // No value to count by (the form has no such field): not this entry's request.
            return Action::Continue;
        };
        // The key lives a little past its window, so a slow clock cannot revive a count.
        let ttl_ms = (s.window_secs + 1) * 1000;
        // Counting failures only: read the count now (adding 0), add one in `after`.
        let delta = if s.count_status.is_empty() { 1 } else { 0 };
        let count = match kv::increment_new(&s.store, &key, delta, ttl_ms) {
            Ok(n) => u64::try_from(n).unwrap_or(0),
            Err(e) => return store_failed(&s, &e),
        };
        let over = if delta == 0 {
            count >= s.limit
        } else {
            count > s.limit
        };
        let counted = Counted {
            limit: s.limit,
            remaining: s.limit.saturating_sub(count),
            reset,
            window: s.window_secs,
        };
        if over {
            let mut h = headers(counted);
            h.push(("retry-after".into(), reset.max(1).to_string()));
            // An empty body: the host answers with the app's error page for 429 (JSON for a
            // client that asks for JSON).
            return Action::Respond(Response {
                status: 429,
                headers: h,
                body: Vec::new(),
            });
        }
        COUNTED.set(Some(counted));
        if delta == 0 {
            PENDING.set(Some((key, ttl_ms)));
        }
        Action::Continue
    }

    fn after(_head: RequestHead, mut response: Response) -> Response {
        let pending = PENDING.take();
        if let Some((key, ttl_ms)) = pending {
            let s = load().unwrap_or_else(|e| panic!("settings were checked at load: {e}"));
            if s.count_status.contains(&response.status) {
                match kv::increment_new(&s.store, &key, 1, ttl_ms) {
                    Ok(n) => COUNTED.set(COUNTED.get().map(|c| Counted {
                        remaining: c.limit.saturating_sub(u64::try_from(n).unwrap_or(0)),
                        ..c
                    })),
                    // The response stands; the failure goes uncounted, and is logged.
                    Err(e) => log::log(log::Level::Error, &format!("rate limit store failed: {e}")),
                }
            }
        }
        if let Some(c) = COUNTED.get() {
            response
                .headers
                .retain(|(k, _)| !k.starts_with("ratelimit-"));
            response.headers.extend(headers(c));
        }
        response
    }
}

bindings::export!(RateLimit with_types_in bindings);
