//! `flagon test`: an app's request tests, in any guest language. Each `tests/*.toml` file of
//! the app is a sequence of requests sent by one browser-like client of `flagon::testing` (a
//! cookie jar, the CSRF token of the last page added to what it posts) to the app loaded as
//! `serve --dev` loads it, with data of its own; each request's answer is checked.
//!
//! ```toml
//! [[test]]
//! name = "the home page greets"
//! path = "/"
//! status = 200
//! contains = ["Hello"]
//!
//! [[test]]
//! name = "signing in"
//! method = "POST"
//! path = "/login"
//! form = { username = "ada" }
//! status = 303
//! headers = { location = "/" }
//! follow = true          # then load the redirect's target, whose answer is checked below
//! contains = ["Welcome, ada!"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use http::Method;
use serde::Deserialize;

use crate::manifest::Manifest;
use crate::testing::{TestApp, TestClient, TestResponse};

/// One `tests/*.toml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// Variables for the app, as if set in the environment.
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default, rename = "test")]
    tests: Vec<Case>,
}

/// One request and what its answer must be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default = "get")]
    method: String,
    path: String,
    /// Request headers.
    #[serde(default)]
    request_headers: BTreeMap<String, String>,
    /// A urlencoded form body (the client adds the CSRF token).
    form: Option<BTreeMap<String, String>>,
    /// A JSON body.
    json: Option<toml::Value>,
    /// A raw body.
    body: Option<String>,
    /// Follow the redirect (after checking `status` and `headers`) and check the target's
    /// body with `contains` and `not_contains`.
    #[serde(default)]
    follow: bool,
    status: Option<u16>,
    /// Response headers that must have exactly these values.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Text the body must contain.
    #[serde(default)]
    contains: Vec<String>,
    /// Text the body must not contain.
    #[serde(default)]
    not_contains: Vec<String>,
}

fn get() -> String {
    "GET".into()
}

/// Run every `tests/*.toml` of the app at `path`; the first failing file fails the run.
pub fn test(path: &Path) -> Result<()> {
    let manifest = Manifest::load(path)?;
    let dir = manifest.dir.join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "no tests: cannot read `{}`\n  help: write request tests in `tests/*.toml` (see `flagon test --help`)",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no tests: `{}` holds no `.toml` files", dir.display());
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read `{}`", file.display()))?;
        let tests: TestFile = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("`{}` is not a test file: {e}", file.display()))?;
        let (p, f) = runtime.block_on(run_file(&manifest.dir, file, tests))?;
        passed += p;
        failed += f;
    }
    eprintln!("\n{passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} request test(s) failed");
    }
    Ok(())
}

async fn run_file(app: &Path, file: &Path, tests: TestFile) -> Result<(usize, usize)> {
    let mut builder = TestApp::builder(app);
    for (name, value) in tests.env {
        builder = builder.env(name, value);
    }
    let app = builder
        .load()
        .await
        .with_context(|| format!("the app does not load for `{}`", file.display()))?;
    let mut client = app.client();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    eprintln!("{name}");
    let (mut passed, mut failed) = (0, 0);
    for case in &tests.tests {
        match run_case(&mut client, case).await {
            Ok(()) => {
                passed += 1;
                eprintln!("  ok    {}", case.name);
            }
            Err(why) => {
                failed += 1;
                eprintln!(
                    "  FAIL  {}\n        {}",
                    case.name,
                    why.replace('\n', "\n        ")
                );
            }
        }
    }
    Ok((passed, failed))
}

async fn run_case(client: &mut TestClient, case: &Case) -> Result<(), String> {
    let method = Method::from_bytes(case.method.to_uppercase().as_bytes())
        .map_err(|_| format!("`{}` is not an HTTP method", case.method))?;
    if !case.path.starts_with('/') {
        return Err(format!("the path `{}` must start with `/`", case.path));
    }
    let mut request = client.request(method, &case.path);
    for (name, value) in &case.request_headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            return Err(format!("`{name}: {value}` is not a valid request header"));
        }
        request = request.header(name, value);
    }
    if let Some(form) = &case.form {
        let fields: Vec<(&str, &str)> =
            form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        request = request.form(&fields);
    } else if let Some(json) = &case.json {
        let value = serde_json::to_value(json).map_err(|e| e.to_string())?;
        request = request.json(&value);
    } else if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let mut response = request.send().await;
    if let Some(status) = case.status
        && response.status().as_u16() != status
    {
        return Err(format!(
            "status: expected {status}, got {}\n{}",
            response.status().as_u16(),
            excerpt(&response)
        ));
    }
    for (name, want) in &case.headers {
        let got = response.header(name);
        if got != Some(want.as_str()) {
            return Err(format!(
                "header `{name}`: expected {want:?}, got {got:?}\n{}",
                excerpt(&response)
            ));
        }
    }
    if case.follow {
        if !response.status().is_redirection() || response.location().is_none() {
            return Err(format!(
                "expected a redirect to follow, got {}\n{}",
                response.status(),
                excerpt(&response)
            ));
        }
        response = client.follow(&response).await;
    }
    let text = response.text();
    for needle in &case.contains {
        if !text.contains(needle.as_str()) {
            return Err(format!(
                "the body does not contain {needle:?}\n{}",
                excerpt(&response)
            ));
        }
    }
    for needle in &case.not_contains {
        if text.contains(needle.as_str()) {
            return Err(format!(
                "the body contains {needle:?}\n{}",
                excerpt(&response)
            ));
        }
    }
    Ok(())
}

/// The start of a response, for a failure message.
fn excerpt(r: &TestResponse) -> String {
    let text = r.text();
    let mut end = text.len().min(600);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let more = if end < text.len() { " ..." } else { "" };
    format!(
        "{} {}{more}",
        r.status(),
        crate::text::log_safe(&text[..end])
    )
}
