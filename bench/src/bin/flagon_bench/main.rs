//! The side-by-side benchmark suite. One command:
//!
//! ```sh
//! cargo run --release -p flagon-bench -- [--rounds 3] [--duration 10] [--scaling] [--soak 60]
//! ```
//!
//! It builds the native baselines, Flagon and the guest components, starts every server on
//! 127.0.0.1, and loads them with `wrk` in interleaved rounds (A B A B ...), reporting medians:
//! req/s, p50/p99 latency, server CPU per request and peak RSS, each against native hyper.
//! `wasmtime serve` joins when a `wasmtime` binary is on PATH. Everything targets loopback only,
//! and every run is bounded in time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod languages;

struct Options {
    rounds: usize,
    duration: u64,
    connections: u32,
    scaling: bool,
    soak: Option<u64>,
    out: Option<PathBuf>,
    /// Run only this section: `main` (the tables above the language rows) or `languages`.
    only: Option<String>,
}

fn parse_args() -> Options {
    let mut o = Options {
        rounds: 3,
        duration: 10,
        connections: 64,
        scaling: false,
        soak: None,
        out: None,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--rounds" => o.rounds = value().parse().unwrap_or_else(|_| usage("bad --rounds")),
            "--duration" => {
                o.duration = value().parse().unwrap_or_else(|_| usage("bad --duration"))
            }
            "--connections" => {
                o.connections = value()
                    .parse()
                    .unwrap_or_else(|_| usage("bad --connections"))
            }
            "--scaling" => o.scaling = true,
            "--soak" => o.soak = Some(value().parse().unwrap_or_else(|_| usage("bad --soak"))),
            "--out" => o.out = Some(PathBuf::from(value())),
            "--only" => match value().as_str() {
                v @ ("main" | "languages") => o.only = Some(v.to_string()),
                _ => usage("--only takes `main` or `languages`"),
            },
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    o
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("error: {msg}");
    }
    eprintln!(
        "usage: flagon-bench [--rounds N] [--duration SECS] [--connections N] [--scaling] [--soak SECS] [--only main|languages] [--out FILE]"
    );
    std::process::exit(2)
}

