//! `[security]`: the response headers the host adds, and where guests may redirect.

use std::time::Duration;

use serde::Deserialize;

use super::origin::Origin;
use super::values::HumanDuration;
use super::{Manifest, Result};

/// `[security]`: response headers the host adds unless the guest set them. An empty string
/// turns a header off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
    /// Example: `content_security_policy = "default-src 'self'; img-src 'self' data:"`
    pub content_security_policy: String,
    /// `X-Frame-Options`: `"DENY"` (default), `"SAMEORIGIN"` or `""`.
    pub frame_options: String,
    /// Example: `referrer_policy = "no-referrer"`
    pub referrer_policy: String,
    /// Example: `cross_origin_opener_policy = "same-origin"`
    pub cross_origin_opener_policy: String,
    /// Send `Strict-Transport-Security` with this max-age (only set it when the site is served
    /// over HTTPS). Example: `hsts = "365d"`
    pub hsts: Option<HumanDuration>,
    /// Add `includeSubDomains` to HSTS. Example: `hsts_include_subdomains = true`
    pub hsts_include_subdomains: bool,
    /// Origins that guests may redirect to besides relative paths.
    /// Example: `redirect_origins = ["https://accounts.example.com"]`
    pub redirect_origins: Vec<String>,
}

/// The default policy: same-origin resources only, no plugins, no inline script or style, no
/// framing, forms post only to this origin.
pub const DEFAULT_CSP: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

impl Default for SecuritySection {
    fn default() -> Self {
        Self {
            content_security_policy: DEFAULT_CSP.into(),
            frame_options: "DENY".into(),
            referrer_policy: "strict-origin-when-cross-origin".into(),
            cross_origin_opener_policy: "same-origin".into(),
            hsts: None,
            hsts_include_subdomains: false,
            redirect_origins: Vec::new(),
        }
    }
}

impl Manifest {
    /// Checks `[security]`: header values, frame options, HSTS and redirect origins.
    pub(super) fn validate_security(&self) -> Result<()> {
        let sec = &self.security;
        for (k, v) in [
            (
                "security.content_security_policy",
                &sec.content_security_policy,
            ),
            ("security.referrer_policy", &sec.referrer_policy),
            (
                "security.cross_origin_opener_policy",
                &sec.cross_origin_opener_policy,
            ),
        ] {
            if http::HeaderValue::from_str(v).is_err() {
                return Err(self.invalid(
                    k,
                    format!("`{v}` is not a valid header value"),
                    "use printable ASCII on one line, or `\"\"` to send no header",
                ));
            }
        }
        if !matches!(sec.frame_options.as_str(), "DENY" | "SAMEORIGIN" | "") {
            return Err(self.invalid(
                "security.frame_options",
                format!(
                    "`{}` is not `DENY`, `SAMEORIGIN` or `\"\"`",
                    sec.frame_options
                ),
                "write `frame_options = \"SAMEORIGIN\"` to allow framing by your own pages",
            ));
        }
        if let Some(h) = sec.hsts
            && (h.0.is_zero() || h.0 > Duration::from_secs(2 * 366 * 24 * 3600))
        {
            return Err(self.invalid(
                "security.hsts",
                format!("`{h}` is outside 1s..2 years"),
                "write e.g. `hsts = \"365d\"`",
            ));
        }
        for (i, o) in sec.redirect_origins.iter().enumerate() {
            if Origin::parse(o).is_none() {
                return Err(self.invalid(
                    format!("security.redirect_origins[{i}]"),
                    format!("`{o}` is not an origin"),
                    "write `scheme://host[:port]` with no path, e.g. `\"https://accounts.example.com\"`",
                ));
            }
        }
        Ok(())
    }
}
