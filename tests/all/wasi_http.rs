//! Standard `wasi:http/proxy` components on a route: the `wasi-http` test program (built with
//! the `wasi` crate, importing nothing of Flagon's) served behind Flagon's routing, host checks,
//! limits and security headers, one fresh instance per request; its outgoing requests go
//! through `grants.outbound` and the SSRF checks of `outbound-http`.

use crate::harness::{Req, TestManifest, TestServer, program};
use crate::{app_manifest, programs};

fn manifest(component: &str) -> String {
    format!(
        r#"
[app]
name = "wasi-http"

[server]
max_body = "64KiB"
allowed_hosts = ["127.0.0.1"]

[components.proxy]
source = {source}
limits = {{ memory = "16MiB", timeout = "1s" }}
{component}

[[routes]]
path = "/"
component = "proxy"

[[routes]]
path = "/headers"
component = "proxy"

[[routes]]
path = "/echo"
methods = ["POST"]
component = "proxy"

[[routes]]
path = "/{{what}}"
component = "proxy"
"#,
        source = program(programs::WASI_HTTP),
    )
}

#[tokio::test]
async fn a_wasi_http_component_is_served_behind_routing_limits_and_headers() {
    // No `world` key: the component is recognised by its `wasi:http/incoming-handler` export.
    let s = TestServer::start(&manifest("")).await;
    let r = s.get("/").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello from rust wasi:http");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    // The host's security headers and request id, as on any handler's response.
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.header("content-security-policy").is_some());
    assert!(r.header("x-request-id").is_some());

    // Flagon routes before the component runs: an unknown path or method never reaches it.
    assert_eq!(s.get("/no/such/path").await.status, 404);
    let r = s.send(Req::new("PUT", "/echo")).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
    // The host check runs first too.
    let r = s
        .send(Req::new("GET", "/").header("host", "evil.example"))
        .await;
    assert_eq!(r.status, 400);
    // HEAD is answered by the GET route, without the body.
    let r = s.send(Req::new("HEAD", "/")).await;
    assert_eq!((r.status, r.body.len()), (200, 0));

    // The request as the component sees it.
    let r = s
        .send(Req::new("GET", "/headers?x=1&y=%20").header("x-custom", "yes"))
        .await;
    assert_eq!(r.status, 200);
    let seen: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["path"], "/headers?x=1&y=%20");
    assert_eq!(seen["scheme"], "http");
    assert_eq!(seen["authority"], format!("127.0.0.1:{}", s.addr.port()));
    let headers = seen["headers"].as_array().unwrap();
    assert!(
        headers.iter().any(|h| h[0] == "x-custom" && h[1] == "yes"),
        "{seen}"
    );

    // The body, raw, within `max_body`.
    let r = s
        .send(
            Req::new("POST", "/echo")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("a=1&b=two"),
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (200, "a=1&b=two"));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let r = s
        .send(Req::new("POST", "/echo").body(vec![b'x'; 65 * 1024]))
        .await;
    assert_eq!(r.status, 413);

    // A body streamed after the head (more than the host buffers per write) arrives whole.
    let r = s.get("/stream?kib=512").await;
    assert_eq!((r.status, r.body.len()), (200, 512 * 1024));
    assert!(r.body.iter().all(|&b| b == b'x'));

    // Misbehaviour is contained: 5xx for that request only.
    // A body past the component's memory limit (16MiB) is cut off.
    assert_eq!(s.get("/stream?kib=20480").await.status, 500);
    assert_eq!(s.get("/trap").await.status, 500);
    assert_eq!(s.get("/spin").await.status, 504);
    assert_eq!(s.get("/no-response").await.status, 500);
    // Its response passes the same checks as a handler's: no open redirect.
    let r = s.get("/bad-header").await;
    assert_eq!(r.status, 500);
    assert!(r.header("location").is_none());
    assert!(!r.text().contains("panics on purpose"), "{}", r.text());

    let r = s.get("/").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello from rust wasi:http")
    );
}

