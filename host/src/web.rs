//! The web layer the host owns around every guest: templates, static files, the cookie
//! session, CSRF, security headers, error pages and the key-value stores, built once per app
//! ([`Web`]) and carried per request ([`RequestCtx`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::StatusCode;
use http::header::{self, HeaderValue};

use crate::app::Body;
use crate::kv::{KvBackendConfig, KvLimits, KvStore};
use crate::manifest::origin::Origin;
use crate::manifest::{KvBackendKind, Manifest, SameSiteSetting, Variable};
use crate::request_id::RequestId;
use crate::security::{HostPolicy, SecurityHeaders};
use crate::session::{SameSite, Session, SessionConfig, SessionKeys};
use crate::static_files::{StaticFiles, StaticMount};
use crate::templates::{RenderError, Templates, UrlMap};

/// The cookie session's keys and settings.
pub struct SessionSetup {
    pub keys: SessionKeys,
    pub config: SessionConfig,
}

/// Everything app-wide that the web layer needs, shared by all requests.
pub struct Web {
    pub dev: bool,
    pub templates: Option<Templates>,
    pub statics: StaticFiles,
    pub session: Option<SessionSetup>,
    pub kv: BTreeMap<String, Arc<KvStore>>,
    pub hosts: HostPolicy,
    pub headers: SecurityHeaders,
    pub redirect_origins: Vec<Origin>,
    /// `[errors]`: status -> template.
    pub error_templates: BTreeMap<u16, String>,
    /// The app's outbound HTTP client (one connection pool for all instances), when any
    /// component is granted `outbound`.
    pub outbound: Option<crate::outbound::OutboundClient>,
}

