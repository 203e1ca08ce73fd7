//! The web layer over real HTTP: templates, static files, sessions, CSRF, forms, redirects,
//! security headers, hosts and proxies, error pages, key-value stores, development mode.

use flagon::LoadOptions;

use crate::harness::{Reply, Req, TestManifest, TestServer, program};
use crate::programs;

pub const SESSION_KEY: &str = "0123456789abcdef0123456789abcdef-test-session-key";
const OLD_KEY: &str = "an-older-key-that-still-verifies-cookies-0123456789";

/// The web test app. `security` is appended to the `[security]` table.
pub fn web_manifest(server: &str, security: &str) -> String {
    format!(
        r#"
[app]
name = "webtest"

[server]
allowed_hosts = ["127.0.0.1", "localhost"]
{server}

[session]
secret = "session_key"
fallback_secrets = ["old_session_key"]

[security]
redirect_origins = ["https://accounts.example.com"]
{security}

[errors]
404 = "errors/404.html"

[[static]]
url = "/static"
dir = "static"
cache_control = "public, max-age=60"

[kv.counter]
[kv.secret]

[variables]
session_key = {{ file = "keys/session.key", secret = true }}
old_session_key = {{ file = "keys/old.key", secret = true }}

[components.web]
source = {web}
grants = {{ templates = true, session = true, kv = ["counter"] }}

[[routes]]
path = "/xss"
component = "web"
name = "xss"

[[routes]]
path = "/home"
component = "web"
name = "home"

[[routes]]
path = "/login"
methods = ["POST"]
component = "web"
name = "login"

[[routes]]
path = "/logout"
methods = ["POST"]
component = "web"
name = "logout"

[[routes]]
path = "/whoami"
component = "web"
name = "whoami"

[[routes]]
path = "/token"
component = "web"
name = "token"

[[routes]]
path = "/upload"
methods = ["POST"]
component = "web"
name = "upload"

[[routes]]
path = "/api"
methods = ["POST"]
component = "web"
name = "api"
csrf = false

[[routes]]
path = "/big-session"
component = "web"
name = "big-session"

[[routes]]
path = "/bad-template"
component = "web"
name = "bad-template"

[[routes]]
path = "/redirect"
component = "web"
name = "redirect"

[[routes]]
path = "/set-cookie"
component = "web"
name = "set-cookie"

[[routes]]
path = "/kv"
component = "web"
name = "kv"

[[routes]]
path = "/kv-ttl"
component = "web"
name = "kv-ttl"

[[routes]]
path = "/kv-get"
component = "web"
name = "kv-get"

[[routes]]
path = "/kv-put"
component = "web"
name = "kv-put"

[[routes]]
path = "/kv-delete"
component = "web"
name = "kv-delete"

[[routes]]
path = "/empty-404"
component = "web"
name = "empty-404"

[[routes]]
path = "/cookie"
component = "web"
name = "cookie"

[[routes]]
path = "/cookie-header"
component = "web"
name = "cookie-header"

[components.plain]
source = {hello}
grants = {{ variables = [], crypto = true, outbound = ["http://127.0.0.1:9"] }}

[[routes]]
path = "/plain/cookie-header"
component = "plain"
name = "plain-cookie-header"

[[routes]]
path = "/plain/client"
component = "plain"
name = "plain-client"
"#,
        web = program(programs::WEB),
        hello = program(programs::HELLO),
    )
}

pub const BASE: &str = r#"<!doctype html>
<html><head><title>{% block title %}web{% endblock %}</title></head>
<body>
{% for f in get_flashed_messages() %}<p class="flash {{ f.category }}">{{ f.message }}</p>{% endfor %}
{% block body %}{% endblock %}
</body></html>
"#;

pub const HOME: &str = r#"{% extends "base.html" %}
{% block body %}
{% if user %}<p id="hello">Hello {{ user }}</p>
<form id="logout" method="post" action="{{ url_for('logout') }}"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}"><button>Log out</button></form>
{% else %}
<form id="login" method="post" action="{{ url_for('login') }}"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}"><input name="user" value="ada"><button>Log in</button></form>
{% endif %}
{% endblock %}
"#;

