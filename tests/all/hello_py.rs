//! Python handlers (`sdk/python`): `examples/hello-py` and `tests/programs-py` build with
//! `flagon build` (componentize-py through `sdk/python/build.py`) and answer over real HTTP.
//!
//! Needs python3 (3.11+) and pip; the first build installs componentize-py into
//! `sdk/python/.venv` (see docs/lang/python.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value as Json, json};

use crate::harness::{
    BinServer, Reply, Req, TestServer, cookie_of, csrf_token, json_of, post_form, send,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `flagon build <dir>`, asserting it built the one component `id`.
async fn flagon_build(dir: &Path, id: &str) {
    let build = tokio::task::spawn_blocking({
        let dir = dir.to_path_buf();
        move || {
            Command::new(env!("CARGO_BIN_EXE_flagon"))
                .arg("build")
                .arg(&dir)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(build.status.success(), "flagon build failed:\n{stderr}");
    assert!(
        stderr.contains(&format!("[1/1] building `{id}`"))
            && stderr.contains(&format!("[1/1] built `{id}`")),
        "{stderr}"
    );
    // The SDK's build imports only what the grants allow and stubs wasi:sockets.
    assert!(
        stderr.contains("stubbed (trap if called): wasi:sockets/"),
        "{stderr}"
    );
}

/// `flagon check <dir>`: the component's imports match its grants (`imports` are among them,
/// `absent` are not). It compiles the component into the test run's cache, so the server that
/// follows starts without compiling CPython again.
async fn flagon_check(dir: &Path, imports: &[&str], absent: &[&str]) {
    let check = tokio::task::spawn_blocking({
        let dir = dir.to_path_buf();
        move || {
            Command::new(env!("CARGO_BIN_EXE_flagon"))
                .arg("check")
                .arg(&dir)
                .env("FLAGON_CACHE_DIR", crate::harness::cache_dir())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "flagon check failed:\n{out}");
    for i in imports {
        assert!(out.contains(&format!("imports {i}@")), "{i}:\n{out}");
    }
    for i in absent.iter().chain(&["wasi:sockets/", "wasi:http/"]) {
        assert!(!out.contains(&format!("imports {i}")), "{i}:\n{out}");
    }
}

/// The session cookie `r` sets, or `old` when it sets none.
fn next_cookie(r: &Reply, old: &str) -> String {
    r.header("set-cookie")
        .map_or_else(|| old.to_string(), |_| cookie_of(r))
}

/// Every route of `examples/hello-py`, answered as `examples/hello` answers it
/// (`tests/all/example.rs`).
#[tokio::test]
async fn hello_py_example_builds_and_serves() {
    let example = repo().join("examples/hello-py");
    flagon_build(&example, "hello").await;
    flagon_check(
        &example,
        &[
            "flagon:app/config",
            "flagon:app/templates",
            "flagon:app/session",
        ],
        &[
            "flagon:app/crypto",
            "flagon:app/kv",
            "flagon:app/sql",
            "flagon:app/outbound-http",
        ],
    )
    .await;

    let server =
        BinServer::spawn_with_args(&example, &["--dev"], &[("HELLO_GREETING", "Ahoy")], None).await;

    // `/`: the index page from the templates, and the static stylesheet.
    let r = server.get("/").await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), server.log());
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        r.text().contains("Hello from a sandboxed Wasm component!"),
        "{}",
        r.text()
    );
    assert!(
        r.text().contains("Sign in</a> to see the session at work."),
        "{}",
        r.text()
    );
    let r = server.get("/static/style.css").await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("text/css; charset=utf-8"))
    );

    // An unknown page: the app's error page.
    let r = server.get("/no/such/page").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("404 Not Found"), "{}", r.text());

    // `/hello/{name}`: plain text with the granted variable.
    let r = server.get("/hello/Ferris").await;
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "Ahoy, Ferris!\n");
    assert_eq!(server.get("/hello/caf%C3%A9").await.text(), "Ahoy, café!\n");

    // `/login` GET, then POST: the CSRF token from the form, then the flash.
    let r = server.get("/login").await;
    assert_eq!(r.status, 200);
    let cookie = cookie_of(&r);
    assert!(cookie.starts_with("session="), "{cookie}");
    let token = csrf_token(&r.text());
    let r = send(
        server.addr,
        post_form("/login", &cookie, "username=Ferris".into()),
    )
    .await;
    assert_eq!(
        r.status, 403,
        "no CSRF token: the host refuses before the guest runs"
    );
    // An empty name: back to the form with an error flash.
    let r = send(
        server.addr,
        post_form("/login", &cookie, format!("csrf_token={token}&username=+")),
    )
    .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/login")),
        "{}",
        r.text()
    );
    let cookie = cookie_of(&r);
    let r = send(
        server.addr,
        Req::new("GET", "/login").header("cookie", &cookie),
    )
    .await;
    assert!(
        r.text().contains("Choose a name of 1 to 32 characters."),
        "{}",
        r.text()
    );
    // Taking the flash changed the session.
    let cookie = next_cookie(&r, &cookie);
    let token = csrf_token(&r.text());
    let r = send(
        server.addr,
        post_form(
            "/login",
            &cookie,
            format!("csrf_token={token}&username=Ferris"),
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
    assert!(page.contains("Welcome, Ferris!"), "{page}");
    assert!(
        page.contains("Ahoy, <strong>Ferris</strong>. You are signed in."),
        "{page}"
    );
    assert!(!page.contains("Choose a name"), "{page}");
    // The flash is shown once.
    let cookie = next_cookie(&r, &cookie);
    let r = send(server.addr, Req::new("GET", "/").header("cookie", &cookie)).await;
    assert!(!r.text().contains("Welcome, Ferris!"), "{}", r.text());
    assert!(server.log().contains("signed in"), "{}", server.log());

    // `/logout`: POST only, with the CSRF token; the session ends and a flash says so.
    assert_eq!(server.get("/logout").await.status, 405);
    let token = csrf_token(&page);
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
    assert!(r.text().contains("You are signed out."), "{}", r.text());
    assert!(!r.text().contains("You are signed in."), "{}", r.text());

    // `/api/add?a=&b=`: JSON out, 400s that say what is wrong.
    let r = server.get("/api/add?a=2&b=40").await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), r#"{"a":2,"b":40,"sum":42}"#);
    let r = server.get("/api/add?a=2").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "invalid query string: missing field `b`\n")
    );
    assert_eq!(server.get("/api/add?a=x&b=1").await.status, 400);
    let r = server.get("/api/add?a=9223372036854775807&b=1").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "the sum does not fit in 64 bits\n")
    );

    // `/api/echo` POST JSON.
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
    let r = send(
        server.addr,
        Req::new("POST", "/api/echo")
            .header("content-type", "text/plain")
            .body("wasm"),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text());
    let r = send(
        server.addr,
        Req::new("POST", "/api/echo")
            .header("content-type", "application/json")
            .body("{nope"),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().starts_with("invalid JSON body: "), "{}", r.text());
}

