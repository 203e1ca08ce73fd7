//! `examples/todo`, tested as its author would: through `flagon::testing` (no socket), on
//! SQLite and on a real Postgres, and end to end in headless Chromium over real HTTP.
//!
//! The example is built once per test run with `flagon build` (its own Cargo workspace, as the
//! README's run command builds it), then every test loads it with fresh data.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use flagon::testing::{TestApp, TestClient, TestResponse};
use http::Method;
use serde_json::{Value, json};

use crate::harness::BinServer;
use crate::postgres::PgServer;

const PASSWORD_A: &str = "correct horse battery staple";
const PASSWORD_B: &str = "a different long passphrase";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/todo")
}

/// `flagon build examples/todo`, once per test run.
fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_flagon"))
            .arg("build")
            .arg(example())
            .output()
            .expect("flagon build runs");
        assert!(
            out.status.success(),
            "flagon build examples/todo failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        example()
    })
}

/// The example loaded with fresh, temporary data (SQLite and the rate-limit store).
async fn app(env: &[(&str, &str)]) -> TestApp {
    let path = tokio::task::spawn_blocking(built).await.unwrap();
    let mut builder = TestApp::builder(path).env("TODO_APIKEY_PEPPER", "p".repeat(48));
    for (k, v) in env {
        builder = builder.env(*k, *v);
    }
    builder.load().await.unwrap()
}

async fn sign_up(c: &mut TestClient, username: &str, password: &str) -> TestResponse {
    c.get("/signup").await;
    c.post_form("/signup", &[("username", username), ("password", password)])
        .await
}

async fn log_in(c: &mut TestClient, username: &str, password: &str) -> TestResponse {
    c.get("/login").await;
    c.post_form("/login", &[("username", username), ("password", password)])
        .await
}

/// A signed-up, signed-in user whose client holds a page's CSRF token.
async fn user(app: &TestApp, username: &str, password: &str) -> TestClient {
    let mut c = app.client();
    let r = sign_up(&mut c, username, password).await;
    assert_eq!(r.status(), 303, "{r:?}");
    let page = c.follow(&r).await;
    assert_eq!(page.status(), 200, "{page:?}");
    c
}

