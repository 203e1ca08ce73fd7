//! `adapter = "postgres"` (`plugins/postgres`) over real HTTP against a real Postgres server,
//! started by each test (`initdb` in a temporary directory, a free loopback port, SCRAM
//! passwords); and the socket grant that lets an adapter reach its server and nothing else.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flagon::LoadOptions;
use serde_json::{Value as Json, json};

use crate::harness::{TestManifest, TestServer, program};
use crate::programs;
use crate::sql::{err, json, manifest, ok, raw};

pub(crate) const PASSWORD: &str = "pg-test-secret-9f2c";

/// A Postgres server of the test's own, stopped when dropped.
pub(crate) struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    child: Option<Child>,
    tls: bool,
}

/// Postgres refuses to run as root; a root test runs it as the `postgres` user (which
/// Debian's package creates).
fn as_server_user(program: &Path) -> Command {
    if nix_is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn pg_bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("Postgres is installed (apt-get install postgresql; `bash tests/run` installs it)")
}

fn give_to_server_user(path: &Path) {
    if nix_is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl PgServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(false).await
    }

    /// With `tls`, the server has a certificate for `localhost` and 127.0.0.1 signed by a CA
    /// of the test's own (`ca.pem` in the directory).
    pub(crate) async fn start_with(tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = pg_bindir();
        std::fs::write(dir.path().join("pw"), PASSWORD).unwrap();
        give_to_server_user(dir.path());
        let out = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-U",
                "flagon",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", dir.path().join("pw").display()))
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if tls {
            make_certificates(dir.path());
            give_to_server_user(dir.path());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut pg = PgServer {
            dir,
            bin,
            port,
            child: None,
            tls,
        };
        pg.run().await;
        // The app logs in as an ordinary role, as it should in production, not as the
        // superuser `flagon` that owns the cluster.
        pg.psql(&format!(
            "CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'; GRANT ALL ON SCHEMA public TO app"
        ));
        pg
    }

    /// Start the server (again) on its port and wait until it accepts logins.
    pub(crate) async fn run(&mut self) {
        let data = self.dir.path().join("data");
        let mut c = as_server_user(&self.bin.join("postgres"));
        c.arg("-D")
            .arg(&data)
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=40"]);
        if self.tls {
            let d = self.dir.path();
            c.args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!("ssl_cert_file={}", d.join("server.pem").display()))
                .arg("-c")
                .arg(format!("ssl_key_file={}", d.join("server.key").display()));
        }
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = c
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres runs");
        self.child = Some(child);
        for _ in 0..200 {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "postgres did not start: {}",
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// Fast shutdown (SIGINT): the server ends every session and exits.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The postmaster's own pid (the child may be `runuser`, which does not pass
            // SIGINT on).
            let pid = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
                .ok()
                .and_then(|s| s.lines().next().map(str::to_string))
                .unwrap_or_else(|| child.id().to_string());
            let _ = Command::new("kill").args(["-INT", &pid]).status();
            let _ = child.wait();
        }
    }

    /// The `[databases.main]` section for this server.
    pub(crate) fn section(&self, extra: &str) -> String {
        format!(
            "[databases.main]\nadapter = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"app\"\n\
             database = \"postgres\"\ntls = \"off\"\nsecrets = {{ password = \"pg_password\" }}\n\
             max_rows = 100\nmax_bytes = \"64KiB\"\ntimeout = \"500ms\"\n{extra}\n\
             [variables]\npg_password = {{ default = \"{PASSWORD}\", secret = true }}\n",
            self.port
        )
    }

    /// One statement through `psql`, from outside the app; the first column of its first row.
    pub(crate) fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "flagon",
            ])
            .args(["-d", "postgres", "-tAc", sql])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA and a server certificate for `localhost` / 127.0.0.1, by Debian's `openssl`.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=flagon test CA",
        "-days",
        "2",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
}

async fn pg_app(pg: &PgServer, extra: &str) -> TestServer {
    let m = TestManifest::new(&manifest(&pg.section(extra), "sql = [\"main\"]"));
    let s = TestServer::serve(m, LoadOptions::default()).await;
    ok(
        &s,
        "exec",
        "main",
        "CREATE TABLE todos (id SERIAL PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, note TEXT)",
        json!([]),
    )
    .await;
    s
}

