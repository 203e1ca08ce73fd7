//! `flagon:app/sql` over real HTTP: the `db` test program on real SQLite files through the
//! SQLite adapter (`plugins/sqlite`), and the `bad-adapter` program for an adapter that traps,
//! loops or runs out of memory.

use std::path::Path;

use flagon::LoadOptions;
use serde_json::{Value as Json, json};

use crate::harness::{BinServer, Reply, Req, TestManifest, TestServer, program, send, try_send};
use crate::programs;

pub(crate) fn manifest(databases: &str, grants: &str) -> String {
    format!(
        r#"
[app]
name = "sqltest"

{databases}

[components.db]
source = {db}
grants = {{ {grants} }}
limits = {{ timeout = "10s" }}

[[routes]]
path = "/raw/query"
methods = ["POST"]
component = "db"
name = "raw-query"
max_body = "1MiB"

[[routes]]
path = "/raw/exec"
methods = ["POST"]
component = "db"
name = "raw-exec"
max_body = "1MiB"

[[routes]]
path = "/todos/add"
component = "db"
name = "todos-add"

[[routes]]
path = "/todos"
component = "db"
name = "todos"

[[routes]]
path = "/tx"
component = "db"
name = "tx"

[[routes]]
path = "/probe"
component = "db"
name = "probe"
"#,
        db = program(programs::DB),
    )
}

const SQLITE: &str = "[databases.main]\nadapter = \"sqlite\"\nmax_rows = 100\nmax_bytes = \"64KiB\"\ntimeout = \"500ms\"\n";