fn main() {
    let o = parse_args();
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        eprintln!("note: RUST_BACKTRACE is set; servers are started without it");
    }
    require("wrk", "install it with `apt-get install wrk`");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    build(&repo);
    let work = std::env::temp_dir().join(format!("flagon-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let bins = repo.join("target/release");
    let wasm = repo.join("bench/guests/target/wasm32-wasip2/release");
    let app = write_app(&work, &wasm);
    let cache = work.join("cache");

    let mut report = String::new();
    let _ = writeln!(report, "# Flagon benchmark report\n");
    let _ = writeln!(report, "{}\n", machine());
    let _ = writeln!(
        report,
        "wrk -t2 -c{} -d{}s, {} interleaved rounds, medians. Server CPU is user+system time of the server process divided by requests served.\n",
        o.connections, o.duration, o.rounds
    );

    if o.only.as_deref() == Some("languages") {
        let _ = writeln!(
            report,
            "{}",
            languages::section(&o, &repo, &bins, &work, &wasm)
        );
        finish(&o, &report, &work);
        return;
    }

    // Warm the compile cache so Flagon starts from precompiled components, as in production
    // (the database app too: compiling the SQLite adapter at start would show in its peak RSS).
    let db_app = write_db_app(&work.join("db"), &wasm);
    let plugin_dir = repo.join("plugins/target/wasm32-wasip2/release");
    let auth_app = write_auth_app(&work.join("auth"), &wasm, &plugin_dir, true, true);
    let jwt_app = write_auth_app(&work.join("jwt"), &wasm, &plugin_dir, true, false);
    let limit_app = write_auth_app(&work.join("limit"), &wasm, &plugin_dir, false, true);
    let bearer = format!("-H 'Authorization: Bearer {}'", bench_jwt());
    drop(Server::start(
        "warm auth",
        flagon_cmd(&bins, &auth_app, &cache),
    ));
    drop(Server::start("warm", flagon_cmd(&bins, &app, &cache)));
    drop(Server::start("warm db", flagon_cmd(&bins, &db_app, &cache)));

    let mut servers = vec![
        Server::start("hyper hello (native)", cmd(&bins.join("hyper-hello"))),
        Server::start(
            "Flagon hello (fresh instance/request)",
            flagon_cmd(&bins, &app, &cache),
        ),
        Server::start(
            "axum + minijinja page (native)",
            cmd(&bins.join("axum-page")),
        ),
        Server::start(
            "Flagon page (minijinja in guest)",
            flagon_cmd(&bins, &app, &cache),
        ),
        Server::start(
            "Flagon page (host templates)",
            flagon_cmd(&bins, &app, &cache),
        ),
        Server::start(
            "axum + rusqlite page (native)",
            cmd(&bins.join("axum-dbpage")),
        ),
        // Its own app directory: a SQLite database is opened by one process only.
        Server::start(
            "Flagon SQLite page (adapter + host templates)",
            flagon_cmd(&bins, &db_app, &cache),
        ),
        // No guest at all: a path without a route answered by the host (404 page, security
        // headers, request id). The gap between this row and hyper is the host's HTTP and web
        // layer; the gap between this row and "Flagon hello" is the Wasm instance.
        Server::start(
            "Flagon host only (404, no guest)",
            flagon_cmd(&bins, &app, &cache),
        ),
        // Hello behind two extensions: a bearer JWT checked by `plugins/auth-jwt` (HS256) and a
        // per-client rate limit by `plugins/ratelimit` on an embedded store (`durable = false`),
        // each a fresh instance per request.
        Server::start(
            "Flagon hello behind auth-jwt + ratelimit",
            flagon_cmd(&bins, &auth_app, &cache),
        ),
        Server::start(
            "Flagon hello behind auth-jwt only",
            flagon_cmd(&bins, &jwt_app, &cache),
        ),
        Server::start(
            "Flagon hello behind ratelimit only",
            flagon_cmd(&bins, &limit_app, &cache),
        ),
        // The same hello source built for wasm32-unknown-unknown: a core module importing only
        // flagon:app, made a component at load (no WASI, one core instance).
        Server::start(
            "Flagon hello, lean build (no WASI)",
            flagon_cmd(&bins, &app, &cache),
        ),
    ];
    let paths = [
        "/",
        "/",
        "/page",
        "/page",
        "/page-host",
        "/db-page",
        "/db-page",
        "/no-such-route",
        "/",
        "/",
        "/",
        "/lean",
    ];
    let mut paths: Vec<&str> = paths.to_vec();
    // The latency baseline of each row: the native page for pages, native hyper otherwise.
    let mut bases = vec![0, 0, 2, 2, 2, 5, 5, 0, 1, 1, 1, 0];
    /// The row of hello behind auth-jwt + ratelimit (its requests carry the bearer token).
    const AUTH_ROW: usize = 8;
    /// The row of the lean hello (after it, the Postgres rows when Postgres is installed).
    const LEAN_ROW: usize = 11;
    // The Postgres page, when Postgres is installed: one server for both, each on a database
    // of its own.
    let postgres = Postgres::start(&work.join("pg"));
    match &postgres {
        Some(pg) => {
            pg.psql("CREATE DATABASE native");
            let pg_app = write_pg_app(&work.join("pgapp"), &wasm, pg);
            drop(Server::start("warm pg", flagon_cmd(&bins, &pg_app, &cache)));
            let mut native = cmd(&bins.join("axum-pgpage"));
            native.env(
                "PG_URL",
                format!(
                    "host=127.0.0.1 port={} user=flagon password={PG_PASSWORD} dbname=native",
                    pg.port
                ),
            );
            let first = servers.len();
            servers.push(Server::start("axum + tokio-postgres page (native)", native));
            servers.push(Server::start(
                "Flagon Postgres page (adapter + host templates)",
                flagon_cmd(&bins, &pg_app, &cache),
            ));
            paths.extend(["/db-page", "/db-page"]);
            bases.extend([first, first]);
        }
        None => {
            let _ = writeln!(
                report,
                "Postgres is not installed: the Postgres page is left out (`apt-get install postgresql`).\n"
            );
        }
    }
    if which("wasmtime") {
        let mut c = Command::new("wasmtime");
        c.args(["serve", "-S", "common"])
            .arg(wasm.join("bench_proxy_hello.wasm"))
            .arg("--addr");
        servers.push(Server::start("wasmtime serve hello (wasi:http)", c));
        paths.push("/");
        bases.push(0);
    } else {
        let _ = writeln!(
            report,
            "`wasmtime` is not on PATH: `wasmtime serve` is left out (install: `cargo install --locked wasmtime-cli`).\n"
        );
    }

    // Interleaved rounds.
    let mut runs: BTreeMap<usize, Vec<Run>> = BTreeMap::new();
    for round in 1..=o.rounds {
        for (i, s) in servers.iter().enumerate() {
            eprintln!("round {round}/{}: {}", o.rounds, s.name);
            let extra = if i == AUTH_ROW || i == AUTH_ROW + 1 {
                bearer.as_str()
            } else {
                ""
            };
            let run = s.load_with(paths[i], o.connections, o.duration, extra);
            runs.entry(i).or_default().push(run);
        }
    }
    let medians: Vec<Run> = (0..servers.len()).map(|i| Run::median(&runs[&i])).collect();
    let base = &medians[0];
    let page_base = &medians[2];
    let _ = writeln!(report, "## Throughput and latency\n");
    let _ = writeln!(
        report,
        "| server | req/s | × hyper | p50 ms | p99 ms | p99 × baseline | CPU µs/req | CPU × hyper | peak RSS MiB |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, (s, m)) in servers.iter().zip(&medians).enumerate() {
        // Pages compare with their native page; everything else with native hyper hello.
        let lat_base = &medians[bases[i]];
        let _ = writeln!(
            report,
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} | {:.1} |",
            s.name,
            m.rps,
            m.rps / base.rps,
            m.p50_ms,
            m.p99_ms,
            m.p99_ms / lat_base.p99_ms,
            m.cpu_us,
            m.cpu_us / base.cpu_us,
            s.peak_rss_kib() as f64 / 1024.0
        );
    }
    for (label, m) in [
        ("minijinja in guest", &medians[3]),
        ("host templates", &medians[4]),
    ] {
        let _ = writeln!(
            report,
            "\nFlagon page ({label}) vs native page: {:.2}× the req/s, {:.2}× the CPU per request.",
            m.rps / page_base.rps,
            m.cpu_us / page_base.cpu_us
        );
    }
    let _ = writeln!(
        report,
        "\nFlagon SQLite page vs axum + rusqlite: {:.2}× the req/s, {:.2}× the CPU per request (goal: at most 2× the CPU).",
        medians[6].rps / medians[5].rps,
        medians[6].cpu_us / medians[5].cpu_us
    );
    if postgres.is_some() {
        let (native, flagon) = (&medians[LEAN_ROW + 1], &medians[LEAN_ROW + 2]);
        let _ = writeln!(
            report,
            "\nFlagon Postgres page vs axum + tokio-postgres: {:.2}× the req/s, {:.2}× the CPU per request (goal: at most 2× the CPU; the Postgres server's own CPU is not counted for either).",
            flagon.rps / native.rps,
            flagon.cpu_us / native.cpu_us
        );
    }
    let lean = &medians[LEAN_ROW];
    let _ = writeln!(
        report,
        "\nHello, lean build vs the wasm32-wasip2 build: {:.2}× the req/s, {:.2}× the CPU per request. Lean vs hyper: {:.2}× the req/s (goal: at least 0.5×), {:.2}× the CPU per request (goal: at most 2.5×).",
        lean.rps / medians[1].rps,
        lean.cpu_us / medians[1].cpu_us,
        lean.rps / base.rps,
        lean.cpu_us / base.cpu_us
    );
    let (bare, guarded) = (&medians[1], &medians[AUTH_ROW]);
    let _ = writeln!(
        report,
        "\nHello behind auth-jwt + ratelimit vs bare hello: {:.2}× the req/s; the two extensions add {:.1} µs of server CPU per request, {:.2}× a bare hello request's {:.1} µs (goal: at most 1×).",
        guarded.rps / bare.rps,
        guarded.cpu_us - bare.cpu_us,
        (guarded.cpu_us - bare.cpu_us) / bare.cpu_us,
        bare.cpu_us
    );
    let _ = writeln!(
        report,
        "Alone: auth-jwt adds {:.1} µs, ratelimit {:.1} µs.",
        medians[AUTH_ROW + 1].cpu_us - bare.cpu_us,
        medians[AUTH_ROW + 2].cpu_us - bare.cpu_us
    );
    let _ = writeln!(report);

    if o.scaling {
        let _ = writeln!(
            report,
            "## Scaling (req/s and p99 by connections, {}s each)\n",
            o.duration.min(5)
        );
        let _ = writeln!(
            report,
            "| connections | hyper req/s | hyper p99 ms | Flagon req/s | Flagon p99 ms | Flagon × hyper |"
        );
        let _ = writeln!(report, "|---:|---:|---:|---:|---:|---:|");
        for c in [1u32, 16, 64, 256, 1024] {
            eprintln!("scaling: {c} connections");
            let h = servers[0].load("/", c, o.duration.min(5));
            let f = servers[1].load("/", c, o.duration.min(5));
            let _ = writeln!(
                report,
                "| {c} | {:.0} | {:.2} | {:.0} | {:.2} | {:.2} |",
                h.rps,
                h.p99_ms,
                f.rps,
                f.p99_ms,
                f.rps / h.rps
            );
        }
        let _ = writeln!(report);
        let _ = writeln!(report, "{}", in_flight_memory(&bins, &app, &cache));
    }

    let _ = writeln!(
        report,
        "{}",
        connection_reuse(&servers, &work, o.duration.min(5))
    );

    let _ = writeln!(report, "{}", startup(&bins, &work, &wasm, &cache));

    if let Some(secs) = o.soak {
        let _ = writeln!(report, "{}", soak(&servers[1], secs));
    }

    drop(servers);
    drop(postgres);
    if o.only.is_none() {
        let _ = writeln!(
            report,
            "{}",
            languages::section(&o, &repo, &bins, &work, &wasm)
        );
    }
    finish(&o, &report, &work);
}