/// Untrusted input in every HTML context. The inline script is the page's own (the browser
/// test runs it with the CSP turned off, so only escaping stands between the payload and
/// execution); it records what the link's URL became.
pub const XSS: &str = r#"{% extends "base.html" %}
{% block body %}
<p id="text">{{ v }}</p>
<input id="quoted" value="{{ v }}">
<input id="unquoted" value={{ v }}>
<a id="link" href="{{ v|safe_url }}">link</a>
<script>window.__value = {{ v|tojson }}; document.body.dataset.linkProtocol = document.getElementById('link').protocol;</script>
{% endblock %}
"#;

pub fn web_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("keys/session.key", SESSION_KEY),
        ("keys/old.key", OLD_KEY),
        ("templates/base.html", BASE),
        ("templates/home.html", HOME),
        ("templates/xss.html", XSS),
        ("templates/broken.html", "ok\n{{ missing.attribute }}\n"),
        (
            "templates/errors/404.html",
            "<h1>Lost? ({{ status }} {{ reason }})</h1><p>request {{ request_id }}</p>",
        ),
        ("static/app.css", "body { color: #333 }\n"),
        ("static/js/app.js", "console.log('hi');\n"),
        ("secret.txt", "top secret, outside the mount\n"),
    ]
}

/// The web test files with other session keys.
fn files_with_keys(primary: &'static str, old: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut files = web_files();
    files.retain(|(p, _)| !p.starts_with("keys/"));
    files.push(("keys/session.key", primary));
    files.push(("keys/old.key", old));
    files
}

async fn start() -> TestServer {
    start_with("", "", LoadOptions::default()).await
}

async fn start_with(server: &str, security: &str, options: LoadOptions) -> TestServer {
    let m = TestManifest::with_files(&web_manifest(server, security), &web_files());
    TestServer::serve(m, options).await
}

/// The `name=value` of a response's session cookie.
pub fn session_cookie(r: &Reply) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-session=") || v.starts_with("session="))
        .map(|v| v.split(';').next().unwrap().to_string())
}

pub fn set_cookies(r: &Reply) -> Vec<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// Log in as `user` the way a browser does: fetch the form's token, post it same-origin.
pub async fn log_in(s: &TestServer, user: &str) -> String {
    let r = s.get("/token").await;
    let cookie = session_cookie(&r).expect("the token creates a session");
    let token = r.text();
    let r = s
        .send(
            Req::new("POST", "/login")
                .header("cookie", &cookie)
                .header("sec-fetch-site", "same-origin")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("csrf_token={token}&user={user}")),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    session_cookie(&r).expect("login writes the session")
}

