//! A real browser (Debian's headless Chromium, driven by playwright-core from
//! `tests/browser/`) loads pages that render XSS payloads into every HTML context, and logs in
//! through the real form. `bash tests/run` (the README's test command) installs chromium and
//! the npm package.

use std::path::Path;
use std::time::Duration;

use flagon::LoadOptions;

use crate::harness::{TestManifest, TestServer};
use crate::web::{web_files, web_manifest};

#[tokio::test]
async fn no_payload_executes_and_the_session_cookie_is_locked_down() {
    // The CSP is off for this app, so escaping alone must stop every payload (with the default
    // CSP inline script would not run at all, which would prove nothing here).
    let m = TestManifest::with_files(
        &web_manifest("", "content_security_policy = \"\""),
        &web_files(),
    );
    let s = TestServer::serve(m, LoadOptions::default()).await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in tests/browser (and install Debian's `chromium`); `bash tests/run` does both"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "no browser at `{chromium}`: install Debian's `chromium` (`apt-get install chromium`, which `bash tests/run` does) or set CHROMIUM"
    );
    // `localhost` is a secure context for Chromium, so it keeps a `Secure` cookie over http.
    let base = format!("http://localhost:{}", s.addr.port());
    let run = tokio::process::Command::new("node")
        .arg(dir.join("xss.mjs"))
        .arg(&base)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser run finishes within 3 minutes")
        .expect("node runs (install Node.js)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON report line");

    assert_eq!(report["dialogs"], serde_json::json!([]), "{report:#}");
    let pages = report["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 13);
    for p in pages {
        let payload = p["payload"].as_str().unwrap();
        assert!(p["pwned"].is_null(), "payload ran: {p:#}");
        assert!(
            p["pwnedAfterClick"].is_null(),
            "payload ran on click: {p:#}"
        );
        // Escaping keeps the text intact in every context.
        assert_eq!(p["text"], payload, "{p:#}");
        assert_eq!(p["quoted"], payload, "{p:#}");
        assert_eq!(p["scriptValue"], payload, "{p:#}");
        let attrs: Vec<&str> = p["unquotedAttrs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        // Unquoted, the payload may split into attribute *names* such as `onerror&#61;...`,
        // which are inert; an event handler needs a name of letters only and a value.
        assert!(
            !attrs
                .iter()
                .any(|a| a.starts_with("on") && a.chars().all(|c| c.is_ascii_alphabetic())),
            "an event handler attribute appeared: {p:#}"
        );
        let scheme = payload.trim().to_ascii_lowercase().replace('\t', "");
        if scheme.starts_with("javascript:") || scheme.starts_with("data:") {
            assert_eq!(p["linkProtocol"], "about:", "{p:#}");
        }
    }

    assert_eq!(report["loggedIn"], true, "{report:#}");
    let c = &report["cookie"];
    assert_eq!(c["name"], "__Host-session", "{report:#}");
    assert_eq!(c["httpOnly"], true, "{c:#}");
    assert_eq!(c["secure"], true, "{c:#}");
    assert_eq!(c["sameSite"], "Lax", "{c:#}");
    assert_eq!(c["path"], "/", "{c:#}");
    assert!(
        !report["documentCookie"]
            .as_str()
            .unwrap()
            .contains("session"),
        "scripts can read the session cookie: {report:#}"
    );
}
