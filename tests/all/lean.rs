//! Lean handlers: the `lean` program built for `wasm32-unknown-unknown` is a core module that
//! imports only `flagon:app`; the host makes it a component at load and serves it as any other,
//! with the time, randomness, logging and panics a handler needs without WASI.

use std::process::Command;
use std::time::Duration;

use crate::harness::{BinServer, TestManifest, cache_dir, program};
use crate::programs::{LEAN, LEAN_CORE};

fn manifest(source: &str) -> String {
    let mut m = format!(
        "[app]\nname = \"lean\"\n\n[components.lean]\nsource = {}\nlimits = {{ memory = \"16MiB\" }}\n",
        program(source)
    );
    for (path, name) in [
        ("/time", "time"),
        ("/random", "random"),
        ("/alloc/{mib}", "alloc"),
        ("/log/{word}", "log"),
        ("/panic", "panic"),
    ] {
        m.push_str(&format!(
            "\n[[routes]]\npath = \"{path}\"\ncomponent = \"lean\"\nname = \"{name}\"\n"
        ));
    }
    m
}

fn flagon(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flagon"))
        .args(args)
        .env("FLAGON_CACHE_DIR", cache_dir())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_lean_build_is_a_core_module_importing_only_flagon() {
    let bytes = std::fs::read(LEAN_CORE).unwrap();
    assert_eq!(&bytes[..8], b"\0asm\x01\0\0\0", "a core module");
    let m = TestManifest::new(&manifest(LEAN_CORE));
    let (ok, out) = flagon(&["check", m.path.to_str().unwrap()]);
    assert!(ok, "{out}");
    let imports: Vec<&str> = out.lines().filter(|l| l.contains("imports ")).collect();
    for want in ["flagon:app/clock", "flagon:app/random", "flagon:app/log"] {
        assert!(imports.iter().any(|l| l.contains(want)), "{want}: {out}");
    }
    assert!(
        imports.iter().all(|l| l.contains("flagon:app/")),
        "no WASI import at all:\n{out}"
    );
    // The full-WASI build of the same source imports WASI (stdout, the environment...).
    let m = TestManifest::new(&manifest(LEAN));
    let (ok, out) = flagon(&["check", m.path.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("imports wasi:"), "{out}");
}

async fn exercise(source: &str) {
    let mut server = BinServer::start(&manifest(source)).await;
    let r = server.get("/time").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let unix: u64 = text
        .strip_prefix("unix=")
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(unix.abs_diff(host) < 60, "{unix} vs {host}");
    assert!(text.ends_with("monotonic_ok=true"), "{text}");

    let (a, b) = (
        server.get("/random").await.text(),
        server.get("/random").await.text(),
    );
    assert_ne!(a, b);
    assert!(a.ends_with(" 70000 true") && a.len() == 64 + 11, "{a}");

    // Past the 1 MiB arena the allocator grows memory, up to the component's limit.
    assert_eq!(server.get("/alloc/4").await.text(), "allocated 4 MiB, 7168");
    let r = server.get("/alloc/64").await;
    assert_eq!(r.status, 500);
    assert_eq!(
        server.get("/alloc/1").await.status,
        200,
        "the host carries on"
    );

    let r = server.get("/log/hello-lean").await;
    assert_eq!(r.text(), "logged");
    let log_id = r.header("x-request-id").unwrap().to_string();
    let r = server.get("/panic").await;
    assert_eq!(r.status, 500);
    assert!(
        r.text().starts_with("500 Internal Server Error"),
        "{}",
        r.text()
    );
    let panic_id = r.header("x-request-id").unwrap().to_string();
    assert!(
        server
            .wait_for_log("lean handler gave up", Duration::from_secs(5))
            .await
    );
    let _ = server.child.kill();
    let (_, log) = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("lean says hello-lean"))
        .unwrap();
    assert!(
        line.contains("component=\"lean\"") && line.contains(&log_id),
        "{line}"
    );
    // The panic message, attributed to the request (in the lean build one error line from the
    // SDK's panic hook; in the WASI build the standard library's lines on stderr).
    let line = log
        .lines()
        .find(|l| l.contains("lean handler gave up"))
        .unwrap();
    assert!(line.contains(&panic_id), "{line}");
    assert!(
        log.lines()
            .any(|l| l.contains("panicked") && l.contains(&panic_id)),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lean_handler_is_served_with_time_random_logs_and_panics() {
    exercise(LEAN_CORE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_source_built_for_wasip2_behaves_the_same() {
    exercise(LEAN).await;
}

#[test]
fn modules_that_import_more_than_flagon_are_refused_with_help() {
    let dir = tempfile::tempdir().unwrap();
    // A WASI preview 1 module, as `wasm32-wasip1` builds.
    let p1 = dir.path().join("p1.wasm");
    std::fs::write(&p1, core_module(true)).unwrap();
    let m = TestManifest::new(&manifest(p1.to_str().unwrap()));
    let (ok, out) = flagon(&["check", m.path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("wasi_snapshot_preview1") && out.contains("wasm32-unknown-unknown"),
        "{out}"
    );
    // A module with no world to make a component of.
    let bare = dir.path().join("bare.wasm");
    std::fs::write(&bare, core_module(false)).unwrap();
    let (ok, out) = flagon(&["componentize", bare.to_str().unwrap(), "-o", "/dev/null"]);
    assert!(!ok);
    assert!(out.contains("component-type"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagon_componentize_writes_the_component_serve_would_make() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lean.component.wasm");
    let (ok, text) = flagon(&["componentize", LEAN_CORE, "-o", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[4..8], b"\x0d\0\x01\0", "a component");
    let server = BinServer::start(&manifest(out.to_str().unwrap())).await;
    assert_eq!(server.get("/log/x").await.text(), "logged");
    // A component is not a module.
    let (ok, text) = flagon(&["componentize", LEAN, "-o", "/dev/null"]);
    assert!(!ok && text.contains("not a core Wasm module"), "{text}");
}

/// An empty core module, or one importing WASI preview 1's `fd_write` (as `wasm32-wasip1`
/// builds do), written in the binary format (the test build has no WAT parser).
fn core_module(preview1: bool) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    if preview1 {
        // type 0: (i32 i32 i32 i32) -> i32
        m.extend_from_slice(&[1, 9, 1, 0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f]);
        let module = b"wasi_snapshot_preview1";
        let field = b"fd_write";
        let mut body = vec![1, module.len() as u8];
        body.extend_from_slice(module);
        body.push(field.len() as u8);
        body.extend_from_slice(field);
        body.extend_from_slice(&[0, 0]);
        m.push(2);
        m.push(body.len() as u8);
        m.extend_from_slice(&body);
    }
    m
}