#[tokio::test]
async fn templates_render_escaped_with_inheritance_and_security_headers() {
    let s = start().await;
    let payload = "\"><script>alert(1)</script> onmouseover=alert(2)";
    let r = s
        .get(&format!(
            "/xss?v={}",
            percent_encoding::utf8_percent_encode(payload, percent_encoding::NON_ALPHANUMERIC)
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = r.text();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
    // In an unquoted attribute the payload cannot give an event handler a value.
    assert!(
        html.contains("<input id=\"unquoted\" value=&#34;&gt;&lt;script&gt;alert(1)&lt;&#47;script&gt; onmouseover&#61;alert(2)>"),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#47;script&gt;"),
        "{html}"
    );
    // Defaults: CSP, nosniff, no framing, referrer policy, HSTS only when configured.
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("default-src 'self'")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        r.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(r.header("strict-transport-security"), None);

    let r = s.get("/xss?v=javascript:alert(1)").await;
    assert!(
        r.text()
            .contains("href=\"about:invalid#flagon-unsafe-url\""),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn template_errors_are_500_without_details_and_logged() {
    let s = start().await;
    let r = s.get("/bad-template").await;
    assert_eq!(r.status, 500);
    let text = r.text();
    assert!(!text.contains("guest saw"), "{text}");
    assert!(
        !text.contains("missing"),
        "no details outside dev mode: {text}"
    );
    assert!(text.contains(r.header("x-request-id").unwrap()), "{text}");
}

#[tokio::test]
async fn development_mode_shows_details_and_drops_secure() {
    let s = start_with(
        "",
        "",
        LoadOptions {
            dev: true,
            ..Default::default()
        },
    )
    .await;
    let r = s.get("/bad-template").await;
    assert_eq!(r.status, 500);
    let text = r.text();
    assert!(
        text.contains("[development mode]") && text.contains("broken.html:2"),
        "{text}"
    );
    let r = s.get("/token").await;
    let cookie = set_cookies(&r).join("\n");
    assert!(cookie.starts_with("session="), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
}

#[tokio::test]
async fn sessions_flashes_csrf_and_logout() {
    let s = start().await;
    let r = s.get("/whoami").await;
    assert_eq!(r.text(), "anonymous");
    assert_eq!(r.header("vary"), Some("Cookie"));
    assert!(set_cookies(&r).is_empty(), "reading writes nothing");

    let r = s.get("/token").await;
    let cookies = set_cookies(&r);
    assert_eq!(cookies.len(), 1);
    let c = &cookies[0];
    for flag in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(c.contains(flag), "{flag} missing: {c}");
    }
    assert!(c.starts_with("__Host-session=v2."), "{c}");
    assert!(!c.contains("Domain"), "{c}");

    let cookie = log_in(&s, "ada").await;
    let r = s
        .send(Req::new("GET", "/home").header("cookie", &cookie))
        .await;
    let html = r.text();
    assert!(html.contains("Hello ada"), "{html}");
    assert!(html.contains("Welcome, ada!"), "flash shown: {html}");
    // The flash is consumed by that render.
    let cookie = session_cookie(&r).unwrap_or(cookie);
    let r = s
        .send(Req::new("GET", "/home").header("cookie", &cookie))
        .await;
    assert!(!r.text().contains("Welcome"), "{}", r.text());
    let r = s
        .send(Req::new("GET", "/whoami").header("cookie", &cookie))
        .await;
    assert_eq!(r.text(), "ada");

    // Tampered, truncated and foreign cookies are an empty session, never an error.
    let (name, value) = cookie.split_once('=').unwrap();
    let mut bytes = value.as_bytes().to_vec();
    let last = bytes.len() - 3;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    for bad in [
        format!("{name}={}", String::from_utf8(bytes).unwrap()),
        format!("{name}={}", &value[..value.len() / 2]),
        format!("{name}=v2.garbage"),
        format!("session={value}"),
    ] {
        let r = s
            .send(Req::new("GET", "/whoami").header("cookie", &bad))
            .await;
        assert_eq!((r.status, r.text().as_str()), (200, "anonymous"), "{bad}");
    }

    // Logout needs a valid token too; then the cookie is deleted.
    let r = s
        .send(Req::new("GET", "/token").header("cookie", &cookie))
        .await;
    let token = r.text();
    let cookie = session_cookie(&r).unwrap_or(cookie);
    let r = s
        .send(
            Req::new("POST", "/logout")
                .header("cookie", &cookie)
                .header("x-csrf-token", &token),
        )
        .await;
    assert_eq!(r.status, 303);
    let deletion = set_cookies(&r).join("\n");
    assert!(deletion.contains("Max-Age=0"), "{deletion}");
}

#[tokio::test]
async fn csrf_failures_are_403_and_change_nothing() {
    let s = start().await;
    let r = s.get("/token").await;
    let cookie = session_cookie(&r).unwrap();
    let token = r.text();
    let other_token = s.get("/token").await.text();
    let form = |t: &str| format!("csrf_token={t}&user=mallory");
    for (what, req) in [
        (
            "no token",
            Req::new("POST", "/login")
                .header("cookie", &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("user=mallory"),
        ),
        (
            "another session's token",
            Req::new("POST", "/login")
                .header("cookie", &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&other_token)),
        ),
        (
            "cross-site",
            Req::new("POST", "/login")
                .header("cookie", &cookie)
                .header("sec-fetch-site", "cross-site")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&token)),
        ),
        (
            "foreign origin",
            Req::new("POST", "/login")
                .header("cookie", &cookie)
                .header("origin", "https://evil.example")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&token)),
        ),
        (
            "no session at all",
            Req::new("POST", "/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&token)),
        ),
    ] {
        let r = s.send(req).await;
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        assert!(set_cookies(&r).is_empty(), "{what}");
        assert!(r.text().starts_with("403 Forbidden"), "{what}");
    }
    // A matching Origin with the right token passes; so does the header form of the token.
    let r = s
        .send(
            Req::new("POST", "/login")
                .header("cookie", &cookie)
                .header("origin", &format!("http://{}", s.addr))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&token)),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    // A route that opts out (token-authenticated API) is not checked.
    let r = s
        .send(Req::new("POST", "/api").header("cookie", &cookie))
        .await;
    assert_eq!((r.status, r.text().as_str()), (200, "api ok"));
}