pub(crate) fn json(r: &Reply) -> Json {
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// The `ok` of a raw call, failing the test on an `err`.
pub(crate) async fn ok(s: &TestServer, kind: &str, db: &str, sql: &str, params: Json) -> Json {
    let v = raw(s, kind, db, sql, params).await;
    match v.get("ok") {
        Some(ok) => ok.clone(),
        None => panic!("`{sql}` failed: {v}"),
    }
}

/// The `err` of a raw call, failing the test on an `ok`.
pub(crate) async fn err(s: &TestServer, kind: &str, db: &str, sql: &str, params: Json) -> Json {
    let v = raw(s, kind, db, sql, params).await;
    match v.get("err") {
        Some(e) => e.clone(),
        None => panic!("`{sql}` should fail: {v}"),
    }
}

pub(crate) async fn raw(s: &TestServer, kind: &str, db: &str, sql: &str, params: Json) -> Json {
    json(&s.send(raw_req(kind, db, sql, params)).await)
}

pub(crate) fn raw_req(kind: &str, db: &str, sql: &str, params: Json) -> Req {
    Req::new("POST", &format!("/raw/{kind}"))
        .header("content-type", "application/json")
        .body(json!({"db": db, "sql": sql, "p": params}).to_string())
}

async fn sqlite_server() -> (TestServer, std::path::PathBuf) {
    let m = TestManifest::new(&manifest(SQLITE, "sql = [\"main\"]"));
    let dir = m.dir.path().to_path_buf();
    let s = TestServer::serve(m, LoadOptions::default()).await;
    ok(
        &s,
        "exec",
        "main",
        "CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, note TEXT)",
        json!([]),
    )
    .await;
    (s, dir)
}

#[tokio::test]
async fn crud_through_the_sdk_and_the_file_is_real_sqlite() {
    let (s, dir) = sqlite_server().await;
    let r = json(&s.get("/todos/add?title=first").await);
    assert_eq!(r["id"], 1);
    let r = json(&s.get("/todos/add?title=second&note=n").await);
    assert_eq!(r["id"], 2);
    let out = ok(
        &s,
        "exec",
        "main",
        "UPDATE todos SET done = 1 WHERE id = ?1",
        json!([{"int": 2}]),
    )
    .await;
    assert_eq!(out["rows_affected"], 1);
    // The outcome is this statement's own: an UPDATE inserts nothing, DDL changes no rows.
    assert_eq!(out["last_insert_id"], Json::Null);
    let out = ok(&s, "exec", "main", "CREATE TABLE other (x)", json!([])).await;
    assert_eq!(out, json!({"rows_affected": 0, "last_insert_id": null}));
    // Two new tables' first rows both have rowid 1: the second insert still reports its own
    // id, though it equals the one before it.
    for table in ["other", "more"] {
        if table == "more" {
            ok(&s, "exec", "main", "CREATE TABLE more (x)", json!([])).await;
        }
        let out = ok(
            &s,
            "exec",
            "main",
            &format!("INSERT INTO {table} (x) VALUES (?1)"),
            json!([{"int": 7}]),
        )
        .await;
        assert_eq!(
            out,
            json!({"rows_affected": 1, "last_insert_id": 1}),
            "{table}"
        );
    }
    let todos = json(&s.get("/todos").await);
    assert_eq!(
        todos,
        json!([
            {"id": 1, "title": "first", "done": false, "note": null},
            {"id": 2, "title": "second", "done": true, "note": "n"},
        ])
    );
    let out = ok(
        &s,
        "exec",
        "main",
        "DELETE FROM todos WHERE id = ?1",
        json!([{"int": 1}]),
    )
    .await;
    assert_eq!(out["rows_affected"], 1);
    assert_eq!(json(&s.get("/todos").await).as_array().unwrap().len(), 1);

    // The file is a SQLite database on disk, beside the manifest, that the host locks.
    let file = dir.join("data/sql/main/main.db");
    let header = std::fs::read(&file).unwrap();
    assert!(header.starts_with(b"SQLite format 3\0"));
    assert!(dir.join("data/sql/main/main.db.flagon-lock").is_file());
    let check = ok(&s, "query", "main", "PRAGMA integrity_check", json!([])).await;
    assert_eq!(check["rows"], json!([[{"text": "ok"}]]));
}

#[tokio::test]
async fn every_value_kind_round_trips() {
    let (s, _dir) = sqlite_server().await;
    ok(
        &s,
        "exec",
        "main",
        "CREATE TABLE v (k INTEGER PRIMARY KEY, x)",
        json!([]),
    )
    .await;
    let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let values = [
        json!({"null": true}),
        json!({"int": i64::MAX}),
        json!({"int": i64::MIN}),
        json!({"int": 0}),
        json!({"real": "1.5"}),
        json!({"real": "-0.000001"}),
        json!({"real": "inf"}),
        json!({"real": "-inf"}),
        json!({"text": ""}),
        json!({"text": "héllo wörld ✓ 🦀 \u{0} nul"}),
        json!({"blob": []}),
        json!({"blob": big}),
        json!({"text": "'; DROP TABLE v; --"}),
        json!({"text": "\" OR 1=1 --"}),
    ];
    for (i, v) in values.iter().enumerate() {
        ok(
            &s,
            "exec",
            "main",
            "INSERT INTO v (k, x) VALUES (?1, ?2)",
            json!([{"int": i}, v]),
        )
        .await;
        let got = ok(
            &s,
            "query",
            "main",
            "SELECT x FROM v WHERE k = ?1",
            json!([{"int": i}]),
        )
        .await;
        assert_eq!(got["rows"][0][0], *v, "value {i}");
    }
    // Booleans are stored as SQLite integers.
    ok(
        &s,
        "exec",
        "main",
        "INSERT INTO v (k, x) VALUES (100, ?1)",
        json!([{"bool": true}]),
    )
    .await;
    let got = ok(
        &s,
        "query",
        "main",
        "SELECT x FROM v WHERE k = 100",
        json!([]),
    )
    .await;
    assert_eq!(got["rows"][0][0], json!({"int": 1}));
    // NaN: SQLite stores it as NULL.
    ok(
        &s,
        "exec",
        "main",
        "INSERT INTO v (k, x) VALUES (101, ?1)",
        json!([{"real": "NaN"}]),
    )
    .await;
    let got = ok(
        &s,
        "query",
        "main",
        "SELECT x FROM v WHERE k = 101",
        json!([]),
    )
    .await;
    assert_eq!(got["rows"][0][0], json!({"null": true}));
    // The injection strings stayed data: the table is still there with every row.
    let n = ok(
        &s,
        "query",
        "main",
        "SELECT count(*) AS n FROM v",
        json!([]),
    )
    .await;
    assert_eq!(n["columns"], json!(["n"]));
    assert_eq!(n["rows"][0][0], json!({"int": values.len() + 2}));
}

#[tokio::test]
async fn errors_are_variants_a_handler_can_match() {
    let (s, _dir) = sqlite_server().await;
    ok(
        &s,
        "exec",
        "main",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, age INTEGER CHECK (age >= 0))",
        json!([]),
    )
    .await;
    ok(&s, "exec", "main", "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id))", json!([])).await;
    ok(
        &s,
        "exec",
        "main",
        "INSERT INTO users (email) VALUES ('a@example.com')",
        json!([]),
    )
    .await;

    let e = err(
        &s,
        "exec",
        "main",
        "INSERT INTO users (email) VALUES ('a@example.com')",
        json!([]),
    )
    .await;
    assert_eq!(e["kind"], "constraint");
    assert_eq!(e["constraint_kind"], "unique");
    assert_eq!(e["constraint"], "users.email");
    let e = err(
        &s,
        "exec",
        "main",
        "INSERT INTO users (email) VALUES (NULL)",
        json!([]),
    )
    .await;
    assert_eq!(e["constraint_kind"], "not-null");
    let e = err(
        &s,
        "exec",
        "main",
        "INSERT INTO users (email, age) VALUES ('b@example.com', -1)",
        json!([]),
    )
    .await;
    assert_eq!(e["constraint_kind"], "check");
    // Foreign keys are on.
    let e = err(
        &s,
        "exec",
        "main",
        "INSERT INTO posts (user_id) VALUES (42)",
        json!([]),
    )
    .await;
    assert_eq!(e["constraint_kind"], "foreign-key");
    let e = err(
        &s,
        "exec",
        "main",
        "INSERT INTO users (id, email) VALUES (1, 'c@example.com')",
        json!([]),
    )
    .await;
    assert_eq!(e["constraint_kind"], "primary-key");

    let e = err(&s, "query", "main", "SELECT * FROM nope", json!([])).await;
    assert_eq!(e, json!({"kind": "no-such-table", "detail": "nope"}));
    let e = err(&s, "query", "main", "SELECT nope FROM users", json!([])).await;
    assert_eq!(e, json!({"kind": "no-such-column", "detail": "nope"}));
    let e = err(&s, "query", "main", "SELEKT 1", json!([])).await;
    assert_eq!(e["kind"], "syntax");
    // One statement per call.
    let e = err(
        &s,
        "exec",
        "main",
        "DELETE FROM posts; DROP TABLE users",
        json!([]),
    )
    .await;
    assert_eq!(e["kind"], "syntax");
    assert!(
        e["detail"].as_str().unwrap().contains("one statement"),
        "{e}"
    );
    let n = ok(&s, "query", "main", "SELECT count(*) FROM users", json!([])).await;
    assert_eq!(n["rows"][0][0], json!({"int": 1}));
    // ATTACH cannot open another file; a wrong parameter count is an error, not a trap.
    let e = err(
        &s,
        "exec",
        "main",
        "ATTACH DATABASE '/data/other.db' AS other",
        json!([]),
    )
    .await;
    assert_eq!(e["kind"], "other", "{e}");
    let e = err(&s, "query", "main", "SELECT ?1, ?2", json!([{"int": 1}])).await;
    assert_eq!(e["kind"], "other", "{e}");
    // A database this component was not granted, or that does not exist.
    let e = err(&s, "query", "other", "SELECT 1", json!([])).await;
    assert_eq!(e["kind"], "not-granted");
}

