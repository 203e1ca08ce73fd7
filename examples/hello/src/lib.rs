//! The hello example: plain text, a path parameter, a granted variable, and JSON in and out.

use flagon_sdk::{Error, Handler, Request, Response, config, log};
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

impl Handler for Hello {
    fn handle(req: Request) -> Result<Response, Error> {
        match req.route() {
            Some("index") => Ok(Response::text(
                "Hello from a sandboxed Wasm component!\n\
                 Try /hello/yourname, /api/add?a=2&b=3, or POST JSON to /api/echo.\n",
            )),
            Some("greet") => {
                let greeting = config::get("greeting").unwrap_or_else(|| "Hello".into());
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
            _ => Err(Error::not_found()),
        }
    }
}

flagon_sdk::export!(Hello);