#[tokio::test]
async fn key_rotation_reads_old_cookies_and_writes_new_ones() {
    // A server whose primary key is the old one issues a cookie...
    let old = TestManifest::with_files(
        &web_manifest("", ""),
        &files_with_keys(OLD_KEY, SESSION_KEY),
    );
    let old = TestServer::serve(old, LoadOptions::default()).await;
    let cookie = log_in(&old, "grace").await;
    // ...which the rotated server still reads, and rewrites under its new primary key.
    let s = start().await;
    let r = s
        .send(Req::new("GET", "/whoami").header("cookie", &cookie))
        .await;
    assert_eq!(r.text(), "grace");
    // A server with neither key sees nobody.
    let stranger = TestManifest::with_files(
        &web_manifest("", ""),
        &files_with_keys(
            "a-completely-different-key-0123456789abcdef",
            "yet-another-unrelated-key-0123456789abcdef",
        ),
    );
    let stranger = TestServer::serve(stranger, LoadOptions::default()).await;
    let r = stranger
        .send(Req::new("GET", "/whoami").header("cookie", &cookie))
        .await;
    assert_eq!(r.text(), "anonymous");
}

/// Two apps that share a session key and a cookie name (say, on one domain behind one proxy)
/// do not accept each other's cookies: the app's name is bound into every cookie.
#[tokio::test]
async fn a_session_cookie_is_only_for_the_app_that_wrote_it() {
    let s = start().await;
    let cookie = log_in(&s, "ada").await;
    let other = TestManifest::with_files(
        &web_manifest("", "").replace("name = \"webtest\"", "name = \"othertest\""),
        &web_files(),
    );
    let other = TestServer::serve(other, LoadOptions::default()).await;
    let r = other
        .send(Req::new("GET", "/whoami").header("cookie", &cookie))
        .await;
    assert_eq!(r.text(), "anonymous");
    let r = s
        .send(Req::new("GET", "/whoami").header("cookie", &cookie))
        .await;
    assert_eq!(r.text(), "ada");
}

#[tokio::test]
async fn oversized_sessions_are_refused_with_a_clear_error() {
    let s = start().await;
    let r = s.get("/big-session").await;
    let text = r.text();
    assert!(text.starts_with("refused: "), "{text}");
    assert!(text.contains("4000"), "{text}");
    assert!(set_cookies(&r).is_empty());
}

#[tokio::test]
async fn guests_cannot_set_the_session_cookie() {
    let s = start().await;
    let r = s.get("/set-cookie").await;
    let cookies = set_cookies(&r);
    assert_eq!(cookies, vec!["theme=dark; Path=/".to_string()]);
    let r = s
        .send(Req::new("GET", "/cookie").header("cookie", "theme=light; other=1"))
        .await;
    assert_eq!(r.text(), "theme=light");
}