#[tokio::test]
async fn postgres_values_types_and_injection_strings() {
    let pg = PgServer::start().await;
    let s = pg_app(&pg, "").await;
    ok(
        &s,
        "exec",
        "main",
        "CREATE TABLE v (k BIGINT PRIMARY KEY, i BIGINT, r DOUBLE PRECISION, t TEXT, b BYTEA, f BOOLEAN)",
        json!([]),
    )
    .await;
    let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let values = [
        ("i", json!({"null": true})),
        ("i", json!({"int": i64::MAX})),
        ("i", json!({"int": i64::MIN})),
        ("r", json!({"real": "1.5"})),
        ("r", json!({"real": "-0.000001"})),
        ("r", json!({"real": "inf"})),
        ("r", json!({"real": "-inf"})),
        ("r", json!({"real": "NaN"})),
        ("t", json!({"text": ""})),
        ("t", json!({"text": "héllo wörld ✓ 🦀"})),
        ("b", json!({"blob": []})),
        ("b", json!({"blob": big})),
        ("f", json!({"bool": true})),
        ("f", json!({"bool": false})),
        ("t", json!({"text": "'; DROP TABLE v; --"})),
        ("t", json!({"text": "$1 \" OR 1=1 -- \\x00"})),
        ("b", json!({"blob": b"'; DROP TABLE v; --".to_vec()})),
    ];
    for (i, (column, v)) in values.iter().enumerate() {
        ok(
            &s,
            "exec",
            "main",
            &format!("INSERT INTO v (k, {column}) VALUES ($1, $2)"),
            json!([{"int": i}, v]),
        )
        .await;
        let got = ok(
            &s,
            "query",
            "main",
            &format!("SELECT {column} FROM v WHERE k = $1"),
            json!([{"int": i}]),
        )
        .await;
        assert_eq!(got["rows"][0][0], *v, "value {i} in `{column}`");
    }
    // Text cannot hold NUL in Postgres: a clear error, not a trap.
    let e = err(
        &s,
        "exec",
        "main",
        "INSERT INTO v (k, t) VALUES (999, $1)",
        json!([{"text": "a\u{0}b"}]),
    )
    .await;
    assert_eq!(e["kind"], "other", "{e}");
    let n = ok(
        &s,
        "query",
        "main",
        "SELECT count(*) AS n FROM v",
        json!([]),
    )
    .await;
    assert_eq!(n["columns"], json!(["n"]));
    assert_eq!(n["rows"][0][0], json!({"int": values.len()}));

    // The documented mapping of the other types (docs/wit.md).
    let r = ok(
        &s,
        "query",
        "main",
        "SELECT 12345678901234567890.123456789::numeric, \
         '2026-12-02 13:14:15.5+02'::timestamptz, '2026-12-02'::date, \
         '{\"a\": [1, null]}'::jsonb, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, \
         ARRAY[1, NULL, 3]::int4[], ARRAY['x', 'y z', NULL]::text[], ARRAY[true]::bool[], \
         2::int2, 3::int4, 1.25::float4, 'x'::varchar",
        json!([]),
    )
    .await;
    let row = &r["rows"][0];
    assert_eq!(row[0], json!({"text": "12345678901234567890.123456789"}));
    assert_eq!(row[1], json!({"text": "2026-12-02 11:14:15.5+00"}));
    assert_eq!(row[2], json!({"text": "2026-12-02"}));
    assert_eq!(row[3], json!({"text": "{\"a\": [1, null]}"}));
    assert_eq!(
        row[4],
        json!({"text": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"})
    );
    assert_eq!(row[5], json!({"text": "[1,null,3]"}));
    assert_eq!(row[6], json!({"text": "[\"x\",\"y z\",null]"}));
    assert_eq!(row[7], json!({"text": "[true]"}));
    assert_eq!(row[8], json!({"int": 2}));
    assert_eq!(row[9], json!({"int": 3}));
    assert_eq!(row[10], json!({"real": "1.25"}));
    assert_eq!(row[11], json!({"text": "x"}));
    // Text parameters take the type the statement gives them.
    let r = ok(
        &s,
        "query",
        "main",
        "SELECT $1::timestamptz + interval '1 day', $2::jsonb -> 'k', $3::numeric * 2",
        json!([{"text": "2026-01-01T00:00:00Z"}, {"text": "{\"k\": 5}"}, {"text": "0.1"}]),
    )
    .await;
    assert_eq!(
        r["rows"][0],
        json!([{"text": "2026-01-02 00:00:00+00"}, {"text": "5"}, {"text": "0.2"}])
    );

    // The SDK's typed helpers work the same on Postgres.
    let r = json(&s.get("/todos/add?title=first&note=n").await);
    assert_eq!(r["id"], Json::Null, "Postgres has no last insert id");
    let todos = json(&s.get("/todos").await);
    assert_eq!(todos[0]["title"], "first");
    assert_eq!(todos[0]["note"], "n");
}

#[tokio::test]
async fn postgres_errors_caps_and_deadlines() {
    let pg = PgServer::start().await;
    let s = pg_app(&pg, "").await;
    ok(
        &s,
        "exec",
        "main",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL CONSTRAINT users_email_key UNIQUE, age INTEGER CONSTRAINT age_positive CHECK (age >= 0))",
        json!([]),
    )
    .await;
    ok(
        &s,
        "exec",
        "main",
        "CREATE TABLE posts (id SERIAL PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id))",
        json!([]),
    )
    .await;
    let out = ok(
        &s,
        "exec",
        "main",
        "INSERT INTO users (id, email) VALUES (1, 'a@example.com')",
        json!([]),
    )
    .await;
    assert_eq!(out, json!({"rows_affected": 1, "last_insert_id": null}));
    let cases = [
        (
            "INSERT INTO users (id, email) VALUES (2, 'a@example.com')",
            "unique",
            "users_email_key",
        ),
        (
            "INSERT INTO users (id, email) VALUES (1, 'b@example.com')",
            "primary-key",
            "users_pkey",
        ),
        (
            "INSERT INTO users (id, email) VALUES (3, NULL)",
            "not-null",
            "",
        ),
        (
            "INSERT INTO users (id, email, age) VALUES (4, 'c@example.com', -1)",
            "check",
            "age_positive",
        ),
        (
            "INSERT INTO posts (user_id) VALUES (42)",
            "foreign-key",
            "posts_user_id_fkey",
        ),
    ];
    for (statement, kind, constraint) in cases {
        let e = err(&s, "exec", "main", statement, json!([])).await;
        assert_eq!(e["kind"], "constraint", "{statement}: {e}");
        assert_eq!(e["constraint_kind"], kind, "{statement}: {e}");
        if !constraint.is_empty() {
            assert_eq!(e["constraint"], constraint, "{statement}: {e}");
        }
    }
    let e = err(&s, "query", "main", "SELECT * FROM nope", json!([])).await;
    assert_eq!(e, json!({"kind": "no-such-table", "detail": "nope"}));
    let e = err(&s, "query", "main", "SELECT nope FROM users", json!([])).await;
    assert_eq!(e, json!({"kind": "no-such-column", "detail": "nope"}));
    let e = err(&s, "query", "main", "SELEKT 1", json!([])).await;
    assert_eq!(e["kind"], "syntax");
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
    assert_eq!(
        n["rows"][0][0],
        json!({"int": 1}),
        "nothing of the stacked statements ran"
    );
    let e = err(
        &s,
        "query",
        "main",
        "SELECT $1::int, $2::int",
        json!([{"int": 1}]),
    )
    .await;
    assert_eq!(e["kind"], "other", "{e}");
    let e = err(
        &s,
        "query",
        "main",
        "SELECT $1::int",
        json!([{"text": "x"}]),
    )
    .await;
    assert_eq!(e["kind"], "other", "{e}");
    assert!(e["detail"].as_str().unwrap().contains("22P02"), "{e}");

    // max_rows = 100: the server stops at 101 rows and the call is refused.
    let r = ok(
        &s,
        "query",
        "main",
        "SELECT * FROM generate_series(1, 100)",
        json!([]),
    )
    .await;
    assert_eq!(r["rows"].as_array().unwrap().len(), 100);
    let e = err(
        &s,
        "query",
        "main",
        "SELECT * FROM generate_series(1, 1000000)",
        json!([]),
    )
    .await;
    assert_eq!(e, json!({"kind": "too-many-rows", "detail": 100}));
    // max_bytes = 64KiB: one large value, or many rows that add up.
    let e = err(&s, "query", "main", "SELECT repeat('x', 70000)", json!([])).await;
    assert_eq!(e, json!({"kind": "too-large", "detail": 65536}));
    let e = err(
        &s,
        "query",
        "main",
        "SELECT repeat('x', 1000) FROM generate_series(1, 90)",
        json!([]),
    )
    .await;
    assert_eq!(e, json!({"kind": "too-large", "detail": 65536}));
    // A NUL in the statement text is a syntax error, not a lost connection.
    let e = err(&s, "query", "main", "SELECT 1 -- \u{0}", json!([])).await;
    assert_eq!(e["kind"], "syntax", "{e}");
    // The connection is still good after each refusal.
    let r = ok(&s, "query", "main", "SELECT 1::int8", json!([])).await;
    assert_eq!(r["rows"][0][0], json!({"int": 1}));
    // timeout = 500ms: the server cancels the statement (statement_timeout), the connection
    // stays usable.
    let started = std::time::Instant::now();
    let e = err(&s, "query", "main", "SELECT pg_sleep(5)", json!([])).await;
    assert_eq!(e, json!({"kind": "timeout"}));
    assert!(started.elapsed() < Duration::from_secs(3));
    let r = ok(&s, "query", "main", "SELECT 2::int8", json!([])).await;
    assert_eq!(r["rows"][0][0], json!({"int": 2}));
}

#[tokio::test]
async fn postgres_transactions_and_connections_go_back_clean() {
    let pg = PgServer::start().await;
    let s = pg_app(&pg, "pool = 1\n").await;
    let count = || async {
        let r = ok(&s, "query", "main", "SELECT count(*) FROM todos", json!([])).await;
        r["rows"][0][0]["int"].as_i64().unwrap()
    };
    let settle = |want: i64| {
        let count = &count;
        async move {
            let mut n = count().await;
            for _ in 0..50 {
                if n == want {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                n = count().await;
            }
            n
        }
    };
    assert_eq!(json(&s.get("/tx?how=commit&title=a").await)["inside"], 1);
    assert_eq!(count().await, 1);
    for how in ["rollback", "drop", "open"] {
        let r = json(&s.get(&format!("/tx?how={how}&title={how}")).await);
        assert_eq!(r["inside"], 2, "{how}");
        assert_eq!(settle(1).await, 1, "{how}: rolled back");
    }
    assert_eq!(s.get("/tx?how=trap&title=t").await.status, 500);
    assert_eq!(settle(1).await, 1, "trap: rolled back");

    // With one connection, every request below gets the same one: what one request changed
    // in the session is gone for the next.
    ok(&s, "exec", "main", "SET search_path TO nowhere", json!([])).await;
    ok(&s, "exec", "main", "SET statement_timeout = 0", json!([])).await;
    ok(
        &s,
        "exec",
        "main",
        "CREATE TEMP TABLE leftover (x int)",
        json!([]),
    )
    .await;
    ok(&s, "exec", "main", "PREPARE mine AS SELECT 1", json!([])).await;
    ok(
        &s,
        "query",
        "main",
        "SELECT pg_advisory_lock(42)",
        json!([]),
    )
    .await;
    ok(&s, "exec", "main", "BEGIN", json!([])).await;
    let r = ok(&s, "query", "main", "SHOW search_path", json!([])).await;
    assert_eq!(r["rows"][0][0], json!({"text": "\"$user\", public"}));
    let r = ok(&s, "query", "main", "SHOW statement_timeout", json!([])).await;
    assert_eq!(r["rows"][0][0], json!({"text": "500ms"}));
    let e = err(&s, "query", "main", "SELECT * FROM leftover", json!([])).await;
    assert_eq!(e["kind"], "no-such-table", "{e}");
    let e = err(&s, "exec", "main", "EXECUTE mine", json!([])).await;
    assert_eq!(e["kind"], "other", "{e}");
    let r = ok(
        &s,
        "query",
        "main",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
        json!([]),
    )
    .await;
    assert_eq!(r["rows"][0][0], json!({"int": 0}));
    // A BEGIN sent as a plain statement is rolled back before its request ends: seen from
    // outside, no session of the app is left in a transaction.
    ok(&s, "exec", "main", "BEGIN", json!([])).await;
    ok(&s, "exec", "main", "BEGIN", json!([])).await;
    let idle_in_transaction = pg.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'flagon' AND state LIKE 'idle in transaction%'",
    );
    assert_eq!(idle_in_transaction, "0");
    // The adapter's own prepared statements survive the reset (and DEALLOCATE by a handler).
    ok(&s, "exec", "main", "DEALLOCATE ALL", json!([])).await;
    assert_eq!(count().await, 1);
    assert_eq!(json(&s.get("/tx?how=commit&title=b").await)["inside"], 2);
    assert_eq!(count().await, 2);
}

#[tokio::test]
async fn postgres_concurrent_writers_and_a_server_restart() {
    let mut pg = PgServer::start().await;
    let s = pg_app(&pg, "pool = 4\n").await;
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
                assert_eq!(s.get("/todos/add?title=c").await.status, 200);
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

    // The server goes away: calls fail at once with `connection-lost` (a 503 through the
    // SDK), and the host carries on.
    pg.stop();
    for _ in 0..3 {
        let e = err(&s, "query", "main", "SELECT 1", json!([])).await;
        assert_eq!(e["kind"], "connection-lost", "{e}");
        assert_eq!(s.get("/todos").await.status, 503);
    }
    // It comes back on the same port: the pool connects again, and nothing was lost.
    pg.run().await;
    let r = ok(&s, "query", "main", "SELECT n FROM counter", json!([])).await;
    assert_eq!(r["rows"][0][0], json!({"int": 200}));
    // A restart while connections sit idle in the pool: the adapter sees the server's
    // goodbye before its statement was read and sends it again on a new connection.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            raw(&s, "query", "main", "SELECT pg_sleep(0.05)", json!([])).await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    pg.stop();
    pg.run().await;
    for i in 0..8 {
        let r = raw(&s, "query", "main", "SELECT n FROM counter", json!([])).await;
        assert_eq!(
            r["ok"]["rows"][0][0],
            json!({"int": 200}),
            "call {i} after the restart: {r}"
        );
    }
}

#[tokio::test]
async fn postgres_tls_is_verified() {
    let pg = PgServer::start_with(true).await;
    // Verified against the test's CA, by name.
    let section = pg
        .section(&format!("ca_file = {:?}\n", pg.ca().display().to_string()))
        .replace("tls = \"off\"", "tls = \"verify\"")
        .replace("host = \"127.0.0.1\"", "host = \"localhost\"");
    let m = TestManifest::new(&manifest(&section, "sql = [\"main\"]"));
    let s = TestServer::serve(m, LoadOptions::default()).await;
    let r = ok(
        &s,
        "query",
        "main",
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        json!([]),
    )
    .await;
    assert_eq!(r["rows"][0][0], json!({"bool": true}));
    drop(s);

    // The default roots do not know the test's CA: the start stops, naming the database.
    let section = pg
        .section("")
        .replace("tls = \"off\"", "tls = \"verify\"")
        .replace("host = \"127.0.0.1\"", "host = \"localhost\"");
    let m = TestManifest::new(&manifest(&section, "sql = [\"main\"]"));
    let e = format!(
        "{:#}",
        m.load().await.err().expect("an unknown CA is refused")
    );
    assert!(e.contains("[databases.main]"), "{e}");
    assert!(e.contains("TLS") || e.contains("certificate"), "{e}");
    assert!(!e.contains(PASSWORD), "{e}");

    // Plain TCP is only for loopback.
    let section = pg
        .section("")
        .replace("host = \"127.0.0.1\"", "host = \"192.0.2.1\"");
    let m = TestManifest::new(&manifest(&section, "sql = [\"main\"]"));
    let e = format!(
        "{:#}",
        m.load()
            .await
            .err()
            .expect("plain TCP off loopback is refused")
    );
    assert!(e.contains("databases.main.tls"), "{e}");
    assert!(e.contains("tls = \"verify\""), "{e}");
}

#[tokio::test]
async fn a_wrong_password_stops_the_start_without_showing_it() {
    let pg = PgServer::start().await;
    let section = pg.section("").replace(PASSWORD, "not-the-password");
    let m = TestManifest::new(&manifest(&section, "sql = [\"main\"]"));
    let e = format!(
        "{:#}",
        m.load().await.err().expect("a wrong password is refused")
    );
    assert!(e.contains("[databases.main]"), "{e}");
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains("not-the-password"), "{e}");
}