/// Add a todo through the form; its id, from the page's edit link.
async fn add(c: &mut TestClient, title: &str) -> String {
    let r = c.post_form("/todos", &[("title", title)]).await;
    assert_eq!(r.status(), 303, "{r:?}");
    let page = c.follow(&r).await;
    // The HTML escaper writes `/` as `&#47;`.
    let text = page.text().replace("&#47;", "/");
    let at = text
        .find(&format!("<span class=\"title\">{title}</span>"))
        .unwrap_or_else(|| panic!("{title} is on the page: {text}"));
    let before = &text[..at];
    let start = before
        .rfind("/todos/")
        .expect("a todo link before the title")
        + "/todos/".len();
    before[start..]
        .split(['/', '"', '?'])
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn todo_accounts_follow_asvs_and_failed_logins_are_limited() {
    let app = app(&[]).await;
    let mut c = app.client();
    // Length is the only password rule: 12..=128 characters, counted as characters.
    for (password, ok) in [
        ("short pass", false),
        ("twelve chars", true),
        (&"é".repeat(128), true),
        (&"a".repeat(129), false),
    ] {
        let name = format!("u{}", password.chars().count());
        let r = sign_up(&mut c, &name, password).await;
        assert_eq!(r.status() == 303, ok, "{password:?}: {r:?}");
        if ok {
            c.get("/todos").await;
            let out = c.post_form("/logout", &[] as &[(&str, &str)]).await;
            assert_eq!(out.status(), 303, "{out:?}");
        }
    }
    let r = sign_up(&mut c, "U12", "another fine password").await;
    assert_eq!(r.status(), 422, "a taken username (any case): {r:?}");

    // One message for a wrong password and an unknown user.
    let wrong = log_in(&mut c, "u12", "not the password").await;
    let unknown = log_in(&mut c, "nobody", "not the password").await;
    assert_eq!(
        (wrong.status().as_u16(), unknown.status().as_u16()),
        (422, 422)
    );
    for r in [&wrong, &unknown] {
        assert!(r.text().contains("Invalid username or password."), "{r:?}");
    }

    // The session is rotated at login: the cookie before is not the cookie after.
    c.get("/login").await;
    let before = c.cookie("session").map(str::to_string);
    let r = log_in(&mut c, "u12", "twelve chars").await;
    assert_eq!(r.status(), 303, "{r:?}");
    assert_ne!(c.cookie("session").map(str::to_string), before);
    let page = c.follow(&r).await;
    assert!(page.text().contains("u12"), "{page:?}");
    let r = c.post_form("/logout", &[] as &[(&str, &str)]).await;
    assert_eq!(r.status(), 303);
    let r = c
        .request(Method::GET, "/todos")
        .header("accept", "text/html")
        .send()
        .await;
    assert!(r.location().unwrap().starts_with("/login?next="), "{r:?}");

    // Per account: 5 failures in the window (one was above), then 429 from any address, with
    // the right password too; other accounts are unaffected. `U12 ` is the same account.
    let mut attacker = app
        .client()
        .with_client_addr("127.0.0.2:1".parse().unwrap());
    for i in 0..4 {
        let r = log_in(&mut attacker, "U12 ", &format!("guess {i} guess")).await;
        assert_eq!(r.status(), 422, "failure {i}: {r:?}");
        assert!(r.header("ratelimit-remaining").is_some(), "{r:?}");
    }
    let r = log_in(&mut attacker, "u12", "twelve chars").await;
    assert_eq!(r.status(), 429, "{r:?}");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    // The limit's answer is the app's own error page (JSON for an API client).
    assert!(r.text().contains("Too many attempts."), "{r:?}");
    let r = attacker
        .request(Method::POST, "/login")
        .header("accept", "application/json")
        .form(&[("username", "u12"), ("password", "twelve chars")])
        .send()
        .await;
    assert_eq!(r.status(), 429, "{r:?}");
    assert_eq!(r.json::<Value>().unwrap()["error"], "Too Many Requests");
    let mut owner = app
        .client()
        .with_client_addr("127.0.0.3:1".parse().unwrap());
    assert_eq!(
        log_in(&mut owner, "u12", "twelve chars").await.status(),
        429
    );
    assert_eq!(
        log_in(&mut owner, "u128", &"é".repeat(128)).await.status(),
        303
    );

    // Per address: 10 failures over any accounts, then 429 for that address only.
    let mut sprayer = app
        .client()
        .with_client_addr("127.0.0.4:1".parse().unwrap());
    for i in 0..10 {
        let r = log_in(&mut sprayer, &format!("spray{i}"), "wrong wrong wrong").await;
        assert_eq!(r.status(), 422, "failure {i}: {r:?}");
    }
    let r = log_in(&mut sprayer, "someone", "wrong wrong wrong").await;
    assert_eq!(r.status(), 429, "{r:?}");
    let mut other = app
        .client()
        .with_client_addr("127.0.0.5:1".parse().unwrap());
    assert_eq!(
        log_in(&mut other, "someone", "wrong wrong wrong")
            .await
            .status(),
        422
    );
}

#[tokio::test]
async fn todo_users_never_reach_each_others_todos() {
    let app = app(&[]).await;
    let mut a = user(&app, "alice", PASSWORD_A).await;
    let mut b = user(&app, "bob", PASSWORD_B).await;
    let milk = add(&mut a, "Buy milk").await;
    add(&mut b, "Bobs plan").await;

    let page = b.get("/todos").await;
    assert!(!page.text().contains("Buy milk"), "{page:?}");
    // Every way to alice's todo is a 404 for bob (not a 403: he learns nothing about it).
    assert_eq!(b.get(&format!("/todos/{milk}/edit")).await.status(), 404);
    b.get("/todos").await;
    for (path, fields) in [
        (format!("/todos/{milk}"), vec![("title", "pwned")]),
        (format!("/todos/{milk}/toggle"), vec![]),
        (format!("/todos/{milk}/delete"), vec![]),
    ] {
        let r = b.post_form(&path, &fields).await;
        assert_eq!(r.status(), 404, "{path}: {r:?}");
    }
    let page = a.get("/todos").await;
    assert!(page.text().contains("Buy milk") && !page.text().contains("pwned"));

    // Every change is CSRF-protected.
    let r = a
        .request(Method::POST, &format!("/todos/{milk}/delete"))
        .form(&[] as &[(&str, &str)])
        .without_csrf()
        .send()
        .await;
    assert_eq!(r.status(), 403, "{r:?}");

    // Search is a parameterized LIKE: wildcards are text, case does not matter.
    add(&mut a, "100% done").await;
    add(&mut a, "under_score").await;
    for (q, hits) in [("MILK", 1), ("%", 1), ("_", 1), ("' OR 1=1 --", 0), ("", 3)] {
        let page = a.get(&format!("/todos?q={}", urlencode(q))).await;
        let n = page.text().matches("<li class=\"todo").count();
        assert_eq!(n, hits, "q={q:?}");
    }
    // Pagination: 10 per page.
    for i in 0..9 {
        add(&mut a, &format!("item {i:02}")).await;
    }
    let one = a.get("/todos").await;
    let two = a.get("/todos?page=2").await;
    assert_eq!(one.text().matches("<li class=\"todo").count(), 10);
    assert_eq!(two.text().matches("<li class=\"todo").count(), 2);
    assert!(one.text().contains("Page 1 of 2"), "{one:?}");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Create an API key through the keys page; the `<id>.<secret>` shown once.
async fn api_key(c: &mut TestClient, name: &str) -> String {
    c.get("/account/keys").await;
    let r = c.post_form("/account/keys", &[("name", name)]).await;
    assert_eq!(r.status(), 201, "{r:?}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let text = r.text();
    let start = text.find("<pre class=\"secret\"><code>").unwrap() + 26;
    text[start..text[start..].find('<').unwrap() + start].to_string()
}

#[tokio::test]
async fn todo_json_api_takes_api_keys_and_cors_for_one_origin() {
    let app = app(&[]).await;
    let mut a = user(&app, "alice", PASSWORD_A).await;
    let mut b = user(&app, "bob", PASSWORD_B).await;
    let key = api_key(&mut a, "script").await;
    let bob_key = api_key(&mut b, "bob's").await;
    let bearer = format!("Bearer {key}");
    let mut api = app.client();

    let r = api
        .request(Method::POST, "/api/todos")
        .header("authorization", &bearer)
        .json(&json!({"title": "from the API"}))
        .send()
        .await;
    assert_eq!(r.status(), 201, "{r:?}");
    let todo: Value = r.json().unwrap();
    let id = todo["id"].as_str().unwrap().to_string();
    assert_eq!(r.location(), Some(format!("/api/todos/{id}").as_str()));
    let r = api
        .request(Method::PATCH, &format!("/api/todos/{id}"))
        .header("authorization", &bearer)
        .json(&json!({"done": true}))
        .send()
        .await;
    assert_eq!(r.json::<Value>().unwrap()["done"], true, "{r:?}");
    // The UI sees what the API made.
    assert!(a.get("/todos").await.text().contains("from the API"));
    let list: Value = api
        .request(Method::GET, "/api/todos?q=api")
        .header("x-api-key", &key)
        .send()
        .await
        .json()
        .unwrap();
    assert_eq!(list["todos"].as_array().unwrap().len(), 1, "{list}");

    // Bob's key reaches bob's todos only.
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let r = api
            .request(method.clone(), &format!("/api/todos/{id}"))
            .header("authorization", &format!("Bearer {bob_key}"))
            .json(&json!({"title": "x"}))
            .send()
            .await;
        assert_eq!(r.status(), 404, "{method}: {r:?}");
    }
    // No key, a wrong one, or alice's session cookie alone: 401. An API client asking for
    // JSON gets the host's error as JSON, with the challenge.
    let r = api
        .request(Method::GET, "/api/todos")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    assert!(
        r.header("www-authenticate").unwrap().starts_with("Bearer"),
        "{r:?}"
    );
    assert_eq!(r.header("access-control-allow-origin"), None);
    let error: Value = r.json().unwrap();
    assert_eq!(error["error"], "Unauthorized", "{error}");
    assert!(error["request_id"].is_string(), "{error}");
    assert_eq!(api.get("/api/todos").await.status(), 401);
    let wrong = format!("{}.{}", key.split('.').next().unwrap(), "x".repeat(43));
    let r = api
        .request(Method::GET, "/api/todos")
        .header("authorization", &format!("Bearer {wrong}"))
        .send()
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(a.get("/api/todos").await.status(), 401);
    // CSRF is off for the API: no token, no Origin needed with a key.
    let r = api
        .request(Method::DELETE, &format!("/api/todos/{id}"))
        .header("authorization", &bearer)
        .without_csrf()
        .send()
        .await;
    assert_eq!(r.status(), 204, "{r:?}");

    // CORS for the one configured origin.
    let preflight = |origin: &'static str| {
        let mut c = app.client();
        async move {
            c.request(Method::OPTIONS, "/api/todos")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization, content-type",
                )
                .send()
                .await
        }
    };
    let ok = preflight("http://localhost:3000").await;
    assert_eq!(ok.status(), 204, "{ok:?}");
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(preflight("https://evil.example").await.status(), 403);

    // Revoking in the UI stops the key at once.
    let keys = a.get("/account/keys").await;
    let id = key.split('.').next().unwrap();
    assert!(
        keys.text()
            .replace("&#47;", "/")
            .contains(&format!("/account/keys/{id}/revoke"))
    );
    let r = a
        .post_form(
            &format!("/account/keys/{id}/revoke"),
            &[] as &[(&str, &str)],
        )
        .await;
    assert_eq!(r.status(), 303, "{r:?}");
    let r = api
        .request(Method::GET, "/api/todos")
        .header("authorization", &bearer)
        .send()
        .await;
    assert_eq!(r.status(), 401);
    // Bob cannot revoke alice's keys.
    b.get("/account/keys").await;
    let r = b
        .post_form(
            &format!(
                "/account/keys/{}/revoke",
                bob_key.split('.').next().unwrap()
            ),
            &[] as &[(&str, &str)],
        )
        .await;
    assert_eq!(r.status(), 303, "his own: {r:?}");
    let r = b
        .post_form(
            &format!("/account/keys/{id}/revoke"),
            &[] as &[(&str, &str)],
        )
        .await;
    assert_eq!(r.status(), 404, "hers: {r:?}");
}