#[tokio::test]
async fn results_are_capped_and_statements_have_a_deadline() {
    let (s, _dir) = sqlite_server().await;
    // max_rows = 100
    let r = ok(
        &s,
        "query",
        "main",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100) SELECT x FROM c",
        json!([]),
    )
    .await;
    assert_eq!(r["rows"].as_array().unwrap().len(), 100);
    let e = err(
        &s,
        "query",
        "main",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 101) SELECT x FROM c",
        json!([]),
    )
    .await;
    assert_eq!(e, json!({"kind": "too-many-rows", "detail": 100}));
    // max_bytes = 64KiB, for results and for parameters.
    let e = err(&s, "query", "main", "SELECT zeroblob(70000)", json!([])).await;
    assert_eq!(e, json!({"kind": "too-large", "detail": 65536}));
    let e = err(
        &s,
        "query",
        "main",
        "SELECT ?1",
        json!([{"text": "x".repeat(70_000)}]),
    )
    .await;
    assert_eq!(e, json!({"kind": "too-large", "detail": 65536}));
    // timeout = 500ms: a statement that never ends is stopped, and the next one works on a
    // fresh connection.
    let started = std::time::Instant::now();
    let e = err(
        &s,
        "query",
        "main",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        json!([]),
    )
    .await;
    assert_eq!(e, json!({"kind": "timeout"}));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let r = ok(&s, "query", "main", "SELECT 1", json!([])).await;
    assert_eq!(r["rows"][0][0], json!({"int": 1}));
}

