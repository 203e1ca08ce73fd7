//! `flagon-auth-jwt`: bearer JWTs as a Flagon authenticator.
//!
//! A request with `Authorization: Bearer <token>` is checked against keys from a secret
//! variable; a request without one is no identity (the next authenticator is asked); a token
//! that fails any check is `invalid` (401). The checks follow RFC 8725:
//!
//! - every key is pinned to one algorithm (a JWKS key must name its `alg`, and its `kty`/`crv`
//!   must fit it); the token's `alg` must be its key's, so `none` and key-type confusion
//!   (HS256 "signed" with an RSA public key) are refused;
//! - `kid` selects a configured key by exact match and is never used as a path or URL; a token
//!   without `kid` is accepted only when there is exactly one key;
//! - a `crit` header is refused (no extension is understood), as is a `typ` other than JWT;
//! - `exp` is required; `nbf`, `iss` and `aud` are checked, with a leeway;
//! - tokens longer than `max_token_bytes` are refused before anything is decoded.
//!
//! Settings (`[components.<id>] settings`): `keys_variable` (a granted variable holding a JWKS)
//! or `secret_variable` with `algorithm` (HS256, HS384 or HS512); `issuer`, `audience`,
//! `leeway_secs` (30), `max_token_bytes` (8192), `roles_claim` (`roles`), `name_claim`
//! (`name`). Key material is never a setting: it comes from secret variables only.

mod jwt;

use serde::Deserialize;
use serde_json::Value;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "flagon:app/authenticator",
    });
}

use bindings::exports::flagon::app::authenticate::{AuthError, Guest};
use bindings::flagon::app::types::{Identity, RequestHead};
use bindings::flagon::app::{config, settings};
use jwt::{Alg, Key, Rules};

/// Most claims copied into the identity.
const MAX_CLAIMS: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    keys_variable: Option<String>,
    secret_variable: Option<String>,
    algorithm: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    #[serde(default = "leeway")]
    leeway_secs: u64,
    #[serde(default = "max_token")]
    max_token_bytes: usize,
    #[serde(default = "roles")]
    roles_claim: String,
    #[serde(default = "name")]
    name_claim: String,
}

fn leeway() -> u64 {
    30
}
fn max_token() -> usize {
    8192
}
fn roles() -> String {
    "roles".into()
}
fn name() -> String {
    "name".into()
}

fn load() -> Result<(Settings, Vec<Key>), String> {
    let s: Settings = serde_json::from_str(&settings::get()).map_err(|e| {
        format!("{e} (keys come from secret variables: `keys_variable` or `secret_variable`)")
    })?;
    if s.leeway_secs > 300 {
        return Err("`leeway_secs` is at most 300".into());
    }
    if !(256..=65536).contains(&s.max_token_bytes) {
        return Err("`max_token_bytes` must be within 256..65536".into());
    }
    let variable = |name: &str| {
        config::get(name).ok_or_else(|| {
            format!("variable `{name}` is not granted: add it to `grants.variables`")
        })
    };
    let keys = match (&s.keys_variable, &s.secret_variable) {
        (Some(v), None) => {
            if s.algorithm.is_some() {
                return Err(
                    "`algorithm` goes with `secret_variable`; JWKS keys name their own `alg`"
                        .into(),
                );
            }
            Key::from_jwks(&variable(v)?).map_err(|e| format!("`{v}`: {e}"))?
        }
        (None, Some(v)) => {
            let name = s
                .algorithm
                .as_deref()
                .ok_or("`secret_variable` needs `algorithm`")?;
            let alg = Alg::parse(name).ok_or_else(|| format!("unknown algorithm `{name}`"))?;
            vec![
                Key::secret(alg, variable(v)?.as_bytes(), None)
                    .map_err(|e| format!("`{v}`: {e}"))?,
            ]
        }
        _ => return Err("set one of `keys_variable` (a JWKS) or `secret_variable`".into()),
    };
    Ok((s, keys))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The bearer token of `head`, if it has one.
fn bearer(head: &RequestHead) -> Option<&str> {
    let (_, value) = head.headers.iter().find(|(k, _)| k == "authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

struct Jwt;

impl Guest for Jwt {
    fn check_settings() -> Result<(), String> {
        load().map(|_| ())
    }

    fn authenticate(head: RequestHead) -> Result<Option<Identity>, AuthError> {
        let Some(token) = bearer(&head) else {
            return Ok(None);
        };
        // Not a JWT at all (an API key, say): leave it to the next authenticator.
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Ok(None);
        }
        let (settings, keys) = load().map_err(AuthError::Unavailable)?;
        let rules = Rules {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway_secs: settings.leeway_secs,
            max_bytes: settings.max_token_bytes,
        };
        let verified = jwt::verify(token, &keys, &rules, now()).map_err(AuthError::Invalid)?;
        let roles = match verified.claims.get(&settings.roles_claim) {
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            // OAuth-style: `"scope": "read write"`.
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            _ => Vec::new(),
        };
        let display_name = verified
            .claims
            .get(&settings.name_claim)
            .and_then(Value::as_str)
            .map(str::to_string);
        let claims = verified
            .claims
            .iter()
            .filter(|(k, _)| *k != "sub" && **k != settings.roles_claim)
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                Value::Number(n) => Some((k.clone(), n.to_string())),
                Value::Bool(b) => Some((k.clone(), b.to_string())),
                _ => None,
            })
            .take(MAX_CLAIMS)
            .collect();
        Ok(Some(Identity {
            subject: verified.subject().to_string(),
            display_name,
            roles,
            claims,
            authenticator: String::new(),
        }))
    }
}

bindings::export!(Jwt with_types_in bindings);
