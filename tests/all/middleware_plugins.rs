//! `plugins/ratelimit` and `plugins/cors` over real HTTP: the limit holds exactly under
//! concurrent load and across two hosts sharing a real Redis; CORS preflights and credentials.

use std::sync::Arc;

use crate::harness::{Reply, Req, TestManifest, TestServer, program};
use crate::programs;
use crate::web::{Redis, SESSION_KEY};

fn manifest(middleware: &str) -> String {
    format!(
        r#"
[app]
name = "mwtest"

[session]
secret = "session_key"

[variables]
session_key = {{ file = "keys/session.key", secret = true }}

[kv.counter]
[kv.limits]

[components.web]
source = {web}
grants = {{ templates = true, session = true, kv = ["counter"] }}

[components.limit]
source = {ratelimit}
grants = {{ kv = ["limits"] }}
settings = {{ store = "limits", limit = 10, window_secs = 3600, by = ["client", "route"] }}

[components.cors]
source = {cors}
settings = {{ origins = ["https://app.example", "https://other.example"], methods = ["GET", "POST", "DELETE"], headers = ["content-type", "x-csrf-token"], expose_headers = ["x-request-id"], credentials = true, max_age_secs = 120 }}

{middleware}

[[routes]]
path = "/a"
methods = ["GET", "POST"]
component = "web"
name = "me.a"

[[routes]]
path = "/b"
component = "web"
name = "me.b"
"#,
        web = program(programs::WEB),
        ratelimit = program(programs::PLUGIN_RATELIMIT),
        cors = program(programs::PLUGIN_CORS),
    )
}

fn files() -> Vec<(&'static str, &'static str)> {
    vec![("keys/session.key", SESSION_KEY), ("templates/me.html", "")]
}

async fn serve(text: &str) -> TestServer {
    TestServer::serve(TestManifest::with_files(text, &files()), Default::default()).await
}

/// Send `n` GETs of `path` at once, spread over `servers`; the replies in any order.
async fn burst(servers: &[Arc<TestServer>], path: &'static str, n: usize) -> Vec<Reply> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let s = servers[i % servers.len()].clone();
            tokio::spawn(async move { s.get(path).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn check_exact(replies: &[Reply], limit: usize) {
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok.len(), limit, "exactly the limit passes");
    assert_eq!(ok.len() + limited.len(), replies.len(), "only 200 and 429");
    // Each passing request saw its own count.
    let mut remaining: Vec<u64> = ok
        .iter()
        .map(|r| r.header("ratelimit-remaining").unwrap().parse().unwrap())
        .collect();
    remaining.sort();
    assert_eq!(remaining, (0..limit as u64).collect::<Vec<_>>());
    for r in limited {
        assert_eq!(r.header("ratelimit-limit"), Some("10"));
        assert_eq!(r.header("ratelimit-remaining"), Some("0"));
        assert_eq!(r.header("ratelimit-policy"), Some("10;w=3600"));
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry), "{retry}");
        assert_eq!(r.header("retry-after"), r.header("ratelimit-reset"));
    }
}

#[tokio::test]
async fn the_rate_limit_holds_exactly_under_concurrent_requests() {
    let s = Arc::new(serve(&manifest("[[middleware]]\ncomponent = \"limit\"\n")).await);
    let replies = burst(std::slice::from_ref(&s), "/a", 40).await;
    check_exact(&replies, 10);
    // Counted per route: /b has its own budget.
    assert_eq!(s.get("/b").await.status, 200);
    assert_eq!(s.get("/a").await.status, 429);
}

#[tokio::test]
async fn the_rate_limit_holds_across_two_hosts_sharing_redis() {
    let redis = Redis::start().await;
    let text = manifest("[[middleware]]\ncomponent = \"limit\"\n")
        .replace(
            "[kv.limits]\n",
            "[kv.limits]\nbackend = \"redis\"\nurl = \"redis_url\"\n",
        )
        .replace(
            "[variables]\n",
            &format!(
                "[variables]\nredis_url = {{ default = \"redis://127.0.0.1:{}/\", secret = true }}\n",
                redis.port
            ),
        );
    let a = Arc::new(serve(&text).await);
    let b = Arc::new(serve(&text).await);
    let replies = burst(&[a.clone(), b.clone()], "/a", 40).await;
    check_exact(&replies, 10);
    assert_eq!(b.get("/a").await.status, 429);
    assert_eq!(a.get("/b").await.status, 200);
}

#[tokio::test]
async fn cors_preflights_credentials_and_vary() {
    let s = serve(&manifest("[[middleware]]\ncomponent = \"cors\"\n")).await;
    let preflight = |origin: &str, method: &str, headers: &str| {
        let mut r = Req::new("OPTIONS", "/a")
            .header("origin", origin)
            .header("access-control-request-method", method);
        if !headers.is_empty() {
            r = r.header("access-control-request-headers", headers);
        }
        r
    };
    let r = s
        .send(preflight(
            "https://app.example",
            "POST",
            "Content-Type, X-CSRF-Token",
        ))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, POST, DELETE")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type, x-csrf-token")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-max-age"), Some("120"));
    assert!(r.header("vary").unwrap().contains("Origin"));
    for bad in [
        preflight("https://evil.example", "POST", ""),
        preflight("https://app.example", "PUT", ""),
        preflight("https://app.example", "POST", "authorization"),
        preflight("null", "GET", ""),
        preflight("https://app.example.evil", "GET", ""),
    ] {
        let r = s.send(bad).await;
        assert_eq!(r.status, 403);
        assert!(r.header("access-control-allow-origin").is_none());
    }
    // A plain OPTIONS (not a preflight) still gets the host's answer.
    let r = s.send(Req::new("OPTIONS", "/a")).await;
    assert_eq!(
        (r.status, r.header("allow")),
        (204, Some("GET, POST, HEAD, OPTIONS"))
    );

    // Actual requests: the allowed origin is echoed with credentials; others get nothing.
    let r = s
        .send(Req::new("GET", "/a").header("origin", "https://other.example"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://other.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = s
        .send(Req::new("GET", "/a").header("origin", "https://evil.example"))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(r.header("access-control-allow-credentials").is_none());
    assert_eq!(r.header("vary"), Some("Origin"));
    // Same-origin (no Origin header) requests are untouched but for Vary.
    let r = s.get("/b").await;
    assert!(r.header("access-control-allow-origin").is_none());
}

#[test]
fn cors_refuses_a_wildcard_with_credentials() {
    let text = manifest("[[middleware]]\ncomponent = \"cors\"\n").replace(
        "origins = [\"https://app.example\", \"https://other.example\"]",
        "origins = [\"*\"]",
    );
    let e = format!(
        "{:#}",
        TestManifest::with_files(&text, &files())
            .load_sync()
            .err()
            .expect("refused")
    );
    assert!(e.contains("component `cors` refused its settings"), "{e}");
    assert!(e.contains("credentials"), "{e}");
}
