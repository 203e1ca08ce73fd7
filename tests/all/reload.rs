//! Reloading a running `flagon serve`: SIGHUP (and `--watch`) load the app again beside the
//! running one and swap it in. Under a steady load, no request fails across ten reloads; a
//! broken manifest or component leaves the running app serving; stores and databases whose
//! settings did not change are kept (the SQLite file stays locked by this process and its rows
//! survive); a change that needs a restart is refused with a message that says so.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::harness::{BinServer, Req, TestManifest, program, try_send};
use crate::programs;

const TODOS: &str = "CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, \
                     done INTEGER NOT NULL DEFAULT 0, note TEXT);\n";

fn manifest(greeting: &str, extra: &str) -> String {
    format!(
        r#"
[app]
name = "reload"

[server]
shutdown_grace = "5s"
{extra}

[variables]
greeting = {{ default = "{greeting}" }}
session_key = {{ env = "RELOAD_SESSION_KEY", secret = true }}

[session]
secret = "session_key"

[kv.counter]

[databases.main]
adapter = "sqlite"
migrations = "migrations"

[components.hello]
source = {hello}
grants = {{ variables = ["greeting"], crypto = true, outbound = ["http://127.0.0.1:9"] }}

[components.web]
source = {web}
grants = {{ templates = true, session = true, kv = ["counter"] }}

[components.db]
source = {db}
grants = {{ sql = ["main"] }}

[[routes]]
path = "/config"
component = "hello"
name = "config"

[[routes]]
path = "/kv"
component = "web"
name = "kv"

[[routes]]
path = "/todos/add"
component = "db"
name = "todos-add"

[[routes]]
path = "/todos"
component = "db"
name = "todos"

[[routes]]
path = "/raw/query"
methods = ["POST"]
component = "db"
name = "raw-query"
"#,
        hello = program(programs::HELLO),
        web = program(programs::WEB),
        db = program(programs::DB),
    )
}

const KEY: &[(&str, &str)] = &[("RELOAD_SESSION_KEY", crate::web::SESSION_KEY)];

fn write_app(dir: &Path, greeting: &str, extra: &str) {
    std::fs::write(dir.join("flagon.toml"), manifest(greeting, extra)).unwrap();
}

fn app(greeting: &str) -> TestManifest {
    TestManifest::with_files(
        &manifest(greeting, ""),
        &[
            ("migrations/0001_todos.sql", TODOS),
            ("templates/.keep", ""),
        ],
    )
}