#[tokio::test]
async fn transactions_commit_roll_back_and_never_outlive_their_request() {
    let (s, _dir) = sqlite_server().await;
    let count = || async {
        let r = ok(&s, "query", "main", "SELECT count(*) FROM todos", json!([])).await;
        r["rows"][0][0]["int"].as_i64().unwrap()
    };
    let r = json(&s.get("/tx?how=commit&title=a").await);
    assert_eq!(r["inside"], 1);
    assert_eq!(count().await, 1);
    for how in ["rollback", "drop", "open"] {
        let r = json(&s.get(&format!("/tx?how={how}&title={how}")).await);
        assert_eq!(
            r["inside"], 2,
            "{how}: the row is visible inside the transaction"
        );
        // The rollback of an abandoned transaction runs as its lease is dropped; give it the
        // moment it takes.
        let mut n = count().await;
        for _ in 0..50 {
            if n == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            n = count().await;
        }
        assert_eq!(n, 1, "{how}: rolled back");
    }
    // A handler that traps inside a transaction: a 500 for it, the write rolled back.
    let r = s.get("/tx?how=trap&title=t").await;
    assert_eq!(r.status, 500);
    let mut n = count().await;
    for _ in 0..50 {
        if n == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        n = count().await;
    }
    assert_eq!(n, 1);
    assert_eq!(json(&s.get("/tx?how=commit&title=b").await)["inside"], 2);
    assert_eq!(count().await, 2);

    // A connection goes back clean: a BEGIN sent as a plain statement is rolled back, and
    // settings a statement changed are restored, before anyone else gets the connection.
    ok(&s, "exec", "main", "BEGIN", json!([])).await;
    ok(&s, "exec", "main", "PRAGMA foreign_keys = OFF", json!([])).await;
    ok(&s, "exec", "main", "PRAGMA synchronous = OFF", json!([])).await;
    let fk = ok(&s, "query", "main", "PRAGMA foreign_keys", json!([])).await;
    assert_eq!(fk["rows"][0][0], json!({"int": 1}));
    let sync = ok(&s, "query", "main", "PRAGMA synchronous", json!([])).await;
    assert_eq!(sync["rows"][0][0], json!({"int": 2}), "FULL");
    assert_eq!(json(&s.get("/tx?how=commit&title=c").await)["inside"], 3);
}

#[tokio::test]
async fn concurrent_writers_lose_no_update() {
    let (s, _dir) = sqlite_server().await;
    ok(
        &s,
        "exec",
        "main",
        "CREATE TABLE counter (n INTEGER NOT NULL)",
        json!([]),
    )
    .await;
    ok(
        &s,
        "exec",
        "main",
        "INSERT INTO counter VALUES (0)",
        json!([]),
    )
    .await;
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                ok(
                    &s,
                    "exec",
                    "main",
                    "UPDATE counter SET n = n + 1",
                    json!([]),
                )
                .await;
                s.get("/todos/add?title=c").await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = ok(&s, "query", "main", "SELECT n FROM counter", json!([])).await;
    assert_eq!(r["rows"][0][0], json!({"int": 200}));
    let r = ok(&s, "query", "main", "SELECT count(*) FROM todos", json!([])).await;
    assert_eq!(r["rows"][0][0], json!({"int": 200}));
    let check = ok(&s, "query", "main", "PRAGMA integrity_check", json!([])).await;
    assert_eq!(check["rows"], json!([[{"text": "ok"}]]));
}

