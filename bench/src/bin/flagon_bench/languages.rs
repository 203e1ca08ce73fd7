//! Hello in every language Flagon runs, side by side in one run: the `/hello/{name}` route of
//! `examples/hello` (Rust SDK), `examples/hello-js`, `examples/hello-py` and `examples/hello-c`
//! (the same handler in each: a variable, a log line filtered out by the level, a text
//! response), the benchmark's minimal Rust guest, and standard `wasi:http/proxy` components
//! (Rust with the `wasi` crate, jco, componentize-py) served by Flagon.
//!
//! Two parts:
//! - over HTTP, in interleaved rounds with native hyper: req/s, latency, server CPU per request
//!   and peak RSS; and the time from spawn to listening, with an empty compile cache and with a
//!   warm one;
//! - in this process, with the host's own loading code and engine settings
//!   (`flagon::App::load`, `LoadedComponent::instantiate`): the component's size, its initial
//!   linear memory, the time to instantiate it and to return its pool slot, and the memory one
//!   live instance holds.
//!
//! A language whose toolchain is not installed is left out with the reason (what to install).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Options, Run, Server, cmd, flagon_cmd, proc_status_kib};

/// The session key of the example apps (without `--dev` they need one); a benchmark's, random
/// per run.
fn session_key() -> String {
    use base64::Engine as _;
    let mut key = [0u8; 48];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).unwrap();
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// One row: an app with one component to measure.
struct Row {
    name: &'static str,
    manifest: PathBuf,
    /// The component measured in-process.
    component: &'static str,
    /// The `.wasm` file it runs.
    wasm: PathBuf,
    /// The path the load goes to.
    path: &'static str,
}

/// An app of one component answering `/`: a `flagon:app` handler, or a `wasi:http/proxy`
/// component with `world = "wasi-http"`.
fn write_one_component_app(dir: &Path, wasm: &Path, world: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        r#"[app]
name = "bench-one"

[server]
max_instances = 2048
max_connections = 8192
header_read_timeout = "30s"

[components.one]
source = "{}"
world = "{world}"
limits = {{ timeout = "10s", memory = "64MiB" }}

[[routes]]
path = "/"
component = "one"
"#,
        wasm.display()
    );
    let path = dir.join("flagon.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Build `examples/<example>` with `flagon build`, then copy its manifest (the component's
/// `source` made absolute, its `build` removed, its session key read from the environment),
/// templates and static files into `dir`. `Err` says why it cannot run here.
fn prepare_example(
    repo: &Path,
    bins: &Path,
    example: &str,
    dir: &Path,
) -> Result<(PathBuf, PathBuf), String> {
    let src = repo.join("examples").join(example);
    eprintln!("building examples/{example}...");
    let out = Command::new(bins.join("flagon"))
        .arg("build")
        .arg(&src)
        .env_remove("RUST_BACKTRACE")
        .output()
        .map_err(|e| format!("could not run flagon build: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // `flagon build` ends with what is missing and how to install it.
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().map(str::trim).collect();
        return Err(tail.join(" "));
    }
    std::fs::create_dir_all(dir).unwrap();
    let text = std::fs::read_to_string(src.join("flagon.toml")).unwrap();
    let mut wasm = None;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.starts_with("build = ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("source = \"") {
            let file = src.join(rest.trim_end_matches('"'));
            lines.push(format!("source = \"{}\"", file.display()));
            wasm = Some(file);
            continue;
        }
        lines.push(match line {
            "# session_key = { env = \"FLAGON_SESSION_KEY\", secret = true }" => {
                line.trim_start_matches("# ").to_string()
            }
            "# secret = \"session_key\"" => line.trim_start_matches("# ").to_string(),
            _ => line.to_string(),
        });
    }
    let manifest = lines.join("\n") + "\n";
    assert!(
        manifest.contains("\nsession_key = ") && manifest.contains("\nsecret = \"session_key\""),
        "examples/{example}/flagon.toml no longer has the commented session-key lines this benchmark turns on"
    );
    let wasm = wasm.unwrap_or_else(|| panic!("examples/{example}/flagon.toml has no `source`"));
    for sub in ["templates", "static"] {
        copy_dir(&src.join(sub), &dir.join(sub));
    }
    let path = dir.join("flagon.toml");
    std::fs::write(&path, manifest).unwrap();
    Ok((path, wasm))
}

fn copy_dir(from: &Path, to: &Path) {
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    std::fs::create_dir_all(to).unwrap();
    for e in entries.flatten() {
        let target = to.join(e.file_name());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Build a `tests/wasi-http/<toolchain>` component with its `build.sh` into `out`.
fn build_wasi_http(repo: &Path, toolchain: &str, out: &Path) -> Result<(), String> {
    eprintln!("building the {toolchain} wasi:http component...");
    let script = repo
        .join("tests/wasi-http")
        .join(toolchain)
        .join("build.sh");
    let result = Command::new("sh")
        .arg(&script)
        .arg(out)
        .output()
        .map_err(|e| format!("could not run {}: {e}", script.display()))?;
    if result.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&result.stderr);
        Err(stderr.lines().last().unwrap_or("failed").trim().to_string())
    }
}

/// A GET of `path`; the status line of the answer.
fn probe(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = match std::net::TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => return format!("connect failed: {e}"),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("no answer")
        .to_string()
}

/// What one instance costs, measured in this process.
#[derive(Default)]
struct Instances {
    /// `App::load` with the compiled component in the cache.
    load_ms: f64,
    initial_memory_kib: u64,
    instantiate_us: f64,
    instantiate_p99_us: f64,
    /// Dropping the `Store`: the pool slot's memory reset and the instance's teardown.
    drop_us: f64,
    rss_per_instance_kib: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// How many live instances the memory figure is averaged over.
const LIVE: usize = 32;

fn measure_instances(row: &Row, cache: &Path, key: &str) -> Result<Instances, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let manifest = flagon::Manifest::load(&row.manifest).map_err(|e| format!("{e:#}"))?;
        let options = flagon::LoadOptions {
            cache: flagon::CacheDir::Path(cache.to_path_buf()),
            env: BTreeMap::from([("FLAGON_SESSION_KEY".to_string(), key.to_string())]),
            ..Default::default()
        };
        let started = Instant::now();
        let app = flagon::App::load(&manifest, &options)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let load_ms = started.elapsed().as_secs_f64() * 1e3;
        let c = app
            .components()
            .iter()
            .find(|c| c.id == row.component)
            .expect("the row's component");
        let engine = app.engine();
        let initial_memory_kib = c
            .component()
            .resources_required()
            // In 64 KiB wasm pages.
            .map(|r| r.max_initial_memory_size.unwrap_or(0) * 64)
            .unwrap_or(0);
        let one = || async {
            c.instantiate(engine, c.request_ctx(Arc::from("bench")))
                .await
                .map_err(|e| e.to_string())
        };
        for _ in 0..20 {
            drop(one().await?);
        }
        let (mut made, mut dropped) = (Vec::new(), Vec::new());
        let until = Instant::now() + Duration::from_secs(3);
        while made.len() < 5000 && (Instant::now() < until || made.len() < 100) {
            let t = Instant::now();
            let store = one().await?;
            made.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            drop(store);
            dropped.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let before = proc_status_kib(std::process::id(), "VmRSS:");
        let mut live = Vec::with_capacity(LIVE);
        for _ in 0..LIVE {
            live.push(one().await?);
        }
        let after = proc_status_kib(std::process::id(), "VmRSS:");
        drop(live);
        Ok(Instances {
            load_ms,
            initial_memory_kib,
            instantiate_us: median(&mut made),
            instantiate_p99_us: percentile(&mut made, 0.99),
            drop_us: median(&mut dropped),
            rss_per_instance_kib: after.saturating_sub(before) as f64 / LIVE as f64,
        })
    })
}

