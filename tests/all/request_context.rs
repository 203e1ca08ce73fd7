//! A request's context across hosts: the id a trusted proxy gave it (`X-Request-Id`) and its W3C
//! `traceparent` are kept, written to the JSON access log, and sent on with the requests a
//! guest makes; a client that is not a trusted proxy can choose neither.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::harness::{BinServer, Req, program, send};
use crate::programs;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// An upstream on loopback that records the headers of every request it gets.
async fn upstream() -> (SocketAddr, Arc<Mutex<Vec<http::HeaderMap>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    record.lock().unwrap().push(req.headers().clone());
                    async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("up")))) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn manifest(upstream: SocketAddr, trusted: &str) -> String {
    format!(
        r#"
[app]
name = "context"

[server]
trusted_proxies = ["{trusted}"]

[components.hello]
source = {hello}
grants = {{ variables = ["greeting"], crypto = true, outbound = ["http://{upstream}"] }}

[variables]
greeting = {{ default = "hi" }}

[[routes]]
path = "/fetch"
component = "hello"
name = "fetch"
"#,
        hello = program(programs::HELLO),
    )
}

/// The JSON access-log line of the request with this id.
fn access_line(log: &str, request_id: &str) -> serde_json::Value {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["target"] == "flagon::access" && v["fields"]["request_id"] == request_id)
        .unwrap_or_else(|| panic!("no JSON access line for {request_id}; log:\n{log}"))
}

#[tokio::test]
async fn a_trusted_proxys_request_id_and_the_trace_are_logged_and_sent_on() {
    let (up, seen) = upstream().await;
    let server =
        BinServer::start_with(&manifest(up, "127.0.0.1"), &[("FLAGON_LOG_FORMAT", "json")]).await;
    let r = send(
        server.addr,
        Req::new("GET", &format!("/fetch?url=http://{up}/x"))
            .header("x-request-id", "edge-7f3a:42")
            .header("traceparent", PARENT)
            .header("tracestate", "vendor=abc"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "status=200 body=up");
    assert_eq!(r.header("x-request-id"), Some("edge-7f3a:42"));

    let headers = seen.lock().unwrap().pop().expect("the upstream was called");
    let traceparent = headers["traceparent"].to_str().unwrap();
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    assert_eq!(
        (fields[0], fields[1], fields[3]),
        ("00", TRACE_ID, "01"),
        "{traceparent}"
    );
    assert_ne!(
        fields[2], "00f067aa0ba902b7",
        "the parent is this request's span"
    );
    assert_eq!(fields[2].len(), 16);
    assert_eq!(headers["tracestate"], "vendor=abc");
    assert_eq!(headers["x-request-id"], "edge-7f3a:42");
    // The guest's own header went through as it set it.
    assert_eq!(headers["authorization"], "Bearer upstream-token-0123");

    // One JSON object per access line, with the ids.
    assert!(
        server
            .wait_for_log("edge-7f3a:42", std::time::Duration::from_secs(5))
            .await
    );
    let line = access_line(&server.log(), "edge-7f3a:42");
    assert_eq!(line["fields"]["trace_id"], TRACE_ID, "{line}");
    assert_eq!(line["fields"]["path"], "/fetch", "{line}");
    assert_eq!(line["fields"]["status"], 200, "{line}");
    assert_eq!(line["level"], "INFO", "{line}");
    // The query string (which may carry tokens) is not logged.
    assert!(!line.to_string().contains("url="), "{line}");

    // Without a traceparent, a new trace is started and still sent on.
    let r = send(
        server.addr,
        Req::new("GET", &format!("/fetch?url=http://{up}/y")),
    )
    .await;
    assert_eq!(r.status, 200);
    let own_id = r.header("x-request-id").unwrap().to_owned();
    assert_eq!(own_id.len(), 16, "{own_id}");
    let headers = seen.lock().unwrap().pop().unwrap();
    let traceparent = headers["traceparent"].to_str().unwrap();
    assert!(
        traceparent.starts_with("00-") && traceparent.ends_with("-00"),
        "{traceparent}"
    );
    assert!(!traceparent.contains(TRACE_ID));
    assert_eq!(headers["x-request-id"], own_id.as_str());
}

#[tokio::test]
async fn a_client_that_is_not_a_trusted_proxy_cannot_choose_the_request_id_or_trace() {
    let (up, seen) = upstream().await;
    // Only 10.0.0.1 is trusted; the test connects from 127.0.0.1.
    let server =
        BinServer::start_with(&manifest(up, "10.0.0.1"), &[("FLAGON_LOG_FORMAT", "json")]).await;
    let r = send(
        server.addr,
        Req::new("GET", &format!("/fetch?url=http://{up}/x"))
            .header("x-request-id", "chosen-by-client")
            .header("traceparent", PARENT),
    )
    .await;
    assert_eq!(r.status, 200);
    let id = r.header("x-request-id").unwrap().to_owned();
    assert_ne!(id, "chosen-by-client");
    assert_eq!(id.len(), 16);
    let headers = seen.lock().unwrap().pop().unwrap();
    assert_eq!(headers["x-request-id"], id.as_str());
    // Nor its trace: a new one is started, so it cannot set downstream sampling or
    // `tracestate` either.
    let traceparent = headers["traceparent"].to_str().unwrap();
    assert!(!traceparent.contains(TRACE_ID), "{traceparent}");
    assert!(traceparent.ends_with("-00"), "{traceparent}");
    assert!(headers.get("tracestate").is_none());
    assert!(
        server
            .wait_for_log(&id, std::time::Duration::from_secs(5))
            .await
    );
    assert!(
        !server.log().contains("chosen-by-client"),
        "{}",
        server.log()
    );
    let line = access_line(&server.log(), &id);
    assert_eq!(line["fields"]["status"], 200);
}
