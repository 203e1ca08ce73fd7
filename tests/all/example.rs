//! `examples/hello` builds with `flagon build` and serves what its README promises.

use std::path::Path;
use std::process::Command;

use crate::harness::{BinServer, Req, send};

#[tokio::test]
async fn hello_example_builds_and_serves() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    let build = tokio::task::spawn_blocking({
        let example = example.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_flagon"))
                .arg("build")
                .arg(&example)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(build.status.success(), "flagon build failed:\n{stderr}");
    assert!(
        stderr.contains("[1/1] building `hello`") && stderr.contains("[1/1] built `hello`"),
        "{stderr}"
    );

    // The README runs the example in development mode (ephemeral session key).
    let server =
        BinServer::spawn_with_args(&example, &["--dev"], &[("HELLO_GREETING", "Ahoy")], None).await;
    let r = server.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        r.text().contains("Hello from a sandboxed Wasm component!"),
        "{}",
        r.text()
    );
    let r = server.get("/static/style.css").await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("text/css; charset=utf-8"))
    );
    let r = server.get("/no/such/page").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("404 Not Found"), "{}", r.text());

    // Log in through the template's form: cookie + CSRF token, then the flash.
    let r = server.get("/login").await;
    let cookie = r
        .header("set-cookie")
        .expect("the login form starts a session")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("session="), "{cookie}");
    let page = r.text();
    let token = page
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form carries a CSRF token")
        .to_string();
    let form = |body: String| {
        Req::new("POST", "/login")
            .header("cookie", &cookie)
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let r = send(server.addr, form("username=Ferris".into())).await;
    assert_eq!(r.status, 403);
    let r = send(
        server.addr,
        form(format!("csrf_token={token}&username=Ferris")),
    )
    .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/")),
        "{}",
        r.text()
    );
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap();
    let r = send(server.addr, Req::new("GET", "/").header("cookie", cookie)).await;
    assert!(r.text().contains("Welcome, Ferris!"), "{}", r.text());
    assert_eq!(server.get("/hello/Ferris").await.text(), "Ahoy, Ferris!\n");
    assert_eq!(
        server.get("/api/add?a=2&b=40").await.text(),
        r#"{"a":2,"b":40,"sum":42}"#
    );
    assert_eq!(server.get("/api/add?a=2").await.status, 400);
    let r = send(
        server.addr,
        Req::new("POST", "/api/echo")
            .header("content-type", "application/json")
            .body(r#"{"message":"wasm","shout":true}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .starts_with(r#"{"message":"WASM","length":4,"request_id":""#),
        "{}",
        r.text()
    );
}
