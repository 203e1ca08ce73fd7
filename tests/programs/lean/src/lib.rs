//! A handler built both ways: for `wasm32-unknown-unknown` (lean: a core module importing only
//! `flagon:app`) and for `wasm32-wasip2`. It uses what a lean handler has instead of WASI: the
//! host's clock and random source, its own allocator, logging, and a panic that is logged.

use flagon_sdk::{Error, Handler, Request, Response, log, random, time};

struct Lean;

impl Handler for Lean {
    fn handle(req: Request) -> Result<Response, Error> {
        match req.route() {
            Some("time") => {
                let start = time::Instant::now();
                let now = time::unix_seconds();
                let elapsed = start.elapsed();
                Ok(Response::text(format!(
                    "unix={now} monotonic_ok={}",
                    elapsed.as_secs() < 60
                )))
            }
            Some("random") => {
                let a = random::bytes(32);
                let b = random::bytes(70_000);
                let hex: String = a.iter().map(|b| format!("{b:02x}")).collect();
                Ok(Response::text(format!(
                    "{hex} {} {}",
                    b.len(),
                    random::u64() != random::u64()
                )))
            }
            Some("alloc") => {
                let mib: usize = req
                    .param("mib")
                    .and_then(|m| m.parse().ok())
                    .ok_or_else(|| Error::bad_request("mib must be a number"))?;
                // Touch every page, so the memory is really used.
                let v = vec![7u8; mib << 20];
                let sum: usize = v.iter().step_by(4096).map(|&b| b as usize).sum();
                Ok(Response::text(format!("allocated {mib} MiB, {sum}")))
            }
            Some("log") => {
                let word = req.param("word").unwrap_or("none");
                log::info(&format!("lean says {word}"));
                Ok(Response::text("logged"))
            }
            Some("panic") => panic!("lean handler gave up"),
            _ => Err(Error::not_found()),
        }
    }
}

flagon_sdk::export!(Lean);
