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

/// `flagon new` makes an app from the Rust hello example, with the SDK and WIT copied in, that
/// builds on its own and passes its request tests (`flagon test`); a second `new` into the same
/// directory, or a bad name, is refused.
#[test]
fn new_scaffolds_an_app_that_builds_and_passes_its_tests() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("my-app");
    let app_s = app.to_str().unwrap();
    let (ok, _, err) = flagon(&["new", app_s, "--lang", "rust"]);
    assert!(ok, "{err}");
    assert!(err.contains("flagon serve"), "{err}");
    for file in [
        "flagon.toml",
        "Cargo.toml",
        "src/lib.rs",
        "templates/index.html",
        "tests/requests.toml",
        "sdk/rust/src/lib.rs",
        "wit/worlds.wit",
    ] {
        assert!(app.join(file).is_file(), "{file}");
    }
    let manifest = std::fs::read_to_string(app.join("flagon.toml")).unwrap();
    assert!(manifest.contains("name = \"my-app\""), "{manifest}");
    assert!(manifest.contains("release/my_app.wasm"), "{manifest}");
    let cargo = std::fs::read_to_string(app.join("Cargo.toml")).unwrap();
    assert!(cargo.contains("path = \"sdk/rust\""), "{cargo}");

    let (ok, _, err) = flagon(&["test", app_s, "--build"]);
    assert!(ok, "{err}");
    assert!(err.contains("8 passed, 0 failed"), "{err}");

    let (ok, _, err) = flagon(&["new", app_s]);
    assert!(!ok);
    assert!(err.contains("not empty"), "{err}");
    let bad = dir.path().join("My_App");
    let (ok, _, err) = flagon(&["new", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("not a valid app name"), "{err}");
}

/// A failing request test says which, and what came back; `flagon test` then fails.
#[test]
fn test_reports_a_failing_request_test() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path();
    std::fs::write(
        app.join("flagon.toml"),
        format!(
            "[app]\nname = \"t\"\n[components.hello]\nsource = {}\ngrants = {{ variables = [], crypto = true, outbound = [\"http://127.0.0.1:9\"] }}\n[[routes]]\npath = \"/\"\ncomponent = \"hello\"\nname = \"index\"\n",
            crate::harness::program(crate::programs::HELLO)
        ),
    )
    .unwrap();
    std::fs::create_dir(app.join("tests")).unwrap();
    std::fs::write(
        app.join("tests/a.toml"),
        "[[test]]\nname = \"home\"\npath = \"/\"\nstatus = 200\ncontains = [\"hello from wasm\"]\n\n[[test]]\nname = \"wrong\"\npath = \"/\"\nstatus = 201\n",
    )
    .unwrap();
    let (ok, _, err) = flagon(&["test", app.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("ok    home"), "{err}");
    assert!(err.contains("FAIL  wrong"), "{err}");
    assert!(err.contains("status: expected 201, got 200"), "{err}");
    assert!(err.contains("1 passed, 1 failed"), "{err}");
}

/// `flagon new --lang js|python|c`: the JavaScript, Python and C hello examples, with their
/// SDKs and the WIT, build on their own and pass the request tests they carry.
#[test]
fn new_scaffolds_js_python_and_c_apps_that_pass_their_tests() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (lang, sdk_file) in [
        ("js", "sdk/js/build.mjs"),
        ("python", "sdk/python/build.py"),
        ("c", "sdk/c/flagon.h"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join(format!("{lang}-app"));
        let app_s = app.to_str().unwrap();
        let (ok, _, err) = flagon(&["new", app_s, "--lang", lang]);
        assert!(ok, "{lang}: {err}");
        assert!(app.join(sdk_file).is_file(), "{lang}: {sdk_file}");
        assert!(app.join("wit/types.wit").is_file(), "{lang}");
        let manifest = std::fs::read_to_string(app.join("flagon.toml")).unwrap();
        assert!(
            manifest.contains(&format!("name = \"{lang}-app\"")),
            "{manifest}"
        );
        assert!(!manifest.contains("../../"), "{manifest}");
        // The C SDK's tool is built once per machine by tests/run; a new app may use it.
        let out = Command::new(env!("CARGO_BIN_EXE_flagon"))
            .args(["test", app_s, "--build"])
            .env("FLAGON_CACHE_DIR", cache_dir())
            .env("FLAGON_C", repo.join("sdk/c/tool/target/release/flagon-c"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{lang}: {err}");
        assert!(err.contains("8 passed, 0 failed"), "{lang}: {err}");
    }
}