#[tokio::test]
async fn wasi_http_outgoing_requests_go_through_grants_outbound() {
    let upstream = TestServer::start(&app_manifest("")).await;
    let origin = format!("http://127.0.0.1:{}", upstream.addr.port());
    let fetch = |s: &TestServer, url: &str| {
        let q = percent_encoding::utf8_percent_encode(url, percent_encoding::NON_ALPHANUMERIC);
        let (addr, path) = (s.addr, format!("/fetch?url={q}"));
        async move { crate::harness::send(addr, Req::new("GET", &path)).await }
    };

    // Without `grants.outbound`, nothing goes out.
    let closed = TestServer::start(&manifest("")).await;
    let r = fetch(&closed, &format!("{origin}/")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());

    let open = TestServer::start(&manifest(&format!(
        "grants = {{ outbound = [\"{origin}\"] }}\nworld = \"wasi-http\""
    )))
    .await;
    let r = fetch(&open, &format!("{origin}/")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "200\nhello from wasm"));
    // A redirect comes back to the component unfollowed, as wasi:http clients expect.
    let r = fetch(&open, &format!("{origin}/redirect")).await;
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("30"), "{}", r.text());
    // Everything else is refused, as for `outbound-http`: other names, ports and addresses of
    // the same machine, other schemes, cloud metadata.
    let port = upstream.addr.port();
    for url in [
        format!("http://localhost:{port}/"),
        format!("http://127.0.0.1:{}/", port + 1),
        format!("http://[::1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("https://127.0.0.1:{port}/"),
    ] {
        let r = fetch(&open, &url).await;
        assert_eq!(r.status, 502, "{url}: {}", r.text());
        assert!(!r.text().contains("hello from wasm"), "{url}: {}", r.text());
    }
}

#[tokio::test]
async fn wasi_http_is_only_for_wasi_http_components() {
    // Loaded as a Flagon handler, the same component is refused for importing wasi:http.
    let err = TestManifest::new(&manifest("world = \"flagon\""))
        .load()
        .await
        .err()
        .expect("refused");
    let err = format!("{err:#}");
    assert!(err.contains("refusing to load component `proxy`"), "{err}");
    assert!(err.contains("wasi:http"), "{err}");
    assert!(err.contains("world = \"wasi-http\""), "{err}");

    // A wasi:http component answers routes; it cannot be middleware.
    let text = format!(
        "{}\n[[middleware]]\ncomponent = \"proxy\"\nroutes = [\"/\"]\n",
        manifest("world = \"wasi-http\"")
    );
    let err = format!("{:#}", TestManifest::new(&text).load().await.err().unwrap());
    assert!(err.contains("components.proxy.world"), "{err}");
}

/// Build a wasi:http component from another toolchain with its `build.sh`, into a temporary
/// directory.
fn build_with(script: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("proxy.wasm");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let built = std::process::Command::new("sh")
        .arg(&script)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&built.stderr)
    );
    (dir, out)
}

/// The same routes served from a wasi:http component another toolchain built, unchanged.
async fn serves_unchanged(wasm: &std::path::Path, lang: &str) {
    let upstream = TestServer::start(&app_manifest("")).await;
    let origin = format!("http://127.0.0.1:{}", upstream.addr.port());
    let text = manifest(&format!("grants = {{ outbound = [\"{origin}\"] }}"))
        .replace(
            &program(programs::WASI_HTTP),
            &program(wasm.to_str().unwrap()),
        )
        .replace(
            "memory = \"16MiB\", timeout = \"1s\"",
            "memory = \"64MiB\", timeout = \"10s\"",
        );
    let s = TestServer::start(&text).await;
    let r = s.get("/").await;
    assert_eq!(
        (r.status, r.text()),
        (200, format!("hello from {lang} wasi:http"))
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let r = s
        .send(Req::new("GET", "/headers?q=1").header("x-custom", "yes"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(seen["method"], "GET", "{seen}");
    // Each toolchain's test component names its fields in its own way.
    let text = seen.to_string();
    assert!(text.contains("\"/headers?q=1\""), "{seen}");
    assert!(text.contains("x-custom"), "{seen}");
    let fetch = |url: String| {
        let q = percent_encoding::utf8_percent_encode(&url, percent_encoding::NON_ALPHANUMERIC);
        let path = format!("/fetch?url={q}");
        let addr = s.addr;
        async move { crate::harness::send(addr, Req::new("GET", &path)).await }
    };
    let r = fetch(format!("{origin}/")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "200\nhello from wasm"));
    let r = fetch(format!("http://localhost:{}/", upstream.addr.port())).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(!r.text().contains("hello from wasm"), "{}", r.text());
    assert_eq!(s.get("/no/such/path").await.status, 404);
}

#[tokio::test]
async fn a_componentize_py_wasi_http_component_runs_unchanged() {
    let (_dir, wasm) = build_with("../tests/wasi-http/python/build.sh");
    serves_unchanged(&wasm, "python").await;
}

#[tokio::test]
async fn a_jco_wasi_http_component_runs_unchanged() {
    let (_dir, wasm) = build_with("../tests/wasi-http/js/build.sh");
    serves_unchanged(&wasm, "js").await;
}
