//! The web layer the host owns around every guest: sessions, CSRF and host policy, templates,
//! static files, error pages and security headers, built once per app ([`Web`]).
//!
//! It knows nothing of Wasm: the pipeline in `app` calls it before and after the guest, and
//! the `templates` and `session` capabilities use its templates and sessions.

pub mod csrf;
pub mod errors;
pub mod security;
pub mod session;
pub mod static_files;
pub mod templates;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};

use crate::manifest::origin::Origin;
use crate::manifest::{Manifest, SameSiteSetting, Variable};
use security::{HostPolicy, SecurityHeaders};
use session::{SameSite, SessionConfig, SessionKeys};
use static_files::{StaticFiles, StaticMount};
use templates::{Templates, UrlMap};

/// The cookie session's keys and settings.
pub struct SessionSetup {
    pub keys: SessionKeys,
    pub config: SessionConfig,
}

/// Everything app-wide that the web layer needs, shared by all requests.
pub struct Web {
    pub dev: bool,
    /// Shared with the `templates` capability.
    pub templates: Option<Arc<Templates>>,
    pub statics: StaticFiles,
    pub session: Option<SessionSetup>,
    pub hosts: HostPolicy,
    pub headers: SecurityHeaders,
    pub redirect_origins: Vec<Origin>,
    /// `[errors]`: status -> template.
    pub error_templates: BTreeMap<u16, String>,
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
            let urls = Arc::new(UrlMap::new(manifest));
            Some(Arc::new(Templates::load(&dir, urls, dev)?))
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
            hosts: HostPolicy::new(manifest),
            headers: SecurityHeaders::new(manifest),
            redirect_origins,
            error_templates: manifest.errors.clone(),
        })
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
        absolute_max_age: s.absolute_max_age.0,
        audience: manifest.app.name.clone(),
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
            SessionKeys::ephemeral_for(&manifest.file)
        }
        None => bail!(
            "components are granted `session` but `{}` sets no session key.\n  help: add `[session] secret = \"session_key\"` and `[variables.session_key] env = \"FLAGON_SESSION_KEY\"` with `secret = true`, then set FLAGON_SESSION_KEY (e.g. `export FLAGON_SESSION_KEY=$(openssl rand -base64 48)`); for local development only, use `flagon serve --dev`",
            manifest.file.display()
        ),
    };
    Ok(SessionSetup { keys, config })
}