/// The sealed session cookie is a bearer token: no guest sees it, with or without the session
/// grant (the session interface is the only way in). Other cookies pass through.
#[tokio::test]
async fn no_guest_sees_the_session_cookie() {
    let s = start().await;
    let r = s.get("/token").await;
    let session = session_cookie(&r).unwrap();
    let sealed = session.split_once('=').unwrap().1.to_string();
    let header = format!("theme=light; {session}; other=1");
    for path in ["/cookie-header", "/plain/cookie-header"] {
        let r = s
            .send(Req::new("GET", path).header("cookie", &header))
            .await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.text(), "theme=light; other=1", "{path}");
        assert!(!r.text().contains(&sealed), "{path}");
        // Only the session cookie: the guest sees no `Cookie` header at all.
        let r = s
            .send(Req::new("GET", path).header("cookie", &session))
            .await;
        assert_eq!(r.text(), "-", "{path}");
        // Names a browser could confuse with it are dropped too.
        let r = s
            .send(
                Req::new("GET", path).header("cookie", "__host-SESSION=x; __Secure-session=y; a=b"),
            )
            .await;
        assert_eq!(r.text(), "a=b", "{path}");
    }
    // The session still works through the interface.
    let r = s
        .send(Req::new("GET", "/whoami").header("cookie", &session))
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn redirects_only_to_this_site_or_allowed_origins() {
    let s = start().await;
    for ok in ["/home", "/a?b=c", "https://accounts.example.com/login"] {
        let r = s
            .get(&format!(
                "/redirect?to={}",
                percent_encoding::utf8_percent_encode(ok, percent_encoding::NON_ALPHANUMERIC)
            ))
            .await;
        assert_eq!((r.status, r.header("location")), (303, Some(ok)), "{ok}");
    }
    for bad in [
        "//evil.example",
        "/\\evil.example",
        "https:evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "https://accounts.example.com@evil.example/",
    ] {
        let r = s
            .get(&format!(
                "/redirect?to={}",
                percent_encoding::utf8_percent_encode(bad, percent_encoding::NON_ALPHANUMERIC)
            ))
            .await;
        assert_eq!(r.status, 500, "{bad}");
        assert_eq!(r.header("location"), None, "{bad}");
    }
    // What a browser would resolve decides, not the raw string: it trims whitespace, drops
    // tabs and newlines, and reads `\` as `/`.
    for bad in [
        " //evil.example",
        "\t//evil.example",
        "//evil.example ",
        "/\\evil.example",
    ] {
        let r = s
            .get(&format!(
                "/redirect?to={}",
                percent_encoding::utf8_percent_encode(bad, percent_encoding::NON_ALPHANUMERIC)
            ))
            .await;
        assert_eq!(r.status, 500, "{bad:?}");
        assert_eq!(r.header("location"), None, "{bad:?}");
    }
    // `Refresh` is a redirect too.
    let refresh = |to: &str| {
        format!(
            "/redirect?refresh=0&to={}",
            percent_encoding::utf8_percent_encode(to, percent_encoding::NON_ALPHANUMERIC)
        )
    };
    let r = s.get(&refresh("/home")).await;
    assert_eq!((r.status, r.header("refresh")), (200, Some("0; url=/home")));
    for bad in ["//evil.example", " //evil.example", "https://evil.example/"] {
        let r = s.get(&refresh(bad)).await;
        assert_eq!(r.status, 500, "{bad:?}");
        assert_eq!(r.header("refresh"), None, "{bad:?}");
    }
}

#[tokio::test]
async fn forms_urlencoded_and_multipart_with_limits() {
    let s = start_with(
        "max_form_parts = 4\nmax_form_field = \"16B\"",
        "",
        LoadOptions::default(),
    )
    .await;
    let r = s.get("/token").await;
    let cookie = session_cookie(&r).unwrap();
    let token = r.text();
    let post = |ct: &str, body: Vec<u8>| {
        Req::new("POST", "/upload")
            .header("cookie", &cookie)
            .header("x-csrf-token", &token)
            .header("content-type", ct)
            .body(body)
    };
    let r = s
        .send(post(
            "application/x-www-form-urlencoded",
            b"a=1&b=x+y%21".to_vec(),
        ))
        .await;
    assert_eq!(r.text(), "a=1\nb=x y!");

    let mut body = Vec::new();
    body.extend_from_slice(
        b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nholiday\r\n",
    );
    body.extend_from_slice(b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"../../etc/passwd\"\r\nContent-Type: image/png\r\n\r\n");
    body.extend_from_slice(&[0x89, b'P', b'N', b'G', 0, 1, 2, 3, 255]);
    body.extend_from_slice(b"\r\n--BOUNDARY--\r\n");
    let r = s
        .send(post("multipart/form-data; boundary=BOUNDARY", body))
        .await;
    assert_eq!(
        r.text(),
        "title=holiday\nphoto=file:../../etc/passwd:image/png:9"
    );

    for (ct, body) in [
        (
            "application/x-www-form-urlencoded",
            b"a=1&b=2&c=3&d=4&e=5".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"a=0123456789abcdefg".to_vec(),
        ),
        ("application/x-www-form-urlencoded", b"a=%C0%AE".to_vec()),
        (
            "multipart/form-data; boundary=BOUNDARY",
            b"--BOUNDARY\r\nbroken".to_vec(),
        ),
        ("multipart/form-data", b"no boundary".to_vec()),
    ] {
        let r = s.send(post(ct, body.clone())).await;
        assert_eq!(r.status, 400, "{ct} {:?}", String::from_utf8_lossy(&body));
    }
}