fn finish(o: &Options, report: &str, work: &Path) {
    print!("{report}");
    if let Some(out) = &o.out {
        std::fs::write(out, report).unwrap();
        eprintln!("report written to {}", out.display());
    }
    let _ = std::fs::remove_dir_all(work);
}

/// Hello without keep-alive (a new TCP connection per request) and with HTTP/1 pipelining
/// (16 requests in flight per connection), hyper against Flagon.
fn connection_reuse(servers: &[Server], work: &Path, secs: u64) -> String {
    let script = work.join("pipeline.lua");
    std::fs::write(
        &script,
        "init = function(args)\n  local r = {}\n  for i = 1, 16 do r[i] = wrk.format(nil, \"/\") end\n  req = table.concat(r)\nend\nrequest = function() return req end\n",
    )
    .unwrap();
    let mut out = format!(
        "## Keep-alive and pipelining ({secs}s each, 64 connections)\n\n| mode | hyper req/s | Flagon req/s | Flagon × hyper | hyper CPU µs/req | Flagon CPU µs/req |\n|---|---:|---:|---:|---:|---:|\n"
    );
    let pipelined = format!("-s {}", script.display());
    for (mode, extra) in [
        ("keep-alive (as above)", ""),
        (
            "`Connection: close` (new connection per request)",
            "-H 'Connection: close'",
        ),
        ("pipelined, 16 deep", pipelined.as_str()),
    ] {
        eprintln!("connection reuse: {mode}");
        let h = servers[0].load_with("/", 64, secs, extra);
        let f = servers[1].load_with("/", 64, secs, extra);
        let _ = writeln!(
            out,
            "| {mode} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} |",
            h.rps,
            f.rps,
            f.rps / h.rps,
            h.cpu_us,
            f.cpu_us
        );
    }
    out
}

