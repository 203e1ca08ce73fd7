//! Scale-out and failover: three `flagon serve` processes of `examples/todo` on one Postgres and
//! one Redis (a shared session key; the login rate limits in Redis), behind Debian's nginx
//! round-robin, all on loopback. Writers add todos through nginx and record every id the app
//! acknowledged; one host is killed with SIGKILL a third of the way through. Afterwards every
//! acknowledged todo is in Postgres, errors happened only around the kill, a session made on one
//! host works on the others, and failed logins counted on one host count on all.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::harness::{BinServer, Reply, Req, cache_dir, csrf_token};
use crate::postgres::{PASSWORD, PgServer};
use crate::web::Redis;

/// The session cookie's name outside development mode.
const COOKIE: &str = "__Host-session";
const PASSWORD_USER: &str = "a long enough passphrase";
/// Concurrent writers through nginx.
const WRITERS: usize = 6;
/// The load runs this long, or until this many writes were sent, whichever comes first.
const LOAD_FOR: Duration = Duration::from_secs(8);
const MAX_WRITES: usize = 20_000;
/// Errors must fall between the kill and this long after it. nginx marks the dead host down
/// at its first failure (`max_fails=1`) and retries refused connections on the next host, so
/// only the POSTs the dead host had taken fail: those in flight at the kill, and those the
/// kernel still accepted on its listening socket while the killed process was being torn
/// down (some tens of milliseconds), reset when it closed. Their number depends on the load,
/// so only their time is checked.
const FAILOVER_WINDOW: Duration = Duration::from_secs(2);
/// Any single request: the test never waits longer on one.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/todo")
        .canonicalize()
        .unwrap()
}

/// `flagon build examples/todo`, once per test run (as `todo.rs` does): the component served
/// is the one built from this source.
fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_flagon"))
            .arg("build")
            .arg(example())
            .output()
            .expect("flagon build runs");
        assert!(
            out.status.success(),
            "flagon build examples/todo failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        example()
    })
}

fn table<'a>(t: &'a mut toml::Table, key: &str) -> &'a mut toml::Table {
    t.entry(key)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .unwrap_or_else(|| panic!("`{key}` is a table"))
}

/// `examples/todo/flagon.toml` for several hosts: the same app, its component, templates,
/// static files and migrations by absolute path, with the session key from
/// `FLAGON_SESSION_KEY`, the rate-limit store in Redis (`TODO_REDIS_URL`), and nginx on
/// 127.0.0.1 trusted for `X-Forwarded-*`. The database is the example's own `url_variable`
/// (`TODO_DATABASE_URL`).
fn scaleout_manifest(example: &Path) -> String {
    let text = std::fs::read_to_string(example.join("flagon.toml")).unwrap();
    let mut m: toml::Table = text.parse().unwrap();
    let abs = |v: &toml::Value| {
        let p = v.as_str().expect("a path");
        toml::Value::String(example.join(p).display().to_string())
    };

    let server = table(&mut m, "server");
    server.remove("listen");
    let hosts = server["allowed_hosts"].as_array().unwrap();
    assert!(
        hosts.iter().any(|h| h.as_str() == Some("127.0.0.1")),
        "the example allows the host 127.0.0.1 (nginx's): {hosts:?}"
    );
    server.insert(
        "trusted_proxies".into(),
        toml::Value::from(vec!["127.0.0.1"]),
    );

    let todo = table(table(&mut m, "components"), "todo");
    todo.remove("build");
    let source = abs(&todo["source"]);
    todo.insert("source".into(), source);

    let templates = table(&mut m, "templates");
    let dir = templates
        .get("dir")
        .cloned()
        .unwrap_or_else(|| "templates".into());
    templates.insert("dir".into(), abs(&dir));
    let mounts = m.get_mut("static").and_then(|s| s.as_array_mut());
    for mount in mounts.expect("the example has [[static]]") {
        let mount = mount.as_table_mut().unwrap();
        let dir = abs(&mount["dir"]);
        mount.insert("dir".into(), dir);
    }

    let db = table(table(&mut m, "databases"), "main");
    assert_eq!(db["url_variable"].as_str(), Some("database_url"));
    let migrations = abs(&db["migrations"]);
    db.insert("migrations".into(), migrations);

    let kv = table(&mut m, "kv");
    assert!(kv.contains_key("limits"), "the example has [kv.limits]");
    let mut limits = toml::Table::new();
    limits.insert("backend".into(), "redis".into());
    limits.insert("url".into(), "redis_url".into());
    kv.insert("limits".into(), limits.into());

    let vars = table(&mut m, "variables");
    assert!(vars.contains_key("database_url") && vars.contains_key("apikey_pepper"));
    for (name, env) in [
        ("redis_url", "TODO_REDIS_URL"),
        ("session_key", "FLAGON_SESSION_KEY"),
    ] {
        let mut v = toml::Table::new();
        v.insert("env".into(), env.into());
        v.insert("secret".into(), true.into());
        vars.insert(name.into(), v.into());
    }
    table(&mut m, "session").insert("secret".into(), "session_key".into());
    toml::to_string(&m).unwrap()
}