/// Spawn `row`'s app and wait until it listens; the time that took.
fn start(row: &Row, bins: &Path, cache: &Path, key: &str) -> (Server, Duration) {
    let mut c = flagon_cmd(bins, &row.manifest, cache);
    c.env("FLAGON_SESSION_KEY", key);
    let started = Instant::now();
    let s = Server::start(row.name, c);
    (s, started.elapsed())
}

pub(super) fn section(o: &Options, repo: &Path, bins: &Path, work: &Path, guests: &Path) -> String {
    let work = work.join("languages");
    let cache = work.join("cache");
    let key = session_key();
    let mut out = String::from("## Hello in each language\n\n");
    let mut rows = Vec::new();
    for (name, example) in [
        ("Rust SDK, lean (examples/hello)", "hello"),
        ("JavaScript SDK (examples/hello-js)", "hello-js"),
        ("Python SDK (examples/hello-py)", "hello-py"),
        ("C SDK (examples/hello-c)", "hello-c"),
    ] {
        match prepare_example(repo, bins, example, &work.join(example)) {
            Ok((manifest, wasm)) => rows.push(Row {
                name,
                manifest,
                component: "hello",
                wasm,
                path: "/hello/bench",
            }),
            Err(why) => {
                let _ = writeln!(out, "{name} is left out: {why}\n");
            }
        }
    }
    let minimal = guests.join("bench_hello.wasm");
    rows.push(Row {
        name: "Rust, minimal guest (bench/guests/hello)",
        manifest: write_one_component_app(&work.join("minimal"), &minimal, "flagon"),
        component: "one",
        wasm: minimal,
        path: "/",
    });
    let lean = super::lean_hello(guests);
    rows.push(Row {
        name: "Rust, minimal guest, lean build (bench/guests/hello)",
        manifest: write_one_component_app(&work.join("minimal-lean"), &lean, "flagon"),
        component: "one",
        wasm: lean,
        path: "/",
    });
    let proxy = guests.join("bench_proxy_hello.wasm");
    rows.push(Row {
        name: "wasi:http, Rust `wasi` crate (bench/guests/proxy-hello)",
        manifest: write_one_component_app(&work.join("proxy-rust"), &proxy, "wasi-http"),
        component: "one",
        wasm: proxy,
        path: "/",
    });
    for (name, toolchain) in [
        ("wasi:http, jco (tests/wasi-http/js)", "js"),
        (
            "wasi:http, componentize-py (tests/wasi-http/python)",
            "python",
        ),
    ] {
        let wasm = work.join(format!("wasi-http-{toolchain}.wasm"));
        match build_wasi_http(repo, toolchain, &wasm) {
            Ok(()) => rows.push(Row {
                name,
                manifest: write_one_component_app(
                    &work.join(format!("proxy-{toolchain}")),
                    &wasm,
                    "wasi-http",
                ),
                component: "one",
                wasm,
                path: "/",
            }),
            Err(why) => {
                let _ = writeln!(out, "{name} is left out: {why}\n");
            }
        }
    }

    // Start each app twice: first with an empty compile cache (the start includes compiling
    // the component), then from the cache, as a restart in production would. The second
    // server is the one loaded, so its peak RSS does not include the compiler's.
    let mut servers = vec![Server::start(
        "hyper hello (native)",
        cmd(&bins.join("hyper-hello")),
    )];
    let mut starts = vec![(Duration::ZERO, Duration::ZERO)];
    let mut kept = Vec::new();
    for row in rows {
        eprintln!("starting {} (compiling it)...", row.name);
        let (cold_server, cold) = start(&row, bins, &cache, &key);
        drop(cold_server);
        let (server, warm) = start(&row, bins, &cache, &key);
        let status = probe(server.addr, row.path);
        if !status.contains(" 200 ") {
            let _ = writeln!(
                out,
                "{} is left out: `GET {}` answered `{status}`, not 200\n",
                row.name, row.path
            );
            continue;
        }
        servers.push(server);
        starts.push((cold, warm));
        kept.push(row);
    }
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); servers.len()];
    for round in 1..=o.rounds {
        for (i, s) in servers.iter().enumerate() {
            eprintln!("languages, round {round}/{}: {}", o.rounds, s.name);
            let path = if i == 0 { "/" } else { kept[i - 1].path };
            runs[i].push(s.load(path, o.connections, o.duration));
        }
    }
    let medians: Vec<Run> = runs.iter().map(|r| Run::median(r)).collect();
    let peak: Vec<u64> = servers.iter().map(Server::peak_rss_kib).collect();
    drop(servers);
    let base = &medians[0];
    let _ = writeln!(
        out,
        "wrk -t2 -c{} -d{}s, {} interleaved rounds with native hyper, medians; the handlers' `log::info` line is below the level (`FLAGON_LOG=warn`).\n",
        o.connections, o.duration, o.rounds
    );
    let _ = writeln!(
        out,
        "| hello | route | req/s | × hyper | p50 ms | p99 ms | CPU µs/req | CPU × hyper | page faults/req | peak RSS MiB |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let _ = writeln!(
        out,
        "| hyper hello (native) | `/` | {:.0} | 1.00 | {:.2} | {:.2} | {:.1} | 1.00 | {:.2} | {:.1} |",
        base.rps,
        base.p50_ms,
        base.p99_ms,
        base.cpu_us,
        base.faults,
        peak[0] as f64 / 1024.0
    );
    for (i, row) in kept.iter().enumerate() {
        let m = &medians[i + 1];
        let _ = writeln!(
            out,
            "| {} | `{}` | {:.0} | {:.3} | {:.2} | {:.2} | {:.1} | {:.2} | {:.1} | {:.1} |",
            row.name,
            row.path,
            m.rps,
            m.rps / base.rps,
            m.p50_ms,
            m.p99_ms,
            m.cpu_us,
            m.cpu_us / base.cpu_us,
            m.faults,
            peak[i + 1] as f64 / 1024.0
        );
    }

    let _ = writeln!(
        out,
        "\nPer component, in-process with the host's engine settings: instantiation alone (no call) median and p99 over up to 5000 fresh instances, the `Store` drop that returns the pool slot, and the RSS each of {LIVE} live (uncalled) instances adds. Start is spawn to listening: with an empty compile cache, then from the cache.\n"
    );
    let _ = writeln!(
        out,
        "| hello | component KiB | initial linear memory KiB | instantiate µs | p99 µs | slot return µs | RSS per live instance KiB | start, compiling ms | start, cached ms | `App::load`, cached ms |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (i, row) in kept.iter().enumerate() {
        let size = std::fs::metadata(&row.wasm).map(|m| m.len()).unwrap_or(0);
        let (cold, warm) = starts[i + 1];
        match measure_instances(row, &cache, &key) {
            Ok(m) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} |",
                    row.name,
                    size / 1024,
                    m.initial_memory_kib,
                    m.instantiate_us,
                    m.instantiate_p99_us,
                    m.drop_us,
                    m.rss_per_instance_kib,
                    cold.as_secs_f64() * 1e3,
                    warm.as_secs_f64() * 1e3,
                    m.load_ms
                );
            }
            Err(why) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | failed to load in-process: {} |",
                    row.name,
                    size / 1024,
                    why.replace('|', "/")
                );
            }
        }
    }
    out
}
