//! `[templates]`, `[[static]]` and `[errors]`: what the host serves and renders itself.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;

use super::{Manifest, Result};

/// `[templates]`: the app's minijinja templates, rendered by the host with auto-escaping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesSection {
    /// Directory of templates, relative to the manifest (default `templates`; it is optional
    /// unless a component is granted `templates`). Example: `dir = "templates"`
    pub dir: PathBuf,
}

impl Default for TemplatesSection {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("templates"),
        }
    }
}

/// `[[static]]`: a directory of files served by the host under a URL prefix.
/// Example: `[[static]]` `url = "/static"` `dir = "static"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSection {
    /// URL prefix, starting with `/`. Example: `url = "/static"`
    pub url: String,
    /// Directory served, relative to the manifest. Example: `dir = "static"`
    pub dir: PathBuf,
    /// `Cache-Control` for these files (default `no-cache`: always revalidate, which the ETag
    /// makes cheap). Example: `cache_control = "public, max-age=86400"`
    pub cache_control: Option<String>,
}

impl Manifest {
    /// Checks every `[[static]]` mount: a clean URL prefix, mounted once, hiding no route.
    pub(super) fn validate_statics(&self) -> Result<()> {
        let mut prefixes = BTreeSet::new();
        for (i, st) in self.statics.iter().enumerate() {
            let key = format!("static[{i}]");
            let u = &st.url;
            let bad = !u.starts_with('/')
                || u.len() < 2
                || u.ends_with('/')
                || u.contains(['{', '}', '?', '#', '%', '\\'])
                || u.split('/')
                    .skip(1)
                    .any(|seg| seg.is_empty() || seg == "." || seg == "..");
            if bad {
                return Err(self.invalid(
                    format!("{key}.url"),
                    format!("`{u}` is not a URL prefix"),
                    "write a path such as `url = \"/static\"` (not `/`, no trailing `/`)",
                ));
            }
            if !prefixes.insert(u.as_str()) {
                return Err(self.invalid(
                    format!("{key}.url"),
                    format!("`{u}` is mounted twice"),
                    "give every `[[static]]` mount its own `url`",
                ));
            }
            if let Some(r) = self
                .routes
                .iter()
                .find(|r| r.path == *u || r.path.starts_with(&format!("{u}/")))
            {
                return Err(self.invalid(
                    format!("{key}.url"),
                    format!(
                        "route `{}` lies under the static mount `{u}` and would never be reached",
                        r.path
                    ),
                    "move the route or the mount",
                ));
            }
            if let Some(cc) = &st.cache_control
                && http::HeaderValue::from_str(cc).is_err()
            {
                return Err(self.invalid(
                    format!("{key}.cache_control"),
                    format!("`{cc}` is not a valid header value"),
                    "write e.g. `cache_control = \"public, max-age=3600\"`",
                ));
            }
        }
        Ok(())
    }
}
