//! Handlers in JavaScript: `examples/hello-js` builds with `flagon build` (the SDK's
//! `sdk/js/build.mjs`: rolldown, then jco and componentize-js) and answers every route as
//! `examples/hello` does, and `tests/programs-js/sdk` drives the JavaScript SDK's wider calls
//! (kv, crypto, sql, config, settings, session, outbound HTTP, the request accessors, async
//! handlers, what a handler may return or throw) through a real host over real HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::harness::{
    self, BinServer, Req, TestManifest, cookie_of, csrf_token, json_of, post_form, post_json, send,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `flagon build <dir>`, once per directory and test run (the tests share the builds). Its
/// stderr, with the build script's report of what the component imports.
async fn flagon_build(dir: &'static str) -> (PathBuf, String) {
    static HELLO: OnceLock<String> = OnceLock::new();
    static SDK: OnceLock<String> = OnceLock::new();
    let cell = match dir {
        "examples/hello-js" => &HELLO,
        "tests/programs-js/sdk" => &SDK,
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
                    "flagon build {dir} failed (the JavaScript toolchain needs node 20 and npm; \
                     `npm ci` in sdk/js installs it):\n{stderr}"
                );
                stderr
            })
            .clone()
        }
    })
    .await
    .unwrap();
    (path, stderr)
}

/// `flagon check` on the app: it compiles the component into the tests' cache (so that `serve`
/// starts at once: a 12 MB JavaScript component takes a while to compile) and lists what it
/// imports. Its stdout.
async fn flagon_check(app: PathBuf, env: &'static [(&'static str, &'static str)]) -> String {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_flagon"))
            .arg("check")
            .arg(&app)
            .env("FLAGON_CACHE_DIR", harness::cache_dir())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "flagon check {} failed:\n{stdout}\n{}",
            app.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    })
    .await
    .unwrap()
}

/// The imports `flagon check` lists for the app's one component, `flagon:app` ones only.
fn flagon_imports(check: &str) -> Vec<&str> {
    check
        .lines()
        .filter_map(|l| l.trim().strip_prefix("imports flagon:app/"))
        .map(|l| l.split('@').next().unwrap())
        .collect()
}

async fn serve_hello_js() -> BinServer {
    let (example, stderr) = flagon_build("examples/hello-js").await;
    assert!(
        stderr.contains("[1/1] building `hello`") && stderr.contains("[1/1] built `hello`"),
        "{stderr}"
    );
    // The build keeps only the host interfaces the app reaches, so the component needs no
    // grant it does not use.
    assert!(
        stderr.contains(
            "imports flagon:app/config, flagon:app/log, flagon:app/session, flagon:app/templates"
        ),
        "{stderr}"
    );
    let check = flagon_check(example.clone(), &[]).await;
    assert_eq!(
        flagon_imports(&check),
        ["log", "config", "templates", "session", "types"],
        "{check}"
    );
    assert!(!check.contains("unused grant"), "{check}");
    assert!(
        !check.contains("wasi:http") && !check.contains("wasi:sockets"),
        "{check}"
    );
    BinServer::spawn_with_args(&example, &["--dev"], &[("HELLO_GREETING", "Ahoy")], None).await
}

