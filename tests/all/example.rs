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

    let server = BinServer::spawn(&example, &[("HELLO_GREETING", "Ahoy")], None).await;
    let r = server.get("/").await;
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .starts_with("Hello from a sandboxed Wasm component!")
    );
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
