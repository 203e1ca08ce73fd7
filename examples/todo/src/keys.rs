//! API keys for the JSON API, issued from the browser.
//!
//! A key is `<id>.<secret>`. The `api_keys` row holds the id and the hex HMAC-SHA256 of the
//! secret under the `apikey_pepper` variable, the form the `auth-apikey-sql` plugin checks
//! (plugins/auth-apikey/README.md, "Keys and records"); the secret itself is stored nowhere.
//! It is shown once, in the response to the POST that made it, and never put in the session:
//! the session is a cookie, and a cookie is the wrong place for a credential to linger.

use flagon_sdk::sql::params;
use flagon_sdk::{Error, Request, Response, config, crypto, session};
use serde::{Deserialize, Serialize};

use crate::db::{self, db};
use crate::web;

const NAME_MAX: usize = 64;
/// The plugin refuses a shorter pepper at start; checked here too, so a misconfigured app
/// says so instead of issuing keys nobody could use.
const PEPPER_MIN: usize = 32;
/// Enough for any honest use; a cap keeps one account from filling the table.
const ACTIVE_KEYS_MAX: i64 = 20;

#[derive(Deserialize)]
struct KeyRow {
    id: String,
    name: Option<String>,
    created_at: i64,
    /// INTEGER 0/1; decoded from an integer or a boolean.
    revoked: bool,
}

/// A key as `keys.html` lists it. The id is not secret (it is the part before the dot).
#[derive(Serialize)]
struct KeyView {
    id: String,
    name: String,
    created: String,
    created_iso: String,
    revoked: bool,
}

impl From<KeyRow> for KeyView {
    fn from(k: KeyRow) -> Self {
        Self {
            created: db::display_time(k.created_at),
            created_iso: db::iso_time(k.created_at),
            id: k.id,
            name: k.name.unwrap_or_default(),
            revoked: k.revoked,
        }
    }
}

/// The context of `keys.html`.
#[derive(Serialize)]
struct KeysPage<'a> {
    keys: Vec<KeyView>,
    /// Whether a usable pepper is set; without one the page explains and offers no form.
    configured: bool,
    /// The whole key, right after it was made: shown once.
    new_key: Option<&'a str>,
    /// The name field's value when a name was refused.
    name: &'a str,
    error: Option<&'a str>,
    name_max: usize,
}

#[derive(Deserialize)]
struct NewKeyForm {
    #[serde(default)]
    name: String,
}

/// `GET /account/keys`
pub fn list(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    render(200, user, None, "", None)
}

/// `POST /account/keys`: make a key and show it (201, `Cache-Control: no-store`).
pub fn create(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    let form: NewKeyForm = req.form()?;
    let Some(pepper) = pepper() else {
        let message = "API keys are not configured on this server, so no key can be made.";
        return render(503, user, None, &form.name, Some(message));
    };
    let name = form.name.trim();
    if let Err(message) = check_name(name) {
        return render(422, user, None, &form.name, Some(&message));
    }
    if active_keys(user)? >= ACTIVE_KEYS_MAX {
        let message =
            format!("You have {ACTIVE_KEYS_MAX} active keys, the most allowed. Revoke one first.");
        return render(422, user, None, &form.name, Some(&message));
    }

    let id = db::new_id();
    let secret = crypto::random_token();
    let hash = hex(&crypto::hmac_sha256(pepper.as_bytes(), secret.as_bytes()));
    db().execute(
        "INSERT INTO api_keys (id, hash, subject, name, roles, revoked, user_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        // The key acts as its owner and no more: no roles, so it never passes a role check.
        params![
            &id,
            hash,
            user,
            name,
            "[]",
            db::flag(false),
            user,
            db::now()
        ],
    )?;
    let key = format!("{id}.{secret}");
    Ok(render(201, user, Some(&key), "", None)?.with_header("cache-control", "no-store"))
}

/// `POST /account/keys/{id}/revoke`. The plugin reads the row on every request, so the key
/// stops working at once.
pub fn revoke(req: &Request) -> Result<Response, Error> {
    let user = web::user_id(req)?;
    let Some(id) = req.param("id").filter(|id| db::is_id(id)) else {
        return Ok(web::not_found());
    };
    let outcome = db().execute(
        "UPDATE api_keys SET revoked = 1 WHERE id = $1 AND user_id = $2",
        params![id, user],
    )?;
    if outcome.rows_affected == 0 {
        return Ok(web::not_found());
    }
    session::flash("success", "API key revoked.")?;
    Ok(Response::redirect("/account/keys"))
}

fn render(
    status: u16,
    user: &str,
    new_key: Option<&str>,
    name: &str,
    error: Option<&str>,
) -> Result<Response, Error> {
    let keys: Vec<KeyRow> = db().query_as(
        "SELECT id, name, created_at, revoked FROM api_keys
         WHERE user_id = $1 ORDER BY created_at DESC, id",
        params![user],
    )?;
    let page = KeysPage {
        keys: keys.into_iter().map(KeyView::from).collect(),
        configured: pepper().is_some(),
        new_key,
        name,
        error,
        name_max: NAME_MAX,
    };
    web::render_with(status, "keys.html", &page)
}

/// The pepper, if it is set and long enough.
fn pepper() -> Option<String> {
    config::get("apikey_pepper").filter(|p| p.len() >= PEPPER_MIN)
}

fn check_name(name: &str) -> Result<(), String> {
    match name.chars().count() {
        0 => Err("Give the key a name, such as the script or machine that will use it.".into()),
        n if n > NAME_MAX => Err(format!("A key name can be at most {NAME_MAX} characters.")),
        _ => Ok(()),
    }
}

fn active_keys(user: &str) -> Result<i64, Error> {
    let n = db().query_one(
        "SELECT COUNT(*) AS n FROM api_keys WHERE user_id = $1 AND revoked = 0",
        params![user],
    )?;
    Ok(n.unwrap_or(0))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
