//! `flagon:app/log`: every component may log. Lines are count- and size-limited per request,
//! control characters are escaped, and secrets and the request's credentials are redacted
//! (the cleaning is `runtime::guest_log`'s, shared with stdout and stderr).

use wasmtime::component::Linker;

use super::{AppSetup, CapData, Capability, ComponentSetup, Cx, HostState, RequestCtx};
use crate::manifest::{ComponentSection, Manifest};
use crate::runtime::bindings::flagon::app::log;
use crate::runtime::guest_log::{MAX_LOG_LINE_BYTES, MAX_LOG_LINES_PER_REQUEST};

pub struct Log;

impl Capability for Log {
    const NAME: &'static str = "Log";
    const INTERFACES: &'static [&'static str] = &["flagon:app/log"];
    const GRANT: Option<super::Grant> = None;
    type App = ();
    type Component = ();
    /// Lines this request has written (or tried to).
    type Instance = u32;

    fn granted(_: &ComponentSection) -> bool {
        true
    }

    fn describe(_: &Manifest, _: &ComponentSection) -> Vec<String> {
        vec!["log".into()]
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        log::add_to_linker::<_, CapData<Self>>(linker, HostState::cx::<Self>)
    }

    async fn setup(_: &AppSetup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn configure(_: &(), _: &ComponentSetup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn prepare(_: &()) -> u32 {
        0
    }
}

impl log::Host for Cx<'_, Log> {
    fn log(&mut self, level: log::Level, message: String) {
        *self.instance = self.instance.saturating_add(1);
        if *self.instance > MAX_LOG_LINES_PER_REQUEST {
            return;
        }
        let level = match level {
            log::Level::Trace => tracing::Level::TRACE,
            log::Level::Debug => tracing::Level::DEBUG,
            log::Level::Info => tracing::Level::INFO,
            log::Level::Warn => tracing::Level::WARN,
            log::Level::Error => tracing::Level::ERROR,
        };
        // A line the filter drops is not cleaned or redacted: that work (and building the
        // redactor on the request's first line) is only for lines that are written.
        if !guest_level_enabled(level) {
            return;
        }
        let out = self.guest_log();
        let message = out.clean(&message, MAX_LOG_LINE_BYTES);
        let component = &*out.component;
        let request_id = &*out.request_id;
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(target: "flagon::guest", $lvl, component, request_id, "{message}")
            };
        }
        match level {
            tracing::Level::TRACE => emit!(tracing::Level::TRACE),
            tracing::Level::DEBUG => emit!(tracing::Level::DEBUG),
            tracing::Level::INFO => emit!(tracing::Level::INFO),
            tracing::Level::WARN => emit!(tracing::Level::WARN),
            _ => emit!(tracing::Level::ERROR),
        }
    }
}

/// Whether the subscriber writes `flagon::guest` lines at `level` (tracing's macros need the
/// level as a constant, hence one check per level).
fn guest_level_enabled(level: tracing::Level) -> bool {
    match level {
        tracing::Level::TRACE => tracing::enabled!(target: "flagon::guest", tracing::Level::TRACE),
        tracing::Level::DEBUG => tracing::enabled!(target: "flagon::guest", tracing::Level::DEBUG),
        tracing::Level::INFO => tracing::enabled!(target: "flagon::guest", tracing::Level::INFO),
        tracing::Level::WARN => tracing::enabled!(target: "flagon::guest", tracing::Level::WARN),
        _ => tracing::enabled!(target: "flagon::guest", tracing::Level::ERROR),
    }
}

/// Log how many lines a request wrote past the limit, if any.
pub(super) fn report_dropped(lines: u32, component: &str, request: &RequestCtx) {
    let dropped = lines.saturating_sub(MAX_LOG_LINES_PER_REQUEST);
    if dropped > 0 {
        tracing::warn!(component, request_id = %request.request_id, dropped, "guest log lines dropped (limit per request)");
    }
}

/// The request headers whose values are credentials, kept (cheaply: a `HeaderValue` clone
/// shares its bytes) so their values can be redacted if the guest logs them. One pass over the
/// headers: comparing standard header names is cheaper than three hashed lookups.
pub fn credential_headers(headers: &http::HeaderMap) -> Vec<(http::HeaderName, http::HeaderValue)> {
    use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
    headers
        .iter()
        .filter(|(name, _)| {
            **name == AUTHORIZATION || **name == PROXY_AUTHORIZATION || **name == COOKIE
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The credential values in `headers` (from [`credential_headers`]): each `Authorization` and
/// `Proxy-Authorization` value (and its token part), and each cookie value. Longest first, so
/// a whole header is redacted before its parts.
pub fn request_credentials(headers: &[(http::HeaderName, http::HeaderValue)]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        if *name == http::header::COOKIE {
            for pair in v.split(';') {
                if let Some((_, value)) = pair.split_once('=') {
                    out.push(value.trim().to_string());
                }
            }
        } else if let Some((_, token)) = v.split_once(' ') {
            out.push(token.trim().to_string());
        }
        out.push(v);
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}