fn require(tool: &str, hint: &str) {
    if !which(tool) {
        eprintln!("error: `{tool}` is not installed; {hint}");
        std::process::exit(1);
    }
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("failed to run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed");
}

fn build(repo: &Path) {
    eprintln!("building flagon and the native baselines (release)...");
    run(Command::new("cargo").current_dir(repo).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "flagon",
        "-p",
        "flagon-bench",
        "--bins",
    ]));
    eprintln!("building the plugins the auth row uses...");
    run(Command::new("cargo")
        .current_dir(repo.join("plugins"))
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
            "-p",
            "flagon-auth-jwt",
            "-p",
            "flagon-ratelimit",
        ]));
    eprintln!("building the guest components...");
    run(Command::new("cargo")
        .current_dir(repo.join("bench/guests"))
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
        ]));
    eprintln!("building the lean hello (wasm32-unknown-unknown)...");
    run(Command::new("cargo")
        .current_dir(repo.join("bench/guests"))
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            "bench-hello",
        ]));
}

/// The lean build of the hello guest, beside the wasm32-wasip2 builds in `wasm`.
pub(crate) fn lean_hello(wasm: &Path) -> PathBuf {
    wasm.join("../../wasm32-unknown-unknown/release/bench_hello.wasm")
}

fn write_app(work: &Path, wasm: &Path) -> PathBuf {
    let text = format!(
        r#"[app]
name = "bench"

[server]
max_instances = 2048
max_connections = 8192
header_read_timeout = "30s"

[components.hello]
source = "{hello}"
limits = {{ timeout = "10s" }}

[components.hello_lean]
source = "{lean}"
limits = {{ timeout = "10s" }}

[components.page]
source = "{page}"
limits = {{ timeout = "10s" }}
grants = {{ templates = true }}

[[routes]]
path = "/"
component = "hello"

[[routes]]
path = "/lean"
component = "hello_lean"

[[routes]]
path = "/sleep"
component = "hello"
name = "sleep"

[[routes]]
path = "/page"
component = "page"

[[routes]]
path = "/page-host"
component = "page"
name = "host"
"#,
        hello = wasm.join("bench_hello.wasm").display(),
        lean = lean_hello(wasm).display(),
        page = wasm.join("bench_page.wasm").display()
    );
    // The host renders `/page-host` from `templates/page.html`, the same template the native
    // page and the guest-side renderer use.
    std::fs::create_dir_all(work.join("templates")).unwrap();
    std::fs::write(
        work.join("templates/page.html"),
        include_str!("../../../page/page.html"),
    )
    .unwrap();
    let path = work.join("flagon.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Hello behind `plugins/auth-jwt` and `plugins/ratelimit`: `/` needs a bearer JWT (HS256,
/// see [`bench_jwt`]) and counts every request per client in a store that is not `durable`.
fn write_auth_app(dir: &Path, wasm: &Path, plugins: &Path, jwt: bool, limit: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut text = format!(
        r#"[app]
name = "bench-auth"

[server]
max_instances = 2048
max_connections = 8192
header_read_timeout = "30s"

[variables]
jwt_secret = {{ default = "{BENCH_JWT_SECRET}", secret = true }}

[kv.limits]
durable = false

[auth]
authenticators = ["jwt"]

[components.jwt]
source = "{jwt}"
grants = {{ variables = ["jwt_secret"] }}
settings = {{ secret_variable = "jwt_secret", algorithm = "HS256", issuer = "bench", audience = "bench" }}

[components.limit]
source = "{limit}"
grants = {{ kv = ["limits"] }}
settings = {{ store = "limits", limit = 1000000000, window_secs = 3600 }}

[[middleware]]
component = "limit"

[components.hello]
source = "{hello}"
limits = {{ timeout = "10s" }}

[[routes]]
path = "/"
component = "hello"
auth = "required"
"#,
        jwt = plugins.join("flagon_auth_jwt.wasm").display(),
        limit = plugins.join("flagon_ratelimit.wasm").display(),
        hello = wasm.join("bench_hello.wasm").display(),
    );
    if !jwt {
        text = text.replace("auth = \"required\"\n", "");
    }
    if !limit {
        text = text.replace("[[middleware]]\ncomponent = \"limit\"\n", "");
    }
    let path = dir.join("flagon.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The shared secret of the auth row (a benchmark's, not a real one).
const BENCH_JWT_SECRET: &str = "flagon-bench-hs256-secret-0123456789abcdef";

/// A bearer token for the auth row, valid for a day.
fn bench_jwt() -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 86_400;
    let header = b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64.encode(format!(
        r#"{{"sub":"bench-user","iss":"bench","aud":"bench","exp":{exp},"roles":["user"]}}"#
    ));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, BENCH_JWT_SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{header}.{claims}").as_bytes());
    format!("{header}.{claims}.{}", b64.encode(tag))
}

/// The app of the database page: the `dbpage` guest on a SQLite database seeded by a migration.
fn write_db_app(dir: &Path, wasm: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::create_dir_all(dir.join("migrations")).unwrap();
    std::fs::write(
        dir.join("templates/page.html"),
        include_str!("../../../page/page.html"),
    )
    .unwrap();
    std::fs::write(dir.join("migrations/0001_items.sql"), db::seed_sql()).unwrap();
    let text = format!(
        r#"[app]
name = "bench-db"

[server]
max_instances = 2048
max_connections = 8192
header_read_timeout = "30s"

[databases.main]
adapter = "sqlite"
migrations = "migrations"

[components.dbpage]
source = "{dbpage}"
limits = {{ timeout = "10s" }}
grants = {{ templates = true, sql = ["main"] }}

[[routes]]
path = "/db-page"
component = "dbpage"
"#,
        dbpage = wasm.join("bench_dbpage.wasm").display()
    );
    let path = dir.join("flagon.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const PG_PASSWORD: &str = "bench-pg-password";

/// The app of the Postgres page: the same `dbpage` guest on Postgres.
fn write_pg_app(dir: &Path, wasm: &Path, pg: &Postgres) -> PathBuf {
    let sqlite = write_db_app(dir, wasm);
    let text = std::fs::read_to_string(&sqlite).unwrap().replace(
        "adapter = \"sqlite\"\n",
        &format!(
            "adapter = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"flagon\"\ndatabase = \"postgres\"\ntls = \"off\"\npool = 4\nsecrets = {{ password = \"pg_password\" }}\n",
            pg.port
        ),
    ) + &format!("\n[variables]\npg_password = {{ default = \"{PG_PASSWORD}\", secret = true }}\n");
    std::fs::write(&sqlite, text).unwrap();
    sqlite
}

/// A Postgres server on a loopback port for the run (`initdb` in the work directory; as the
/// `postgres` user when run as root, since Postgres refuses root). `None` if not installed.
struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    child: Child,
}

impl Postgres {
    fn start(dir: &Path) -> Option<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max()?;
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("pw"), PG_PASSWORD).unwrap();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let as_user = |program: &str| {
            let mut c = if root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin.join(program));
                c
            } else {
                Command::new(bin.join(program))
            };
            c.stdout(Stdio::null());
            c
        };
        if root {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir));
        }
        run(as_user("initdb")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "flagon", "--auth=scram-sha-256", "-E", "UTF8"])
            .arg(format!("--pwfile={}", dir.join("pw").display())));
        let port = free_port().port();
        let child = as_user("postgres")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        let pg = Postgres {
            dir: dir.to_path_buf(),
            bin,
            port,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Command::new(pg.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(pg)
    }

    fn psql(&self, sql: &str) {
        run(Command::new(self.bin.join("psql"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "flagon", "-d", "postgres", "-c", sql])
            .env("PGPASSWORD", PG_PASSWORD)
            .stdout(Stdio::null()));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The postmaster's pid (the child may be `runuser`, which does not pass signals on).
        if let Some(pid) = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string))
        {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
        }
        let _ = self.child.wait();
    }
}

