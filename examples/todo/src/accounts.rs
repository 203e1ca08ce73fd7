//! Sign up, log in, log out, and the landing page.
//!
//! The password is checked here; `auth-session` then reads back, on every later request, the
//! identity `session::sign_in` stored in the cookie session.

use flagon_sdk::sql::params;
use flagon_sdk::{Error, Request, Response, config, crypto, session};
use serde::{Deserialize, Serialize};

use crate::db::{self, db};
use crate::web;

const USERNAME_MIN: usize = 3;
const USERNAME_MAX: usize = 32;
/// ASVS 6.2: at least 12 characters, at most 128 (so passphrases fit), and no composition
/// rules: length is what makes a password hard to guess.
const PASSWORD_MIN: usize = 12;
const PASSWORD_MAX: usize = 128;

/// The one answer to every failed login, so it never tells which part was wrong.
const LOGIN_FAILED: &str = "Invalid username or password.";
/// Signup, unlike login, has to say when a name is in use.
const TAKEN: &str = "That username is taken. Choose another one.";

/// An argon2id hash (the host's parameters: 19 MiB, 2 passes, 1 lane) of a random password
/// that was thrown away. A login for an unknown username is checked against it, so it costs
/// the same time as one for a real user: response times do not tell which usernames exist.
/// A constant, because every request runs in a fresh instance (nothing computed at run time
/// would survive to the next one) and hashing per request would double the cost.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ue4yUWx7J52s19dsF++5aw$hG9+h9fOaeBqBFsebxct7/ZaYa3hUJbrDDXTF7f41uc";

/// The signup and login forms. Missing fields are empty, so a bare POST gets the form back
/// with a message instead of a 400.
#[derive(Deserialize)]
struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// The context of `signup.html` and `login.html`. The password is never sent back.
#[derive(Serialize)]
struct FormPage<'a> {
    username: &'a str,
    next: Option<&'a str>,
    error: Option<&'a str>,
}

/// The columns a login needs.
#[derive(Deserialize)]
struct Account {
    id: String,
    username: String,
    password_hash: String,
}

/// `GET /`: the list for a signed-in user (the route has `auth = "optional"`), else the
/// landing page.
pub fn index(req: &Request) -> Result<Response, Error> {
    if req.identity().is_some() {
        return Ok(Response::redirect("/todos"));
    }
    Response::render("index.html", &serde_json::json!({}))
}

/// `GET /signup`
pub fn signup_page(_req: &Request) -> Result<Response, Error> {
    let page = FormPage {
        username: "",
        next: None,
        error: None,
    };
    Response::render("signup.html", &page)
}

/// `POST /signup`: create the account and sign in. Errors re-render the form with a 422.
pub fn signup(req: &Request) -> Result<Response, Error> {
    let form: Credentials = req.form()?;
    let username = normalize(&form.username);
    let refuse = |message: &str| {
        let page = FormPage {
            username: &username,
            next: None,
            error: Some(message),
        };
        web::render_with(422, "signup.html", &page)
    };
    if let Err(message) = check_username(&username).and_then(|()| check_password(&form.password)) {
        return refuse(&message);
    }
    // Checked before hashing, so a taken name costs no argon2 run. The UNIQUE constraint
    // still decides when two signups race for the same name.
    if find_account(&username)?.is_some() {
        return refuse(TAKEN);
    }
    let hash = crypto::hash_password(&form.password)?;
    let id = db::new_id();
    let inserted = db().execute(
        "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        params![&id, &username, hash, db::now()],
    );
    match inserted {
        Ok(_) => {}
        Err(e) if db::is_unique_violation(&e) => return refuse(TAKEN),
        Err(e) => return Err(e.into()),
    }
    sign_in(&id, &username)?;
    session::flash(
        "success",
        &format!("Welcome, {username}! Your account is ready."),
    )?;
    Ok(Response::redirect("/todos"))
}

/// `GET /login`, with the `next` the host put in its login redirect.
pub fn login_page(req: &Request) -> Result<Response, Error> {
    let query: NextQuery = req.query()?;
    let page = FormPage {
        username: "",
        next: query.next.as_deref(),
        error: None,
    };
    Response::render("login.html", &page)
}

/// `POST /login`
pub fn login(req: &Request) -> Result<Response, Error> {
    let form: Credentials = req.form()?;
    let username = normalize(&form.username);
    let account = find_account(&username)?;
    // Always one argon2 verification, against the dummy hash when there is no such user.
    let hash = account
        .as_ref()
        .map_or(DUMMY_HASH, |a| a.password_hash.as_str());
    let verified = crypto::verify_password(&form.password, hash);
    let Some(account) = account.filter(|_| verified) else {
        let page = FormPage {
            username: &username,
            next: form.next.as_deref(),
            error: Some(LOGIN_FAILED),
        };
        return web::render_with(422, "login.html", &page);
    };
    sign_in(&account.id, &account.username)?;
    session::flash("success", "Signed in.")?;
    Ok(Response::redirect(local_path(form.next.as_deref())))
}

/// `POST /logout`: empties the session (identity, flashes, CSRF secret); the flash then
/// starts a fresh one.
pub fn logout(_req: &Request) -> Result<Response, Error> {
    session::sign_out();
    session::flash("info", "Signed out.")?;
    Ok(Response::redirect("/login"))
}

/// A new session for `username`: `sign_in` rotates the CSRF secret first, so a session
/// someone planted before the login is worth nothing after it. Roles are decided now and
/// kept in the cookie until the next sign-in.
fn sign_in(user_id: &str, username: &str) -> Result<(), Error> {
    let roles: &[&str] = if is_admin(username) { &["admin"] } else { &[] };
    session::sign_in(user_id, Some(username), roles)
}

/// Whether `username` is listed in the `admins` variable (comma-separated usernames). There
/// is no built-in admin: without the variable, nobody is one.
fn is_admin(username: &str) -> bool {
    config::get("admins").is_some_and(|list| {
        list.split(',')
            .map(normalize)
            .any(|name| !name.is_empty() && name == username)
    })
}

fn find_account(username: &str) -> Result<Option<Account>, Error> {
    Ok(db().query_one(
        "SELECT id, username, password_hash FROM users WHERE username = $1",
        params![username],
    )?)
}

/// Usernames are compared lowercase. ASCII folding only: anything else is refused by
/// [`check_username`], so no two Unicode spellings can land on one account.
fn normalize(username: &str) -> String {
    username.trim().to_ascii_lowercase()
}

fn check_username(username: &str) -> Result<(), String> {
    let len = username.chars().count();
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) || !username.chars().all(allowed) {
        return Err(format!(
            "A username is {USERNAME_MIN} to {USERNAME_MAX} characters: letters a-z, digits, \
             `_` and `-`."
        ));
    }
    Ok(())
}

/// Length only, counted in characters (not bytes), and the password is taken as typed:
/// spaces are part of it.
fn check_password(password: &str) -> Result<(), String> {
    let len = password.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&len) {
        return Err(format!(
            "A password is {PASSWORD_MIN} to {PASSWORD_MAX} characters long. A few unrelated \
             words make a good one."
        ));
    }
    Ok(())
}

/// `next` if it is a path on this site, else the todo list. A path starting with `//` or
/// holding a `\` is another site to a browser (`//evil.example`, `/\evil.example`), and a
/// control character can be dropped by the browser to make one (`/\t/evil.example`).
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p
        }
        _ => "/todos",
    }
}
