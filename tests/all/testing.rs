//! `flagon::testing`, the test client for app authors: requests through `App::handle` without a
//! socket, a cookie jar per client, CSRF tokens taken from pages and sent back, redirects,
//! variable overrides, JSON and client addresses.

use flagon::testing::{TestApp, TestClient};
use http::{Method, StatusCode};

use crate::harness::{TestManifest, cache_dir, program};
use crate::programs;
use crate::web::SESSION_KEY;

fn manifest() -> String {
    format!(
        r#"
[app]
name = "testclient"

[server]
allowed_hosts = ["app.test", "localhost"]

[session]
secret = "session_key"

[security]
redirect_origins = ["https://accounts.example.com"]

[variables]
session_key = {{ env = "TESTING_SESSION_KEY", secret = true }}
greeting = {{ env = "TESTING_GREETING", default = "howdy" }}
other_url = {{ env = "TESTING_OTHER_URL", default = "sqlite:" }}

[kv.counter]

[databases.main]
adapter = "sqlite"
migrations = "migrations"

[databases.other]
url_variable = "other_url"

[components.web]
source = {web}
grants = {{ templates = true, session = true, kv = ["counter"] }}

[components.session]
source = {session}
grants = {{ session = true }}

[components.hello]
source = {hello}
grants = {{ variables = ["greeting"], crypto = true, outbound = ["http://127.0.0.1:9"] }}

[components.db]
source = {db}
grants = {{ sql = ["main", "other"] }}

[auth]
authenticators = ["session"]

[[routes]]
path = "/home"
component = "web"
name = "home"

[[routes]]
path = "/signin"
methods = ["POST"]
component = "web"
name = "signin"

[[routes]]
path = "/signout"
methods = ["POST"]
component = "web"
name = "signout"

[[routes]]
path = "/me"
component = "web"
name = "me.required"
auth = "required"

[[routes]]
path = "/whoami"
component = "web"
name = "whoami"

[[routes]]
path = "/redirect"
component = "web"
name = "redirect"

[[routes]]
path = "/cookie"
component = "web"
name = "cookie"

[[routes]]
path = "/kv"
component = "web"
name = "kv"

[[routes]]
path = "/todos/add"
component = "db"
name = "todos-add"

[[routes]]
path = "/todos"
component = "db"
name = "todos"

[[routes]]
path = "/config"
component = "hello"
name = "config"

[[routes]]
path = "/echo"
methods = ["POST", "PUT"]
component = "hello"
name = "echo-json"

[[routes]]
path = "/inspect"
methods = ["GET", "POST", "DELETE", "PATCH"]
component = "hello"
name = "inspect"

[[routes]]
path = "/client"
component = "hello"
name = "plain-client"
"#,
        web = program(programs::WEB),
        session = program(programs::PLUGIN_AUTH_SESSION),
        hello = program(programs::HELLO),
        db = program(programs::DB),
    )
}

/// The sign-in form: the token in a `<meta>` and in the form, `value` before `name`.
const HOME: &str = r#"<!doctype html>
<html><head><meta content="{{ csrf_token() }}" name="csrf-token"></head>
<body>
{% if user %}<p id="hello">Hello {{ user }}</p>{% endif %}
<form method="post" action="/signin"><input value="{{ csrf_token() }}" type="hidden" name="csrf_token"><input name="user"><button>Sign in</button></form>
</body></html>
"#;

const TODOS: &str = "CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, note TEXT);\n";

/// The app in a temporary directory, which must outlive it (development mode re-reads
/// templates).
struct Fixture {
    app: TestApp,
    _dir: TestManifest,
}

