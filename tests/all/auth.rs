//! Authenticators, the host's authorization decision and middleware, over real HTTP, with the
//! test components `authn` (an authenticator driven by headers) and `mw` (a middleware driven
//! by headers) around the `web` handler.

use crate::harness::{Reply, Req, TestManifest, TestServer, program};
use crate::programs;
use crate::web::{SESSION_KEY, log_in, session_cookie};

pub fn manifest(extra: &str) -> String {
    format!(
        r#"
[app]
name = "authtest"

[server]
allowed_hosts = ["127.0.0.1"]

[session]
secret = "session_key"

[variables]
session_key = {{ file = "keys/session.key", secret = true }}

[auth]
authenticators = ["a", "b"]
login_route = "login"

[components.web]
source = {web}
grants = {{ templates = true, session = true, kv = ["counter"] }}

[kv.counter]

[components.a]
source = {authn}
grants = {{ session = true }}
limits = {{ timeout = "500ms" }}

[components.b]
source = {authn}
grants = {{ session = true }}
settings = {{ scheme = "Other" }}

[components.sauth]
source = {authn}
grants = {{ session = true }}
settings = {{ scheme = "Sess", from_session = true }}

[components.m1]
source = {mw}
settings = {{ name = "one" }}
limits = {{ timeout = "500ms" }}

[components.m2]
source = {mw}
settings = {{ name = "two" }}

[[middleware]]
component = "m1"

[[middleware]]
component = "m2"
prefixes = ["/api"]
routes = ["me.admin"]

[[routes]]
path = "/open"
component = "web"
name = "me.open"

[[routes]]
path = "/optional"
component = "web"
name = "me.optional"
auth = "optional"

[[routes]]
path = "/required"
component = "web"
name = "me.required"
auth = "required"

[[routes]]
path = "/admin"
component = "web"
name = "me.admin"
auth = "required"
roles = ["admin", "root"]

[[routes]]
path = "/api/thing"
component = "web"
name = "me.api"
auth = "required"
authenticators = ["b"]

[[routes]]
path = "/sess"
methods = ["GET", "POST"]
component = "web"
name = "me.sess"
auth = "required"
authenticators = ["sauth"]

[[routes]]
path = "/page"
component = "web"
name = "page.me"
auth = "optional"

[[routes]]
path = "/login"
methods = ["GET", "POST"]
component = "web"
name = "login"

[[routes]]
path = "/token"
component = "web"
name = "token"
{extra}
"#,
        web = program(programs::WEB),
        authn = program(programs::AUTHN),
        mw = program(programs::MW),
    )
}

fn files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("keys/session.key", SESSION_KEY),
        (
            "templates/me.html",
            "{% if current_user %}<p id=\"me\">{{ current_user.name }} [{{ current_user.roles|join(',') }}] via {{ current_user.authenticator }}</p>{% else %}<p>anonymous</p>{% endif %}",
        ),
    ]
}

async fn start() -> TestServer {
    TestServer::serve(
        TestManifest::with_files(&manifest(""), &files()),
        Default::default(),
    )
    .await
}

async fn get(s: &TestServer, path: &str, auth: Option<&str>) -> Reply {
    let mut req = Req::new("GET", path);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    s.send(req).await
}

fn json(r: &Reply) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

