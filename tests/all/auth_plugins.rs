//! `plugins/auth-session` and `plugins/auth-apikey` over real HTTP, in one app: a browser
//! signed in by the app's own handler, and API clients with keys stored hashed in kv.

use crate::harness::{Req, TestManifest, TestServer, program};
use crate::programs;
use crate::web::{SESSION_KEY, session_cookie};

const PEPPER: &str = "a pepper of more than thirty-two bytes, for the tests";

fn manifest() -> String {
    format!(
        r#"
[app]
name = "plugintest"

[server]
allowed_hosts = ["127.0.0.1"]

[session]
secret = "session_key"

[variables]
session_key = {{ file = "keys/session.key", secret = true }}
pepper = {{ file = "keys/pepper", secret = true }}

[kv.counter]

[auth]
authenticators = ["apikey", "session"]

[components.web]
source = {web}
grants = {{ templates = true, session = true, kv = ["counter"] }}

[components.session]
source = {session}
grants = {{ session = true }}

[components.apikey]
source = {apikey}
grants = {{ kv = ["counter"], crypto = true, variables = ["pepper"] }}
settings = {{ store = "counter", pepper_variable = "pepper" }}

[[routes]]
path = "/me"
component = "web"
name = "me.required"
auth = "required"

[[routes]]
path = "/admin"
component = "web"
name = "me.admin"
auth = "required"
roles = ["admin"]

[[routes]]
path = "/api/me"
component = "web"
name = "me.api"
auth = "required"
authenticators = ["apikey"]

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
path = "/token"
component = "web"
name = "token"

[[routes]]
path = "/kv-put"
component = "web"
name = "kv-put"

[[routes]]
path = "/kv-delete"
component = "web"
name = "kv-delete"
"#,
        web = program(programs::WEB),
        session = program(programs::PLUGIN_AUTH_SESSION),
        apikey = program(programs::PLUGIN_AUTH_APIKEY),
    )
}

async fn start() -> TestServer {
    let files = [
        ("keys/session.key", SESSION_KEY),
        ("keys/pepper", PEPPER),
        ("templates/me.html", ""),
    ];
    TestServer::serve(
        TestManifest::with_files(&manifest(), &files),
        Default::default(),
    )
    .await
}

fn subject(r: &crate::harness::Reply) -> serde_json::Value {
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["subject"].clone()
}

#[tokio::test]
async fn auth_session_identifies_who_the_login_handler_signed_in() {
    let s = start().await;
    assert_eq!(s.get("/me").await.status, 401);
    // Sign in the way a browser does (token, then a same-origin POST).
    let r = s.get("/token").await;
    let cookie = session_cookie(&r).unwrap();
    let token = r.text();
    let signin = |cookie: String, body: String| {
        Req::new("POST", "/signin")
            .header("cookie", &cookie)
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let r = s
        .send(signin(
            cookie.clone(),
            format!("csrf_token={token}&user=ada&roles=admin"),
        ))
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let signed_in = session_cookie(&r).unwrap();
    assert_ne!(signed_in, cookie, "the session was rotated");
    let me = |c: &str| Req::new("GET", "/me").header("cookie", c);
    let r = s.send(me(&signed_in)).await;
    assert_eq!(subject(&r), "ada");
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["authenticator"], "session");
    assert_eq!(body["roles"], serde_json::json!(["admin"]));
    let r = s
        .send(Req::new("GET", "/admin").header("cookie", &signed_in))
        .await;
    assert_eq!(r.status, 200);
    // An API route does not take the cookie.
    let r = s
        .send(Req::new("GET", "/api/me").header("cookie", &signed_in))
        .await;
    assert_eq!(r.status, 401);
    // Signing out ends it.
    let token = s
        .send(Req::new("GET", "/token").header("cookie", &signed_in))
        .await
        .text();
    let r = s
        .send(
            Req::new("POST", "/signout")
                .header("cookie", &signed_in)
                .header("sec-fetch-site", "same-origin")
                .header("x-csrf-token", &token),
        )
        .await;
    let out = session_cookie(&r).unwrap();
    assert_eq!(s.send(me(&out)).await.status, 401);
}