impl std::ops::Deref for Fixture {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

fn app_dir() -> TestManifest {
    TestManifest::with_files(
        &manifest(),
        &[
            ("templates/home.html", HOME),
            ("templates/me.html", ""),
            ("migrations/0001_todos.sql", TODOS),
        ],
    )
}

async fn load(dev: bool) -> Fixture {
    let dir = app_dir();
    let app = TestApp::builder(dir.dir.path())
        .dev(dev)
        .env("TESTING_SESSION_KEY", SESSION_KEY)
        .cache_dir(cache_dir())
        .load()
        .await
        .expect("the test app loads");
    Fixture { app, _dir: dir }
}

const NO_FIELDS: &[(&str, &str)] = &[];

/// Load the form page, sign in as `user` with it, and follow the redirect home.
async fn sign_in(c: &mut TestClient, user: &str) {
    c.get("/home").await;
    let r = c
        .post_form("/signin", &[("user", user), ("roles", "admin")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{r:?}");
    let home = c.follow(&r).await;
    assert_eq!(home.status(), 200, "{home:?}");
}

async fn subject(c: &mut TestClient) -> Option<String> {
    let r = c.get("/me").await;
    match r.status() {
        StatusCode::OK => r.json::<serde_json::Value>().unwrap()["subject"]
            .as_str()
            .map(str::to_owned),
        StatusCode::UNAUTHORIZED => None,
        _ => panic!("{r:?}"),
    }
}

#[tokio::test]
async fn a_get_goes_through_the_whole_pipeline() {
    let app = load(true).await;
    assert_eq!(app.host(), "app.test");
    let mut c = app.client();
    let r = c.get("/home").await;
    assert_eq!(r.status(), StatusCode::OK, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.header("x-request-id").is_some(), "{r:?}");
    assert!(
        r.header("content-security-policy")
            .is_some_and(|csp| csp.contains("default-src 'self'")),
        "{r:?}"
    );
    assert!(r.text().contains("<form"), "{r:?}");
    // The page's token is the client's now, and the session that holds its secret is in the jar.
    let token = c.csrf_token().expect("the page's token");
    assert_eq!(token.len(), 86, "{token}");
    assert!(r.text().contains(token), "{r:?}");
    assert!(c.cookie("session").is_some(), "{r:?}");
    assert_eq!(c.get("/nowhere").await.status(), StatusCode::NOT_FOUND);
    // The host check runs: another Host is refused.
    let r = c
        .request(Method::GET, "/home")
        .header("host", "evil.example")
        .send()
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{r:?}");
    // An allowed host other than the first works too.
    let r = c
        .request(Method::GET, "/whoami")
        .header("host", "localhost")
        .send()
        .await;
    assert_eq!((r.status(), r.text()), (StatusCode::OK, "anonymous"));
}

#[tokio::test]
async fn forms_carry_the_csrf_token_and_without_it_are_refused() {
    let app = load(true).await;
    let mut c = app.client();

    // No page loaded yet: no token, no session, and the host refuses the form.
    let r = c.post_form("/signin", &[("user", "ada")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{r:?}");
    assert_eq!(c.csrf_token(), None);

    c.get("/home").await;
    let session = c.cookie("session").map(str::to_owned);
    let r = c
        .request(Method::POST, "/signin")
        .form(&[("user", "ada")])
        .without_csrf()
        .send()
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{r:?}");
    assert_eq!(c.cookie("session").map(str::to_owned), session);
    // The token, but from another site's page.
    let r = c
        .request(Method::POST, "/signin")
        .form(&[("user", "ada")])
        .header("sec-fetch-site", "cross-site")
        .send()
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{r:?}");
    assert_eq!(subject(&mut c).await, None);

    let r = c
        .post_form("/signin", &[("user", "ada"), ("roles", "admin")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{r:?}");
    assert_eq!(r.location(), Some("/home"));
    assert_ne!(c.cookie("session").map(str::to_owned), session, "rotated");
    assert_eq!(subject(&mut c).await.as_deref(), Some("ada"));
}

#[tokio::test]
async fn the_jar_keeps_the_session_until_sign_out() {
    let app = load(true).await;
    let mut c = app.client();
    c.get("/home").await;
    let r = c.post_form("/signin", &[("user", "ada")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{r:?}");
    for _ in 0..3 {
        assert_eq!(subject(&mut c).await.as_deref(), Some("ada"));
    }
    // Signing in gave the session a new CSRF secret: the token of the page before it is
    // refused, as in a browser, until a page is loaded again.
    let r = c.post_form("/signout", NO_FIELDS).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{r:?}");
    let stale = c.csrf_token().map(str::to_owned);
    c.get("/home").await;
    assert_ne!(c.csrf_token().map(str::to_owned), stale);
    // The header form of the token (a request that is not a urlencoded form).
    let r = c.request(Method::POST, "/signout").send().await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{r:?}");
    // The deletion (`Max-Age=0`) emptied the jar.
    let deletion = r.header("set-cookie").unwrap();
    assert!(deletion.contains("Max-Age=0"), "{deletion}");
    assert_eq!(c.cookie("session"), None);
    assert_eq!(subject(&mut c).await, None);
}

#[tokio::test]
async fn clients_do_not_share_cookies() {
    let app = load(true).await;
    let (mut a, mut b) = (app.client(), app.client());
    sign_in(&mut a, "ada").await;
    assert_eq!(subject(&mut a).await.as_deref(), Some("ada"));
    assert_eq!(subject(&mut b).await, None);
    assert_eq!(b.cookie("session"), None);
    sign_in(&mut b, "bob").await;
    assert_eq!(subject(&mut a).await.as_deref(), Some("ada"));
    assert_eq!(subject(&mut b).await.as_deref(), Some("bob"));

    a.set_cookie("theme", "dark");
    assert_eq!(a.get("/cookie").await.text(), "theme=dark");
    assert_eq!(b.get("/cookie").await.text(), "theme=none");
}

#[tokio::test]
async fn follow_follows_redirects_on_the_app() {
    let app = load(true).await;
    let mut c = app.client();
    let r = c.get("/redirect?to=/whoami%3Fx%3D1").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{r:?}");
    assert_eq!(r.location(), Some("/whoami?x=1"));
    let next = c.follow(&r).await;
    assert_eq!((next.status(), next.text()), (StatusCode::OK, "anonymous"));
    // A relative Location resolves against the request's path.
    let r = c.get("/redirect?to=whoami").await;
    assert_eq!(c.follow(&r).await.text(), "anonymous");
}

#[tokio::test]
#[should_panic(expected = "leaves the app")]
async fn follow_refuses_to_leave_the_app() {
    let app = load(true).await;
    let mut c = app.client();
    let r = c
        .get("/redirect?to=https://accounts.example.com/login")
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{r:?}");
    c.follow(&r).await;
}

#[tokio::test]
async fn env_overrides_reach_variables() {
    let dir = app_dir();
    let app = TestApp::builder(&dir.path)
        .env("TESTING_SESSION_KEY", SESSION_KEY)
        .env("TESTING_GREETING", "bonjour")
        .cache_dir(cache_dir())
        .load()
        .await
        .unwrap();
    let r = app.client().get("/config").await;
    assert!(r.text().starts_with("greeting=bonjour "), "{r:?}");
    // Without the override the default applies, and a required variable stops the load.
    let app = load(true).await;
    let r = app.client().get("/config").await;
    assert!(r.text().starts_with("greeting=howdy "), "{r:?}");
    let err = TestApp::builder(&dir.path)
        .cache_dir(cache_dir())
        .load()
        .await
        .expect_err("the session key is required");
    assert!(
        format!("{err:#}").contains("TESTING_SESSION_KEY"),
        "{err:#}"
    );
}

#[tokio::test]
async fn json_in_and_out_and_any_request() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Greeting {
        name: String,
        times: u8,
    }
    let app = load(true).await;
    let mut c = app.client();
    let r = c
        .post_json("/echo", &serde_json::json!({ "name": "ada", "times": 1 }))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json::<Greeting>().unwrap(),
        Greeting {
            name: "ADA".into(),
            times: 2
        }
    );
    let r = c
        .request(Method::PUT, "/echo")
        .json(&serde_json::json!({ "name": "bo", "times": 7 }))
        .send()
        .await;
    assert_eq!(r.json::<Greeting>().unwrap().times, 8);
    // A body that is not the JSON expected is an error naming the request.
    let r = c.get("/whoami").await;
    let err = r.json::<Greeting>().unwrap_err();
    assert!(
        format!("{err:#}").contains("200 OK response to GET /whoami"),
        "{err:#}"
    );

    let r = c
        .request(Method::PATCH, "/inspect?a=1")
        .header("user-agent", "flagon-test")
        .header("authorization", "Bearer t0ken")
        .body("12345")
        .send()
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{r:?}");
    let text = r.text();
    for want in ["method=PATCH", "query=a=1", "ua=flagon-test", "body-len=5"] {
        assert!(text.contains(want), "{want}: {text}");
    }
    assert_eq!(r.header("x-custom"), Some("yes"));
}

#[tokio::test]
async fn client_addresses_per_client_and_per_request() {
    let app = load(true).await;
    let mut c = app.client();
    assert_eq!(c.get("/client").await.text(), "127.0.0.1:40000");
    let r = c
        .request(Method::GET, "/client")
        .from_client("[2001:db8::7]:4711".parse().unwrap())
        .send()
        .await;
    assert_eq!(r.text(), "[2001:db8::7]:4711");
    let mut other = app
        .client()
        .with_client_addr("203.0.113.9:1234".parse().unwrap());
    assert_eq!(other.client_addr(), "203.0.113.9:1234".parse().unwrap());
    assert_eq!(other.get("/client").await.text(), "203.0.113.9:1234");
    assert_eq!(c.get("/client").await.text(), "127.0.0.1:40000");
}

#[tokio::test]
async fn secure_cookies_are_kept_outside_development_mode() {
    let app = load(false).await;
    let mut c = app.client();
    let r = c.get("/home").await;
    let set = r.header("set-cookie").unwrap();
    assert!(
        set.starts_with("__Host-session=") && set.contains("Secure"),
        "{set}"
    );
    assert!(c.cookie("__Host-session").is_some());
    assert_eq!(c.cookie("session"), None);
    sign_in(&mut c, "ada").await;
    assert_eq!(subject(&mut c).await.as_deref(), Some("ada"));
}

#[tokio::test]
async fn each_app_has_data_of_its_own() {
    let dir = app_dir();
    let builder = || {
        TestApp::builder(&dir.path)
            .env("TESTING_SESSION_KEY", SESSION_KEY)
            .cache_dir(cache_dir())
    };
    // Two apps of one manifest at once: each its own SQLite file (which the host locks) and
    // kv store, freshly migrated and empty.
    let a = builder().load().await.unwrap();
    let b = builder().load().await.unwrap();
    let hits = |app: &TestApp| {
        let mut c = app.client();
        async move { c.get("/kv?v=x").await.json::<serde_json::Value>().unwrap()["hits"].clone() }
    };
    assert_eq!(hits(&a).await, 1);
    assert_eq!(hits(&a).await, 2);
    assert_eq!(hits(&b).await, 1);
    let r = a.client().get("/todos/add?title=tea").await;
    assert_eq!(r.status(), StatusCode::OK, "{r:?}");
    let list = |app: &TestApp| {
        let mut c = app.client();
        async move {
            c.get("/todos")
                .await
                .json::<Vec<serde_json::Value>>()
                .unwrap()
        }
    };
    assert_eq!(list(&a).await.len(), 1);
    assert_eq!(list(&b).await.len(), 0);
    // Nothing was written beside the manifest, and a temporary directory goes with its app.
    assert!(!dir.dir.path().join("data").exists());
    let data = a.data_dir().to_owned();
    assert!(data.join("sql/main/main.db").is_file(), "{data:?}");
    // So does a database from `url_variable` whose URL is SQLite.
    assert!(data.join("sql/other/other.db").is_file(), "{data:?}");
    let client = a.client();
    drop(a);
    assert!(data.exists(), "a client keeps the app");
    drop(client);
    assert!(!data.exists(), "{}", data.display());

    // A directory of the test's own is used as it is, and kept.
    let mine = tempfile::tempdir().unwrap();
    let c = builder().data_dir(mine.path()).load().await.unwrap();
    assert_eq!(c.data_dir(), mine.path());
    assert_eq!(hits(&c).await, 1);
    drop(c);
    assert!(mine.path().join("sql/main/main.db").is_file());
    assert!(mine.path().join("kv").is_dir());
}

/// `LoadedComponent::instantiate` (what `flagon-bench` times): every component of the app,
/// handlers and authenticators alike, gets a live instance in a store of its own without being
/// called, under the same pool as requests; dropping the stores returns the slots.
#[tokio::test]
async fn components_instantiate_without_a_call() {
    let app = load(false).await;
    let engine = app.app().engine();
    let mut live = Vec::new();
    for c in app.app().components() {
        let needs = c
            .component()
            .resources_required()
            .expect("no imported modules");
        assert!(needs.num_memories >= 1, "{} has no memory", c.id);
        for _ in 0..3 {
            let ctx = c.request_ctx(std::sync::Arc::from("instantiate-test"));
            let store = c
                .instantiate(engine, ctx)
                .await
                .unwrap_or_else(|e| panic!("{} instantiates: {e}", c.id));
            live.push(store);
        }
    }
    assert_eq!(live.len(), app.app().components().len() * 3);
    drop(live);
    // Requests are served as before.
    let mut c = app.client();
    assert_eq!(c.get("/home").await.status(), StatusCode::OK);
}
