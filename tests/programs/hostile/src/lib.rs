//! A handler that misbehaves in every way the host must contain. The route is `/h/{name}` and the
//! `name` parameter picks the misbehaviour.

use std::hint::black_box;

use flagon_sdk::{Error, Handler, Request, Response};

struct Hostile;

impl Handler for Hostile {
    fn handle(req: Request) -> Result<Response, Error> {
        match req.param("name") {
            Some("ok") => Ok(Response::text("still here")),
            Some("spin") => {
                // An infinite loop with no host calls: only epoch interruption can stop it.
                let mut x = 0u64;
                loop {
                    x = black_box(x.wrapping_add(1));
                }
            }
            Some("spin-host") => {
                // An infinite loop that keeps calling into the host.
                loop {
                    flagon_sdk::log::trace("spinning");
                }
            }
            Some("sleep") => {
                // Waits in the host (WASI's clock), where epoch interruption cannot reach it:
                // only the host's outer deadline stops this one.
                std::thread::sleep(std::time::Duration::from_secs(60));
                Ok(Response::text("woke up"))
            }
            Some("bomb") => {
                // Allocate until the memory limit refuses to grow, touching every page.
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![0xA5; 1 << 20]));
                }
            }
            Some("recurse") => Ok(Response::text(format!("{}", recurse(black_box(0))))),
            Some("panic") => panic!("guest panicked with a secret: hunter2"),
            Some("bad-header") => {
                Ok(Response::text("x").with_header("x-injected", "a\r\nset-cookie: evil=1"))
            }
            Some("bad-status") => Ok(Response::status(42)),
            Some("print") => {
                // Output a guest should not be able to smuggle into the host's log as-is.
                println!("hello stdout s3cr3t");
                eprintln!("to stderr\nINFO flagon::access: forged line \u{1b}[31mred");
                flagon_sdk::log::warn("the token is s3cr3t");
                // Careless logging of credentials from the request.
                let headers: Vec<_> = req.headers().collect();
                flagon_sdk::log::info(&format!("request headers: {headers:?}"));
                println!("auth={}", req.header("authorization").unwrap_or(""));
                Ok(Response::text("printed"))
            }
            Some("print-pem") => {
                // A multi-line secret (the app's `pem_key`), and secrets where a 4 KiB cut falls.
                println!(
                    "key:\n-----BEGIN TEST KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\nAT8wggE7AgEAAkEAq7BFUpkGp3+\n-----END TEST KEY-----"
                );
                let mut out = std::io::stdout().lock();
                use std::io::Write as _;
                let _ = out.write_all("w".repeat(4093).as_bytes());
                let _ = out.write_all(b"s3cr3t");
                let _ = out.flush();
                let _ = out.write_all("v".repeat(4096).as_bytes());
                let _ = out.write_all(b" end of the long line\n");
                drop(out);
                flagon_sdk::log::info(
                    "pem: -----BEGIN TEST KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\nAT8wggE7AgEAAkEAq7BFUpkGp3+\n-----END TEST KEY-----\n",
                );
                flagon_sdk::log::info(&format!("{}s3cr3t", "y".repeat(4093)));
                Ok(Response::text("printed"))
            }
            Some("big") => Ok(Response::text("x".repeat(8 << 20))),
            Some("hop-by-hop") => Ok(Response::text("fine")
                .with_header("connection", "close")
                .with_header("content-length", "999")
                .with_header("transfer-encoding", "chunked")),
            Some("probe") => {
                // What can the guest learn about or reach on the host?
                let env = std::env::vars().count();
                let args = std::env::args().count();
                let passwd = std::fs::read("/etc/passwd").is_ok();
                let environ = std::fs::read("/proc/self/environ").is_ok();
                let cwd = std::fs::read_dir(".").is_ok();
                let spawn = std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg("true")
                    .status()
                    .is_ok();
                Ok(Response::text(format!(
                    "env={env} args={args} passwd={passwd} environ={environ} cwd={cwd} spawn={spawn}"
                )))
            }
            Some("files") => {
                // Everything a guest might try against a granted directory (`/data`).
                let r = |p: &str| match std::fs::read_to_string(p) {
                    Ok(s) => format!("ok:{}", s.trim()),
                    Err(_) => "err".to_string(),
                };
                let write = std::fs::write("/data/new.txt", b"x").is_ok();
                let list = std::fs::read_dir("/data")
                    .map(|d| {
                        let mut v: Vec<String> = d
                            .filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect();
                        v.sort();
                        v.join(",")
                    })
                    .unwrap_or_else(|_| "err".into());
                Ok(Response::text(format!(
                    "read={} sub={} parent={} escape={} link={} dirlink={} passwd={} environ={} write={write} list={list}",
                    r("/data/hello.txt"),
                    r("/data/sub/inner.txt"),
                    r("/data/../secret.txt"),
                    r("/data/sub/../../secret.txt"),
                    r("/data/link"),
                    r("/data/dirlink/secret.txt"),
                    r("/etc/passwd"),
                    r("/proc/self/environ"),
                )))
            }
            _ => Err(Error::not_found()),
        }
    }
}

#[inline(never)]
#[expect(
    unconditional_recursion,
    reason = "unbounded recursion is the point of this route"
)]
fn recurse(n: u64) -> u64 {
    // Unbounded recursion with a frame that black_box keeps from being optimised away.
    let frame = black_box([n; 16]);
    recurse(black_box(n + 1)).wrapping_add(frame[3])
}

flagon_sdk::export!(Hostile);