#[tokio::test]
async fn the_handler_cannot_reach_the_database_file() {
    let (s, _dir) = sqlite_server().await;
    let r = json(&s.get("/probe").await);
    assert_eq!(r["readable"], json!([]));

    // Nor can a grant of files be made over the database's directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let text = manifest(
        SQLITE,
        "sql = [\"main\"], files = { \"/d\" = { path = \"data\", write = true } }",
    );
    std::fs::write(dir.path().join("flagon.toml"), text).unwrap();
    let m = flagon::Manifest::load(&dir.path().join("flagon.toml")).unwrap();
    let e = flagon::App::load(
        &m,
        &LoadOptions {
            cache: flagon::CacheDir::Path(crate::harness::cache_dir()),
            ..LoadOptions::default()
        },
    )
    .await
    .err()
    .expect("must refuse");
    let e = format!("{e:#}");
    assert!(e.contains("grants.files"), "{e}");
    assert!(e.contains("only its adapter"), "{e}");

    // The adapter is granted the database's whole directory, so nothing else may live there.
    for (databases, key) in [
        (
            "[kv.cache]\n[databases.main]\nadapter = \"sqlite\"\npath = \"data/app.db\"\n",
            "kv.cache.path",
        ),
        (
            "[databases.main]\nadapter = \"sqlite\"\npath = \"app.db\"\n",
            "databases.main.path",
        ),
        (
            "[databases.main]\nadapter = \"sqlite\"\npath = \"db/a.db\"\n[databases.other]\nadapter = \"sqlite\"\npath = \"db/b.db\"\n",
            "databases.other.path",
        ),
    ] {
        let m = TestManifest::new(&manifest(databases, "sql = [\"main\"]"));
        let e = format!("{:#}", m.load().await.err().expect("must refuse"));
        assert!(e.contains(key), "{databases}: {e}");
        assert!(e.contains("directory of its own"), "{e}");
    }
}

#[tokio::test]
async fn grants_are_checked_at_load() {
    // A database that is not declared.
    let m = TestManifest::new(&manifest("", "sql = [\"main\"]"));
    let e = format!("{:#}", m.load().await.err().expect("must refuse"));
    assert!(e.contains("components.db.grants.sql"), "{e}");
    assert!(e.contains("[databases.main]"), "{e}");
    // A component that imports `sql` without a grant.
    let m = TestManifest::new(&manifest(SQLITE, ""));
    let e = format!("{:#}", m.load().await.err().expect("must refuse"));
    assert!(e.contains("flagon:app/sql"), "{e}");
    assert!(e.contains("grants = { sql = [\"main\"] }"), "{e}");
    // Bad settings name the key.
    for (bad, key) in [
        (
            "[databases.main]\nadapter = \"oracle\"\n",
            "databases.main.adapter",
        ),
        (
            "[databases.main]\nadapter = \"sqlite\"\npool = 4\n",
            "databases.main.pool",
        ),
        (
            "[databases.main]\nadapter = \"sqlite\"\nmax_rows = 0\n",
            "databases.main.max_rows",
        ),
        (
            "[databases.main]\nadapter = \"sqlite\"\ntimeout = \"2h\"\n",
            "databases.main.timeout",
        ),
    ] {
        let m = TestManifest::new(&manifest(bad, "sql = [\"main\"]"));
        let e = format!("{:#}", m.load().await.err().expect("must refuse"));
        assert!(e.contains(key), "{bad}: {e}");
    }
}

fn bad_adapter(extra: &str) -> String {
    format!(
        "[databases.main]\nadapter = \"sqlite\"\n\n[databases.bad]\nadapter = {}\npool = 2\ntimeout = \"300ms\"\nmemory = \"16MiB\"\n{extra}",
        program(programs::BAD_ADAPTER)
    )
}