/// Debian's nginx (in /usr/sbin, which is not on every user's PATH).
fn nginx_bin() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.exists() {
        return sbin;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nginx"))
        .find(|p| p.exists())
        .expect("nginx is installed (apt-get install nginx; `bash tests/run` installs it)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx in the foreground, one process (`master_process off`: no workers, so no user to
/// switch to, root or not), its config, logs, pid and temporary files all in its own
/// directory; killed when dropped.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Nginx {
    async fn start(upstreams: &[SocketAddr]) -> Self {
        let mut last = String::new();
        // The free port is found by binding and letting go; another process may take it
        // in between, so try again on another.
        for _ in 0..3 {
            match Self::try_start(upstreams).await {
                Ok(n) => return n,
                Err(e) => last = e,
            }
        }
        panic!("nginx did not start: {last}");
    }

    async fn try_start(upstreams: &[SocketAddr]) -> Result<Self, String> {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        for sub in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let port = free_port();
        let servers: String = upstreams
            .iter()
            .map(|a| format!("    server {a} max_fails=1 fail_timeout=30s;\n"))
            .collect();
        // Round robin over the hosts. A connection refused (`error`) or not made within
        // `proxy_connect_timeout` (`timeout`) goes to the next host; a POST already sent is
        // not retried (nginx's default: no `non_idempotent`), since the dead host may have
        // applied it, so the client sees nginx's 502 for it.
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
               log_format scale '$msec|$status|$request_method|$uri|$upstream_addr|$upstream_status';\n\
               access_log {d}/access.log scale;\n\
               client_body_temp_path {d}/client_body;\n\
               proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               upstream flagon {{\n{servers}  }}\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 location / {{\n\
                   proxy_pass http://flagon;\n\
                   proxy_set_header Host $proxy_host;\n\
                   proxy_set_header X-Forwarded-Host $http_host;\n\
                   proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                   proxy_set_header X-Forwarded-Proto $scheme;\n\
                   proxy_connect_timeout 1s;\n\
                   proxy_send_timeout 10s;\n\
                   proxy_read_timeout 10s;\n\
                   proxy_next_upstream error timeout http_502;\n\
                   proxy_next_upstream_tries 3;\n\
                   proxy_next_upstream_timeout 3s;\n\
                 }}\n\
               }}\n\
             }}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = Command::new(nginx_bin())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("nginx runs");
        let mut nginx = Nginx {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        for _ in 0..100 {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("nginx exited ({status}): {}", nginx.error_log()));
            }
            if TcpStream::connect(nginx.addr).await.is_ok() {
                return Ok(nginx);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("nginx did not listen: {}", nginx.error_log()))
    }

    fn error_log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a new connection; an error (refused, reset, timed out) instead of
