//! Test harness: start a real server on 127.0.0.1:0 for a manifest, and talk HTTP to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use flagon::{App, CacheDir, LoadOptions, Manifest, Server};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Shared precompiled-component cache for the test run, so each program compiles once.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("flagon-test-cache")
}

/// A manifest in a temporary directory.
pub struct TestManifest {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TestManifest {
    pub fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flagon.toml");
        std::fs::write(&path, text).unwrap();
        Self { dir, path }
    }

    pub async fn load(&self) -> anyhow::Result<App> {
        self.load_with(LoadOptions::default()).await
    }

    /// A manifest with extra files (templates, static files, keys) beside it.
    pub fn with_files(text: &str, files: &[(&str, &str)]) -> Self {
        let m = Self::new(text);
        for (path, contents) in files {
            let p = m.dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, contents).unwrap();
        }
        m
    }

    /// `load` for tests that are not async.
    pub fn load_sync(&self) -> anyhow::Result<App> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(self.load())
    }

    /// Load with `options`, using the test run's shared component cache.
    pub async fn load_with(&self, options: LoadOptions) -> anyhow::Result<App> {
        let manifest = Manifest::load(&self.path)?;
        App::load(
            &manifest,
            &LoadOptions {
                cache: CacheDir::Path(cache_dir()),
                ..options
            },
        )
        .await
    }
}

/// A running server; shut down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _manifest: TestManifest,
}

impl TestServer {
    pub async fn start(manifest_text: &str) -> Self {
        Self::serve(TestManifest::new(manifest_text), LoadOptions::default()).await
    }

    /// Serve `manifest` loaded with `options`.
    pub async fn serve(manifest: TestManifest, options: LoadOptions) -> Self {
        let app = Arc::new(manifest.load_with(options).await.expect("test app loads"));
        let server = Server::bind(app.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            app,
            stop: Some(stop),
            task: Some(task),
            _manifest: manifest,
        }
    }

    /// Stop accepting and wait for in-flight requests.
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Req::new("GET", path)).await
    }

    pub async fn send(&self, req: Req) -> Reply {
        send(self.addr, req).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A request to send.
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub http2: bool,
}

impl Req {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            http2: false,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }
    pub fn http2(mut self) -> Self {
        self.http2 = true;
        self
    }
}

/// A response as received.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub version: http::Version,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Send one request on a new connection (HTTP/1.1, or HTTP/2 with prior knowledge).
pub async fn send(addr: SocketAddr, req: Req) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let io = TokioIo::new(stream);
    // HTTP/1 in origin-form (`GET /path`), as browsers send it; HTTP/2 needs the authority.
    let uri = if req.http2 {
        format!("http://{addr}{}", req.path)
    } else {
        req.path.clone()
    };
    let mut builder = http::Request::builder()
        .method(req.method.as_str())
        .uri(uri);
    if !req.http2
        && !req
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"))
    {
        builder = builder.header("host", addr.to_string());
    }
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    let request = builder.body(Full::new(Bytes::from(req.body))).unwrap();
    let response = if req.http2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    };
    let status = response.status().as_u16();
    let version = response.version();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
        version,
    }
}

/// [`send`], or `None` if the connection failed (for tests that kill the server mid-run).
pub async fn try_send(addr: SocketAddr, req: Req) -> Option<Reply> {
    tokio::spawn(send(addr, req)).await.ok()
}

/// The path of a guest test program, as a TOML string.
pub fn program(path: &str) -> String {
    format!("{path:?}")
}

/// A `flagon serve` child process on 127.0.0.1:0, killed when dropped.
pub struct BinServer {
    pub addr: SocketAddr,
    pub child: std::process::Child,
    pub log: Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    _manifest: Option<TestManifest>,
}

impl BinServer {
    pub async fn start(manifest_text: &str) -> Self {
        Self::start_with(manifest_text, &[]).await
    }

    pub async fn start_with(manifest_text: &str, env: &[(&str, &str)]) -> Self {
        let manifest = TestManifest::new(manifest_text);
        let path = manifest.path.clone();
        Self::spawn(&path, env, Some(manifest)).await
    }

    /// Serve the app at `path` (a directory or manifest file).
    pub async fn spawn(path: &Path, env: &[(&str, &str)], manifest: Option<TestManifest>) -> Self {
        Self::spawn_with_args(path, &[], env, manifest).await
    }

    /// `spawn` with extra `flagon serve` arguments (e.g. `--dev`).
    pub async fn spawn_with_args(
        path: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        manifest: Option<TestManifest>,
    ) -> Self {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_flagon"))
            .arg("serve")
            .arg(path)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("FLAGON_CACHE_DIR", cache_dir())
            .env("FLAGON_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    // Plain or JSON log lines (`FLAGON_LOG_FORMAT=json`, where a quote ends it).
                    let addr: String = rest
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = tx.send(addr);
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = tokio::task::spawn_blocking(move || {
            rx.recv_timeout(std::time::Duration::from_secs(60))
        })
        .await
        .unwrap()
        .unwrap_or_else(|_| panic!("flagon serve did not start; log:\n{}", log.lock().unwrap()));
        Self {
            addr: addr.parse().unwrap(),
            child,
            log,
            reader: Some(reader),
            _manifest: manifest,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        send(self.addr, Req::new("GET", path)).await
    }

    /// The server process's resident memory, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait (up to `timeout`) until the log contains `needle`.
    pub async fn wait_for_log(&self, needle: &str, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    }

    /// Wait for the process to exit and for its log to be read to the end.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.log())
    }
}

impl Drop for BinServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of `r` as JSON; panics with the status and body when it is not.
pub fn json_of(r: &Reply) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {} {}", r.status, r.text()))
}

/// The `name=value` of the cookie `r` sets.
pub fn cookie_of(r: &Reply) -> String {
    r.header("set-cookie")
        .unwrap_or_else(|| panic!("no set-cookie: {} {}", r.status, r.text()))
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// The CSRF token of the (first) form on `page`.
pub fn csrf_token(page: &str) -> String {
    page.split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the page carries no CSRF token:\n{page}"))
        .to_string()
}

/// A same-origin urlencoded form POST with `cookie`.
pub fn post_form(path: &str, cookie: &str, body: String) -> Req {
    Req::new("POST", path)
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

/// A JSON POST.
pub fn post_json(path: &str, body: &str) -> Req {
    Req::new("POST", path)
        .header("content-type", "application/json")
        .body(body.to_string())
}