#[tokio::test]
async fn a_misbehaving_adapter_is_contained_and_its_pool_refills() {
    let m = TestManifest::new(&manifest(&bad_adapter(""), "sql = [\"main\", \"bad\"]"));
    let s = TestServer::serve(m, LoadOptions::default()).await;
    let calls = |v: &Json| v["rows"][0][1]["int"].as_i64().unwrap();
    let first = ok(&s, "query", "bad", "hello", json!([])).await;
    assert_eq!(first["rows"][0][0], json!({"text": "hello"}));
    // The instance is reused (pooled), so its call count grows.
    let again = ok(&s, "query", "bad", "hello", json!([])).await;
    assert_eq!(calls(&again), calls(&first) + 1);

    for (statement, kind) in [
        ("trap", "connection-lost"),
        ("loop", "timeout"),
        ("grow", "connection-lost"),
    ] {
        let e = err(&s, "query", "bad", statement, json!([])).await;
        assert_eq!(e["kind"], kind, "{statement}: {e}");
        // The next call gets a working instance; the other database never noticed.
        let r = ok(&s, "query", "bad", "after", json!([])).await;
        assert_eq!(r["rows"][0][0], json!({"text": "after"}));
        let r = ok(&s, "query", "main", "SELECT 1", json!([])).await;
        assert_eq!(r["rows"][0][0], json!({"int": 1}));
    }
    // A reset that fails drops the instance instead of reusing it.
    ok(&s, "query", "bad", "fail-reset", json!([])).await;
    let r = ok(&s, "query", "bad", "x", json!([])).await;
    assert_eq!(calls(&r), 1, "a fresh instance after a failed reset");

    // Concurrent calls while instances trap: every request gets an answer.
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let statement = if i % 3 == 0 { "trap" } else { "fine" };
            raw(&s, "query", "bad", statement, json!([])).await
        }));
    }
    for t in tasks {
        let v = t.await.unwrap();
        assert!(v.get("ok").is_some() || v.get("err").is_some(), "{v}");
    }
}

#[tokio::test]
async fn an_adapter_that_refuses_to_connect_stops_the_start() {
    let m = TestManifest::new(&manifest(
        &bad_adapter("settings = { refuse = \"yes\" }\n"),
        "sql = [\"main\", \"bad\"]",
    ));
    let e = format!("{:#}", m.load().await.err().expect("must refuse"));
    assert!(e.contains("[databases.bad]"), "{e}");
    assert!(e.contains("connection refused by the test adapter"), "{e}");
}

/// Writes acknowledged to the client survive `kill -9` of the server, and the database is
/// intact afterwards.
#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flagon.toml");
    std::fs::write(&path, manifest(SQLITE, "sql = [\"main\"]")).unwrap();
    let server = BinServer::spawn(&path, &[], None).await;
    let addr = server.addr;
    let r = send(
        addr,
        raw_req(
            "exec",
            "main",
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
            json!([]),
        ),
    )
    .await;
    assert!(r.text().contains("\"ok\""), "{}", r.text());
    // Writers run while the server is killed; whatever was acknowledged must be there.
    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 0..2000u32 {
            let req = raw_req(
                "exec",
                "main",
                "INSERT INTO t (id, v) VALUES (?1, 'x')",
                json!([{"int": i}]),
            );
            let r =
                tokio::time::timeout(std::time::Duration::from_secs(2), try_send(addr, req)).await;
            match r {
                Ok(Some(r)) if r.status == 200 && r.text().contains("\"ok\"") => acked.push(i),
                _ => break,
            }
        }
        acked
    });
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let acked = writer.await.unwrap();
    assert!(
        !acked.is_empty(),
        "some writes were acknowledged before the kill"
    );
    drop(server);

    let server = BinServer::spawn(&path, &[], None).await;
    // The writer stops at its first failure, so what was acknowledged is 0..n.
    let n = acked.len() as u32;
    assert_eq!(acked, (0..n).collect::<Vec<_>>());
    let r = send(
        server.addr,
        raw_req(
            "query",
            "main",
            "SELECT count(*) FROM t WHERE id < ?1",
            json!([{"int": n}]),
        ),
    )
    .await;
    let v: Json = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["ok"]["rows"][0][0],
        json!({"int": n}),
        "every acknowledged write is there after the restart: {v}"
    );
    let r = send(
        server.addr,
        raw_req("query", "main", "PRAGMA integrity_check", json!([])),
    )
    .await;
    assert!(r.text().contains("\"ok\"}]]"), "{}", r.text());
    assert!(Path::new(&dir.path().join("data/sql/main/main.db")).is_file());
}

