//! The admin listener of `flagon serve`: `/healthz`, `/readyz` (databases, Redis, draining) and
//! `/metrics`, scraped during and after a load over real HTTP, on the real binary.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use flagon::LoadOptions;
use serde_json::json;

use crate::app_manifest;
use crate::harness::{BinServer, Reply, Req, TestManifest, TestServer, cache_dir, program, send};
use crate::programs;
use crate::web::{Redis, web_files, web_manifest};

/// The `web` app (its `counter` store on `redis`), with `hostile` on `/h/{name}` and `db` on a
/// SQLite database.
fn app(redis: &Redis) -> String {
    let web = web_manifest("", "")
        .replace(
            "[kv.counter]\n",
            "[kv.counter]\nbackend = \"redis\"\nurl = \"redis_url\"\n",
        )
        .replace(
            "[variables]\n",
            &format!(
                "[variables]\nredis_url = {{ default = \"redis://127.0.0.1:{}/\", secret = true }}\n",
                redis.port
            ),
        );
    format!(
        r#"{web}
[components.hostile]
source = {hostile}
limits = {{ memory = "32MiB", timeout = "1s" }}

[components.db]
source = {db}
grants = {{ sql = ["main"] }}

[databases.main]
adapter = "sqlite"

[[routes]]
path = "/h/{{name}}"
component = "hostile"

[[routes]]
path = "/raw/query"
methods = ["POST"]
component = "db"
name = "raw-query"
"#,
        hostile = program(programs::HOSTILE),
        db = program(programs::DB),
    )
}