#[tokio::test]
async fn static_files_with_etags_and_no_escape() {
    let s = start().await;
    let r = s.get("/static/app.css").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "body { color: #333 }\n");
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    let etag = r.header("etag").unwrap().to_string();
    assert!(r.header("last-modified").is_some());
    let r = s
        .send(Req::new("GET", "/static/app.css").header("if-none-match", &etag))
        .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = s.send(Req::new("HEAD", "/static/js/app.js")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("19"));
    assert!(r.body.is_empty());
    let r = s.send(Req::new("POST", "/static/app.css")).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    // One range of bytes, as a download manager or a video player asks for it.
    let r = s
        .send(Req::new("GET", "/static/app.css").header("range", "bytes=7-11"))
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "color");
    assert_eq!(r.header("content-range"), Some("bytes 7-11/21"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let r = s
        .send(
            Req::new("GET", "/static/app.css")
                .header("range", "bytes=7-11")
                .header("if-range", "\"not-this-file\""),
        )
        .await;
    assert_eq!((r.status, r.body.len()), (200, 21));
    let r = s
        .send(Req::new("GET", "/static/app.css").header("range", "bytes=99-"))
        .await;
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */21"))
    );
    // Over HTTP/2 too.
    let mut h2 = Req::new("GET", "/static/app.css").header("range", "bytes=-3");
    h2.http2 = true;
    let r = s.send(h2).await;
    assert_eq!((r.status, r.text()), (206, " }\n".to_string()));

    for attack in [
        "/static/../secret.txt",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/%252e%252e%252fsecret.txt",
        "/static/..%5csecret.txt",
        "/static/%c0%ae%c0%ae/secret.txt",
        "/static/app.css%00.png",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/",
        "/static/js",
    ] {
        let r = s.get(attack).await;
        assert!(
            matches!(r.status, 400 | 404),
            "{attack}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("top secret"), "{attack}");
    }
}

#[tokio::test]
async fn error_pages_from_templates_and_plain_defaults() {
    let s = start().await;
    let r = s.get("/nope").await;
    assert_eq!(r.status, 404);
    let id = r.header("x-request-id").unwrap().to_string();
    assert_eq!(
        r.text(),
        format!("<h1>Lost? (404 Not Found)</h1><p>request {id}</p>")
    );
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    // A guest's empty 404 gets the same page.
    let r = s.get("/empty-404").await;
    assert!(r.text().starts_with("<h1>Lost? (404"), "{}", r.text());
    // Statuses without a template keep the plain page.
    let r = s.send(Req::new("DELETE", "/home")).await;
    assert_eq!(r.status, 405);
    assert!(r.text().starts_with("405 Method Not Allowed\nrequest id: "));
}

#[tokio::test]
async fn hosts_outside_the_allow_list_and_forwarded_headers() {
    let s = start().await;
    let r = s
        .send(Req::new("GET", "/whoami").header("host", "evil.example"))
        .await;
    assert_eq!(r.status, 400);
    // An absolute-form target names the host, whatever `Host` says (RFC 9112, 3.2.2).
    let raw = |target: &str, host: &str| {
        let addr = s.addr;
        let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.unwrap();
            reply
        }
    };
    let reply = raw("http://evil.example/whoami", "127.0.0.1").await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    let reply = raw("http://127.0.0.1/plain/client", "evil.example").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    // Forwarded headers are believed only from a trusted proxy: here the test client is one,
    // so the client address and scheme come from the headers.
    let s = start_with(
        "trusted_proxies = [\"127.0.0.1\"]",
        "hsts = \"365d\"",
        LoadOptions::default(),
    )
    .await;
    // The client is the first address from the right that is not a trusted proxy; an entry
    // that is not an address ends the walk, so nothing left of it is believed.
    for (xff, client) in [
        ("203.0.113.7", "203.0.113.7"),
        ("6.6.6.6, 203.0.113.7:4711", "203.0.113.7"),
        ("6.6.6.6, unknown", "127.0.0.1"),
        ("6.6.6.6, 203.0.113.7:bad", "127.0.0.1"),
    ] {
        let r = s
            .send(Req::new("GET", "/plain/client").header("x-forwarded-for", xff))
            .await;
        assert_eq!(r.text(), format!("{client}:0"), "{xff}");
    }
    let r = s.get("/token").await;
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let cookie = session_cookie(&r).unwrap();
    let token = r.text();
    // Behind a TLS proxy the browser's Origin is https://localhost; it matches.
    let r = s
        .send(
            Req::new("POST", "/login")
                .header("cookie", &cookie)
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-host", "localhost")
                .header("x-forwarded-for", "203.0.113.7")
                .header("origin", "https://localhost")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("csrf_token={token}&user=ada")),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    // Without the proxy's word the same Origin is cross-origin.
    let r = s
        .send(
            Req::new("POST", "/login")
                .header("cookie", &cookie)
                .header("origin", "https://localhost")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("csrf_token={token}&user=ada")),
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn kv_stores_are_granted_by_name_and_persist() {
    let m = TestManifest::with_files(&web_manifest("", ""), &web_files());
    let dir = m.dir.path().to_path_buf();
    let s = TestServer::serve(m, LoadOptions::default()).await;
    let r = s.get("/kv?v=first").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["hits"], 1);
    assert_eq!(v["last"], "first");
    assert_eq!(v["keys"], serde_json::json!(["hits", "last"]));
    let ungranted = v["ungranted"].as_str().unwrap();
    assert!(ungranted.contains("not granted"), "{ungranted}");
    let v: serde_json::Value = serde_json::from_slice(&s.get("/kv?v=2nd").await.body).unwrap();
    assert_eq!(v["hits"], 2);

    assert_eq!(s.get("/kv-ttl").await.text(), "true");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(s.get("/kv-get?key=short").await.text(), "None");
    // The embedded store is a file beside the app (persistence across restarts is tested
    // with the store itself, in `host/src/kv.rs`).
    assert!(dir.join("data/kv/counter.redb").is_file());
}