#[tokio::test]
async fn the_401_403_matrix_for_every_route_mode() {
    let s = start().await;
    // No `auth`: the authenticators do not run, whatever the request carries.
    for creds in [None, Some("Test invalid"), Some("Test trap")] {
        let r = get(&s, "/open", creds).await;
        assert_eq!(r.status, 200, "{creds:?}: {}", r.text());
        assert_eq!(json(&r), serde_json::Value::Null);
    }

    // Optional: anonymous is fine, an identity is passed on, bad credentials are still 401.
    let r = get(&s, "/optional", None).await;
    assert_eq!((r.status, json(&r)), (200, serde_json::Value::Null));
    let r = get(&s, "/optional", Some("Test user:ada:editor")).await;
    assert_eq!(r.status, 200);
    let me = json(&r);
    assert_eq!(me["subject"], "ada");
    assert_eq!(me["name"], "User ada");
    assert_eq!(me["roles"], serde_json::json!(["editor"]));
    assert_eq!(me["claims"], serde_json::json!([["scheme", "Test"]]));
    assert_eq!(
        me["authenticator"], "a",
        "the host names the authenticator, not the guest"
    );
    let r = get(&s, "/optional", Some("Test invalid")).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="authtest", error="invalid_token""#)
    );
    assert!(
        !r.text().contains("invalid"),
        "the reason is not sent: {}",
        r.text()
    );

    // Required: no identity is 401 with a challenge; a browser is sent to the login page.
    let r = get(&s, "/required", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="authtest""#)
    );
    let r = s
        .send(Req::new("GET", "/required?x=1&y=%2F").header("accept", "text/html,*/*"))
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/login?next=%2Frequired%3Fx%3D1%26y%3D%252F")
    );
    // A path that would be an open redirect is not passed as `next`.
    let r = s
        .send(Req::new("GET", "//evil.example/required").header("accept", "text/html"))
        .await;
    assert!(
        r.status == 404 || r.header("location") == Some("/login"),
        "{r:?}"
    );
    // Not a browser navigation (a POST, or no text/html): 401.
    let r = s
        .send(Req::new("GET", "/required").header("accept", "application/json"))
        .await;
    assert_eq!(r.status, 401);
    let r = get(&s, "/required", Some("Test user:bob")).await;
    assert_eq!((r.status, json(&r)["subject"].clone()), (200, "bob".into()));

    // The first identity wins, in order: `a` does not know the scheme `Other`, `b` does.
    let r = get(&s, "/required", Some("Other user:carol")).await;
    assert_eq!(json(&r)["authenticator"], "b");
    // A route's own list replaces `[auth]`'s.
    let r = get(&s, "/api/thing", Some("Test user:dave")).await;
    assert_eq!(r.status, 401, "only `b` is asked on /api");
    let r = get(&s, "/api/thing", Some("Other user:dave")).await;
    assert_eq!(r.status, 200);

    // Roles (any of): without one 403, with one 200.
    let r = get(&s, "/admin", Some("Test user:eve:editor")).await;
    assert_eq!(r.status, 403);
    assert!(r.header("www-authenticate").is_none());
    let r = get(&s, "/admin", Some("Test user:eve:editor,root")).await;
    assert_eq!(r.status, 200);
    let r = get(&s, "/admin", None).await;
    assert_eq!(r.status, 401, "no identity is 401 before any role check");

    // An authenticator that cannot decide is 503; a broken one is contained.
    let r = get(&s, "/required", Some("Test unavailable")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = get(&s, "/required", Some("Test trap")).await;
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("panic"), "{}", r.text());
    let r = get(&s, "/required", Some("Test loop")).await;
    assert_eq!(r.status, 504);
    let r = get(&s, "/required", Some("Test empty-subject")).await;
    assert_eq!(r.status, 500);
    // ... and the host carries on.
    let r = get(&s, "/required", Some("Test user:frank")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn templates_see_current_user() {
    let s = start().await;
    let r = get(&s, "/page", Some("Test user:ada:admin,editor")).await;
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .contains("<p id=\"me\">User ada [admin,editor] via a</p>"),
        "{}",
        r.text()
    );
    let r = get(&s, "/page", None).await;
    assert!(r.text().contains("anonymous"), "{}", r.text());
}

