//! The hello example: plain text, a path parameter, a granted variable, JSON in and out, and HTML
//! pages rendered by the host from templates, with a cookie session, flash messages and a
//! CSRF-protected sign-in form.

use flagon_sdk::{Error, Handler, Method, Request, Response, config, log, session};
use serde::{Deserialize, Serialize};

struct Hello;

/// `GET /api/add?a=1&b=2`
#[derive(Deserialize)]
struct AddQuery {
    a: i64,
    b: i64,
}

#[derive(Serialize)]
struct AddOut {
    a: i64,
    b: i64,
    sum: i64,
}

/// `POST /api/echo` with `{"message": "...", "shout": true}`
#[derive(Deserialize)]
struct EchoIn {
    message: String,
    #[serde(default)]
    shout: bool,
}

#[derive(Serialize)]
struct EchoOut {
    message: String,
    length: usize,
    request_id: String,
}

/// The context of `templates/index.html` and `templates/login.html`.
#[derive(Serialize)]
struct Page {
    greeting: String,
    user: Option<String>,
}

/// `POST /login`. The form's `csrf_token` field was checked by the host before the handler
/// ran; fields the struct does not name are ignored.
#[derive(Deserialize)]
struct LoginForm {
    username: String,
}

impl Handler for Hello {
    fn handle(req: Request) -> Result<Response, Error> {
        match req.route() {
            // The templates escape `user` (it came from a form), add the CSRF token to forms
            // and show the flash messages.
            Some("index") => Response::render("index.html", &page()),
            Some("login") if matches!(req.method(), Method::Post) => log_in(&req),
            Some("login") => Response::render("login.html", &page()),
            Some("logout") => {
                // Empties the session (and its CSRF secret); the flash starts a new one.
                session::clear();
                session::flash("info", "You are signed out.")?;
                Ok(Response::redirect("/"))
            }
            Some("greet") => {
                let greeting = greeting();
                let name = req.param("name").unwrap_or("world");
                log::info(&format!("greeting {name}"));
                Ok(Response::text(format!("{greeting}, {name}!\n")))
            }
            Some("add") => {
                let q: AddQuery = req.query()?;
                let sum =
                    q.a.checked_add(q.b)
                        .ok_or_else(|| Error::bad_request("the sum does not fit in 64 bits"))?;
                Ok(Response::json(&AddOut {
                    a: q.a,
                    b: q.b,
                    sum,
                }))
            }
            Some("echo") => {
                let input: EchoIn = req.json()?;
                let message = if input.shout {
                    input.message.to_uppercase()
                } else {
                    input.message
                };
                Ok(Response::json(&EchoOut {
                    length: message.chars().count(),
                    message,
                    request_id: req.request_id().to_string(),
                }))
            }
            // An empty 404 gets the app's error page (`[errors]` in flagon.toml).
            _ => Ok(Response::status(404)),
        }
    }
}

fn greeting() -> String {
    config::get("greeting").unwrap_or_else(|| "Hello".into())
}

fn page() -> Page {
    Page {
        greeting: greeting(),
        user: session::get("user"),
    }
}

fn log_in(req: &Request) -> Result<Response, Error> {
    let form: LoginForm = req.form()?;
    let name = form.username.trim();
    if name.is_empty() || name.chars().count() > 32 {
        // Post/redirect/get: the message survives the redirect in the session.
        session::flash("error", "Choose a name of 1 to 32 characters.")?;
        return Ok(Response::redirect("/login"));
    }
    // A real app checks a password here, e.g. with `flagon_sdk::crypto::verify_password`.
    //
    // The privileges change, so the CSRF secret does too: tokens issued before the sign-in
    // (perhaps to someone who planted this session) stop working.
    session::rotate();
    session::set("user", name)?;
    session::flash("success", &format!("Welcome, {name}!"))?;
    log::info("signed in");
    Ok(Response::redirect("/"))
}

flagon_sdk::export!(Hello);