/// What a guest sees of `[kv.<name>] max_entries` / `max_bytes`: a write past either fails
/// with a message it can show, nothing is written, and deleting makes room.
async fn kv_limits_are_kept(s: &TestServer) {
    for key in ["a", "b"] {
        let r = s.get(&format!("/kv-put?key={key}&v=1")).await;
        assert_eq!((r.status, r.text()), (200, "stored".to_owned()));
    }
    let r = s.get("/kv-put?key=c&v=1").await;
    assert_eq!(r.status, 507);
    assert_eq!(
        r.text(),
        "kv store `counter` is full: the write would pass its limit of 2 entries"
    );
    assert_eq!(s.get("/kv-get?key=c").await.text(), "None");
    // a: 1 + 62 bytes, b: 2 bytes; 65 > 64.
    let r = s.get(&format!("/kv-put?key=a&v={}", "x".repeat(62))).await;
    assert_eq!(r.status, 507);
    assert!(r.text().ends_with("limit of 64 bytes"), "{}", r.text());
    assert_eq!(s.get("/kv-get?key=a").await.text(), "Some(\"1\")");
    let r = s.get(&format!("/kv-put?key=a&v={}", "x".repeat(61))).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.get("/kv-delete?key=b").await.text(), "true");
    assert_eq!(s.get("/kv-put?key=c&v=").await.status, 200);
}

const KV_LIMITS: &str = "max_entries = 2\nmax_bytes = \"64B\"\n";

