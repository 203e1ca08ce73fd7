//! `flagon-auth-session`: the identity the app's own login handler stored in the cookie
//! session, as a Flagon authenticator.
//!
//! The login handler checks the password (`crypto.verify-password`), calls `session.rotate`
//! and stores the identity under `key` (default `identity`) as JSON:
//! `{"subject": "42", "name": "Ada", "roles": ["user"]}` — the Rust SDK's
//! `session::sign_in` does all three. Logging out is `session.clear`. A session without the key
//! is no identity; a value that is not such an object is `invalid` (401), never a 500.
//!
//! The host gives authenticators the session read-only, and checks CSRF tokens on unsafe
//! methods of every route this authenticator may identify (it refuses `csrf = false` there).
//!
//! Settings: `key` (`identity`). Needs `grants = { session = true }`.

use serde::Deserialize;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "flagon:app/authenticator",
    });
}

use bindings::exports::flagon::app::authenticate::{AuthError, Guest};
use bindings::flagon::app::types::{Identity, RequestHead};
use bindings::flagon::app::{session, settings};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_key")]
    key: String,
}

fn default_key() -> String {
    "identity".into()
}

/// What a login handler stores.
#[derive(Deserialize)]
struct Stored {
    subject: String,
    name: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

fn load() -> Result<Settings, String> {
    let s: Settings = serde_json::from_str(&settings::get()).map_err(|e| e.to_string())?;
    if s.key.is_empty() {
        return Err("`key` is empty".into());
    }
    Ok(s)
}

struct SessionAuth;

impl Guest for SessionAuth {
    fn check_settings() -> Result<(), String> {
        load().map(|_| ())
    }

    fn authenticate(_head: RequestHead) -> Result<Option<Identity>, AuthError> {
        let s = load().map_err(AuthError::Unavailable)?;
        let Some(value) = session::get(&s.key) else {
            return Ok(None);
        };
        let stored: Stored = serde_json::from_str(&value).map_err(|_| {
            AuthError::Invalid(format!("session `{}` is not an identity object", s.key))
        })?;
        if stored.subject.is_empty() {
            return Err(AuthError::Invalid(
                "the stored identity has no subject".into(),
            ));
        }
        Ok(Some(Identity {
            subject: stored.subject,
            display_name: stored.name,
            roles: stored.roles,
            claims: Vec::new(),
            authenticator: String::new(),
        }))
    }
}

bindings::export!(SessionAuth with_types_in bindings);