/// The SDK's wider calls through `tests/programs-py`: kv, crypto, sql (rows, typed values,
/// transactions, errors with a `kind`), config, settings, outbound HTTP, request parsing and
/// error handling.
#[tokio::test]
async fn python_sdk_reaches_the_host_interfaces() {
    let program = repo().join("tests/programs-py");
    flagon_build(&program, "sdk").await;
    flagon_check(
        &program,
        &[
            "flagon:app/config",
            "flagon:app/crypto",
            "flagon:app/kv",
            "flagon:app/sql",
            "flagon:app/outbound-http",
        ],
        &["flagon:app/session", "flagon:app/templates"],
    )
    .await;

    // Outbound HTTP goes to another Flagon on 127.0.0.1 (the Rust test app), granted by IP.
    let upstream = TestServer::start(&crate::app_manifest("")).await;
    let origin = format!("http://127.0.0.1:{}", upstream.addr.port());
    let manifest = std::fs::read_to_string(program.join("flagon.toml"))
        .unwrap()
        .replace("http://127.0.0.1:9", &origin)
        .replace(
            "source = \"build/sdk.wasm\"",
            &format!("source = {:?}", program.join("build/sdk.wasm")),
        )
        .replace(
            "migrations = \"migrations\"",
            &format!("migrations = {:?}", program.join("migrations")),
        );
    assert!(
        manifest.contains(&origin),
        "the manifest grants the outbound origin"
    );
    let server = BinServer::start(&manifest).await;

    // Request parsing.
    let r = send(
        server.addr,
        Req::new("POST", "/inspect/a/b%20c?tag=x&tag=y&q=caf%C3%A9&empty=")
            .header("user-agent", "probe/1")
            .header("accept", "text/html")
            .header("accept", "application/json")
            .header("cookie", "theme=dark; lang=\"fr\"")
            .header("content-type", "application/json")
            .body(r#"{"n":[1,2.5,null,true]}"#),
    )
    .await;
    let v = json_of(&r);
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/inspect/a/b%20c");
    assert_eq!(v["route"], "inspect");
    assert_eq!(v["rest"], "a/b c");
    assert_eq!(v["params"], json!({"rest": "a/b c"}));
    assert_eq!(v["query_string"], "tag=x&tag=y&q=caf%C3%A9&empty=");
    assert_eq!(v["query"], json!({"tag": "x", "q": "café", "empty": ""}));
    assert_eq!(v["tags"], json!(["x", "y"]));
    assert_eq!(v["missing"], "default");
    assert_eq!(v["user_agent"], "probe/1");
    assert_eq!(v["accept_all"], json!(["text/html", "application/json"]));
    assert_eq!(v["cookies"], json!({"theme": "dark", "lang": "fr"}));
    assert_eq!(v["has_client"], true);
    assert_eq!(v["identity"], false);
    assert_eq!(v["body"], json!({"n": [1, 2.5, null, true]}));
    assert!(
        v["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{v}"
    );
    let r = send(
        server.addr,
        Req::new("PUT", "/inspect/f")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("title=Hi+there&tag=1&tag=2"),
    )
    .await;
    assert_eq!(
        json_of(&r)["body"],
        json!({"form": {"title": "Hi there", "tag": "1"}, "tags": ["1", "2"]})
    );
    let r = send(
        server.addr,
        Req::new("GET", "/inspect/x?bad=%FF").header("content-type", "text/plain"),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().starts_with("invalid query string"), "{}", r.text());

    // A multipart upload.
    let boundary = "XyZ";
    let body = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"title\"\r\n\r\nReport\r\n\
         --{boundary}\r\ncontent-disposition: form-data; name=\"doc\"; filename=\"r.pdf\"\r\n\
         content-type: application/pdf\r\n\r\n%PDF-1.7 data\r\n--{boundary}--\r\n"
    );
    let r = send(
        server.addr,
        Req::new("POST", "/upload")
            .header(
                "content-type",
                &format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body),
    )
    .await;
    assert_eq!(
        json_of(&r),
        json!({"title": "Report", "filename": "r.pdf", "content_type": "application/pdf",
               "size": 13, "first": "%PDF", "fields": ["title", "doc"]})
    );

    // kv: counters, text and bytes, TTLs, keys, a store not granted.
    let v = json_of(&server.get("/kv").await);
    assert_eq!(v["visits"], 1);
    assert_eq!(v["greeting"], "hi there");
    assert_eq!(v["window"], 5);
    assert_eq!(v["keys"], json!(["blob", "greeting", "visits", "window"]));
    assert_eq!(v["deleted"], true);
    assert_eq!(v["blob_exists"], false);
    assert_eq!(v["missing"], Json::Null);
    assert_eq!(v["error"]["status"], 500);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`not-granted` is not granted"),
        "{v}"
    );
    let v = json_of(&server.get("/kv").await);
    assert_eq!(
        (v["visits"].clone(), v["window"].clone()),
        (json!(2), json!(10))
    );

    // crypto.
    let v = json_of(&server.get("/crypto").await);
    assert_eq!(
        v,
        json!({"phc": true, "verify_ok": true, "verify_bad": false, "token_len": 43,
               "token16_len": 22, "key_len": 32, "tag_len": 32, "tag_ok": true,
               "tag_bad": false})
    );

    // config (only the granted variables) and settings.
    let v = json_of(&server.get("/config").await);
    assert_eq!(
        v,
        json!({"greeting": "howdy", "token": "s3cr3t", "not_granted": null,
               "fallback": "fallback",
               "all": {"greeting": "howdy", "api_token": "s3cr3t"},
               "settings": {"mode": "test", "retries": 3, "tags": ["a", "b"]}})
    );

    // sql: execute, query with typed values, a constraint violation with its kind.
    let add = |body: Json| {
        Req::new("POST", "/notes")
            .header("content-type", "application/json")
            .body(body.to_string())
    };
    // (The migration added note 1.)
    let r = send(
        server.addr,
        add(json!({"body": "first", "score": 1.5, "data": "00ff"})),
    )
    .await;
    assert_eq!(
        (r.status, json_of(&r)),
        (201, json!({"id": 2, "rows_affected": 1}))
    );
    let r = send(server.addr, add(json!({"body": "second"}))).await;
    assert_eq!(
        (r.status, json_of(&r)),
        (201, json!({"id": 3, "rows_affected": 1}))
    );
    let r = send(server.addr, add(json!({"body": "first"}))).await;
    assert_eq!(
        (r.status, json_of(&r)),
        (
            409,
            json!({"kind": "constraint-violation", "constraint": "unique",
                     "name": "notes.body"})
        )
    );
    let v = json_of(&server.get("/notes").await);
    assert_eq!(
        v,
        json!({"columns": ["id", "body", "score", "data", "done"],
               "notes": [
                   {"id": 1, "body": "welcome", "score": 0.5, "data": null, "done": 0},
                   {"id": 2, "body": "first", "score": 1.5, "data": "00ff", "done": 1},
                   {"id": 3, "body": "second", "score": null, "data": "", "done": 1}],
               "count": 3})
    );

    // Transactions: committed at the end of the `with` block, rolled back if it raises.
    let r = send(server.addr, Req::new("POST", "/notes/tx?fail=1")).await;
    assert_eq!(
        json_of(&r),
        json!({"inside": 2, "after": 0, "rolled_back": true, "ended": "the transaction has ended"})
    );
    let r = send(server.addr, Req::new("POST", "/notes/tx")).await;
    assert_eq!(
        json_of(&r),
        json!({"inside": 2, "after": 2, "rolled_back": false, "ended": "the transaction has ended"})
    );
    let v = json_of(&server.get("/notes").await);
    assert_eq!(v["count"], 5);
    assert_eq!(v["notes"][3]["body"], "tx-one");
    assert_eq!(
        v["notes"][3]["score"],
        Json::Null,
        "the explicit rollback undid the update"
    );

    // SQL errors as exceptions with a `kind`.
    for (which, kind, status) in [
        ("table", "no-such-table", 500),
        ("syntax", "syntax", 500),
        ("grant", "not-granted", 500),
        ("param", "other", 500),
    ] {
        let v = json_of(&server.get(&format!("/sql-error?which={which}")).await);
        assert_eq!(
            (v["kind"].as_str(), v["status"].as_u64()),
            (Some(kind), Some(status)),
            "{v}"
        );
    }
    // Not caught, an SqlError is a 500 whose message goes to the log only.
    let r = server.get("/sql-error?which=uncaught").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "Internal Server Error\n")
    );
    assert!(!r.text().contains("no_such_table"));
    assert!(
        server
            .wait_for_log("no such table", std::time::Duration::from_secs(5))
            .await,
        "{}",
        server.log()
    );

    // Outbound HTTP: the granted origin answers; another is refused by the host.
    let q = |url: &str| {
        percent_encoding::utf8_percent_encode(url, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let v = json_of(
        &server
            .get(&format!("/fetch?url={}", q(&format!("{origin}/"))))
            .await,
    );
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["body"], "hello from wasm");
    let r = server
        .get(&format!("/fetch?url={}", q("http://127.0.0.1:1/")))
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().starts_with("refused: "), "{}", r.text());

    // An exception: logged with its traceback, an empty 500 (the host's error page).
    let r = server.get("/boom").await;
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("boom from python"), "{}", r.text());
    assert!(
        server
            .wait_for_log(
                "RuntimeError: boom from python",
                std::time::Duration::from_secs(5)
            )
            .await,
        "{}",
        server.log()
    );

    // An SDK module whose grant is missing: a 500 whose log line names the grant.
    let r = server.get("/no-grant").await;
    assert_eq!(r.status, 500);
    assert!(
        server
            .wait_for_log(
                "does not import flagon:app/session: grant `session`",
                std::time::Duration::from_secs(5)
            )
            .await,
        "{}",
        server.log()
    );

    // Dispatch: a method without a view is a 405 naming the allowed ones; a route without a
    // view is a 404.
    assert_eq!(server.get("/only-get").await.text(), "got\n");
    let r = send(server.addr, Req::new("PUT", "/only-get")).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    assert_eq!(server.get("/unrouted").await.status, 404);
}