/// Only the seed is used here; the rest is for the servers.
#[allow(dead_code)]
mod db {
    include!("../../../page/db.rs");
}

fn cmd(bin: &Path) -> Command {
    Command::new(bin)
}

fn flagon_cmd(bins: &Path, app: &Path, cache: &Path) -> Command {
    let mut c = Command::new(bins.join("flagon"));
    c.arg("serve")
        .arg(app)
        .env("FLAGON_CACHE_DIR", cache)
        // The access log is one line per request; measure the serving path, not the terminal.
        .env("FLAGON_LOG", "warn")
        .arg("--listen");
    c
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Server {
    name: String,
    addr: SocketAddr,
    child: Child,
}

impl Server {
    /// Start `cmd` with a free loopback address appended as its last argument.
    fn start(name: &str, mut cmd: Command) -> Self {
        let addr = free_port();
        cmd.arg(addr.to_string());
        Self::start_at(name, addr, cmd)
    }

    /// Start `cmd`, which listens on `addr`.
    fn start_at(name: &str, addr: SocketAddr, mut cmd: Command) -> Self {
        cmd.env_remove("RUST_BACKTRACE")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {name}: {e}"));
        let s = Server {
            name: name.to_string(),
            addr,
            child,
        };
        // A start that compiles a large component (a Python one) takes a while.
        let deadline = Instant::now() + Duration::from_secs(300);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "{name} did not start listening on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn cpu_ticks(&self) -> u64 {
        proc_cpu_ticks(self.child.id())
    }

    fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.child.id(), "VmHWM:")
    }

    fn rss_kib(&self) -> u64 {
        proc_status_kib(self.child.id(), "VmRSS:")
    }

    fn load(&self, path: &str, connections: u32, secs: u64) -> Run {
        self.load_with(path, connections, secs, "")
    }

    /// `extra` goes to wrk as is (a header, a Lua script).
    fn load_with(&self, path: &str, connections: u32, secs: u64, extra: &str) -> Run {
        let before = self.cpu_ticks();
        let faults_before = proc_minor_faults(self.child.id());
        let out = wrk(self.addr, path, connections, secs, secs + 5, extra);
        let after = self.cpu_ticks();
        let faults = proc_minor_faults(self.child.id()) - faults_before;
        let mut run = parse_wrk(&out);
        run.faults = faults as f64 / run.requests.max(1) as f64;
        let ticks_per_sec = 100.0; // USER_HZ on Linux
        run.cpu_us = (after - before) as f64 / ticks_per_sec * 1e6 / run.requests.max(1) as f64;
        run
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wrk(
    addr: SocketAddr,
    path: &str,
    connections: u32,
    secs: u64,
    timeout: u64,
    extra: &str,
) -> String {
    let threads = connections.clamp(1, 2);
    let script = format!(
        "ulimit -n 65536 2>/dev/null; exec wrk -t{threads} -c{connections} -d{secs}s --timeout {timeout}s --latency {extra} http://{addr}{path}"
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("run wrk");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(Clone, Default)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
    /// Minor page faults of the server process per request (copy-on-write and first-touch
    /// faults of guest memory, mostly).
    faults: f64,
    requests: u64,
}

impl Run {
    fn median(runs: &[Run]) -> Run {
        let med = |f: fn(&Run) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        Run {
            rps: med(|r| r.rps),
            p50_ms: med(|r| r.p50_ms),
            p99_ms: med(|r| r.p99_ms),
            cpu_us: med(|r| r.cpu_us),
            faults: med(|r| r.faults),
            requests: 0,
        }
    }
}

fn parse_wrk(out: &str) -> Run {
    let mut run = Run::default();
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            run.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("50%") {
            run.p50_ms = parse_duration_ms(v.trim());
        } else if let Some(v) = t.strip_prefix("99%") {
            run.p99_ms = parse_duration_ms(v.trim());
        } else if t.contains(" requests in ") {
            run.requests = t
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    run
}

fn parse_duration_ms(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => f64::NAN,
    }
}

fn proc_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    num(11) + num(12)
}

fn proc_minor_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // `minflt` is field 10; fields after the `(comm)` start at field 3.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    after
        .split_whitespace()
        .nth(7)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("Machine: {cores} cores, {cpu}.")
}