fn hmac_hex(secret: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, PEPPER.as_bytes());
    ring::hmac::sign(&key, secret.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn auth_apikey_checks_hashed_keys_and_revocation() {
    let s = start().await;
    let secret = "s3cr3t-s3cr3t-s3cr3t-0123456789";
    let record = serde_json::json!({
        "hash": hmac_hex(secret),
        "subject": "svc-7",
        "name": "CI",
        "roles": ["deploy"],
    })
    .to_string();
    let put = format!(
        "/kv-put?key=apikey:ci&v={}",
        percent_encoding::utf8_percent_encode(&record, percent_encoding::NON_ALPHANUMERIC)
    );
    assert_eq!(s.get(&put).await.text(), "stored");
    // The store never holds the secret.
    assert!(!record.contains(secret));

    let key = format!("ci.{secret}");
    let bearer =
        |k: &str| Req::new("GET", "/api/me").header("authorization", &format!("Bearer {k}"));
    let r = s.send(bearer(&key)).await;
    assert_eq!(subject(&r), "svc-7");
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["claims"], serde_json::json!([["api_key_id", "ci"]]));
    let r = s
        .send(Req::new("GET", "/api/me").header("x-api-key", &key))
        .await;
    assert_eq!(subject(&r), "svc-7");
    // Keys work on `[auth]`'s routes too (first in the list), and roles are checked.
    assert_eq!(
        subject(
            &s.send(Req::new("GET", "/me").header("x-api-key", &key))
                .await
        ),
        "svc-7"
    );
    assert_eq!(
        s.send(Req::new("GET", "/admin").header("x-api-key", &key))
            .await
            .status,
        403
    );

    for bad in [
        format!("ci.{secret}x"),
        format!("nope.{secret}"),
        format!("ci.{}", "A".repeat(40)),
    ] {
        let r = s.send(bearer(&bad)).await;
        assert_eq!(r.status, 401, "{bad}");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("invalid_token")
        );
    }
    // Not a key at all (a JWT, a bare word): no identity, 401 without `error`.
    for other in ["a.b.c", "word"] {
        let r = s.send(bearer(other)).await;
        assert_eq!(r.status, 401);
        assert!(
            !r.header("www-authenticate")
                .unwrap()
                .contains("invalid_token")
        );
    }
    // Revoked: the record is deleted.
    assert_eq!(s.get("/kv-delete?key=apikey:ci").await.text(), "true");
    assert_eq!(s.send(bearer(&key)).await.status, 401);
}

#[tokio::test]
async fn auth_apikey_sql_reads_keys_from_a_table() {
    let secret = "table-secret-0123456789abcdef";
    let migration = format!(
        "CREATE TABLE api_keys (id TEXT PRIMARY KEY, hash TEXT NOT NULL, subject TEXT NOT NULL, \
         name TEXT, roles TEXT, revoked INTEGER NOT NULL DEFAULT 0);\n\
         INSERT INTO api_keys VALUES ('k1', '{h}', 'svc-1', 'Deployer', '[\"admin\"]', 0);\n\
         INSERT INTO api_keys VALUES ('k2', '{h}', 'svc-2', NULL, 'a b', 1);\n",
        h = hmac_hex(secret)
    );
    let text = manifest()
        .replace(
            "[kv.counter]\n",
            "[kv.counter]\n\n[databases.main]\nadapter = \"sqlite\"\nmigrations = \"migrations\"\n",
        )
        .replace(
            &format!("source = {}", program(programs::PLUGIN_AUTH_APIKEY)),
            &format!("source = {}", program(programs::PLUGIN_AUTH_APIKEY_SQL)),
        )
        .replace(
            "grants = { kv = [\"counter\"], crypto = true, variables = [\"pepper\"] }\nsettings = { store = \"counter\", pepper_variable = \"pepper\" }",
            "grants = { sql = [\"main\"], crypto = true, variables = [\"pepper\"] }\nsettings = { database = \"main\", pepper_variable = \"pepper\" }",
        );
    assert!(text.contains("database = \"main\""), "{text}");
    let files = [
        ("keys/session.key", SESSION_KEY),
        ("keys/pepper", PEPPER),
        ("templates/me.html", ""),
        ("migrations/0001_keys.sql", migration.as_str()),
    ];
    let s = TestServer::serve(TestManifest::with_files(&text, &files), Default::default()).await;
    let key = |k: &str| Req::new("GET", "/admin").header("x-api-key", k);
    let r = s.send(key(&format!("k1.{secret}"))).await;
    assert_eq!(subject(&r), "svc-1");
    // Revoked in the table, a wrong secret, an unknown id: 401.
    for bad in [
        format!("k2.{secret}"),
        format!("k1.{secret}!"),
        format!("k9.{secret}"),
    ] {
        assert_eq!(s.send(key(&bad)).await.status, 401, "{bad}");
    }
    // A quote in the id cannot reach the statement: ids are letters, digits, `-`, `_`, and
    // the id is a bound parameter anyway.
    assert_eq!(s.send(key(&format!("k1'--.{secret}"))).await.status, 401);
}
