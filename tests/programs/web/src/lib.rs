//! The web layer from a guest's side: templates, the session, flashes, CSRF-protected forms,
//! uploads, redirects, cookies, key-value stores and error pages.

use flagon_sdk::{Error, Handler, Request, Response, kv, session, templates};
use serde::Serialize;

struct Web;

#[derive(Serialize)]
struct Page<'a> {
    v: &'a str,
    items: Vec<&'a str>,
}

impl Handler for Web {
    fn handle(req: Request) -> Result<Response, Error> {
        let query: Vec<(String, String)> = req.query().unwrap_or_default();
        let q = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        match req.route() {
            // Renders untrusted input into every HTML context (see templates/xss.html).
            Some("xss") => {
                let v = q("v");
                Response::render(
                    "xss.html",
                    &Page {
                        v: &v,
                        items: vec!["a", "b"],
                    },
                )
            }
            Some("home") => Response::render(
                "home.html",
                &serde_json::json!({ "user": session::get("user") }),
            ),
            Some("login") => {
                let user = req
                    .field("user")
                    .ok_or_else(|| Error::bad_request("no user"))?;
                session::rotate();
                session::set("user", user)?;
                session::flash("success", &format!("Welcome, {user}!"))?;
                Ok(Response::redirect("/home"))
            }
            // Signs in for `plugins/auth-session`: `user` with the comma-separated `roles`.
            Some("signin") => {
                let user = req
                    .field("user")
                    .ok_or_else(|| Error::bad_request("no user"))?;
                let roles: Vec<&str> = req
                    .field("roles")
                    .unwrap_or("")
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .collect();
                session::sign_in(user, Some(user), &roles)?;
                Ok(Response::redirect("/home"))
            }
            Some("signout") => {
                session::sign_out();
                Ok(Response::redirect("/home"))
            }
            Some("logout") => {
                session::clear();
                Ok(Response::redirect("/home"))
            }
            Some("whoami") => Ok(Response::text(
                session::get("user").unwrap_or_else(|| "anonymous".into()),
            )),
            Some("token") => Ok(Response::text(session::csrf_token())),
            // The identity the host's authenticators established (routes with `auth`).
            Some(n) if n.starts_with("me.") => Ok(match req.identity() {
                Some(i) => Response::json(&serde_json::json!({
                    "subject": i.subject,
                    "name": i.display_name,
                    "roles": i.roles,
                    "claims": i.claims,
                    "authenticator": i.authenticator,
                })),
                None => Response::json(&serde_json::Value::Null),
            }),
            Some(n) if n.starts_with("page.") => {
                Response::render("me.html", &serde_json::json!({}))
            }
            Some("upload") => {
                let mut out = Vec::new();
                for f in req.form_fields() {
                    match &f.file {
                        Some(file) => out.push(format!(
                            "{}=file:{}:{}:{}",
                            f.name,
                            file.filename,
                            file.content_type,
                            file.data.len()
                        )),
                        None => out.push(format!("{}={}", f.name, f.value)),
                    }
                }
                Ok(Response::text(out.join("\n")))
            }
            Some("api") => Ok(Response::text("api ok")),
            Some("big-session") => match session::set("big", &"x".repeat(5000)) {
                Ok(()) => Ok(Response::text("stored")),
                Err(e) => Ok(Response::text(format!("refused: {}", e.message()))),
            },
            Some("bad-template") => {
                // The render fails; even though the guest answers 200, the host sends a 500.
                let r = templates::render("broken.html", &serde_json::json!({}));
                Ok(Response::text(format!("guest saw: {}", r.is_err())))
            }
            Some("redirect") if q("refresh").is_empty() => Ok(Response::redirect(q("to"))),
            Some("redirect") => Ok(Response::text("moving")
                .with_header("refresh", format!("{}; url={}", q("refresh"), q("to")))),
            Some("set-cookie") => Ok(Response::text("cookies")
                .with_header("set-cookie", "__Host-session=forged; Path=/; Secure")
                // Not visible ASCII: the host must still see the name.
                .with_header("set-cookie", "__Host-session=forgé; Path=/; Secure")
                .with_header("set-cookie", "theme=dark; Path=/")),
            // The raw `Cookie` header as this component sees it.
            Some("cookie-header") => Ok(Response::text(req.header("cookie").unwrap_or("-"))),
            Some("kv") => {
                let store = kv::store("counter");
                let hits = store.increment("hits", 1)?;
                store.set("last", q("v"))?;
                let last = store.get_string("last")?.unwrap_or_default();
                let keys = store.keys("")?;
                let other = kv::store("secret")
                    .get("x")
                    .map_err(|e| e.message().to_string());
                Ok(Response::json(&serde_json::json!({
                    "hits": hits,
                    "last": last,
                    "keys": keys,
                    "ungranted": other.err(),
                })))
            }
            Some("kv-ttl") => {
                let store = kv::store("counter");
                store.set_with_ttl("short", "x", std::time::Duration::from_millis(200))?;
                Ok(Response::text(format!("{}", store.exists("short")?)))
            }
            Some("kv-get") => {
                let store = kv::store("counter");
                Ok(Response::text(format!(
                    "{:?}",
                    store.get_string(&q("key"))?
                )))
            }
            // Stores `v` under `key`; a refusal (a full store) is a 507 with its message.
            Some("kv-put") => match kv::store("counter").set(&q("key"), q("v")) {
                Ok(()) => Ok(Response::text("stored")),
                Err(e) => Ok(Response::text(e.message().to_string()).with_status(507)),
            },
            Some("kv-delete") => Ok(Response::text(format!(
                "{}",
                kv::store("counter").delete(&q("key"))?
            ))),
            Some("empty-404") => Ok(Response::status(404)),
            Some("cookie") => Ok(Response::text(format!(
                "theme={}",
                req.cookie("theme").unwrap_or("none")
            ))),
            _ => Err(Error::not_found()),
        }
    }
}

flagon_sdk::export!(Web);