/// Memory with 1024 requests in flight, each parked in a guest for 2s (WASI sleep).
fn in_flight_memory(bins: &Path, app: &Path, cache: &Path) -> String {
    eprintln!("in-flight memory: 1024 sleeping requests");
    let s = Server::start("flagon", flagon_cmd(bins, app, cache));
    let idle = s.rss_kib();
    let addr = s.addr;
    let loader = std::thread::spawn(move || wrk(addr, "/sleep", 1024, 6, 10, ""));
    std::thread::sleep(Duration::from_secs(3));
    let busy = s.rss_kib();
    let out = loader.join().unwrap();
    let run = parse_wrk(&out);
    format!(
        "## Memory with 1024 in-flight requests\n\nRSS idle {:.1} MiB; with 1024 requests parked in guests {:.1} MiB ({:.1} KiB per in-flight request); {} requests completed in 6s (each sleeps 2s).\n",
        idle as f64 / 1024.0,
        busy as f64 / 1024.0,
        (busy.saturating_sub(idle)) as f64 / 1024.0,
        run.requests
    )
}

/// Time from spawn to accepting connections with 10 precompiled components.
fn startup(bins: &Path, work: &Path, wasm: &Path, cache: &Path) -> String {
    let mut text = String::from("[app]\nname = \"startup\"\n");
    for i in 0..10 {
        let _ = write!(
            text,
            "[components.c{i}]\nsource = \"{}\"\n{}[[routes]]\npath = \"/c{i}\"\ncomponent = \"c{i}\"\n",
            wasm.join(if i % 2 == 0 {
                "bench_hello.wasm"
            } else {
                "bench_page.wasm"
            })
            .display(),
            // The page component imports the templates (read from `templates/` beside this
            // manifest, written by `write_app`).
            if i % 2 == 0 {
                ""
            } else {
                "grants = { templates = true }\n"
            }
        );
    }
    let manifest = work.join("startup.toml");
    std::fs::write(&manifest, text).unwrap();
    let mut times = Vec::new();
    for attempt in 0..6 {
        let addr = free_port();
        let started = Instant::now();
        let mut child = Command::new(bins.join("flagon"))
            .arg("serve")
            .arg(&manifest)
            .args(["--listen", &addr.to_string()])
            .env("FLAGON_CACHE_DIR", cache)
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        for line in BufReader::new(stderr).lines() {
            if line.map(|l| l.contains("listening on")).unwrap_or(true) {
                break;
            }
        }
        let took = started.elapsed();
        let _ = child.kill();
        let _ = child.wait();
        if attempt > 0 {
            // The first start fills the cache for this manifest's components.
            times.push(took);
        }
    }
    times.sort();
    format!(
        "## Startup\n\n10 precompiled components (5 hello, 5 page) from spawn to listening: median {:.1} ms (min {:.1}, max {:.1}).\n",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0
    )
}

/// RSS sampled every 5s during a long run.
fn soak(s: &Server, secs: u64) -> String {
    eprintln!("soak: {secs}s");
    let addr = s.addr;
    let loader = std::thread::spawn(move || wrk(addr, "/", 64, secs, 10, ""));
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(5));
        samples.push(format!("{:.1}", s.rss_kib() as f64 / 1024.0));
    }
    let run = parse_wrk(&loader.join().unwrap());
    format!(
        "## Soak\n\nFlagon hello for {secs}s at 64 connections ({:.0} req/s): RSS every 5s in MiB: {}.\n",
        run.rps,
        samples.join(", ")
    )
}