#[tokio::test]
async fn kv_store_limits_refuse_writes_past_them() {
    let text =
        web_manifest("", "").replace("[kv.counter]\n", &format!("[kv.counter]\n{KV_LIMITS}"));
    let s = TestServer::serve(
        TestManifest::with_files(&text, &web_files()),
        LoadOptions::default(),
    )
    .await;
    kv_limits_are_kept(&s).await;

    for (bad, key) in [
        ("max_entries = 0", "kv.counter.max_entries"),
        ("max_bytes = \"2TiB\"", "kv.counter.max_bytes"),
    ] {
        let text =
            web_manifest("", "").replace("[kv.counter]\n", &format!("[kv.counter]\n{bad}\n"));
        let m = TestManifest::with_files(&text, &web_files());
        let err = format!("{:#}", m.load().await.err().expect("must refuse"));
        assert!(err.contains(key), "{err}");
        assert!(err.contains("flagon.toml"), "{err}");
    }
}

#[test]
fn a_session_without_a_key_refuses_to_start() {
    let text = web_manifest("", "")
        .replace("secret = \"session_key\"\n", "")
        .replace("fallback_secrets = [\"old_session_key\"]\n", "");
    let m = TestManifest::with_files(&text, &web_files());
    let err = format!("{:#}", m.load_sync().err().expect("must refuse"));
    assert!(err.contains("no session key"), "{err}");
    assert!(err.contains("FLAGON_SESSION_KEY"), "{err}");
    assert!(err.contains("--dev"), "{err}");
}

/// A `redis-server` on a free loopback port for one test, killed when dropped.
pub struct Redis {
    child: std::process::Child,
    pub port: u16,
}

impl Redis {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server; .ci/run installs it)");
        let redis = Redis { child, port };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return redis;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {port}");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two app instances with a Redis-backed store share its data, as instances behind a load
/// balancer would.
#[tokio::test]
async fn redis_backed_stores_are_shared_between_instances() {
    let redis = Redis::start().await;
    let text = web_manifest("", "")
        .replace(
            "[kv.counter]\n",
            "[kv.counter]\nbackend = \"redis\"\nurl = \"redis_url\"\n",
        )
        .replace(
            "[variables]\n",
            &format!(
                "[variables]\nredis_url = {{ default = \"redis://127.0.0.1:{}/\", secret = true }}\n",
                redis.port
            ),
        );
    let a = TestServer::serve(
        TestManifest::with_files(&text, &web_files()),
        LoadOptions::default(),
    )
    .await;
    let b = TestServer::serve(
        TestManifest::with_files(&text, &web_files()),
        LoadOptions::default(),
    )
    .await;
    let hits =
        |r: Reply| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["hits"].clone();
    assert_eq!(hits(a.get("/kv?v=a").await), 1);
    assert_eq!(hits(b.get("/kv?v=b").await), 2);
    assert_eq!(a.get("/kv-get?key=last").await.text(), "Some(\"b\")");
    assert_eq!(b.get("/kv-ttl").await.text(), "true");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(a.get("/kv-get?key=short").await.text(), "None");
}

/// The same limits on a Redis store, shared by two instances: the books are kept in Redis.
#[tokio::test]
async fn redis_store_limits_hold_across_instances() {
    let redis = Redis::start().await;
    let text = web_manifest("", "")
        .replace(
            "[kv.counter]\n",
            &format!("[kv.counter]\nbackend = \"redis\"\nurl = \"redis_url\"\n{KV_LIMITS}"),
        )
        .replace(
            "[variables]\n",
            &format!(
                "[variables]\nredis_url = {{ default = \"redis://127.0.0.1:{}/\", secret = true }}\n",
                redis.port
            ),
        );
    let a = TestServer::serve(
        TestManifest::with_files(&text, &web_files()),
        LoadOptions::default(),
    )
    .await;
    kv_limits_are_kept(&a).await;
    let b = TestServer::serve(
        TestManifest::with_files(&text, &web_files()),
        LoadOptions::default(),
    )
    .await;
    // a and c fill the store; b's instance sees it full too.
    assert_eq!(b.get("/kv-put?key=d&v=1").await.status, 507);
    assert_eq!(a.get("/kv-delete?key=c").await.text(), "true");
    assert_eq!(b.get("/kv-put?key=d&v=1").await.status, 200);
}
