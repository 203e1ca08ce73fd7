//! Routing, parameters, methods and the SDK's request/response helpers, over real HTTP.

use crate::app_manifest;
use crate::harness::{Req, TestServer};

#[tokio::test]
async fn text_params_and_catch_all() {
    let s = TestServer::start(&app_manifest("")).await;
    let r = s.get("/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello from wasm"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("x-request-id").map(str::len), Some(16));

    let r = s.get("/greet/w%C3%B6rld%20x").await;
    assert_eq!(r.text(), "Hello, wörld x!");
    let r = s.get("/files/css/site.css").await;
    assert_eq!(r.text(), "file=css/site.css");
    // A parameter that is not UTF-8 once decoded is the client's error.
    assert_eq!(s.get("/greet/%FF").await.status, 400);
}

#[tokio::test]
async fn not_found_method_not_allowed_head_and_options() {
    let s = TestServer::start(&app_manifest("")).await;
    let r = s.get("/nope").await;
    assert_eq!(r.status, 404);
    let id = r.header("x-request-id").unwrap().to_string();
    assert_eq!(r.text(), format!("404 Not Found\nrequest id: {id}\n"));
    // Trailing slashes are distinct paths.
    assert_eq!(s.get("/greet/x/").await.status, 404);

    let r = s.send(Req::new("DELETE", "/")).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    let r = s.send(Req::new("GET", "/echo")).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST, PUT, OPTIONS"));

    let r = s.send(Req::new("HEAD", "/greet/abc")).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("11"));

    let r = s.send(Req::new("OPTIONS", "/inspect")).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("allow"),
        Some("GET, POST, DELETE, PATCH, HEAD, OPTIONS")
    );
}

#[tokio::test]
async fn query_json_and_form_bodies() {
    let s = TestServer::start(&app_manifest("")).await;
    let r = s.get("/search?q=wasm+host&page=3").await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), r#"{"q":"wasm host","page":3}"#);
    assert_eq!(s.get("/search?q=x").await.text(), r#"{"q":"x","page":1}"#);
    let r = s.get("/search?page=2").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("invalid query string"), "{}", r.text());

    let json = |body: &str| {
        Req::new("POST", "/echo")
            .header("content-type", "application/json")
            .body(body.to_string())
    };
    let r = s.send(json(r#"{"name":"ada","times":2}"#)).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, r#"{"name":"ADA","times":3}"#)
    );
    let r = s.send(json(r#"{"name":"ada"}"#)).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("missing field `times`"), "{}", r.text());
    let r = s.send(Req::new("PUT", "/echo").body("{}")).await;
    assert_eq!(r.status, 415);

    let r = s
        .send(
            Req::new("POST", "/form")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("name=grace+hopper&times=7"),
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (200, "grace hopper x7"));
    let r = s
        .send(
            Req::new("POST", "/form")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("name=x&times=lots"),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn request_context_reaches_the_guest() {
    let s = TestServer::start(&app_manifest("")).await;
    let r = s
        .send(
            Req::new("PATCH", "/inspect?a=1&b=%20")
                .header("user-agent", "flagon-test")
                .body("12345"),
        )
        .await;
    assert_eq!(
        r.text(),
        "method=PATCH path=/inspect query=a=1&b=%20 client-set=true id-set=true ua=flagon-test body-len=5"
    );
    assert_eq!(r.header("x-custom"), Some("yes"));
}

#[tokio::test]
async fn redirects_statuses_and_errors() {
    let s = TestServer::start(&app_manifest("")).await;
    let r = s.get("/redirect").await;
    assert_eq!((r.status, r.header("location")), (303, Some("/")));
    let r = s.get("/teapot").await;
    assert_eq!((r.status, r.text().as_str()), (418, "short and stout\n"));
    // A handler's 5xx message goes to the log, never to the client.
    let r = s.get("/fail").await;
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("hunter2"), "{}", r.text());
}

#[tokio::test]
async fn every_request_gets_a_fresh_instance() {
    let s = TestServer::start(&app_manifest("")).await;
    for _ in 0..5 {
        assert_eq!(s.get("/counter").await.text(), "1");
    }
}

#[tokio::test]
async fn http2_with_prior_knowledge() {
    let s = TestServer::start(&app_manifest("")).await;
    let r = s.send(Req::new("GET", "/greet/h2").http2()).await;
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!((r.status, r.text().as_str()), (200, "Hello, h2!"));
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    let s = TestServer::start(&app_manifest("")).await;
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for i in 0..20 {
        let req = http::Request::get(format!("/greet/{i}"))
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("Hello, {i}!"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let s = TestServer::start(&app_manifest("")).await;
    assert_eq!(s.app.router().routes().len(), 16);
    let addr = s.addr;
    let slow = tokio::spawn(crate::harness::send(addr, Req::new("GET", "/slow?ms=1500")));
    // Generous: the request must be in flight (not still in the accept backlog) at shutdown.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    s.shutdown().await;
    let r = slow.await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "done"));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
