//! `flagon-auth-apikey`: API keys as a Flagon authenticator, stored hashed in a kv store, or
//! (`flagon-auth-apikey-sql`, the same source built with the `sql` feature) in a SQL table.
//!
//! A key is `<id>.<secret>`, sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`. The
//! store holds, under `<prefix><id>`, a JSON record
//! `{"hash": "<hex HMAC-SHA256(pepper, secret)>", "subject": "42", "name": "CI", "roles": [...]}`
//! and never the secret itself: a copy of the store is worth nothing without the pepper, a
//! secret variable. The secret is checked with the host's constant-time `hmac-sha256-verify`.
//! Revoking a key is deleting its record (or setting `"revoked": true`).
//!
//! A request without either header, or whose bearer token is not of the `<id>.<secret>` form (a
//! JWT, say), is no identity: the next authenticator is asked. An unknown id, a wrong secret
//! or a revoked key is `invalid` (401); a failing store `unavailable` (503).
//!
//! Settings: `store` (a kv store in `grants.kv`), `pepper_variable` (a secret variable of at
//! least 32 bytes in `grants.variables`), `prefix` (`apikey:`). Needs `grants.crypto`.
//!
//! The SQL build reads `SELECT hash, subject, name, roles, revoked FROM <table> WHERE id = $1`
//! instead (one parameterized statement; `roles` a JSON array or space-separated text, `revoked`
//! true/nonzero for a revoked key). Its settings are `database` (in `grants.sql`), `table`
//! (`api_keys`, a plain identifier) and `pepper_variable`.
//!
//! Issuing a key, in a handler granted the same store, variable and crypto:
//! `id = random_token(16)`, `secret = random_token(32)`, store the record with
//! `hash = hex(hmac_sha256(pepper, secret))`, and show `<id>.<secret>` to the user once.

use serde::Deserialize;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "flagon:app/authenticator",
    });
}

use bindings::exports::flagon::app::authenticate::{AuthError, Guest};
use bindings::flagon::app::types::{Identity, RequestHead};
use bindings::flagon::app::{config, crypto, settings};

#[cfg(not(feature = "sql"))]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    store: String,
    pepper_variable: String,
    #[serde(default = "default_prefix")]
    prefix: String,
}

#[cfg(not(feature = "sql"))]
fn default_prefix() -> String {
    "apikey:".into()
}

#[cfg(feature = "sql")]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    database: String,
    #[serde(default = "default_table")]
    table: String,
    pepper_variable: String,
}

#[cfg(feature = "sql")]
fn default_table() -> String {
    "api_keys".into()
}

/// The record of key `id`, `None` if there is none.
#[cfg(not(feature = "sql"))]
fn lookup(s: &Settings, id: &str) -> Result<Option<Record>, String> {
    use bindings::flagon::app::kv;
    let Some(stored) = kv::get(&s.store, &format!("{}{id}", s.prefix))
        .map_err(|e| format!("the key store failed: {e}"))?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&stored)
        .map(Some)
        .map_err(|_| "the stored key record is malformed".into())
}

/// The record of key `id`, `None` if there is none.
#[cfg(feature = "sql")]
fn lookup(s: &Settings, id: &str) -> Result<Option<Record>, String> {
    use bindings::flagon::app::sql;
    use bindings::flagon::app::sql_types::Value;
    let statement = format!(
        "SELECT hash, subject, name, roles, revoked FROM {} WHERE id = $1",
        s.table
    );
    let rows = sql::query(&s.database, &statement, &[Value::Text(id.into())])
        .map_err(|e| format!("the key table failed: {e:?}"))?;
    let Some(row) = rows.rows.into_iter().next() else {
        return Ok(None);
    };
    let text = |v: &Value| match v {
        Value::Text(t) => Some(t.clone()),
        _ => None,
    };
    let [hash, subject, name, roles, revoked] = row.as_slice() else {
        return Err("the key table's row has the wrong columns".into());
    };
    let roles = text(roles).unwrap_or_default();
    let roles = serde_json::from_str::<Vec<String>>(&roles)
        .unwrap_or_else(|_| roles.split_whitespace().map(str::to_string).collect());
    Ok(Some(Record {
        hash: text(hash).ok_or("`hash` is not text")?,
        subject: text(subject).ok_or("`subject` is not text")?,
        name: text(name),
        roles,
        revoked: match revoked {
            Value::Boolean(b) => *b,
            Value::Integer(n) => *n != 0,
            _ => false,
        },
    }))
}

#[derive(Deserialize)]
struct Record {
    hash: String,
    subject: String,
    name: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    revoked: bool,
}

fn load() -> Result<(Settings, String), String> {
    let s: Settings = serde_json::from_str(&settings::get()).map_err(|e| e.to_string())?;
    #[cfg(feature = "sql")]
    {
        let mut chars = s.table.chars();
        let ident = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && s.table.len() <= 63;
        if !ident {
            return Err("`table` must be a plain identifier (a-z, 0-9, `_`)".into());
        }
    }
    let pepper = config::get(&s.pepper_variable).ok_or_else(|| {
        format!(
            "variable `{}` is not granted: add it to `grants.variables`",
            s.pepper_variable
        )
    })?;
    if pepper.len() < 32 {
        return Err(format!("`{}` must be at least 32 bytes", s.pepper_variable));
    }
    Ok((s, pepper))
}

/// The key the request carries, if any.
fn presented(head: &RequestHead) -> Option<&str> {
    let header = |name: &str| {
        head.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    };
    if let Some(key) = header("x-api-key") {
        return Some(key);
    }
    let (scheme, token) = header("authorization")?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `<id>.<secret>`, with an id of letters, digits, `-` and `_`.
fn split(key: &str) -> Option<(&str, &str)> {
    let (id, secret) = key.split_once('.')?;
    let id_ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let secret_ok = (16..=512).contains(&secret.len()) && !secret.contains('.');
    (id_ok && secret_ok).then_some((id, secret))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

struct ApiKey;

impl Guest for ApiKey {
    fn check_settings() -> Result<(), String> {
        let (s, _) = load()?;
        // The store (or table) must be reachable now, not at the first request.
        lookup(&s, "flagon-settings-check").map(|_| ())
    }

    fn authenticate(head: RequestHead) -> Result<Option<Identity>, AuthError> {
        let Some((id, secret)) = presented(&head).and_then(split) else {
            return Ok(None);
        };
        let (s, pepper) = load().map_err(AuthError::Unavailable)?;
        let record = lookup(&s, id)
            .map_err(AuthError::Unavailable)?
            .ok_or_else(|| AuthError::Invalid("unknown API key id".into()))?;
        let tag = unhex(&record.hash)
            .ok_or_else(|| AuthError::Unavailable("the stored hash is not hex".into()))?;
        if !crypto::hmac_sha256_verify(pepper.as_bytes(), secret.as_bytes(), &tag) {
            return Err(AuthError::Invalid("wrong API key secret".into()));
        }
        if record.revoked {
            return Err(AuthError::Invalid("the API key was revoked".into()));
        }
        Ok(Some(Identity {
            subject: record.subject,
            display_name: record.name,
            roles: record.roles,
            claims: vec![("api_key_id".into(), id.to_string())],
            authenticator: String::new(),
        }))
    }
}

bindings::export!(ApiKey with_types_in bindings);