/// An adapter with a `host` may connect to that server's address and to nothing else: the
/// host's socket check refuses every other address (and handlers get no sockets at all:
/// `grants::a_component_importing_sockets_is_refused` and the like).
#[tokio::test]
async fn an_adapter_reaches_its_server_and_nothing_else() {
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = allowed.local_addr().unwrap().port();
    let dial = |extra: String| {
        format!(
            "[databases.main]\nadapter = \"sqlite\"\n\n[databases.dial]\nadapter = {}\n{extra}",
            program(programs::DIAL_ADAPTER)
        )
    };
    let with_host = |to: u16| {
        dial(format!(
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"off\"\nsettings = {{ dial = \"127.0.0.1:{to}\" }}\n"
        ))
    };
    let grants = "sql = [\"main\", \"dial\"]";
    let m = TestManifest::new(&manifest(&with_host(port), grants));
    m.load().await.expect("the adapter may dial its own server");
    let m = TestManifest::new(&manifest(
        &with_host(other.local_addr().unwrap().port()),
        grants,
    ));
    let e = format!(
        "{:#}",
        m.load().await.err().expect("another address is refused")
    );
    assert!(
        e.contains("[databases.dial]") && e.contains("refused"),
        "{e}"
    );
    // Without `host`, an adapter that imports sockets is not given them.
    let m = TestManifest::new(&manifest(
        &dial(format!("settings = {{ dial = \"127.0.0.1:{port}\" }}\n")),
        grants,
    ));
    let e = format!(
        "{:#}",
        m.load().await.err().expect("no sockets without host")
    );
    assert!(e.contains("wasi:sockets"), "{e}");
}