impl Web {
    /// Build the web layer of `manifest`. `dev` turns on development mode (ephemeral session
    /// key, non-`Secure` cookies, detailed error pages, templates re-read on every render).
    pub async fn load(
        manifest: &Manifest,
        variables: &BTreeMap<String, Variable>,
        dev: bool,
    ) -> Result<Self> {
        let uses_templates =
            manifest.components.values().any(|c| c.grants.templates) || !manifest.errors.is_empty();
        let dir = manifest.resolve(&manifest.templates.dir);
        let templates = if dir.is_dir() {
            Some(Templates::load(&dir, Arc::new(UrlMap::new(manifest)), dev)?)
        } else if uses_templates {
            bail!(
                "the templates directory `{}` does not exist (`[templates] dir` in `{}`), but components are granted `templates` or `[errors]` names templates; create it or set `dir`",
                dir.display(),
                manifest.file.display()
            );
        } else {
            None
        };
        for (status, name) in &manifest.errors {
            if !templates.as_ref().is_some_and(|t| t.contains(name)) {
                bail!(
                    "`errors.{status}` in `{}` names the template `{name}`, which is not in `{}`",
                    manifest.file.display(),
                    dir.display()
                );
            }
        }

        let mut mounts = Vec::new();
        for (i, st) in manifest.statics.iter().enumerate() {
            let path = manifest.resolve(&st.dir);
            let mount = StaticMount::open(&st.url, &path, st.cache_control.as_deref())
                .with_context(|| {
                    format!(
                        "cannot serve `static[{i}]` (`{}` -> `{}`) from `{}`",
                        st.url,
                        path.display(),
                        manifest.file.display()
                    )
                })?;
            mounts.push(mount);
        }

        let session = if manifest.uses_session() {
            Some(session_setup(manifest, variables, dev)?)
        } else {
            None
        };

        let mut kv = BTreeMap::new();
        for (name, section) in &manifest.kv {
            let limits = KvLimits {
                max_key_bytes: section.max_key.unwrap_or(KvLimits::default().max_key_bytes),
                max_value_bytes: section
                    .max_value
                    .map(|s| usize::try_from(s.0).unwrap_or(usize::MAX))
                    .unwrap_or(KvLimits::default().max_value_bytes),
                ..KvLimits::default()
            };
            let config =
                match section.backend {
                    KvBackendKind::Embedded => KvBackendConfig::Embedded {
                        dir: manifest
                            .resolve(section.path.as_deref().unwrap_or("data/kv".as_ref())),
                    },
                    KvBackendKind::Redis => {
                        // The manifest checked that `url` names a declared variable.
                        let var = section.url.as_deref().unwrap_or_default();
                        KvBackendConfig::Redis {
                            url: variables[var].value.clone(),
                            prefix: Some(section.prefix.clone().unwrap_or_else(|| {
                                format!("flagon:{}:{name}:", manifest.app.name)
                            })),
                        }
                    }
                };
            let store = KvStore::open(name, config, limits).await.with_context(|| {
                format!(
                    "cannot open key-value store `{name}` (`[kv.{name}]` in `{}`)",
                    manifest.file.display()
                )
            })?;
            kv.insert(name.clone(), Arc::new(store));
        }

        let outbound = if manifest
            .components
            .values()
            .any(|c| c.grants.outbound.as_ref().is_some_and(|o| !o.is_empty()))
        {
            Some(
                crate::outbound::OutboundClient::new()
                    .context("cannot set up the outbound HTTP client")?,
            )
        } else {
            None
        };
        let redirect_origins = manifest
            .security
            .redirect_origins
            .iter()
            .filter_map(|o| Origin::parse(o))
            .collect();
        Ok(Self {
            dev,
            templates,
            statics: StaticFiles::new(mounts).with_context(|| {
                format!("invalid `[[static]]` in `{}`", manifest.file.display())
            })?,
            session,
            kv,
            hosts: HostPolicy::new(manifest),
            headers: SecurityHeaders::new(manifest),
            redirect_origins,
            error_templates: manifest.errors.clone(),
            outbound,
        })
    }

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
                    tracing::error!(request_id = %request_id, "error page {}: {}", status.as_u16(), e.summary);
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

/// The session keys from `[session]`, or in development mode an ephemeral key.
fn session_setup(
    manifest: &Manifest,
    variables: &BTreeMap<String, Variable>,
    dev: bool,
) -> Result<SessionSetup> {
    let s = &manifest.session;
    let config = SessionConfig {
        cookie_name: s.cookie_name.clone(),
        secure: !dev,
        max_age: s.max_age.0,
        same_site: match s.same_site {
            SameSiteSetting::Lax => SameSite::Lax,
            SameSiteSetting::Strict => SameSite::Strict,
        },
        max_size: usize::try_from(s.max_size.0).unwrap_or(4096),
    };
    // The manifest checked these with file/key messages; this is the session module's own
    // precondition for its per-request functions, which cannot report errors.
    config
        .validate()
        .with_context(|| format!("invalid `[session]` in `{}`", manifest.file.display()))?;
    let keys = match &s.secret {
        Some(name) => {
            let fallbacks: Vec<Vec<u8>> = s
                .fallback_secrets
                .iter()
                .map(|n| variables[n].value.as_bytes().to_vec())
                .collect();
            SessionKeys::new(variables[name].value.as_bytes(), &fallbacks).map_err(|e| {
                anyhow::anyhow!(
                    "`[session] secret` in `{}`: {e}; generate one with `openssl rand -base64 48`",
                    manifest.file.display()
                )
            })?
        }
        None if dev => {
            tracing::warn!(
                "DEVELOPMENT MODE: sessions use an ephemeral random key; every restart logs everyone out. Never run --dev in production."
            );
            SessionKeys::ephemeral()
        }
        None => bail!(
            "components are granted `session` but `{}` sets no session key.\n  help: add `[session] secret = \"session_key\"` and `[variables.session_key] env = \"FLAGON_SESSION_KEY\"` with `secret = true`, then set FLAGON_SESSION_KEY (e.g. `export FLAGON_SESSION_KEY=$(openssl rand -base64 48)`); for local development only, use `flagon serve --dev`",
            manifest.file.display()
        ),
    };
    Ok(SessionSetup { keys, config })
}

/// Per-request web state, carried in the `Store` while the guest runs.
pub struct RequestCtx {
    pub web: Arc<Web>,
    pub session: Option<Arc<Mutex<Session>>>,
    /// The first template render that failed: the request ends in a 500.
    pub render_failure: Option<RenderError>,
    /// This request's `Authorization`/`Cookie` headers; their values are redacted from
    /// everything the guest logs.
    pub credential_headers: Vec<(http::HeaderName, HeaderValue)>,
    /// The values to redact, worked out from `credential_headers` on the first log line (most
    /// requests never log, so the request path does not pay for it).
    credentials: Option<Arc<[String]>>,
}

impl RequestCtx {
    pub fn new(web: Arc<Web>, session: Option<Session>) -> Self {
        Self {
            web,
            session: session.map(|s| Arc::new(Mutex::new(s))),
            render_failure: None,
            credential_headers: Vec::new(),
            credentials: None,
        }
    }

    /// The credential values to redact from this request's guest output.
    pub(crate) fn credentials(&mut self) -> Arc<[String]> {
        let headers = &self.credential_headers;
        self.credentials
            .get_or_insert_with(|| crate::state::request_credentials(headers).into())
            .clone()
    }

    pub(crate) fn session_guard(&mut self) -> MutexGuard<'_, Session> {
        self.session
            .get_or_insert_with(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}