#[tokio::test]
async fn a_session_authenticator_reads_the_cookie_and_keeps_csrf() {
    let s = start().await;
    let r = get(&s, "/sess", None).await;
    assert_eq!(r.status, 401);
    let cookie = log_in(&s, "grace").await;
    let r = s
        .send(Req::new("GET", "/sess").header("cookie", &cookie))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["subject"], "grace");
    assert_eq!(json(&r)["authenticator"], "sauth");
    assert_eq!(r.header("vary"), Some("Cookie"));
    // The authenticator's attempts to write the session (set, clear) changed nothing.
    assert!(session_cookie(&r).is_none(), "no Set-Cookie: {r:?}");
    let r = s
        .send(Req::new("GET", "/sess").header("cookie", &cookie))
        .await;
    assert_eq!(json(&r)["subject"], "grace");

    // Identified by the cookie, an unsafe method needs the CSRF token like any session route.
    let r = s
        .send(
            Req::new("POST", "/sess")
                .header("cookie", &cookie)
                .header("sec-fetch-site", "cross-site"),
        )
        .await;
    assert_eq!(r.status, 403);
    let token = s
        .send(Req::new("GET", "/token").header("cookie", &cookie))
        .await
        .text();
    let r = s
        .send(
            Req::new("POST", "/sess")
                .header("cookie", &cookie)
                .header("sec-fetch-site", "same-origin")
                .header("x-csrf-token", &token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn middleware_runs_in_order_around_routes() {
    let s = start().await;
    // m1 applies everywhere, m2 to /api and the admin route; `after` runs in reverse.
    let r = get(&s, "/open", None).await;
    assert_eq!(r.header("x-mw-trace"), Some("one"));
    let r = get(&s, "/api/thing", Some("Other user:ada")).await;
    assert_eq!(r.header("x-mw-trace"), Some("two,one"));
    // Middleware sees the identity.
    assert_eq!(r.header("x-mw-one-subject"), Some("ada"));
    assert_eq!(r.header("x-mw-two-subject"), Some("ada"));
    // ... and runs around the host's own answers too (a 401 gets its headers).
    let r = get(&s, "/admin", None).await;
    assert_eq!((r.status, r.header("x-mw-trace")), (401, Some("two,one")));

    // A middleware that answers stops the chain; the ones before it still see the response.
    let r = s
        .send(Req::new("GET", "/open").header("x-mw", "one=block"))
        .await;
    assert_eq!((r.status, r.text().as_str()), (418, "blocked"));
    assert_eq!(r.header("x-blocked-by"), Some("one"));
    assert!(r.header("x-mw-trace").is_none());
    let r = s
        .send(
            Req::new("GET", "/api/thing")
                .header("authorization", "Other user:ada")
                .header("x-mw", "two=block"),
        )
        .await;
    assert_eq!((r.status, r.header("x-mw-trace")), (418, Some("one")));
    // Security headers apply to middleware answers as to any response.
    assert!(r.header("x-content-type-options").is_some());

    // OPTIONS reaches the middleware of the path (a CORS preflight is answered there).
    let r = s.send(Req::new("OPTIONS", "/api/thing")).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(r.header("x-mw-trace"), Some("two,one"));
    let r = s
        .send(Req::new("OPTIONS", "/api/thing").header("x-mw", "two=block"))
        .await;
    assert_eq!(r.status, 418);
}

/// `form_fields` gives one entry's middleware the fields it names, and nothing else: not the
/// password, not the CSRF token, and nothing to the other entries.
#[tokio::test]
async fn middleware_sees_only_the_form_fields_its_entry_lists() {
    let text = manifest("")
        .replacen(
            "component = \"m1\"\n",
            "component = \"m1\"\nform_fields = [\"username\"]\n",
            1,
        )
        .replace(
            "routes = [\"me.admin\"]",
            "routes = [\"me.admin\", \"login\"]",
        );
    let s = TestServer::serve(
        TestManifest::with_files(&text, &files()),
        Default::default(),
    )
    .await;
    let r = s
        .send(
            Req::new("POST", "/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("password=hunter2hunter2&username=ada&csrf_token=x&username=again"),
        )
        .await;
    assert_eq!(r.header("x-mw-trace"), Some("two,one"), "{r:?}");
    assert_eq!(
        r.header("x-mw-one-form"),
        Some("username=ada&username=again")
    );
    assert_eq!(r.header("x-mw-two-form"), None);
    // A body that is not urlencoded is not read early, and gives no fields.
    let r = s
        .send(
            Req::new("POST", "/login")
                .header("content-type", "application/json")
                .body("{\"username\":\"ada\"}"),
        )
        .await;
    assert_eq!(r.header("x-mw-trace"), Some("two,one"), "{r:?}");
    assert_eq!(r.header("x-mw-one-form"), None);
}

#[tokio::test]
async fn a_misbehaving_middleware_is_contained() {
    let s = std::sync::Arc::new(start().await);
    let cases = [
        ("one=trap", 500),
        ("one=loop", 504),
        ("one=bad-header", 500),
        ("one=evil-redirect", 500),
        ("one=after-trap", 500),
        ("one=after-bad", 500),
    ];
    let mut tasks = Vec::new();
    for (what, status) in cases {
        let s1 = s.clone();
        tasks.push(tokio::spawn(async move {
            let r = s1.send(Req::new("GET", "/open").header("x-mw", what)).await;
            assert_eq!(r.status, status, "{what}: {}", r.text());
            assert!(!r.text().contains("panic"), "{what}: {}", r.text());
        }));
        // Well-behaved requests beside them are served.
        let s2 = s.clone();
        tasks.push(tokio::spawn(async move {
            let r = s2.get("/open").await;
            assert_eq!(r.status, 200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A Set-Cookie for the host's session cookie is dropped from a middleware's answer.
    let r = s
        .send(Req::new("GET", "/open").header("x-mw", "one=set-session"))
        .await;
    assert_eq!((r.status, r.text().as_str()), (200, "session"));
    assert!(r.header("set-cookie").is_none(), "{r:?}");
}

fn load_error(extra: &str, edit: impl Fn(String) -> String) -> String {
    let text = edit(manifest(extra));
    match TestManifest::with_files(&text, &files()).load_sync() {
        Ok(_) => panic!("loaded"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn bad_extension_setups_are_refused_at_load() {
    // A handler used as an authenticator lacks the world's export.
    let e = load_error("", |m| {
        let authn = format!(
            "[components.a]\nsource = {}\ngrants = {{ session = true }}",
            program(programs::AUTHN)
        );
        let hello = format!(
            "[components.a]\nsource = {}\ngrants = {{ crypto = true, outbound = [\"http://127.0.0.1:9\"], variables = [] }}",
            program(programs::HELLO)
        );
        assert!(m.contains(&authn));
        m.replace(&authn, &hello)
    });
    assert!(
        e.contains("component `a`") && e.contains("flagon:app/authenticator"),
        "{e}"
    );
    // An extension importing what it was not granted (the session authenticator without it).
    let e = load_error("", |m| {
        m.replace(
            "grants = { session = true }\nsettings = { scheme = \"Sess\"",
            "settings = { scheme = \"Sess\"",
        )
    });
    assert!(
        e.contains("component `sauth`") && e.contains("session = true"),
        "{e}"
    );
    // Settings the extension refuses.
    let e = load_error("", |m| {
        m.replace(
            "settings = { name = \"two\" }",
            "settings = { name = \"t-w-o\" }",
        )
    });
    assert!(
        e.contains("component `m2` refused its settings") && e.contains("alphanumeric"),
        "{e}"
    );
}

#[test]
fn bad_auth_manifests_name_the_key_and_the_fix() {
    let cases = [
        (
            "[[routes]]\npath = \"/x\"\ncomponent = \"web\"\nroles = [\"admin\"]\n",
            "roles",
            "`roles` without `auth`",
        ),
        (
            "[[routes]]\npath = \"/x\"\nmethods = [\"POST\"]\ncomponent = \"web\"\nauth = \"required\"\nauthenticators = [\"sauth\"]\ncsrf = false\n",
            ".csrf",
            "reads the cookie session",
        ),
        (
            "[[routes]]\npath = \"/x\"\ncomponent = \"web\"\nauth = \"required\"\nauthenticators = [\"nope\"]\n",
            "authenticators[0]",
            "unknown component `nope`",
        ),
        (
            "[[routes]]\npath = \"/x\"\ncomponent = \"a\"\n",
            "auth.authenticators[0]",
            "also a route's handler",
        ),
        (
            "[[middleware]]\ncomponent = \"m1\"\nroutes = [\"missing\"]\n",
            "middleware[2].routes[0]",
            "no route is named `missing`",
        ),
    ];
    for (extra, key, message) in cases {
        let text = manifest(extra);
        let e = flagon::Manifest::parse(std::path::Path::new("flagon.toml"), &text)
            .err()
            .unwrap_or_else(|| panic!("accepted: {extra}"))
            .to_string();
        assert!(e.contains(key) && e.contains(message), "{extra}\n{e}");
        assert!(e.contains("help:"), "{e}");
    }
}