#[tokio::test]
async fn postgres_migrations_apply_at_start() {
    let pg = PgServer::start().await;
    let files = [
        (
            "migrations/0001_create.sql",
            // A migration may run longer than a request's statement (timeout = 500ms).
            "SELECT pg_sleep(0.8);\nCREATE TABLE notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL);\nCREATE INDEX notes_body ON notes (body);\n",
        ),
        (
            "migrations/0002_seed.sql",
            "INSERT INTO notes (body) VALUES ('seeded');\n",
        ),
    ];
    let text = manifest(
        &pg.section("migrations = \"migrations\"\n"),
        "sql = [\"main\"]",
    );
    let m = TestManifest::with_files(&text, &files);
    let s = TestServer::serve(m, LoadOptions::default()).await;
    let r = ok(&s, "query", "main", "SELECT body FROM notes", json!([])).await;
    assert_eq!(r["rows"], json!([[{"text": "seeded"}]]));
    let r = ok(
        &s,
        "query",
        "main",
        "SELECT version, name FROM _flagon_migrations ORDER BY version",
        json!([]),
    )
    .await;
    assert_eq!(
        r["rows"],
        json!([[{"int": 1}, {"text": "0001_create.sql"}], [{"int": 2}, {"text": "0002_seed.sql"}]])
    );
}

