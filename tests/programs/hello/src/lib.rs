//! A well-behaved handler covering the SDK: text, path parameters, query, JSON and forms in and
//! out, headers, and granted variables.

use flagon_sdk::{Error, Handler, Request, Response};
use serde::{Deserialize, Serialize};

struct Hello;

#[derive(Deserialize)]
struct Search {
    q: String,
    #[serde(default = "one")]
    page: u32,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize, Serialize)]
struct Greeting {
    name: String,
    times: u8,
}

impl Handler for Hello {
    fn handle(req: Request) -> Result<Response, Error> {
        match req.route() {
            Some("index") => Ok(Response::text("hello from wasm")),
            Some("greet") => {
                let name = req.param("name").unwrap_or("nobody");
                Ok(Response::text(format!("Hello, {name}!")))
            }
            Some("files") => Ok(Response::text(format!(
                "file={}",
                req.param("path").unwrap_or("")
            ))),
            Some("search") => {
                let s: Search = req.query()?;
                Ok(Response::json(&serde_json_value(&s.q, s.page)))
            }
            Some("echo-json") => {
                let g: Greeting = req.json()?;
                Ok(Response::json(&Greeting {
                    name: g.name.to_uppercase(),
                    times: g.times.saturating_add(1),
                }))
            }
            Some("form") => {
                let g: Greeting = req.form()?;
                Ok(Response::text(format!("{} x{}", g.name, g.times)))
            }
            Some("inspect") => Ok(Response::text(format!(
                "method={} path={} query={} client-set={} id-set={} ua={} body-len={}",
                req.method_str(),
                req.path(),
                req.query_string(),
                !req.client().is_empty(),
                !req.request_id().is_empty(),
                req.header("User-Agent").unwrap_or("-"),
                req.body().len()
            ))
            .with_header("x-custom", "yes")),
            Some("config") => {
                let greeting = flagon_sdk::config::get("greeting").unwrap_or_default();
                let ungranted = flagon_sdk::config::get("secret_token").is_some();
                let all = flagon_sdk::config::get_all().len();
                flagon_sdk::log::info("read config");
                Ok(Response::text(format!(
                    "greeting={greeting} ungranted-visible={ungranted} count={all}"
                )))
            }
            Some("redirect") => Ok(Response::redirect("/")),
            Some("teapot") => Err(Error::new(418, "short and stout")),
            Some("fail") => Err(Error::internal("database password is hunter2")),
            _ => Err(Error::not_found()),
        }
    }
}

fn serde_json_value(q: &str, page: u32) -> impl Serialize + '_ {
    #[derive(Serialize)]
    struct Out<'a> {
        q: &'a str,
        page: u32,
    }
    Out { q, page }
}

flagon_sdk::export!(Hello);