#[tokio::test]
async fn todo_admin_page_is_for_the_admin_role() {
    // No admin by default, so nobody reaches the page.
    let app_ = app(&[]).await;
    let mut a = user(&app_, "alice", PASSWORD_A).await;
    assert_eq!(a.get("/admin/users").await.status(), 403);
    drop((a, app_));
    // TODO_ADMINS names the admins; they get the role when they sign in.
    let app = app(&[("TODO_ADMINS", "alice")]).await;
    let mut a = user(&app, "alice", PASSWORD_A).await;
    let mut b = user(&app, "bob", PASSWORD_B).await;
    let page = a.get("/admin/users").await;
    assert_eq!(page.status(), 200, "{page:?}");
    assert!(page.text().contains("bob"));
    assert_eq!(b.get("/admin/users").await.status(), 403);
    // Signed out, a browser is sent to log in.
    let mut anon = app.client();
    let r = anon
        .request(Method::GET, "/admin/users")
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.location(), Some("/login?next=%2Fadmin%2Fusers"));
}

#[tokio::test]
async fn todo_runs_on_postgres_by_setting_one_variable() {
    let pg = PgServer::start().await;
    let url = format!(
        "postgres://app:{}@127.0.0.1:{}/postgres?sslmode=disable",
        crate::postgres::PASSWORD,
        pg.port
    );
    let app = app(&[("TODO_DATABASE_URL", url.as_str())]).await;
    let mut a = user(&app, "alice", PASSWORD_A).await;
    let mut b = user(&app, "bob", PASSWORD_B).await;
    let milk = add(&mut a, "Buy milk").await;
    add(&mut a, "50% of the budget").await;
    assert_eq!(b.get(&format!("/todos/{milk}/edit")).await.status(), 404);
    let page = a.get("/todos?q=%25").await;
    assert_eq!(page.text().matches("<li class=\"todo").count(), 1);
    let key = api_key(&mut a, "pg").await;
    let list: Value = app
        .client()
        .request(Method::GET, "/api/todos")
        .header("authorization", &format!("Bearer {key}"))
        .send()
        .await
        .json()
        .unwrap();
    assert_eq!(list["total"], 2, "{list}");
    // The rows are in Postgres, put there by the migrations' tables.
    let users = pg.psql("SELECT username FROM users ORDER BY username");
    assert_eq!(
        users.split_whitespace().collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    let applied = pg.psql("SELECT count(*) FROM _flagon_migrations");
    assert_eq!(applied.trim(), "3");
}

/// A copy of the built example in a temporary directory, so that a served run keeps its data
/// there.
fn copy_of_example() -> tempfile::TempDir {
    let src = built();
    let dir = tempfile::tempdir().unwrap();
    for d in ["migrations", "templates", "templates/errors", "static"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
        for e in std::fs::read_dir(src.join(d)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), dir.path().join(d).join(e.file_name())).unwrap();
            }
        }
    }
    std::fs::copy(src.join("flagon.toml"), dir.path().join("flagon.toml")).unwrap();
    let wasm = "target/wasm32-wasip2/release/todo.wasm";
    std::fs::create_dir_all(dir.path().join(wasm).parent().unwrap()).unwrap();
    std::fs::copy(src.join(wasm), dir.path().join(wasm)).unwrap();
    dir
}