/// `flagon serve` with `--admin-listen 127.0.0.1:0`, and the admin address it logged.
async fn serve_with_admin(manifest: TestManifest) -> (BinServer, SocketAddr) {
    let path = manifest.path.clone();
    let server = BinServer::spawn_with_args(
        &path,
        &["--admin-listen", "127.0.0.1:0"],
        &[],
        Some(manifest),
    )
    .await;
    assert!(
        server
            .wait_for_log("admin listening on http://", Duration::from_secs(10))
            .await,
        "{}",
        server.log()
    );
    let log = server.log();
    let addr = log
        .split("admin listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    (server, addr)
}

/// The value of the series `series` (name and labels, as the text format writes them).
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series `{series}` in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

async fn scrape(admin: SocketAddr) -> String {
    let r = send(admin, Req::new("GET", "/metrics")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.text()
}

fn query(sql: &str) -> Req {
    Req::new("POST", "/raw/query")
        .header("content-type", "application/json")
        .body(json!({"db": "main", "sql": sql, "p": []}).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_load_by_route_and_readiness_follows_redis() {
    let redis = Redis::start().await;
    let manifest = TestManifest::with_files(&app(&redis), &web_files());
    let (server, admin) = serve_with_admin(manifest).await;
    let public = server.addr;

    let r = send(admin, Req::new("GET", "/healthz")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = send(admin, Req::new("GET", "/readyz")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    // Only the three paths, only GET; the app's routes are not on the admin listener.
    assert_eq!(send(admin, Req::new("GET", "/kv")).await.status, 404);
    let r = send(admin, Req::new("POST", "/metrics")).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    // Nor is the admin listener's on the public one.
    assert_eq!(send(public, Req::new("GET", "/metrics")).await.status, 404);
    let before = scrape(admin).await;
    assert_eq!(
        value(
            &before,
            "flagon_http_requests_total{route=\"<none>\",method=\"GET\",status=\"404\"}"
        ),
        1.0
    );

    // A timeout first, so it is over before the counts are read.
    let spin = tokio::spawn(send(public, Req::new("GET", "/h/spin")));

    // The load: each of these `ROUNDS` times, from four clients at once.
    const ROUNDS: usize = 40;
    type Kind = (&'static str, fn() -> Req, u16);
    const KINDS: [Kind; 7] = [
        ("kv", || Req::new("GET", "/kv?v=x"), 200),
        ("ok", || Req::new("GET", "/h/ok"), 200),
        ("panic", || Req::new("GET", "/h/panic"), 500),
        ("missing", || Req::new("GET", "/nope"), 404),
        ("static", || Req::new("GET", "/static/app.css"), 200),
        ("sql", || query("SELECT 1 AS one"), 200),
        ("put", || Req::new("PUT", "/h/ok"), 405),
    ];
    let mut load = tokio::task::JoinSet::new();
    for client in 0..4 {
        load.spawn(async move {
            for round in 0..ROUNDS / 4 {
                for (name, req, status) in KINDS {
                    let r: Reply = send(public, req()).await;
                    assert_eq!(r.status, status, "{name} {client}/{round}: {}", r.text());
                }
            }
        });
    }
    // Scraped while the load runs: the series are there and moving.
    let mut during = Vec::new();
    while !load.is_empty() {
        tokio::select! {
            done = load.join_next() => done.unwrap().unwrap(),
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                during.push(scrape(admin).await);
            }
        }
    }
    assert!(!during.is_empty(), "the load ended before a scrape");
    let seen = |m: &str| {
        m.lines()
            .find_map(|l| {
                l.strip_prefix(
                    "flagon_http_requests_total{route=\"kv\",method=\"GET\",status=\"200\"} ",
                )
            })
            .map_or(0.0, |v| v.parse::<f64>().unwrap())
    };
    let mid: Vec<f64> = during.iter().map(|m| seen(m)).collect();
    assert!(mid.windows(2).all(|w| w[0] <= w[1]), "{mid:?}");
    let r = spin.await.unwrap();
    assert_eq!(r.status, 504, "{}", r.text());

    let after = scrape(admin).await;
    let n = ROUNDS as f64;
    let series = |s: &str| value(&after, s);
    assert!(mid.iter().all(|&v| v <= n), "{mid:?} past the final count");
    for (s, want) in [
        (
            "flagon_http_requests_total{route=\"kv\",method=\"GET\",status=\"200\"}",
            n,
        ),
        (
            "flagon_http_requests_total{route=\"/h/{name}\",method=\"GET\",status=\"200\"}",
            n,
        ),
        (
            "flagon_http_requests_total{route=\"/h/{name}\",method=\"GET\",status=\"500\"}",
            n,
        ),
        (
            "flagon_http_requests_total{route=\"/h/{name}\",method=\"GET\",status=\"504\"}",
            1.0,
        ),
        // One before the load.
        (
            "flagon_http_requests_total{route=\"<none>\",method=\"GET\",status=\"404\"}",
            n + 1.0,
        ),
        // 405 is the router's answer: no route matched the method.
        (
            "flagon_http_requests_total{route=\"<none>\",method=\"PUT\",status=\"405\"}",
            n,
        ),
        (
            "flagon_http_requests_total{route=\"<static>\",method=\"GET\",status=\"200\"}",
            n,
        ),
        (
            "flagon_http_requests_total{route=\"raw-query\",method=\"POST\",status=\"200\"}",
            n,
        ),
        (
            "flagon_http_request_duration_seconds_count{route=\"kv\",method=\"GET\"}",
            n,
        ),
        // Every /h/ request made an instance: ok, panic, spin.
        (
            "flagon_instances_created_total{component=\"hostile\"}",
            2.0 * n + 1.0,
        ),
        ("flagon_guest_traps_total{component=\"hostile\"}", n),
        ("flagon_guest_timeouts_total{component=\"hostile\"}", 1.0),
        ("flagon_guest_traps_total{component=\"web\"}", 0.0),
        ("flagon_overloaded_total{component=\"web\"}", 0.0),
        ("flagon_guest_memory_peak_bytes_count{component=\"web\"}", n),
        // `/kv` increments, sets, gets and lists its store (the readiness PINGs are not
        // calls).
        (
            "flagon_kv_calls_total{store=\"counter\",op=\"increment\"}",
            n,
        ),
        ("flagon_kv_calls_total{store=\"counter\",op=\"set\"}", n),
        ("flagon_kv_calls_total{store=\"counter\",op=\"get\"}", n),
        (
            "flagon_kv_calls_total{store=\"counter\",op=\"list-keys\"}",
            n,
        ),
        ("flagon_kv_errors_total{store=\"counter\"}", 0.0),
        (
            "flagon_kv_call_duration_seconds_count{store=\"counter\"}",
            4.0 * n,
        ),
        // The readiness checks' `SELECT 1` is not counted either.
        ("flagon_sql_calls_total{database=\"main\",op=\"query\"}", n),
        ("flagon_sql_errors_total{database=\"main\"}", 0.0),
        (
            "flagon_sql_call_duration_seconds_count{database=\"main\"}",
            n,
        ),
        ("flagon_sql_pool_in_use{database=\"main\"}", 0.0),
    ] {
        assert_eq!(series(s), want, "{s}");
    }
    assert!(series("flagon_guest_cpu_seconds_total{component=\"web\"}") > 0.0);
    // The spinning guest burnt much of its second of CPU (less on a busy machine: only CPU
    // time counts, not the wait for a core).
    let spun = series("flagon_guest_cpu_seconds_total{component=\"hostile\"}");
    assert!(spun > 0.1, "{spun}");
    assert!(series("flagon_guest_memory_peak_bytes_sum{component=\"web\"}") >= 65536.0 * n);
    assert!(series("flagon_sql_pool_size{database=\"main\"}") >= 1.0);
    assert!(series("flagon_instances_created_total{component=\"sql:main\"}") >= 1.0);
    // Nothing is in flight but the database's adapter instances, which are kept.
    let in_use = series("flagon_instances_in_use");
    assert!(
        (1.0..=series("flagon_sql_pool_size{database=\"main\"}")).contains(&in_use),
        "{in_use}"
    );
    assert!(series("flagon_app_loaded_timestamp_seconds") > 1.7e9);

    // OpenMetrics for a scraper that asks for it (Prometheus does).
    let r = send(
        admin,
        Req::new("GET", "/metrics").header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        ),
    )
    .await;
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(r.text().ends_with("# EOF\n"), "{}", r.text());

    // Redis goes away: not ready, naming the store and never the URL or its password.
    drop(redis);
    let r = send(admin, Req::new("GET", "/readyz")).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("kv store `counter`"), "{}", r.text());
    assert!(
        !r.text().contains("redis://") && !r.text().contains("127.0.0.1"),
        "{}",
        r.text()
    );
    // Alive all the same.
    assert_eq!(send(admin, Req::new("GET", "/healthz")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_draining_while_requests_finish_after_sigterm() {
    let (server, admin) = serve_with_admin(TestManifest::new(&app_manifest(""))).await;
    let slow = tokio::spawn(send(server.addr, Req::new("GET", "/slow?ms=1500")));
    assert!(
        server
            .wait_for_log("slow request started", Duration::from_secs(10))
            .await
    );
    assert_eq!(send(admin, Req::new("GET", "/readyz")).await.status, 200);
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Draining begins at the signal; the slow request is still running meanwhile.
    let mut readyz = None;
    for _ in 0..100 {
        let r = send(admin, Req::new("GET", "/readyz")).await;
        if r.status == 503 {
            readyz = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = readyz.expect("/readyz never turned 503 while draining");
    assert_eq!(r.text(), "draining\n");
    assert!(!slow.is_finished(), "the request ended before the check");
    assert_eq!(send(admin, Req::new("GET", "/healthz")).await.status, 200);
    let r = slow.await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "done"));
    let (status, log) = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}\n{log}");
}

#[test]
fn the_admin_listener_never_shares_the_public_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let m = TestManifest::new(&app_manifest(""));
    let addr = format!("127.0.0.1:{port}");
    let out = Command::new(env!("CARGO_BIN_EXE_flagon"))
        .args(["serve", m.path.to_str().unwrap(), "--listen", &addr])
        .env("FLAGON_ADMIN_LISTEN", &addr)
        .env("FLAGON_CACHE_DIR", cache_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("admin address") && err.contains(&addr) && err.contains("help:"),
        "{err}"
    );

    // In the manifest, the same mistake is a manifest error naming the key.
    let text =
        app_manifest("listen = \"127.0.0.1:8080\"") + "\n[admin]\nlisten = \"0.0.0.0:8080\"\n";
    let m = TestManifest::new(&text);
    let out = Command::new(env!("CARGO_BIN_EXE_flagon"))
        .args(["check", m.path.to_str().unwrap()])
        .env("FLAGON_CACHE_DIR", cache_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("flagon.toml") && err.contains("admin.listen") && err.contains("help:"),
        "{err}"
    );
}

/// A Postgres-backed app is ready while its server answers, and not once it is gone.
#[tokio::test]
async fn readiness_checks_a_postgres_database() {
    let mut pg = crate::postgres::PgServer::start().await;
    let m = TestManifest::new(&crate::sql::manifest(&pg.section(""), "sql = [\"main\"]"));
    let s = TestServer::serve(m, LoadOptions::default()).await;
    assert_eq!(s.app.readiness().await, Ok(()));
    pg.stop();
    let failures = s.app.readiness().await.unwrap_err();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].starts_with("database `main`: "), "{failures:?}");
    assert!(
        !failures[0].contains(crate::postgres::PASSWORD),
        "{failures:?}"
    );
}