#[tokio::test]
async fn hello_js_example_builds_and_serves_every_route() {
    let server = serve_hello_js().await;

    // `/`: the index page from templates, signed out.
    let r = server.get("/").await;
    assert_eq!(r.status, 200, "{}", r.text());
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
    // An unknown page, and a route the app answers with an empty 404: the app's error page.
    let r = server.get("/no/such/page").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("404 Not Found"), "{}", r.text());

    // `/login`: the form with a CSRF token and a session cookie.
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
    assert!(r.text().contains("The form expired"), "{}", r.text());

    // A name that is too long: a flash and back to the form.
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
    let cookie = r.header("set-cookie").map_or(cookie, |_| cookie_of(&r));
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
    let cookie = r.header("set-cookie").map_or(cookie, |_| cookie_of(&r));
    let token = csrf_token(&r.text());

    // Sign in: the session rotates (a new cookie) and the flash shows once.
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
    let signed_in = cookie_of(&r);
    assert_ne!(signed_in, cookie);
    let r = send(
        server.addr,
        Req::new("GET", "/").header("cookie", &signed_in),
    )
    .await;
    let page = r.text();
    assert!(page.contains("Welcome, Ferris!"), "{page}");
    assert!(
        page.contains("Ahoy, <strong>Ferris</strong>. You are signed in."),
        "{page}"
    );
    let signed_in = r.header("set-cookie").map_or(signed_in, |_| cookie_of(&r));
    let r = send(
        server.addr,
        Req::new("GET", "/").header("cookie", &signed_in),
    )
    .await;
    let page = r.text();
    assert!(
        !page.contains("Welcome, Ferris!"),
        "the flash shows once:\n{page}"
    );
    assert!(page.contains("You are signed in."), "{page}");
    let signed_in = r.header("set-cookie").map_or(signed_in, |_| cookie_of(&r));
    let token = csrf_token(&page);

    // The template escapes what came from the form.
    let r = send(server.addr, Req::new("GET", "/login")).await;
    let fresh = cookie_of(&r);
    let t = csrf_token(&r.text());
    let r = send(
        server.addr,
        post_form(
            "/login",
            &fresh,
            format!("csrf_token={t}&username=%3Cb%3Ex%3C%2Fb%3E"),
        ),
    )
    .await;
    let r = send(
        server.addr,
        Req::new("GET", "/").header("cookie", &cookie_of(&r)),
    )
    .await;
    assert!(
        r.text().contains("&lt;b&gt;x&lt;&#47;b&gt;"),
        "{}",
        r.text()
    );

    // `/logout` (POST with the token): the session ends, a flash says so.
    let r = send(
        server.addr,
        post_form("/logout", &signed_in, format!("csrf_token={token}")),
    )
    .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/")),
        "{}",
        r.text()
    );
    let r = send(
        server.addr,
        Req::new("GET", "/").header("cookie", &cookie_of(&r)),
    )
    .await;
    let page = r.text();
    assert!(page.contains("You are signed out."), "{page}");
    assert!(page.contains("to see the session at work"), "{page}");
    let r = send(server.addr, Req::new("GET", "/logout")).await;
    assert_eq!(r.status, 405);

    // `/hello/{name}`: plain text with the granted variable (from the environment).
    let r = server.get("/hello/Ferris").await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("text/plain; charset=utf-8"))
    );
    assert_eq!(r.text(), "Ahoy, Ferris!\n");
    assert_eq!(server.get("/hello/caf%C3%A9").await.text(), "Ahoy, café!\n");

    // `/api/add`: JSON out; a missing or bad number is a 400 that says why.
    let r = server.get("/api/add?a=2&b=40").await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/json"))
    );
    assert_eq!(r.text(), r#"{"a":2,"b":40,"sum":42}"#);
    assert_eq!(
        server.get("/api/add?a=-5&b=3").await.text(),
        r#"{"a":-5,"b":3,"sum":-2}"#
    );
    let r = server.get("/api/add?a=2").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("missing field `b`"), "{}", r.text());
    let r = server.get("/api/add?a=2&b=x").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("`b` must be an integer"), "{}", r.text());

    // `/api/echo`: JSON in and out; the wrong type is a 415, bad JSON a 400.
    let r = send(
        server.addr,
        post_json("/api/echo", r#"{"message":"wasm","shout":true}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text()
            .starts_with(r#"{"message":"WASM","length":4,"request_id":""#),
        "{}",
        r.text()
    );
    assert_eq!(
        json_of(&r)["request_id"],
        json!(r.header("x-request-id").unwrap())
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
    assert!(
        r.text().contains("`message` must be a string"),
        "{}",
        r.text()
    );

    // The guest's log lines reach the host's log.
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
    let (dir, stderr) = flagon_build("tests/programs-js/sdk").await;
    assert!(stderr.contains("built `sdk`"), "{stderr}");
    let manifest = std::fs::read_to_string(dir.join("flagon.toml")).unwrap();
    let source = dir.join("target/sdk.wasm");
    let manifest = manifest
        .replace(
            "source = \"target/sdk.wasm\"",
            &format!("source = {:?}", source.display().to_string()),
        )
        .replace("build = \"npm run --silent build\"\n", "")
        .replace(
            "outbound = [\"http://127.0.0.1:9\"]",
            &format!("outbound = [\"{upstream}\"]"),
        );
    assert!(manifest.contains(upstream), "{manifest}");
    let manifest = TestManifest::new(&manifest);
    let path = manifest.path.clone();
    let check = flagon_check(path.clone(), &[]).await;
    assert_eq!(
        flagon_imports(&check),
        [
            "log",
            "config",
            "crypto",
            "session",
            "kv",
            "types",
            "outbound-http",
            "sql-types",
            "sql",
            "settings"
        ],
        "{check}"
    );
    assert!(!check.contains("unused grant"), "{check}");
    BinServer::spawn_with_args(
        &path,
        &["--dev"],
        &[("SDK_UPSTREAM", upstream)],
        Some(manifest),
    )
    .await
}

fn error_of(v: &Value) -> &Value {
    &v["error"]
}

#[tokio::test]
async fn js_sdk_reaches_every_host_interface() {
    let hello = serve_hello_js().await;
    let upstream = format!("http://127.0.0.1:{}", hello.addr.port());
    let server = serve_sdk_app(&upstream).await;

    // kv: text, bytes with NULs, JSON, counters, TTLs, listing, deleting, errors as HostError.
    let r = server.get("/kv").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let kv = json_of(&r);
    assert_eq!(kv["get"], "hi");
    assert_eq!(kv["bytes"], json!([0, 1, 0, 255]));
    assert_eq!(kv["doc"]["a"], json!([1, 2]));
    assert_eq!(kv["missing"], Value::Null);
    assert_eq!(kv["exists"], true);
    assert_eq!(kv["hits"], 4);
    assert_eq!(kv["window"], 1);
    assert_eq!(
        kv["keys"],
        json!(["bin", "doc", "greeting", "hits", "window"])
    );
    assert_eq!(kv["keys_b"], json!(["bin"]));
    assert_eq!(
        (kv["deleted"].clone(), kv["deleted_again"].clone()),
        (json!(true), json!(false))
    );
    let e = error_of(&kv["not_a_number"]);
    assert_eq!(
        (
            e["name"].clone(),
            e["status"].clone(),
            e["interface"].clone()
        ),
        (json!("HostError"), json!(500), json!("kv")),
        "{kv}"
    );
    let e = error_of(&kv["ungranted"]);
    assert_eq!(e["name"], "HostError", "{kv}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("`elsewhere` is not granted"),
        "{kv}"
    );
    assert_eq!(error_of(&kv["bad_ttl"])["name"], "TypeError", "{kv}");

    // crypto: argon2id, tokens, random bytes, HMAC (a known answer).
    let r = server.get("/crypto").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = json_of(&r);
    assert_eq!(c["hash_is_argon2id"], true);
    assert_eq!(
        (c["verify_ok"].clone(), c["verify_bad"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(
        (c["token_len"].clone(), c["token16_len"].clone()),
        (json!(43), json!(22))
    );
    assert_eq!(
        error_of(&c["token_too_short"])["interface"],
        "crypto",
        "{c}"
    );
    assert_eq!(c["random_len"], 24);
    assert_eq!(
        (c["random_is_bytes"].clone(), c["hmac_is_bytes"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(
        c["hmac"],
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
    assert_eq!(
        (c["hmac_ok"].clone(), c["hmac_bad"].clone()),
        (json!(true), json!(false))
    );

    // sql: typed values both ways, outcomes, errors with their kind, transactions.
    let r = server.get("/sql").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = json_of(&r);
    assert_eq!(
        (s["rows_affected"].clone(), s["last_insert_id"].clone()),
        (json!(1), json!(1))
    );
    let row = &s["rows"][0];
    assert_eq!(
        (
            row["id"].clone(),
            row["name"].clone(),
            row["price"].clone(),
            row["active"].clone(),
            row["note"].clone()
        ),
        (json!(1), json!("widget"), json!(2.5), json!(1), Value::Null),
        "{s}"
    );
    // 2^62 comes back exactly, as a BigInt, and is written as an exact JSON number.
    assert_eq!(row["big"], json!(4611686018427387904_i64), "{s}");
    assert_eq!(s["big_is_bigint"], true);
    assert_eq!(
        (s["blob_is_bytes"].clone(), s["blob"].clone()),
        (json!(true), json!([0, 255, 1]))
    );
    assert_eq!(
        s["raw"],
        json!({"columns": ["name", "price"], "rows": [["widget", 2.5], ["gadget", 3]]})
    );
    assert_eq!(
        (s["count"].clone(), s["one"].clone(), s["none"].clone()),
        (json!(2), json!({"name": "gadget"}), Value::Null)
    );
    assert_eq!(s["inside"], 3);
    assert_eq!(error_of(&s["thrown"])["message"], "changed my mind");
    assert_eq!(s["returned"], 1);
    assert_eq!(error_of(&s["ended"])["kind"], "other");
    assert_eq!(
        s["names"],
        json!(["widget", "gadget", "committed", "returned"])
    );
    let e = error_of(&s["unique"]);
    assert_eq!(
        (e["name"].clone(), e["kind"].clone()),
        (json!("SqlError"), json!("constraint-violation")),
        "{s}"
    );
    assert_eq!(e["constraint"]["kind"], "unique");
    assert_eq!(e["constraint"]["name"], "items.name");
    assert_eq!(error_of(&s["not_null"])["constraint"]["kind"], "not-null");
    assert_eq!(error_of(&s["no_table"])["kind"], "no-such-table");
    assert_eq!(
        error_of(&s["no_table"])["message"],
        "no such table: nowhere"
    );
    assert_eq!(error_of(&s["syntax"])["kind"], "syntax");
    assert_eq!(error_of(&s["ungranted"])["kind"], "not-granted");
    assert_eq!(error_of(&s["bad_param"])["name"], "TypeError");
    assert_eq!(s["is_sql_error"], true);
    // An uncaught SqlError: a 500, the reason in the log only.
    let r = server.get("/sql/fail").await;
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("missing_table"), "{}", r.text());
    assert!(
        server
            .wait_for_log(
                "sql: no such table: missing_table",
                std::time::Duration::from_secs(5)
            )
            .await,
        "{}",
        server.log()
    );

    // config and settings.
    let r = server.get("/config").await;
    let cfg = json_of(&r);
    assert_eq!(cfg["motto"], "keep it small");
    assert_eq!(cfg["missing"], Value::Null);
    assert_eq!(
        cfg["all"],
        json!({"upstream": upstream, "motto": "keep it small"})
    );
    assert_eq!(error_of(&cfg["require_missing"])["status"], 500);
    assert_eq!(
        cfg["settings"],
        json!({"title": "JS SDK", "retries": 3, "nested": {"on": true}})
    );
    assert_eq!(
        serde_json::from_str::<Value>(cfg["settings_text"].as_str().unwrap()).unwrap(),
        cfg["settings"]
    );

    // session: JSON values, remove, flashes, the CSRF token, the size limit, signIn.
    let r = send(server.addr, Req::new("POST", "/session")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("set-cookie").is_some());
    let ses = json_of(&r);
    assert_eq!(ses["before"], json!([]));
    assert_eq!(ses["cart"], json!({"items": [1, 2]}));
    assert_eq!(
        (ses["removed"].clone(), ses["removed_again"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(
        ses["flashes"],
        json!([{"category": "info", "message": "one"}, {"category": "error", "message": "two"}])
    );
    assert_eq!(ses["after_take"], json!([]));
    assert!(ses["token_len"].as_u64().unwrap() > 20, "{ses}");
    let e = error_of(&ses["too_big"]);
    assert_eq!(
        (e["name"].clone(), e["interface"].clone()),
        (json!("HostError"), json!("session")),
        "{ses}"
    );
    assert_eq!(
        ses["identity"],
        json!({"subject": "u-1", "name": "Ada", "roles": ["admin"]})
    );
    assert_eq!(ses["keys"], json!(["cart", "identity"]));

    // outbound: fetch and send to the granted hello-js; another origin is refused (502).
    let r = server.get("/fetch?q=1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let f = json_of(&r);
    assert_eq!(
        (f["status"].clone(), f["ok"].clone()),
        (json!(200), json!(true))
    );
    assert_eq!(f["content_type"], "text/plain; charset=utf-8");
    assert_eq!(f["text"], "Ahoy, outbound!\n");
    // The engine's own fetch() (wasi:http) is left out; the SDK says what to use.
    assert!(
        f["global_fetch"]
            .as_str()
            .unwrap()
            .starts_with("TypeError: the global fetch() is not available in a Flagon handler"),
        "{f}"
    );
    assert_eq!(f["posted"]["message"], "VIA OUTBOUND");
    assert_eq!(f["refused"]["status"], 502);
    assert_eq!(f["refused"]["interface"], "outbound");
    assert!(
        f["refused"]["message"]
            .as_str()
            .unwrap()
            .contains("no `outbound` grant matches"),
        "{f}"
    );

    // The request accessors, with a multipart form and a file.
    let boundary = "XyZ";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\nx\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\ny\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nfile body\r\n--{boundary}--\r\n"
    );
    let r = send(
        server.addr,
        Req::new("POST", "/inspect/a/b%20c?tag=1&tag=2&q=z")
            .header(
                "content-type",
                &format!("multipart/form-data; boundary={boundary}"),
            )
            .header("cookie", "a=1; b=\"two\"")
            .header("x-custom", "yes")
            .header("x-multi", "1")
            .header("x-multi", "2")
            .body(body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let i = json_of(&r);
    assert_eq!(
        (i["method"].clone(), i["path"].clone()),
        (json!("POST"), json!("/inspect/a/b%20c"))
    );
    assert_eq!(i["full_path"], "/inspect/a/b%20c?tag=1&tag=2&q=z");
    assert_eq!(
        (i["route"].clone(), i["params"].clone()),
        (json!("inspect"), json!({"rest": "a/b c"}))
    );
    assert_eq!(
        (i["rest"].clone(), i["missing_param"].clone()),
        (json!("a/b c"), Value::Null)
    );
    assert_eq!(
        (i["query_all"].clone(), i["query_one"].clone()),
        (json!(["1", "2"]), json!("z"))
    );
    assert_eq!(i["query_string"], "tag=1&tag=2&q=z");
    assert_eq!(
        (
            i["header"].clone(),
            i["header_all"].clone(),
            i["has_header"].clone()
        ),
        (json!("yes"), json!(["1", "2"]), json!(true))
    );
    assert_eq!(
        (i["cookies"].clone(), i["cookie"].clone()),
        (json!({"a": "1", "b": "two"}), json!("two"))
    );
    assert_eq!(i["content_type"], "multipart/form-data");
    assert_eq!(
        (i["client_ok"].clone(), i["request_id_ok"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(
        (i["identity"].clone(), i["has_role"].clone()),
        (Value::Null, json!(false))
    );
    assert_eq!(i["body_len"], 0);
    assert_eq!(
        (i["form"].clone(), i["field_all"].clone()),
        (json!({"tag": "x"}), json!(["x", "y"]))
    );
    assert_eq!(
        i["upload"],
        json!({"filename": "a.txt", "content_type": "text/plain", "text": "file body"})
    );
    assert_eq!(error_of(&i["not_json"])["status"], 415);
    let r = send(
        server.addr,
        Req::new("PUT", "/inspect/j")
            .header("content-type", "application/json")
            .body(r#"{"k":[1,"two"]}"#),
    )
    .await;
    let i = json_of(&r);
    assert_eq!(
        (
            i["method"].clone(),
            i["json"].clone(),
            i["body_len"].clone()
        ),
        (json!("PUT"), json!({"k": [1, "two"]}), json!(15))
    );

    // What a handler may return or throw.
    let r = server.get("/returns/string").await;
    assert_eq!(
        (r.status, r.header("content-type"), r.text()),
        (
            200,
            Some("text/plain; charset=utf-8"),
            "a plain string".into()
        )
    );
    let r = server.get("/returns/object").await;
    assert_eq!(
        (r.header("content-type"), r.text()),
        (Some("application/json"), r#"{"an":"object","n":1}"#.into())
    );
    let r = server.get("/returns/bytes").await;
    assert_eq!(
        (r.header("content-type"), r.body.as_slice()),
        (Some("application/octet-stream"), b"hi".as_slice())
    );
    let r = server.get("/returns/teapot").await;
    assert_eq!(
        (r.status, r.header("x-teapot"), r.text()),
        (418, Some("yes"), "short and stout\n".into())
    );
    let r = server.get("/returns/cookie").await;
    assert_eq!((r.status, r.header("x-extra")), (201, Some("1")));
    assert_eq!(
        r.header("set-cookie"),
        Some("pref=dark; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax")
    );
    let r = server.get("/returns/custom").await;
    assert_eq!(
        (r.status, r.header("content-type"), r.text()),
        (202, Some("text/x-custom"), "custom body".into())
    );
    assert_eq!(server.get("/returns/empty").await.status, 204);
    assert_eq!(server.get("/returns/unknown").await.status, 404);
    // Server errors show no detail; the log has it, with the bundle's line.
    for (kind, logged) in [
        ("server-error", "handler error: the secret reason"),
        (
            "crash",
            "uncaught exception in route returns: Error: a plain exception",
        ),
        ("reject", "TypeError: a rejected promise"),
        ("nothing", "the handler returned nothing"),
    ] {
        let r = server.get(&format!("/returns/{kind}")).await;
        assert_eq!(
            (r.status, r.text()),
            (500, "Internal Server Error\n".into()),
            "{kind}"
        );
        assert!(
            server
                .wait_for_log(logged, std::time::Duration::from_secs(5))
                .await,
            "{kind}: {}",
            server.log()
        );
    }
    assert!(server.log().contains("sdk.bundle.js:"), "{}", server.log());

    // An async handler: microtasks and a timer run before the response.
    let r = server.get("/async").await;
    assert_eq!(
        json_of(&r),
        json!({"order": ["sync", "microtask", "timer"]})
    );
    assert!(
        server
            .wait_for_log(
                r#"async route {"order":["sync","microtask","timer"]}"#,
                std::time::Duration::from_secs(5)
            )
            .await,
        "{}",
        server.log()
    );

    // Routing by name and method: a method the table lacks is a 405; a name it lacks a 404.
    assert_eq!(server.get("/methods").await.text(), "get");
    let r = send(server.addr, Req::new("DELETE", "/methods")).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    assert_eq!(server.get("/unrouted").await.status, 404);
}