/// The whole app in headless Chromium over real HTTP (see `tests/browser/todo.mjs`).
/// `FLAGON_SCREENSHOTS=docs/screenshots` writes the README's screenshots there.
#[tokio::test]
async fn todo_in_a_real_browser() {
    let copy = tokio::task::spawn_blocking(copy_of_example).await.unwrap();
    let server =
        BinServer::spawn_with_args(copy.path(), &["--dev"], &[("TODO_ADMINS", "alice")], None)
            .await;
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in tests/browser (and install Debian's `chromium`); `bash tests/run` does both"
    );
    let shots = match std::env::var("FLAGON_SCREENSHOTS") {
        Ok(dir) => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir),
        Err(_) => copy.path().join("screenshots"),
    };
    std::fs::create_dir_all(&shots).unwrap();
    // `localhost`, as people type it (and a secure context for Chromium).
    let base = format!("http://localhost:{}", server.addr.port());
    let run = tokio::process::Command::new("node")
        .arg(browser.join("todo.mjs"))
        .arg(&base)
        .arg(&shots)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser run finishes within 4 minutes")
        .expect("node runs (install Node.js)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON report line");
    assert_eq!(report["failures"], json!([]), "{report:#}");
    let steps = report["steps"].as_object().unwrap();
    assert!(steps.len() >= 25, "{report:#}");
    assert!(steps.values().all(|v| v == true), "{report:#}");
    // No console errors but the deliberate error pages' statuses: no CSP violation, no script
    // error, no missing resource.
    let expected = [
        "status of 403",
        "status of 404",
        "status of 422",
        "status of 429",
    ];
    for m in report["console"].as_array().unwrap() {
        let text = m["text"].as_str().unwrap();
        assert!(
            text.starts_with("Failed to load resource")
                && expected.iter().any(|e| text.contains(e)),
            "unexpected console message: {m}"
        );
    }
    for name in ["home", "login", "todos", "keys", "admin"] {
        assert!(shots.join(format!("{name}.png")).is_file(), "{name}.png");
    }
}

/// `flagon migrate --dev` loads the app as `serve --dev` does (no session key or pepper
/// needed) and applies the migrations before any extension checks its table.
#[tokio::test]
async fn todo_migrates_with_flagon_migrate() {
    let copy = tokio::task::spawn_blocking(copy_of_example).await.unwrap();
    let migrate = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_flagon"))
            .arg("migrate")
            .arg(copy.path())
            .args(args)
            .env("FLAGON_CACHE_DIR", crate::harness::cache_dir())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), stdout, stderr)
    };
    let (ok, stdout, stderr) = migrate(&["--status", "--dev"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.matches("pending").count(), 3, "{stdout}");
    let (ok, stdout, stderr) = migrate(&["--dev"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.matches("(just now)").count(), 3, "{stdout}");
    // Without --dev the pepper is required, and the error says where to set it.
    let (ok, _, stderr) = migrate(&[]);
    assert!(!ok && stderr.contains("TODO_APIKEY_PEPPER"), "{stderr}");
}
