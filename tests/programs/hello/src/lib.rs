//! A well-behaved handler covering the SDK: text, path parameters, query, JSON and forms in and
//! out, headers, and granted variables.

use flagon_sdk::{Error, Handler, Request, Response};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

static COUNTER: AtomicU32 = AtomicU32::new(0);

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

#[derive(Serialize)]
struct SearchOut<'a> {
    q: &'a str,
    page: u32,
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
                Ok(Response::json(&SearchOut {
                    q: &s.q,
                    page: s.page,
                }))
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
            // The raw `Cookie` header as this component sees it.
            // The client address the host worked out.
            Some("plain-client") => Ok(Response::text(req.client())),
            Some("plain-cookie-header") => Ok(Response::text(req.header("cookie").unwrap_or("-"))),
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
            Some("crypto") => {
                use flagon_sdk::crypto;
                let hash = crypto::hash_password("correct horse")?;
                let right = crypto::verify_password("correct horse", &hash);
                let wrong = crypto::verify_password("battery staple", &hash);
                let (a, b) = (crypto::random_token(), crypto::random_token());
                let tag = crypto::hmac_sha256(b"key", b"message");
                let tag_ok = crypto::hmac_sha256_verify(b"key", b"message", &tag);
                let tampered = crypto::hmac_sha256_verify(b"key", b"messagE", &tag);
                let too_many = crypto::random_bytes(1 << 20).is_err();
                Ok(Response::text(format!(
                    "hash={} right={right} wrong={wrong} token-len={} tokens-differ={} tag-len={} tag-ok={tag_ok} tampered={tampered} too-many={too_many}",
                    &hash[..31],
                    a.len(),
                    a != b,
                    tag.len()
                )))
            }
            Some("counter") => {
                // Each request gets a fresh instance, so this is always 1.
                let n = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(Response::text(n.to_string()))
            }
            Some("slow") => {
                // Busy for `ms` milliseconds of wall-clock time, then answer.
                #[derive(Deserialize)]
                struct Q {
                    ms: u64,
                }
                let q: Q = req.query()?;
                flagon_sdk::log::info("slow request started");
                let start = std::time::Instant::now();
                while start.elapsed() < std::time::Duration::from_millis(q.ms) {
                    std::hint::spin_loop();
                }
                Ok(Response::text("done"))
            }
            Some("fetch") => {
                // Outbound HTTP to whatever URL the client names; the host decides.
                let url = req
                    .query::<Vec<(String, String)>>()?
                    .into_iter()
                    .find(|(k, _)| k == "url")
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                match flagon_sdk::outbound::Request::get(url)
                    .header("authorization", "Bearer upstream-token-0123")
                    .send()
                {
                    Ok(r) => Ok(Response::text(format!(
                        "status={} body={}",
                        r.status(),
                        r.text()?
                    ))),
                    Err(e) => Ok(Response::text(format!("refused: {}", e.message()))),
                }
            }
            Some("teapot") => Err(Error::new(418, "short and stout")),
            Some("fail") => Err(Error::internal("database password is hunter2")),
            _ => Err(Error::not_found()),
        }
    }
}

flagon_sdk::export!(Hello);