/// Hosts that start together on one database apply each migration once: the first takes the
/// advisory lock, the others wait for it and then find nothing pending. Without the lock the
/// later ones would fail on `CREATE TABLE` or on the row in `_flagon_migrations`.
#[tokio::test]
async fn hosts_starting_together_apply_migrations_once() {
    let pg = PgServer::start().await;
    let files = [
        (
            "migrations/0001_create.sql",
            // Long enough that all three loads reach their migrations while it runs.
            "SELECT pg_sleep(0.5);\nCREATE TABLE notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL);\n",
        ),
        (
            "migrations/0002_seed.sql",
            "INSERT INTO notes (body) VALUES ('seeded');\n",
        ),
    ];
    let text = manifest(
        &pg.section("migrations = \"migrations\"\n"),
        "sql = [\"main\"]",
    );
    let hosts: Vec<TestManifest> = (0..3)
        .map(|_| TestManifest::with_files(&text, &files))
        .collect();
    let (a, b, c) = tokio::join!(hosts[0].load(), hosts[1].load(), hosts[2].load());
    for app in [a, b, c] {
        app.expect("every host starts");
    }
    assert_eq!(pg.psql("SELECT count(*) FROM _flagon_migrations"), "2");
    assert_eq!(pg.psql("SELECT count(*) FROM notes"), "1");
    // The lock was given back: a fourth host takes it and starts at once.
    TestManifest::with_files(&text, &files)
        .load()
        .await
        .expect("a later host starts");
    assert_eq!(pg.psql("SELECT count(*) FROM notes"), "1");
}