fn flagon(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flagon"))
        .args(args)
        .env("FLAGON_CACHE_DIR", crate::harness::cache_dir())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn migrations_apply_in_order_at_start() {
    let databases = format!("{SQLITE}migrations = \"migrations\"\n");
    let m = TestManifest::new(&manifest(&databases, "sql = [\"main\"]"));
    let migrations = m.dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    // Two statements in one file; the second file needs the first.
    std::fs::write(
        migrations.join("0001_create_todos.sql"),
        "CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0);\n\
         CREATE INDEX todos_title ON todos (title);\n",
    )
    .unwrap();
    std::fs::write(
        migrations.join("0002_add_note.sql"),
        "-- a note per todo\nALTER TABLE todos ADD COLUMN note TEXT;\n",
    )
    .unwrap();
    std::fs::write(migrations.join("README.txt"), "not a migration").unwrap();
    let app = m.dir.path().to_str().unwrap().to_owned();

    // Nothing applied yet: --status lists both as pending and applies nothing.
    let (ok_, out) = flagon(&["migrate", &app, "--status"]);
    assert!(ok_, "{out}");
    assert!(out.contains("pending  0001_create_todos.sql"), "{out}");
    assert!(out.contains("pending  0002_add_note.sql"), "{out}");

    // Starting the app applies them, in order, every statement.
    let s = TestServer::serve(m, LoadOptions::default()).await;
    let r = s.get("/todos/add?title=t&note=n").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let index = ok(
        &s,
        "query",
        "main",
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'todos_title'",
        json!([]),
    )
    .await;
    assert_eq!(index["rows"], json!([[{"text": "todos_title"}]]));
    let recorded = ok(
        &s,
        "query",
        "main",
        "SELECT version, name FROM _flagon_migrations ORDER BY version",
        json!([]),
    )
    .await;
    assert_eq!(
        recorded["rows"],
        json!([[{"int": 1}, {"text": "0001_create_todos.sql"}], [{"int": 2}, {"text": "0002_add_note.sql"}]])
    );
    // While this process serves the database, another cannot open it.
    let (ok_, out) = flagon(&["migrate", &app, "--status"]);
    assert!(!ok_);
    assert!(out.contains("in use by another process"), "{out}");
}

#[tokio::test]
async fn flagon_migrate_applies_and_reports_and_a_changed_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(
        migrations.join("1_create.sql"),
        "CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, note TEXT);",
    )
    .unwrap();
    let databases = format!("{SQLITE}migrations = \"migrations\"\n");
    std::fs::write(
        dir.path().join("flagon.toml"),
        manifest(&databases, "sql = [\"main\"]"),
    )
    .unwrap();
    let app = dir.path().to_str().unwrap();
    let (ok_, out) = flagon(&["migrate", app]);
    assert!(ok_, "{out}");
    assert!(out.contains("applied  1_create.sql"), "{out}");
    // Applied once: a second run applies nothing new.
    let (ok_, out) = flagon(&["migrate", app]);
    assert!(ok_, "{out}");
    assert!(!out.contains("just now"), "{out}");

    // A failing migration keeps nothing of itself, and names the file.
    std::fs::write(
        migrations.join("2_broken.sql"),
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);\nCREATE TABLE oops (;\n",
    )
    .unwrap();
    let (ok_, out) = flagon(&["migrate", app]);
    assert!(!ok_);
    assert!(out.contains("2_broken.sql"), "{out}");
    std::fs::write(
        migrations.join("2_broken.sql"),
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n",
    )
    .unwrap();
    let (ok_, out) = flagon(&["migrate", app]);
    assert!(
        ok_,
        "the table from the failed attempt was rolled back: {out}"
    );
    assert!(out.contains("applied  2_broken.sql  (just now)"), "{out}");

    // An applied file that changed stops the start, naming it.
    std::fs::write(
        migrations.join("1_create.sql"),
        "CREATE TABLE todos (id INTEGER PRIMARY KEY);",
    )
    .unwrap();
    let (ok_, out) = flagon(&["migrate", app, "--status"]);
    assert!(!ok_);
    assert!(out.contains("1_create.sql"), "{out}");
    assert!(out.contains("was changed after it was applied"), "{out}");
    // Badly named files are refused.
    std::fs::write(migrations.join("create_more.sql"), "SELECT 1;").unwrap();
    let (ok_, out) = flagon(&["migrate", app, "--status"]);
    assert!(!ok_);
    assert!(out.contains("<number>_<name>.sql"), "{out}");
}
