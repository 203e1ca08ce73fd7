//! Handlers in C: `examples/hello-c` builds with `flagon build` (clang for wasm32-wasi, the SDK's
//! `flagon-c` tool) and answers every route as `examples/hello` does, and `tests/programs-c/sdk`
//! drives the C SDK's wider calls (kv, crypto, sql, config, settings, session, outbound HTTP, the
//! request accessors, JSON) through a real host over real HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::harness::{
    BinServer, Req, TestManifest, cookie_of, csrf_token, json_of, post_form, post_json, send,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `flagon build <dir>`, once per directory and test run (the tests share the builds).
async fn flagon_build(dir: &'static str) -> PathBuf {
    static HELLO: OnceLock<String> = OnceLock::new();
    static SDK: OnceLock<String> = OnceLock::new();
    let cell = match dir {
        "examples/hello-c" => &HELLO,
        "tests/programs-c/sdk" => &SDK,
        other => panic!("no build cell for {other}"),
    };
    let path = repo(dir);
    let stderr = tokio::task::spawn_blocking({
        let path = path.clone();
        move || {
            cell.get_or_init(|| {
                let out = Command::new(env!("CARGO_BIN_EXE_flagon"))
                    .arg("build")
                    .arg(&path)
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                assert!(
                    out.status.success(),
                    "flagon build {dir} failed (the C toolchain: apt-get install make clang-19 \
                     lld-19 wasi-libc libclang-rt-19-dev-wasm32):\n{stderr}"
                );
                stderr
            })
            .clone()
        }
    })
    .await
    .unwrap();
    assert!(stderr.contains("built `"), "{stderr}");
    path
}

async fn serve_hello_c() -> BinServer {
    let example = flagon_build("examples/hello-c").await;
    assert!(example.join("build/hello.wasm").exists());
    BinServer::spawn_with_args(&example, &["--dev"], &[("HELLO_GREETING", "Ahoy")], None).await
}