/// Each mistake in a Postgres section stops the load and names the key to fix.
#[tokio::test]
async fn postgres_manifest_mistakes_name_the_key() {
    let pg = "[databases.main]\nadapter = \"postgres\"\n";
    let vars = "[variables]\npw = { default = \"x\", secret = true }\n";
    for (section, key) in [
        (format!("{pg}user = \"a\"\n"), "databases.main.host"),
        (format!("{pg}host = \"127.0.0.1\"\n"), "databases.main.user"),
        (
            format!("{pg}host = \"a b\"\nuser = \"a\"\n"),
            "databases.main.host",
        ),
        (
            format!("{pg}host = \"h\"\nuser = \"a\"\ntls = \"maybe\"\n"),
            "tls",
        ),
        (
            format!("{pg}host = \"h\"\nuser = \"a\"\ntls = \"off\"\nca_file = \"flagon.toml\"\n"),
            "databases.main.ca_file",
        ),
        (
            format!("{pg}host = \"h\"\nuser = \"a\"\nca_file = \"nope.pem\"\n"),
            "databases.main.ca_file",
        ),
        (
            format!("{pg}host = \"h\"\nuser = \"a\"\nsettings = {{ sslmode = \"x\" }}\n"),
            "databases.main.settings.sslmode",
        ),
        (
            format!("{pg}host = \"h\"\nuser = \"a\"\nsecrets = {{ token = \"pw\" }}\n{vars}"),
            "databases.main.secrets.token",
        ),
        (
            format!("{pg}host = \"h\"\nuser = \"a\"\npath = \"x.db\"\n"),
            "databases.main.path",
        ),
        (
            "[databases.main]\nadapter = \"sqlite\"\nhost = \"127.0.0.1\"\n".to_string(),
            "databases.main.host",
        ),
        (
            "[databases.main]\nadapter = \"sqlite\"\nuser = \"a\"\n".to_string(),
            "databases.main.user",
        ),
    ] {
        let m = TestManifest::new(&manifest(&section, "sql = [\"main\"]"));
        let e = format!("{:#}", m.load().await.err().expect("must refuse"));
        assert!(e.contains(key), "{section}: {e}");
    }
    let component = format!(
        "[databases.main]\nadapter = {}\nhost = \"127.0.0.1\"\n",
        program(programs::DIAL_ADAPTER)
    );
    let m = TestManifest::new(&manifest(&component, "sql = [\"main\"]"));
    let e = format!("{:#}", m.load().await.err().expect("host without port"));
    assert!(e.contains("databases.main.port"), "{e}");
    let m = TestManifest::new(&manifest(
        &format!("{component}port = 5432\nsettings = {{ address = \"10.0.0.1:5432\" }}\n"),
        "sql = [\"main\"]",
    ));
    let e = format!("{:#}", m.load().await.err().expect("host-made settings"));
    assert!(e.contains("databases.main.settings.address"), "{e}");
}