fn hangup(server: &BinServer) {
    let pid = server.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Wait until the log holds `needle` `n` times.
async fn wait_for_count(server: &BinServer, needle: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.log().matches(needle).count() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "`{needle}` did not appear {n} times; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(server: &BinServer, path: &str) -> (u16, String) {
    let r = try_send(server.addr, Req::new("GET", path))
        .await
        .unwrap_or_else(|| panic!("GET {path}: no answer; log:\n{}", server.log()));
    (r.status, r.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_ten_times_under_load_without_a_failed_request() {
    let app = app("v0");
    let dir = app.dir.path().to_path_buf();
    let server = BinServer::spawn(&app.path, KEY, None).await;
    let (status, body) = get(&server, "/todos/add?title=before").await;
    assert_eq!(status, 200, "{body}");

    // Four clients, each sending requests one after another on fresh connections, to every
    // component, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for n in 0..4 {
        let (stop, sent, failures, addr) =
            (stop.clone(), sent.clone(), failures.clone(), server.addr);
        clients.push(tokio::spawn(async move {
            let paths = ["/config", "/kv", "/todos", "/config"];
            let mut i = n;
            while !stop.load(Ordering::SeqCst) {
                let path = paths[i % paths.len()];
                i += 1;
                match try_send(addr, Req::new("GET", path)).await {
                    Some(r) if r.status == 200 => {}
                    Some(r) => {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{path}: {} {}", r.status, r.text()))
                    }
                    None => failures.lock().unwrap().push(format!("{path}: no answer")),
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }

    for round in 1..=10 {
        write_app(&dir, &format!("v{round}"), "");
        hangup(&server);
        wait_for_count(&server, "reloaded", round).await;
        // The new app answers from now on.
        let (status, body) = get(&server, "/config").await;
        assert_eq!(status, 200);
        assert!(
            body.contains(&format!("greeting=v{round} ")),
            "round {round}: {body}"
        );
        // Let the load run on the new app for a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let sent = sent.load(Ordering::SeqCst);
    eprintln!(
        "reload under load: {sent} requests over 10 reloads, {} failed",
        failures.len()
    );
    assert!(sent > 100, "the load ran: {sent} requests");
    assert!(failures.is_empty(), "failed requests: {failures:?}");

    // The database was kept across the reloads: the row written before them is there, and
    // the SQLite lock (held by this process) did not stop the new app from using the file.
    let (status, body) = get(&server, "/todos").await;
    assert_eq!(status, 200);
    assert!(body.contains("before"), "{body}");
    let log = server.log();
    assert!(!log.contains("reload failed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_reload_keeps_the_running_app_and_says_why() {
    let app = app("first");
    let dir = app.dir.path().to_path_buf();
    let server = BinServer::spawn(&app.path, KEY, None).await;

    // A manifest that does not parse.
    std::fs::write(dir.join("flagon.toml"), "[app\nname = ").unwrap();
    hangup(&server);
    wait_for_count(&server, "reload failed", 1).await;
    assert!(server.log().contains("flagon.toml"), "{}", server.log());
    let (status, body) = get(&server, "/config").await;
    assert_eq!(
        (status, body.contains("greeting=first ")),
        (200, true),
        "{body}"
    );

    // A component that is not a component.
    let bad = dir.join("bad.wasm");
    std::fs::write(&bad, b"\0asm but not really").unwrap();
    let text = manifest("second", "").replace(&program(programs::HELLO), &format!("{bad:?}"));
    std::fs::write(dir.join("flagon.toml"), text).unwrap();
    hangup(&server);
    wait_for_count(&server, "reload failed", 2).await;
    let (status, body) = get(&server, "/config").await;
    assert_eq!(
        (status, body.contains("greeting=first ")),
        (200, true),
        "{body}"
    );

    // A new migration beside a component that fails: the reload fails before any migration
    // runs, so the running app's schema is unchanged.
    std::fs::write(
        dir.join("migrations/0002_extra.sql"),
        "CREATE TABLE extra (id INTEGER PRIMARY KEY);\n",
    )
    .unwrap();
    hangup(&server);
    wait_for_count(&server, "reload failed", 3).await;
    let count_extra = || {
        Req::new("POST", "/raw/query")
            .header("content-type", "application/json")
            .body(r#"{"db": "main", "sql": "SELECT count(*) FROM extra", "p": []}"#)
    };
    let r = try_send(server.addr, count_extra()).await.unwrap();
    assert!(r.text().contains("no-such-table"), "{}", r.text());

    // The same SQLite file under another name would be a second writer: refused.
    let text = manifest("second", "").replace(
        "[databases.main]\nadapter = \"sqlite\"",
        "[databases.renamed]\nadapter = \"sqlite\"\npath = \"data/sql/main/main.db\"",
    );
    let text = text.replace("sql = [\"main\"]", "sql = [\"renamed\"]");
    std::fs::write(dir.join("flagon.toml"), text).unwrap();
    hangup(&server);
    wait_for_count(&server, "reload failed", 4).await;
    assert!(
        server.log().contains("is open as database `main`"),
        "{}",
        server.log()
    );

    // A change to the SQLite database's settings needs a restart: refused, old app serving.
    let text = manifest("third", "").replace(
        "migrations = \"migrations\"",
        "migrations = \"migrations\"\nmax_rows = 7",
    );
    std::fs::write(dir.join("flagon.toml"), text).unwrap();
    hangup(&server);
    wait_for_count(&server, "reload failed", 5).await;
    assert!(server.log().contains("restart flagon"), "{}", server.log());
    let (status, body) = get(&server, "/config").await;
    assert_eq!(
        (status, body.contains("greeting=first ")),
        (200, true),
        "{body}"
    );

    // Fixed: the next reload goes through, and applies the new migration.
    write_app(&dir, "fourth", "");
    hangup(&server);
    wait_for_count(&server, "reloaded", 1).await;
    let (_, body) = get(&server, "/config").await;
    assert!(body.contains("greeting=fourth "), "{body}");
    let r = try_send(server.addr, count_extra()).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        server.log().contains("migration=0002_extra.sql"),
        "{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reloads_when_the_manifest_or_a_template_changes() {
    let app = app("watched");
    let dir = app.dir.path().to_path_buf();
    let server = BinServer::spawn_with_args(&app.path, &["--watch"], KEY, None).await;
    assert!(
        server
            .wait_for_log("watching", Duration::from_secs(10))
            .await,
        "{}",
        server.log()
    );
    // Requests that write to the app's own data (kv, SQLite) are not changes to reload for.
    for _ in 0..3 {
        assert_eq!(get(&server, "/kv").await.0, 200);
        assert_eq!(get(&server, "/todos/add?title=x").await.0, 200);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!server.log().contains("files changed"), "{}", server.log());

    write_app(&dir, "changed", "");
    wait_for_count(&server, "reloaded", 1).await;
    let (_, body) = get(&server, "/config").await;
    assert!(body.contains("greeting=changed "), "{body}");

    std::fs::write(dir.join("templates/page.html"), "<p>new</p>").unwrap();
    wait_for_count(&server, "reloaded", 2).await;
}
