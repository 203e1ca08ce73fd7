//! The admin listener of `flagon serve`: `/healthz`, `/readyz` (databases, Redis, draining) and
//! `/metrics`, scraped during and after a load over real HTTP, on the real binary.

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Run `cmd` to its end with its output captured; past `limit` it is killed and the test fails,
/// so a regression that makes a command serve instead of failing cannot hang the run.
fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    }
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr.join().unwrap();
            panic!(
                "{cmd:?} still running after {limit:?}, killed; stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// How long any child process or request of these tests may take before the test fails:
/// far past what they need, even on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// Wait for `server` to exit (after a signal), failing the test (and killing it, on drop) if it
/// has not within [`PATIENCE`].
async fn exit_of(mut server: BinServer) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + PATIENCE;
    while server.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "flagon serve did not exit within {PATIENCE:?}; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Exited: this returns at once, with the log read to the end.
    tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
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
    // HEAD, as load balancers probe: the GET answer without its body.
    for (path, len) in [("/healthz", "3"), ("/readyz", "6")] {
        let r = send(admin, Req::new("HEAD", path)).await;
        assert_eq!(
            (r.status, r.header("content-length"), r.body.len()),
            (200, Some(len), 0),
            "HEAD {path}"
        );
    }
    // Only the three paths, only GET and HEAD; the app's routes are not on the admin listener.
    assert_eq!(send(admin, Req::new("GET", "/kv")).await.status, 404);
    let r = send(admin, Req::new("POST", "/metrics")).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
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
    // The spinning guest burnt CPU: some of its second, however little a loaded machine gave
    // it (only CPU time counts, not the wait for a core).
    let spun = series("flagon_guest_cpu_seconds_total{component=\"hostile\"}");
    assert!(spun > 0.0, "{spun}");
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
    // A request busy for `SLOW` of wall-clock time (under a timeout well past it), so it is
    // still running at every check below with seconds to spare on a loaded machine: the checks
    // take well under `SLOW - MARGIN` together, or the test fails saying so.
    const SLOW: Duration = Duration::from_secs(12);
    const MARGIN: Duration = Duration::from_secs(5);
    let text = app_manifest("").replace(
        "[components.hello]\n",
        "[components.hello]\nlimits = { timeout = \"60s\" }\n",
    );
    let (server, admin) = serve_with_admin(TestManifest::new(&text)).await;
    let slow = tokio::spawn(send(
        server.addr,
        Req::new("GET", &format!("/slow?ms={}", SLOW.as_millis())),
    ));
    assert!(
        server
            .wait_for_log("slow request started", Duration::from_secs(30))
            .await,
        "{}",
        server.log()
    );
    let started = Instant::now();
    assert_eq!(send(admin, Req::new("GET", "/readyz")).await.status, 200);
    let pid = server.child.id().to_string();
    let kill = output_within(Command::new("kill").args(["-TERM", &pid]), PATIENCE);
    assert!(kill.status.success(), "{kill:?}");
    // Draining begins at the signal; the slow request is still running meanwhile.
    let readyz = loop {
        let r = send(admin, Req::new("GET", "/readyz")).await;
        if r.status == 503 {
            break r;
        }
        assert!(
            started.elapsed() < SLOW - MARGIN,
            "/readyz not 503 {:?} after SIGTERM",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(readyz.text(), "draining\n");
    assert_eq!(send(admin, Req::new("GET", "/healthz")).await.status, 200);
    assert_eq!(send(admin, Req::new("HEAD", "/readyz")).await.status, 503);
    let checked = started.elapsed();
    assert!(
        checked < SLOW - MARGIN,
        "the checks took {checked:?}, too close to the request's {SLOW:?} to tell"
    );
    assert!(!slow.is_finished(), "the request ended before the checks");
    let r = tokio::time::timeout(PATIENCE, slow)
        .await
        .expect("the slow request never ended")
        .unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "done"));
    let (status, log) = exit_of(server).await;
    assert!(status.success(), "{status:?}\n{log}");
}

#[test]
fn the_admin_listener_never_shares_the_public_port() {
    let flagon = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flagon"));
        cmd.env("FLAGON_CACHE_DIR", cache_dir())
            .env_remove("FLAGON_ADMIN_LISTEN");
        cmd
    };

    // In the manifest, the clash is a manifest error naming the key, for `check` and for
    // `serve`, found before anything is bound: shown on a port this test holds, where a bind
    // would fail for another reason.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let text = app_manifest(&format!("listen = \"127.0.0.1:{port}\""))
        + &format!("\n[admin]\nlisten = \"0.0.0.0:{port}\"\n");
    let m = TestManifest::new(&text);
    for command in ["check", "serve"] {
        let out = output_within(flagon().args([command, m.path.to_str().unwrap()]), PATIENCE);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command}: {err}");
        assert!(
            err.contains("flagon.toml") && err.contains("admin.listen") && err.contains("help:"),
            "{command}: {err}"
        );
        assert!(!err.contains("cannot listen"), "{command}: {err}");
    }
    drop(held);

    // On the command line (`--listen` and `FLAGON_ADMIN_LISTEN`), refused naming the address.
    // `serve` may bind the public address before it compares the two, so this takes a free
    // port; one another process takes meanwhile fails that bind instead, and another port is
    // tried.
    let m = TestManifest::new(&app_manifest(""));
    let mut tries = 0;
    let (addr, err) = loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let out = output_within(
            flagon()
                .args(["serve", m.path.to_str().unwrap(), "--listen", &addr])
                .env("FLAGON_ADMIN_LISTEN", &addr),
            PATIENCE,
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{err}");
        tries += 1;
        if tries < 5
            && err.contains(&format!("cannot listen on {addr}"))
            && !err.contains("admin address")
        {
            continue;
        }
        break (addr, err);
    };
    assert!(
        err.contains("admin address") && err.contains(&addr) && err.contains("help:"),
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