#[tokio::test]
async fn hello_c_example_builds_and_serves_every_route() {
    let server = serve_hello_c().await;

    // The Rust example's request tests pass against the C example unchanged.
    let example = repo("examples/hello-c");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_flagon"))
            .arg("test")
            .arg(&example)
            .env("FLAGON_CACHE_DIR", crate::harness::cache_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "flagon test failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(" 0 failed") || stderr.contains(" 0 failed"),
        "{stdout}\n{stderr}"
    );

    // `/`: the index page from templates, signed out.
    let r = server.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    assert!(
        page.contains("Hello from a sandboxed Wasm component!"),
        "{page}"
    );
    assert!(page.contains("to see the session at work"), "{page}");
    assert!(page.contains("href=\"&#47;hello&#47;Ferris\""), "{page}");
    let r = server.get("/static/style.css").await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("text/css; charset=utf-8"))
    );
    let r = server.get("/no/such/page").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("404 Not Found"), "{}", r.text());

    // `/login`: the form, with the session cookie and a CSRF token.
    let r = server.get("/login").await;
    assert_eq!(r.status, 200);
    let cookie = cookie_of(&r);
    assert!(cookie.starts_with("session="), "{cookie}");
    let token = csrf_token(&r.text());
    // Without the token the host refuses the post before the guest runs.
    let r = send(
        server.addr,
        post_form("/login", &cookie, "username=Ferris".into()),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("403"), "{}", r.text());
    // A name that is too long: back to the form, with an error flash.
    let long = "x".repeat(33);
    let r = send(
        server.addr,
        post_form(
            "/login",
            &cookie,
            format!("csrf_token={token}&username={long}"),
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/login")),
        "{}",
        r.text()
    );
    let flashed = cookie_of(&r);
    let r = send(
        server.addr,
        Req::new("GET", "/login").header("cookie", &flashed),
    )
    .await;
    assert!(
        r.text()
            .contains("class=\"flash error\">Choose a name of 1 to 32 characters.</p>"),
        "{}",
        r.text()
    );
    // A good name (trimmed): signed in, with a welcome flash.
    let r = send(
        server.addr,
        post_form(
            "/login",
            &cookie,
            format!("csrf_token={token}&username=++Ferris+"),
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/")),
        "{}",
        r.text()
    );
    let cookie = cookie_of(&r);
    let r = send(server.addr, Req::new("GET", "/").header("cookie", &cookie)).await;
    let page = r.text();
    assert!(
        page.contains("class=\"flash success\">Welcome, Ferris!</p>"),
        "{page}"
    );
    assert!(
        page.contains("Ahoy, <strong>Ferris</strong>. You are signed in."),
        "{page}"
    );
    // The flash was taken: the next page (with the cookie that says so) has none.
    let cookie = cookie_of(&r);
    let r = send(server.addr, Req::new("GET", "/").header("cookie", &cookie)).await;
    let page = r.text();
    assert!(!page.contains("Welcome, Ferris!"), "{page}");
    assert!(page.contains("<strong>Ferris</strong>"), "{page}");
    // The template escapes what came from the form.
    let r = send(
        server.addr,
        Req::new("GET", "/login").header("cookie", &cookie),
    )
    .await;
    let token = csrf_token(&r.text());
    let r = send(
        server.addr,
        post_form(
            "/login",
            &cookie,
            format!("csrf_token={token}&username=%3Cb%3Ebold%3C%2Fb%3E"),
        ),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = cookie_of(&r);
    let r = send(server.addr, Req::new("GET", "/").header("cookie", &cookie)).await;
    assert!(
        r.text().contains("Welcome, &lt;b&gt;bold&lt;&#47;b&gt;!"),
        "{}",
        r.text()
    );

    // `/logout`: the index page's form, then signed out with an info flash.
    let cookie = cookie_of(&r);
    let token = csrf_token(&r.text());
    let r = send(
        server.addr,
        post_form("/logout", &cookie, format!("csrf_token={token}")),
    )
    .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/")),
        "{}",
        r.text()
    );
    let cookie = cookie_of(&r);
    let r = send(server.addr, Req::new("GET", "/").header("cookie", &cookie)).await;
    let page = r.text();
    assert!(
        page.contains("class=\"flash info\">You are signed out.</p>"),
        "{page}"
    );
    assert!(page.contains("to see the session at work"), "{page}");

    // `/hello/{name}`: text with the granted variable; the parameter arrives decoded.
    let r = server.get("/hello/Ferris").await;
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "Ahoy, Ferris!\n");
    assert_eq!(
        server.get("/hello/J%C3%BCrgen").await.text(),
        "Ahoy, Jürgen!\n"
    );

    // `/api/add`: JSON out, a 400 for a bad query.
    let r = server.get("/api/add?a=2&b=40").await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), r#"{"a":2,"b":40,"sum":42}"#);
    assert_eq!(
        server.get("/api/add?b=-2&a=-40").await.text(),
        r#"{"a":-40,"b":-2,"sum":-42}"#
    );
    let r = server.get("/api/add?a=2").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("missing field `b`"), "{}", r.text());
    assert_eq!(server.get("/api/add?a=two&b=2").await.status, 400);
    let r = server.get("/api/add?a=9223372036854775807&b=1").await;
    assert_eq!(
        (r.status, r.text()),
        (400, "the sum does not fit in 64 bits\n".to_string())
    );

    // `/api/echo`: JSON in and out.
    let r = send(
        server.addr,
        post_json("/api/echo", r#"{"message":"wasm","shout":true}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let id = r.header("x-request-id").unwrap().to_string();
    assert_eq!(
        r.text(),
        format!(r#"{{"message":"WASM","length":4,"request_id":"{id}"}}"#)
    );
    let r = send(
        server.addr,
        post_json(
            "/api/echo",
            r#"{"message":"gr\u00fcn \"q\"\n","shout":true}"#,
        ),
    )
    .await;
    assert_eq!(json_of(&r)["message"], "GRÜN \"Q\"\n");
    assert_eq!(json_of(&r)["length"], 9);
    // A NUL inside the message survives: the SDK keeps lengths, not just C strings.
    let r = send(
        server.addr,
        post_json("/api/echo", r#"{"message":"a\u0000b","shout":true}"#),
    )
    .await;
    assert_eq!(
        (
            json_of(&r)["message"].clone(),
            json_of(&r)["length"].clone()
        ),
        (json!("A\u{0}B"), json!(3))
    );
    let r = send(
        server.addr,
        post_json("/api/echo", r#"{"message":"héllo"}"#),
    )
    .await;
    assert_eq!(
        (
            json_of(&r)["message"].clone(),
            json_of(&r)["length"].clone()
        ),
        (json!("héllo"), json!(5))
    );
    let r = send(
        server.addr,
        Req::new("POST", "/api/echo")
            .header("content-type", "text/plain")
            .body("hi"),
    )
    .await;
    assert_eq!(r.status, 415);
    let r = send(server.addr, post_json("/api/echo", r#"{"message":"#)).await;
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("invalid JSON body: "), "{}", r.text());
    let r = send(server.addr, post_json("/api/echo", r#"{"shout":true}"#)).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("missing field `message`"), "{}", r.text());

    // The guest's log lines reach the host's log, with the request's id.
    assert!(
        server
            .wait_for_log("greeting Ferris", std::time::Duration::from_secs(5))
            .await,
        "{}",
        server.log()
    );
    assert!(server.log().contains("signed in"), "{}", server.log());
}

/// The SDK test app, served with `grants.outbound` pointed at `upstream` (and the built
/// component named by its absolute path, the data in a temporary directory).
async fn serve_sdk_app(upstream: &str) -> BinServer {
    let dir = flagon_build("tests/programs-c/sdk").await;
    let manifest = std::fs::read_to_string(dir.join("flagon.toml")).unwrap();
    let source = dir.join("build/sdk.wasm");
    let manifest = manifest
        .replace(
            "source = \"build/sdk.wasm\"",
            &format!("source = {:?}", source.display().to_string()),
        )
        .replace("build = \"make\"\n", "")
        .replace(
            "outbound = [\"http://127.0.0.1:9\"]",
            &format!("outbound = [\"{upstream}\"]"),
        );
    assert!(manifest.contains(upstream), "{manifest}");
    let manifest = TestManifest::new(&manifest);
    let path = manifest.path.clone();
    BinServer::spawn_with_args(
        &path,
        &["--dev"],
        &[("SDK_UPSTREAM", upstream)],
        Some(manifest),
    )
    .await
}

#[tokio::test]
async fn c_sdk_reaches_every_host_interface() {
    let hello = serve_hello_c().await;
    let upstream = format!("http://127.0.0.1:{}", hello.addr.port());
    let server = serve_sdk_app(&upstream).await;

    // kv: strings, bytes with NULs, counters, TTLs, listing, deleting, errors.
    let r = server.get("/kv").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let kv = json_of(&r);
    assert_eq!(kv["get"], "hi");
    assert_eq!(kv["exists"], true);
    assert_eq!(kv["hits"], 4);
    assert_eq!(kv["window"], 1);
    assert_eq!(kv["binary_ok"], true);
    assert_eq!(
        kv["keys"],
        json!(["bin", "greeting", "hits", "temp", "window"])
    );
    assert_eq!(
        (kv["deleted"].clone(), kv["deleted_again"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(kv["after_delete"], Value::Null);
    assert_eq!(kv["not_a_number"]["status"], 500, "{kv}");
    assert_eq!(kv["ungranted"]["status"], 500, "{kv}");
    assert!(
        kv["ungranted"]["message"]
            .as_str()
            .unwrap()
            .contains("elsewhere"),
        "{kv}"
    );

    // crypto: argon2id, tokens, random bytes, HMAC (RFC 4231-style known answer).
    let r = server.get("/crypto").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = json_of(&r);
    assert_eq!(c["hash_is_argon2id"], true);
    assert_eq!(
        (c["verify_ok"].clone(), c["verify_bad"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(c["token_len"], 43);
    assert_eq!(c["token16_len"], 22);
    assert_eq!(c["token_too_short"]["status"], 500, "{c}");
    assert_eq!(c["random_len"], 24);
    assert_eq!(
        c["hmac"],
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
    assert_eq!(
        (c["hmac_ok"].clone(), c["hmac_bad"].clone()),
        (json!(true), json!(false))
    );

    // sql: typed values both ways, outcomes, each error kind, transactions.
    let r = server.get("/sql").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = json_of(&r);
    assert_eq!(
        (s["rows_affected"].clone(), s["last_insert_id"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        s["rows"],
        json!([{"id": 1, "name": "widget", "price": 2.5, "data": [0, 255, 1], "active": 1, "note": null}])
    );
    assert_eq!(s["active"], true);
    assert_eq!(s["price_ok"], true);
    assert_eq!(s["name"], "widget");
    assert_eq!(s["note_is_null"], true);
    assert_eq!(
        (s["columns"].clone(), s["column_3"].clone()),
        (json!(6), json!("data"))
    );
    assert_eq!(
        s["extremes"],
        json!([{"min": i64::MIN, "max": i64::MAX, "text": "grüße \"quoted\"\n"}])
    );
    // FLAGON_SQL_ERR_CONSTRAINT_VIOLATION = 1, FLAGON_CONSTRAINT_UNIQUE = 0.
    assert_eq!(s["duplicate"]["sql"], 1, "{s}");
    assert_eq!(s["duplicate"]["constraint_kind"], 0, "{s}");
    assert_eq!(s["duplicate"]["constraint"], "items.name", "{s}");
    assert!(
        s["duplicate"]["message"]
            .as_str()
            .unwrap()
            .starts_with("sql: constraint violation: "),
        "{s}"
    );
    // NO_SUCH_TABLE = 2, SYNTAX = 4, NOT_GRANTED = 9, NO_SUCH_COLUMN = 3.
    assert_eq!(s["no_table"]["sql"], 2, "{s}");
    assert_eq!(
        s["no_table"]["message"], "sql: no such table: missing",
        "{s}"
    );
    assert_eq!(s["syntax"]["sql"], 4, "{s}");
    assert_eq!(s["not_granted"]["sql"], 9, "{s}");
    assert_eq!(s["tx_error"]["sql"], 3, "{s}");
    assert_eq!(s["no_table"]["status"], 500, "{s}");
    assert_eq!(
        (
            s["inside"].clone(),
            s["after_rollback"].clone(),
            s["after_commit"].clone()
        ),
        (json!(2), json!(1), json!(2)),
        "{s}"
    );

    // config and settings.
    let r = server.get("/config").await;
    let cfg = json_of(&r);
    assert_eq!(cfg["motto"], "keep it small");
    assert_eq!(cfg["missing"], Value::Null);
    assert_eq!(
        (cfg["count"].clone(), cfg["motto_again"].clone()),
        (json!(2), json!("keep it small"))
    );
    assert_eq!(
        cfg["settings"],
        json!({"title": "C SDK", "retries": 3, "nested": {"on": true}})
    );
    assert_eq!(cfg["title"], "C SDK");
    assert_eq!(
        (cfg["retries_ok"].clone(), cfg["nested_on"].clone()),
        (json!(true), json!(true))
    );

    // session: values, keys, flashes, the CSRF token, sign_in's identity.
    let r = server.get("/session").await;
    let sess = json_of(&r);
    assert_eq!(sess["keys"], json!(["a", "b"]));
    assert_eq!(
        (sess["removed"].clone(), sess["removed_again"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(sess["b"], "two");
    assert_eq!(sess["csrf_token"], true);
    assert_eq!(
        sess["flashes"],
        json!([["info", "first"], ["error", "second"]])
    );
    assert_eq!(sess["flashes_left"], 0);
    assert_eq!(
        sess["identity"],
        json!({"subject": "u1", "name": "Una", "roles": ["admin", "editor"]})
    );
    assert!(r.header("set-cookie").is_some(), "the session was written");

    // outbound-http: a JSON POST to hello-c's /api/echo, and a refused origin (a 502 whose
    // reason goes to the log only).
    let r = server.get("/fetch").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let f = json_of(&r);
    assert_eq!(f["status"], 200);
    assert_eq!(f["content_type"], "application/json");
    assert_eq!(f["answer"]["message"], "FROM C");
    assert_eq!(f["answer"]["length"], 6);
    let r = server.get("/fetch?url=http%3A%2F%2F127.0.0.1%3A1%2F").await;
    assert_eq!((r.status, r.text()), (502, "Bad Gateway\n".to_string()));

    // The request accessors: method, path, params, query, headers, cookies, forms, files.
    let r = send(
        server.addr,
        Req::new("GET", "/inspect/a/b%20c?q=x+y%26z&n=1&n=2&flag")
            .header("x-thing", "thing value")
            .header("cookie", "other=1; flavour=\"mint\""),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-handled-by"), Some("c"));
    let i = json_of(&r);
    assert_eq!(i["method"], "GET");
    assert_eq!(i["path"], "/inspect/a/b%20c");
    assert_eq!(i["route"], "inspect");
    assert_eq!(i["rest"], "a/b c");
    assert_eq!(i["param_count"], 1);
    assert_eq!(i["query_string"], "q=x+y%26z&n=1&n=2&flag");
    assert_eq!(
        i["query"],
        json!([["q", "x y&z"], ["n", "1"], ["n", "2"], ["flag", ""]])
    );
    assert_eq!(i["q"], "x y&z");
    assert_eq!(i["x_thing"], "thing value");
    assert_eq!(i["cookie"], "mint");
    assert_eq!(
        (i["client"].clone(), i["request_id"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(i["identity"], false);
    assert_eq!(
        (i["body_len"].clone(), i["body_text"].clone()),
        (json!(0), json!(""))
    );
    let r = send(
        server.addr,
        Req::new("POST", "/inspect/form")
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body("name=J%C3%BCrgen&note=a+b"),
    )
    .await;
    let i = json_of(&r);
    assert_eq!(i["content_type"], "application/x-www-form-urlencoded");
    assert_eq!(i["field_name"], "Jürgen");
    assert_eq!(i["body_text"], "name=J%C3%BCrgen&note=a+b");
    assert_eq!(
        i["form"],
        json!([
            {"name": "name", "value": "Jürgen", "is_file": false},
            {"name": "note", "value": "a b", "is_file": false}
        ])
    );
    let multipart = "--XyZ\r\ncontent-disposition: form-data; name=\"name\"\r\n\r\nAda\r\n\
                     --XyZ\r\ncontent-disposition: form-data; name=\"upload\"; filename=\"notes.txt\"\r\n\
                     content-type: text/plain\r\n\r\nline one\nline two\r\n--XyZ--\r\n";
    let r = send(
        server.addr,
        Req::new("PUT", "/inspect/upload")
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(multipart),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let i = json_of(&r);
    assert_eq!(i["method"], "PUT");
    assert_eq!(i["body_len"], 0);
    assert_eq!(i["has_upload"], true);
    assert_eq!(
        i["form"],
        json!([
            {"name": "name", "value": "Ada", "is_file": false},
            {"name": "upload", "value": "", "is_file": true, "filename": "notes.txt",
             "content_type": "text/plain", "data": "line one\nline two"}
        ])
    );

    // The JSON reader and writer round-trip escapes, Unicode, numbers and nesting.
    let doc = r#"{"s":"a\"b\\c\u0001\ud83e\udd80é","n":[0,-1,9007199254740993,1.5,-2e-3,1e300],"o":{"t":true,"f":false,"z":null},"e":[],"eo":{}}"#;
    let r = send(server.addr, post_json("/json", doc)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        json_of(&r),
        serde_json::from_str::<Value>(doc).unwrap(),
        "{}",
        r.text()
    );
    assert!(
        r.text().contains("9007199254740993"),
        "integers stay exact: {}",
        r.text()
    );
    for bad in [
        r#"{"a":}"#,
        "[1,]",
        r#"{"a":1} x"#,
        r#""\ud800""#,
        "01",
        "[[[[",
        "\"\u{1}\"",
    ] {
        let r = send(server.addr, post_json("/json", bad)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(
            r.text().starts_with("invalid JSON body: "),
            "{bad}: {}",
            r.text()
        );
    }
    let deep = "[".repeat(200) + &"]".repeat(200);
    let r = send(server.addr, post_json("/json", &deep)).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("nested too deeply"), "{}", r.text());

    // A misused JSON writer is a 500, and flagon_error's 5xx hides its message from the client
    // and logs it.
    let r = server.get("/misuse").await;
    assert_eq!(
        (r.status, r.text()),
        (500, "Internal Server Error\n".to_string())
    );
    let r = server.get("/fail").await;
    assert_eq!(
        (r.status, r.text()),
        (503, "Service Unavailable\n".to_string())
    );
    assert!(
        server
            .wait_for_log("deliberate failure 42", std::time::Duration::from_secs(5))
            .await,
        "{}",
        server.log()
    );
    assert!(server.log().contains("127.0.0.1:1"), "{}", server.log());
    // The C library's stderr, through the preview1 adapter, is a log line too.
    assert!(
        server.log().contains("about to fail on purpose"),
        "{}",
        server.log()
    );
}
