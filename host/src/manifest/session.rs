//! `[session]`: the host-owned cookie session.

use std::time::Duration;

use serde::Deserialize;

use super::values::{HumanDuration, Size};
use super::{Manifest, Result};

/// `[session]`: the host-owned cookie session (encrypted and authenticated; see the security
/// model). Used by components granted `session`.
/// model). Used by components granted `session`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSection {
    /// The `[variables]` entry holding the secret key (at least 32 bytes, `secret = true`).
    /// Required outside development mode. Example: `secret = "session_key"`
    pub secret: Option<String>,
    /// Older keys: cookies made with them are still read, but never written (key rotation).
    /// Example: `fallback_secrets = ["old_session_key"]`
    pub fallback_secrets: Vec<String>,
    /// Cookie name; `__Host-` is prepended when the cookie is `Secure`.
    /// Example: `cookie_name = "session"`
    pub cookie_name: String,
    /// How long a session lasts after its last change. Example: `max_age = "14d"`
    pub max_age: HumanDuration,
    /// How long a session lasts from its start (login), however active it is; at least
    /// `max_age`. Example: `absolute_max_age = "7d"`
    pub absolute_max_age: HumanDuration,
    /// `SameSite` attribute: `"lax"` (default) or `"strict"`. Example: `same_site = "strict"`
    pub same_site: SameSiteSetting,
    /// Largest cookie (name and value); storing more is refused with an error to the guest.
    /// Example: `max_size = "4000B"`
    pub max_size: Size,
}

impl Default for SessionSection {
    fn default() -> Self {
        Self {
            secret: None,
            fallback_secrets: Vec::new(),
            cookie_name: "session".into(),
            max_age: HumanDuration(Duration::from_secs(14 * 24 * 3600)),
            absolute_max_age: HumanDuration(Duration::from_secs(30 * 24 * 3600)),
            same_site: SameSiteSetting::Lax,
            max_size: Size(4000),
        }
    }
}

/// The session cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSiteSetting {
    Lax,
    Strict,
}

impl Manifest {
    /// Checks `[session]`: keys in secret variables, cookie name, lifetime and size.
    pub(super) fn validate_session(&self) -> Result<()> {
        let session = &self.session;
        for (k, name) in session.secret.iter().map(|n| ("session.secret", n)).chain(
            session
                .fallback_secrets
                .iter()
                .map(|n| ("session.fallback_secrets", n)),
        ) {
            match self.variables.get(name) {
                None => {
                    return Err(self.invalid(
                        k,
                        format!("unknown variable `{name}`"),
                        format!(
                            "declare it: `[variables.{name}]` with `env = \"FLAGON_SESSION_KEY\"` and `secret = true`; generate a key with `openssl rand -base64 48`"
                        ),
                    ));
                }
                Some(v) if !v.secret => {
                    return Err(self.invalid(
                        k,
                        format!("variable `{name}` holds a key but is not marked secret"),
                        format!("add `secret = true` to `[variables.{name}]`"),
                    ));
                }
                Some(v) if v.default.is_some() => {
                    return Err(self.invalid(
                        k,
                        format!("variable `{name}` has a `default`, so the key would live in the manifest"),
                        format!("remove `default` from `[variables.{name}]` and set the key through `env` or `file`"),
                    ));
                }
                Some(_) => {}
            }
        }
        let name_ok = !session.cookie_name.is_empty()
            && session.cookie_name.len() <= 64
            && session
                .cookie_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok || session.cookie_name.starts_with("__") {
            return Err(self.invalid(
                "session.cookie_name",
                format!("`{}` is not a usable cookie name", session.cookie_name),
                "use letters, digits, `_` and `-` (Flagon adds the `__Host-` prefix itself)",
            ));
        }
        let max_age = session.max_age.0;
        if max_age < Duration::from_secs(60) || max_age > Duration::from_secs(400 * 24 * 3600) {
            return Err(self.invalid(
                "session.max_age",
                format!("`{}` is outside 1m..400d", session.max_age),
                "set e.g. `max_age = \"14d\"` (browsers cap cookies at 400 days)",
            ));
        }
        let absolute = session.absolute_max_age.0;
        if absolute < max_age || absolute > Duration::from_secs(400 * 24 * 3600) {
            return Err(self.invalid(
                "session.absolute_max_age",
                format!(
                    "`{}` is outside `max_age` ({})..400d",
                    session.absolute_max_age, session.max_age
                ),
                "set e.g. `absolute_max_age = \"30d\"`, at least as long as `max_age`",
            ));
        }
        if !(256..=4096).contains(&session.max_size.0) {
            return Err(self.invalid(
                "session.max_size",
                format!("`{}` is outside 256B..4KiB", session.max_size),
                "remove `max_size` to use the default (browsers keep at most 4096 bytes per cookie)",
            ));
        }
        Ok(())
    }
}
