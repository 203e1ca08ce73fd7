//! The `flagon` binary: check, routes, build, and serve with graceful shutdown.

use std::process::Command;
use std::time::Duration;

use crate::app_manifest;
use crate::harness::{BinServer, Req, TestManifest, cache_dir, send};

fn flagon(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flagon"))
        .args(args)
        .env("FLAGON_CACHE_DIR", cache_dir())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_reports_imports_and_grants() {
    let m = TestManifest::new(&app_manifest(""));
    let (ok, out, err) = flagon(&["check", m.path.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("component `hello`"), "{out}");
    assert!(
        out.contains("imports flagon:app/config@0.1.0 (Config)"),
        "{out}"
    );
    assert!(
        out.contains("granted: log, variables [greeting], crypto"),
        "{out}"
    );
    assert!(
        out.contains("imports flagon:app/crypto@0.1.0 (Crypto)"),
        "{out}"
    );
    // Secret values are never printed.
    assert!(out.contains("variable `secret_token` = <secret>"), "{out}");
    assert!(!out.contains("s3cr3t"), "{out}");
}

#[test]
fn check_fails_on_ungranted_imports_and_bad_manifests() {
    let text = app_manifest("");
    let ungranted = text.replace("variables = [\"greeting\"], ", "");
    assert_ne!(text, ungranted, "the test must remove the grant");
    let m = TestManifest::new(&ungranted);
    let (ok, out, _) = flagon(&["check", m.dir.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("imports `flagon:app/config@0.1.0`, which it was not granted"),
        "{out}"
    );

    let m = TestManifest::new("[app]\nname = \"t\"\n[server]\nlisten = \"localhost\"\n");
    let (ok, _, err) = flagon(&["check", m.path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("flagon.toml") && err.contains("listen") && err.contains("line 4"),
        "{err}"
    );
}

#[test]
fn routes_prints_a_table() {
    let m = TestManifest::new(&app_manifest(""));
    let (ok, out, err) = flagon(&["routes", m.path.to_str().unwrap()]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("Name") && lines[0].contains("Methods") && lines[0].contains("Rule"),
        "{out}"
    );
    assert!(out.contains("greet      GET, HEAD"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("POST, PUT") && l.contains("/echo")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let server = BinServer::start(&app_manifest("")).await;
    assert!(server.log().contains("component loaded"));
    let addr = server.addr;
    let slow = tokio::spawn(send(addr, Req::new("GET", "/slow?ms=700")));
    // The guest logs when it starts: only then is the request surely in flight.
    assert!(
        server
            .wait_for_log("slow request started", Duration::from_secs(10))
            .await
    );
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let r = slow.await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "done"));
    // Shutdown began before the response was sent, so the listener is already closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    let (status, log) = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        log.contains("received SIGTERM") && log.contains("stopped"),
        "{log}"
    );
    assert!(
        log.contains("flagon::access") && log.contains("status=200"),
        "{log}"
    );
}

#[tokio::test]
async fn second_start_uses_the_precompiled_cache() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    let first = BinServer::start_with(&app_manifest(""), &[("FLAGON_CACHE_DIR", dir)]).await;
    assert!(first.log().contains("cached=false"), "{}", first.log());
    drop(first);
    let second = BinServer::start_with(&app_manifest(""), &[("FLAGON_CACHE_DIR", dir)]).await;
    assert!(!second.log().contains("cached=false"), "{}", second.log());
    assert!(second.log().contains("cached=true"));
}

#[test]
fn variables_come_from_an_env_file_when_asked() {
    let text = app_manifest("").replace(
        "greeting = { default = \"howdy\" }",
        "greeting = { env = \"FLAGON_TEST_DOTENV_GREETING\" }\n\
         api_key = { env = \"FLAGON_TEST_DOTENV_KEY\", secret = true }",
    );
    let m = TestManifest::new(&text);
    let (ok, _, err) = flagon(&["check", m.path.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("`FLAGON_TEST_DOTENV_KEY` is not set"), "{err}");

    let env = m.dir.path().join(".env");
    std::fs::write(
        &env,
        "# local development\nFLAGON_TEST_DOTENV_GREETING=\"hi there\"\nFLAGON_TEST_DOTENV_KEY=k3y-from-dotenv\n",
    )
    .unwrap();
    let (ok, out, err) = flagon(&[
        "check",
        m.path.to_str().unwrap(),
        "--env-file",
        env.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("variable `greeting` = \"hi there\""), "{out}");
    assert!(
        out.contains("variable `api_key` = <secret>") && !out.contains("k3y-from-dotenv"),
        "{out}"
    );

    std::fs::write(&env, "THIS IS NOT AN ASSIGNMENT\n").unwrap();
    let (ok, _, err) = flagon(&[
        "check",
        m.path.to_str().unwrap(),
        "--env-file",
        env.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains(".env") && err.contains("NAME=value"), "{err}");
}

#[test]
fn routes_show_what_each_route_asks_of_the_request() {
    let m = TestManifest::new(&crate::auth::manifest(""));
    let (ok, out, err) = flagon(&["routes", m.path.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.lines().next().unwrap().contains("Auth"), "{out}");
    let line = |path: &str| {
        out.lines()
            .find(|l| l.contains(path))
            .unwrap_or_else(|| panic!("{path}: {out}"))
            .to_string()
    };
    assert!(
        line("/admin").contains("required roles=admin,root by=a,b"),
        "{out}"
    );
    assert!(line("/api/thing").contains("required by=b"), "{out}");
    assert!(line("/optional").contains("optional by=a,b"), "{out}");
    assert!(line("/open").contains(" - "), "{out}");
}