/// a panic, since hosts die in this test.
async fn call(addr: SocketAddr, req: Req) -> Result<Reply, String> {
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let mut builder = http::Request::builder()
            .method(req.method.as_str())
            .uri(req.path.as_str())
            .header("host", addr.to_string());
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let request = builder.body(Full::new(Bytes::from(req.body))).unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        let version = response.version();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(Reply {
            status,
            headers,
            body,
            version,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")))
}

/// A browser's cookie jar for the session cookie, usable against any host (or nginx): each
/// request carries the cookie and the `Origin` of the address it goes to.
#[derive(Default, Clone)]
struct Jar {
    cookie: Option<String>,
    /// An `X-Forwarded-For` of the client's own, so that per-address limits see it.
    forwarded_for: Option<String>,
}

impl Jar {
    async fn send(&mut self, addr: SocketAddr, mut req: Req) -> Result<Reply, String> {
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        if let Some(x) = &self.forwarded_for {
            req = req.header("x-forwarded-for", x);
        }
        let r = call(addr, req).await?;
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap().trim();
            if let Some(value) = pair.strip_prefix(&format!("{COOKIE}=")) {
                let cleared = value.is_empty() || v.to_ascii_lowercase().contains("max-age=0");
                self.cookie = (!cleared).then(|| pair.to_string());
            }
        }
        Ok(r)
    }

    async fn get(&mut self, addr: SocketAddr, path: &str) -> Reply {
        let r = self
            .send(addr, Req::new("GET", path).header("accept", "text/html"))
            .await
            .unwrap_or_else(|e| panic!("GET {path} via {addr}: {e}"));
        assert_eq!(r.status, 200, "GET {path} via {addr}: {}", r.text());
        r
    }

    /// A form POST as a browser sends it from a page of `addr`: `Origin` and the page's token.
    async fn post_form(
        &mut self,
        addr: SocketAddr,
        path: &str,
        token: &str,
        fields: &[(&str, &str)],
    ) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields.iter().copied())
            .append_pair("csrf_token", token)
            .finish();
        let req = Req::new("POST", path)
            .header("origin", &format!("http://{addr}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html")
            .body(body);
        self.send(addr, req)
            .await
            .unwrap_or_else(|e| panic!("POST {path} via {addr}: {e}"))
    }

    /// Sign up `username` through `addr`.
    async fn sign_up(&mut self, addr: SocketAddr, username: &str) {
        let page = self.get(addr, "/signup").await;
        let r = self
            .post_form(
                addr,
                "/signup",
                &csrf_token(&page.text()),
                &[("username", username), ("password", PASSWORD_USER)],
            )
            .await;
        assert_eq!(r.status, 303, "sign up {username} via {addr}: {}", r.text());
        assert!(self.cookie.is_some(), "signed in with a session cookie");
    }

    /// One login attempt through `addr`, from its login page.
    async fn log_in(&mut self, addr: SocketAddr, username: &str, password: &str) -> Reply {
        let page = self.get(addr, "/login").await;
        self.post_form(
            addr,
            "/login",
            &csrf_token(&page.text()),
            &[("username", username), ("password", password)],
        )
        .await
    }

    /// A new API key through the keys page at `addr`.
    async fn api_key(&mut self, addr: SocketAddr) -> String {
        let page = self.get(addr, "/account/keys").await;
        let r = self
            .post_form(
                addr,
                "/account/keys",
                &csrf_token(&page.text()),
                &[("name", "load")],
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let text = r.text().replace("&#47;", "/");
        let start = text
            .find("<pre class=\"secret\"><code>")
            .expect("the new key is on the page")
            + "<pre class=\"secret\"><code>".len();
        text[start..start + text[start..].find('<').unwrap()].to_string()
    }
}

/// What one writer saw.
#[derive(Default)]
struct Outcome {
    /// (todo id, title) of every 201.
    acked: Vec<(String, String)>,
    /// (when it ended, since the load started; what went wrong).
    errors: Vec<(Duration, String)>,
}

/// Add todos through `nginx` with `key` until `deadline` or until `sent` reaches the cap.
async fn writer(
    nginx: SocketAddr,
    n: usize,
    key: String,
    start: Instant,
    deadline: Instant,
    sent: Arc<AtomicUsize>,
) -> Outcome {
    let mut out = Outcome::default();
    let bearer = format!("Bearer {key}");
    for i in 0.. {
        if Instant::now() >= deadline || sent.fetch_add(1, Ordering::Relaxed) >= MAX_WRITES {
            break;
        }
        let title = format!("w{n}-{i}");
        let req = Req::new("POST", "/api/todos")
            .header("authorization", &bearer)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(json!({ "title": title }).to_string());
        let r = call(nginx, req).await;
        let at = start.elapsed();
        match r {
            Ok(r) if r.status == 201 => {
                let todo: Value = serde_json::from_slice(&r.body)
                    .unwrap_or_else(|e| panic!("a 201 with JSON: {e}: {}", r.text()));
                assert_eq!(todo["title"], title.as_str(), "{todo}");
                let id = todo["id"].as_str().expect("an id").to_string();
                out.acked.push((id, title));
            }
            Ok(r) => {
                let text = r.text();
                let brief = match text.split_once("<title>") {
                    Some((_, t)) => t.split('<').next().unwrap_or_default().to_string(),
                    None => text.split_whitespace().collect::<Vec<_>>().join(" "),
                };
                let brief: String = brief.chars().take(100).collect();
                out.errors.push((at, format!("{} {brief}", r.status)));
            }
            Err(e) => out.errors.push((at, e)),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_behind_nginx_survive_a_kill() {
    let started = Instant::now();
    let pg = PgServer::start().await;
    let redis = Redis::start().await;
    let example = tokio::task::spawn_blocking(built).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flagon.toml"), scaleout_manifest(example)).unwrap();

    let database_url = format!(
        "postgres://app:{PASSWORD}@127.0.0.1:{}/postgres?sslmode=disable",
        pg.port
    );
    let redis_url = format!("redis://127.0.0.1:{}/", redis.port);
    let session_key = "k".repeat(48);
    let pepper = "p".repeat(48);
    let env = [
        ("TODO_DATABASE_URL", database_url.as_str()),
        ("TODO_REDIS_URL", redis_url.as_str()),
        ("FLAGON_SESSION_KEY", session_key.as_str()),
        ("TODO_APIKEY_PEPPER", pepper.as_str()),
    ];

    // The migrations once, before any host starts: every host then finds none pending
    // (migrations take no lock, so three hosts must not race to apply them).
    let out = Command::new(env!("CARGO_BIN_EXE_flagon"))
        .arg("migrate")
        .arg(dir.path())
        .env("FLAGON_CACHE_DIR", cache_dir())
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flagon migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pg.psql("SELECT count(*) FROM _flagon_migrations"), "3");

    // The first host compiles the component into the shared cache; the others load it.
    let manifest = dir.path().join("flagon.toml");
    let first = BinServer::spawn(&manifest, &env, None).await;
    let (second, third) = tokio::join!(
        BinServer::spawn(&manifest, &env, None),
        BinServer::spawn(&manifest, &env, None)
    );
    let mut hosts = [first, second, third];
    let addrs: Vec<SocketAddr> = hosts.iter().map(|h| h.addr).collect();
    for h in &hosts {
        let log = h.log();
        assert!(
            !log.contains("migration applied"),
            "a host applied migrations: {log}"
        );
    }
    let nginx = Nginx::start(&addrs).await;
    let proxy = nginx.addr;

    // nginx sends `Host: flagon` (its upstream's name), which `allowed_hosts` refuses: only a
    // trusted proxy's `X-Forwarded-Host` lets the request in.
    let mut anon = Jar::default();
    for _ in 0..3 {
        let page = anon.get(proxy, "/login").await;
        assert!(page.text().contains("csrf_token"));
    }

    // A session made on host A works on B and C: the same user, and a CSRF token of a page
    // from A is good for a POST to B.
    let (a, b, c) = (addrs[0], addrs[1], addrs[2]);
    let mut alice = Jar::default();
    alice.sign_up(a, "alice").await;
    let from_a = alice.get(a, "/todos").await;
    let cookie_from_a = alice.cookie.clone();
    for host in [b, c] {
        let mut same = Jar {
            cookie: cookie_from_a.clone(),
            ..Jar::default()
        };
        let page = same.get(host, "/todos").await;
        assert!(page.text().contains("alice"), "on {host}: {}", page.text());
    }
    let r = alice
        .post_form(
            b,
            "/todos",
            &csrf_token(&from_a.text()),
            &[("title", "made on B")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let page = alice.get(c, "/todos").await;
    assert!(page.text().contains("made on B"), "{}", page.text());

    // Failed logins count in Redis, the same window on every host: 5 failures for one account
    // spread over A, B and C, and the sixth attempt (with the right password) is refused on C.
    // The window is fixed (multiples of 900 s since the epoch); a run that straddles its end
    // starts over with another account.
    let mut shared = false;
    for attempt in 0..2 {
        let victim = format!("victim{attempt}");
        let mut owner = Jar::default();
        owner.sign_up(a, &victim).await;
        let mut attacker = Jar {
            forwarded_for: Some(format!("198.51.100.{}", 10 + attempt)),
            ..Jar::default()
        };
        let mut remaining = Vec::new();
        for (i, host) in [a, b, c, a, b].into_iter().enumerate() {
            let r = attacker
                .log_in(host, &victim, &format!("wrong guess number {i}"))
                .await;
            assert_eq!(r.status, 422, "failure {i} on {host}: {}", r.text());
            let left: i64 = r
                .header("ratelimit-remaining")
                .expect("a RateLimit-Remaining header")
                .parse()
                .unwrap();
            remaining.push(left);
        }
        let r = attacker.log_in(c, &victim, PASSWORD_USER).await;
        let counted_once = remaining.windows(2).all(|w| w[1] == w[0] - 1);
        if counted_once && r.status == 429 {
            eprintln!(
                "scaleout: failed logins on A, B, C, A, B left {remaining:?}; the next on C: 429"
            );
            shared = true;
            break;
        }
        eprintln!(
            "scaleout: rate-limit attempt {attempt}: remaining {remaining:?}, then {} (a window \
             boundary?)",
            r.status
        );
    }
    assert!(shared, "failed logins are counted across the hosts");

    // The writers sign up and make an API key through nginx before the clock starts.
    let mut keys = Vec::new();
    for n in 0..WRITERS {
        let mut jar = Jar {
            forwarded_for: Some(format!("203.0.113.{}", n + 1)),
            ..Jar::default()
        };
        jar.sign_up(proxy, &format!("writer{n}")).await;
        keys.push(jar.api_key(proxy).await);
    }
    let setup_lines = nginx.access_log().lines().count();

    // The load, and host A killed with SIGKILL a third of the way through.
    let start = Instant::now();
    let deadline = start + LOAD_FOR;
    let sent = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = keys
        .into_iter()
        .enumerate()
        .map(|(n, key)| tokio::spawn(writer(proxy, n, key, start, deadline, sent.clone())))
        .collect();
    tokio::time::sleep(LOAD_FOR / 3).await;
    let victim = 0;
    let killed_at = start.elapsed();
    hosts[victim].child.kill().unwrap();
    let _ = hosts[victim].child.wait();
    let mut acked = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        let out = t.await.unwrap();
        acked.extend(out.acked);
        errors.extend(out.errors);
    }
    let ran = start.elapsed();
    errors.sort_by_key(|(at, _)| *at);

    // Every acknowledged write is in Postgres, once.
    let rows = pg.psql("SELECT id || ' ' || title FROM todos");
    let stored: HashSet<&str> = rows.lines().collect();
    let missing: Vec<_> = acked
        .iter()
        .filter(|(id, title)| !stored.contains(format!("{id} {title}").as_str()))
        .collect();
    let ids: HashSet<&str> = acked.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), acked.len(), "every acknowledged id is distinct");
    let load_rows = pg
        .psql("SELECT count(*) FROM todos WHERE title LIKE 'w%'")
        .parse::<usize>()
        .unwrap();

    // What nginx did during the load: which host answered, and the requests it moved to
    // another host after a refused connection.
    let log = nginx.access_log();
    let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
    let mut moved = 0;
    for line in log.lines().skip(setup_lines) {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 6 || f[3] != "/api/todos" {
            continue;
        }
        if f[4].contains(',') {
            moved += 1;
        }
        let last = f[4].rsplit(',').next().unwrap().trim().to_string();
        *per_host.entry(last).or_default() += 1;
    }
    // What nginx logged about the dead host.
    let nginx_log = nginx.error_log();
    let upstream_errors = |needle: &str| {
        nginx_log
            .lines()
            .filter(|l| l.contains(needle) && l.contains("upstream"))
            .count()
    };
    let (refused, closed, reset) = (
        upstream_errors("Connection refused"),
        upstream_errors("prematurely closed"),
        upstream_errors("reset by peer"),
    );
    let window_end = killed_at + FAILOVER_WINDOW;
    eprintln!(
        "scaleout: {} writes acknowledged by {WRITERS} writers in {ran:.1?} ({} rows written, {} \
         applied but not acknowledged); host A ({}) killed at {killed_at:.2?}; {} errors{}; \
         nginx answered per upstream {per_host:?}, {moved} moved to another host after a \
         failed connection; nginx logged {refused} refused connections, {closed} closed and \
         {reset} reset by the dead host; whole test {:.1?}",
        acked.len(),
        load_rows,
        load_rows.saturating_sub(acked.len()),
        addrs[victim],
        errors.len(),
        match (errors.first(), errors.last()) {
            (Some((first, _)), Some((last, _))) => format!(
                ", between {:.0?} and {:.0?} after the kill",
                first.saturating_sub(killed_at),
                last.saturating_sub(killed_at)
            ),
            _ => String::new(),
        },
        started.elapsed(),
    );
    for (at, e) in &errors {
        eprintln!("scaleout:   error at {at:.3?}: {e}");
    }
    assert!(
        missing.is_empty(),
        "acknowledged but not in Postgres: {missing:?}"
    );
    assert!(
        acked.len() > WRITERS * 10,
        "the load ran: {} writes acknowledged",
        acked.len()
    );
    assert!(
        errors
            .iter()
            .all(|(at, _)| *at >= killed_at && *at <= window_end),
        "errors outside the failover window ({killed_at:?} to {window_end:?}): {errors:?}\n\
         nginx: {nginx_log}"
    );
    for host in [addrs[1], addrs[2]] {
        assert!(
            per_host.get(&host.to_string()).copied().unwrap_or(0) > 0,
            "{host} served writes: {per_host:?}"
        );
    }

    // After the failover, alice's session (made on the dead host) still works through nginx,
    // on both survivors.
    for _ in 0..4 {
        let mut same = Jar {
            cookie: cookie_from_a.clone(),
            ..Jar::default()
        };
        let page = same.get(proxy, "/todos").await;
        assert!(page.text().contains("made on B"), "{}", page.text());
    }
    drop(nginx);
    drop(hosts);
}
