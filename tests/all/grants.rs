//! Capabilities: components see only what they were granted, and importing anything else is
//! refused at load.

use crate::app_manifest;
use crate::harness::{TestManifest, TestServer, program};
use crate::programs;

#[tokio::test]
async fn granted_variables_only() {
    let s = TestServer::start(&app_manifest("")).await;
    let r = s.get("/config").await;
    assert_eq!(r.text(), "greeting=howdy ungranted-visible=false count=1");
}

#[tokio::test]
async fn crypto_through_the_host() {
    let s = TestServer::start(&app_manifest("")).await;
    let r = s.get("/crypto").await;
    assert_eq!(
        r.text(),
        "hash=$argon2id$v=19$m=19456,t=2,p=1$ right=true wrong=false token-len=43 tokens-differ=true \
         tag-len=32 tag-ok=true tampered=false too-many=true"
    );
}

/// The load error for the standard app with `grant` removed from `hello`'s grants.
fn refused_without(grant: &str) -> String {
    let text = app_manifest("");
    let ungranted = text.replace(grant, "");
    assert_ne!(text, ungranted, "the test must remove the grant");
    let err = TestManifest::new(&ungranted)
        .load_sync()
        .err()
        .expect("load must fail");
    format!("{err:#}")
}

#[test]
fn ungranted_crypto_is_refused_at_load() {
    let err = refused_without(", crypto = true");
    assert!(err.contains("`flagon:app/crypto@0.1.0`"), "{err}");
    assert!(err.contains("grants = { crypto = true }"), "{err}");
}

#[test]
fn ungranted_import_is_refused_at_load() {
    // `hello` imports `flagon:app/config`; without `grants.variables` it must not load.
    let err = refused_without("variables = [\"greeting\"], ");
    assert!(err.contains("component `hello`"), "{err}");
    assert!(err.contains("`flagon:app/config@0.1.0`"), "{err}");
    assert!(err.contains("grants = { variables = [\"name\"] }"), "{err}");
    assert!(err.contains("[components.hello]"), "{err}");
    assert!(err.contains("flagon.toml"), "{err}");
}

#[test]
fn sockets_are_not_offered() {
    let text = format!(
        "[app]\nname = \"t\"\n[components.net]\nsource = {}\n[[routes]]\npath = \"/\"\ncomponent = \"net\"\n",
        program(programs::NETPROBE)
    );
    let err = format!(
        "{:#}",
        TestManifest::new(&text)
            .load_sync()
            .err()
            .expect("load must fail")
    );
    assert!(
        err.contains("component `net` imports `wasi:sockets/"),
        "{err}"
    );
    assert!(err.contains("Flagon does not offer"), "{err}");
}

#[test]
fn precompiled_components_are_cached() {
    let cache = tempfile::tempdir().unwrap();
    let text = format!(
        "[app]\nname = \"t\"\n[server]\ncache_dir = {:?}\n[components.h]\nsource = {}\n",
        cache.path().join("c").display().to_string(),
        program(programs::HOSTILE)
    );
    let manifest = TestManifest::new(&text);
    let load = || {
        let m = flagon::Manifest::load(&manifest.path).unwrap();
        block_on(flagon::App::load(&m, &flagon::LoadOptions::default())).unwrap()
    };
    assert_eq!(
        load().components()[0].origin,
        flagon::runtime::Origin::Compiled
    );
    assert_eq!(
        load().components()[0].origin,
        flagon::runtime::Origin::Cache
    );
    let entries: Vec<_> = std::fs::read_dir(cache.path().join("c")).unwrap().collect();
    assert_eq!(entries.len(), 1);

    // A corrupted entry is ignored and replaced, never trusted.
    let entry = entries[0].as_ref().unwrap().path();
    std::fs::write(&entry, b"garbage").unwrap();
    assert_eq!(
        load().components()[0].origin,
        flagon::runtime::Origin::Compiled
    );
    assert_eq!(
        load().components()[0].origin,
        flagon::runtime::Origin::Cache
    );
}

/// Cached code is executed, so a cache directory others can write to is never read or written:
/// the component is compiled instead.
#[cfg(unix)]
#[test]
fn a_shared_cache_directory_is_not_trusted() {
    use std::os::unix::fs::PermissionsExt;
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let text = format!(
        "[app]\nname = \"t\"\n[server]\ncache_dir = {:?}\n[components.h]\nsource = {}\n",
        dir.display().to_string(),
        program(programs::HOSTILE)
    );
    let manifest = TestManifest::new(&text);
    for _ in 0..2 {
        let m = flagon::Manifest::load(&manifest.path).unwrap();
        let app = block_on(flagon::App::load(&m, &flagon::LoadOptions::default())).unwrap();
        assert_eq!(
            app.components()[0].origin,
            flagon::runtime::Origin::Compiled
        );
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn missing_component_file_says_to_build() {
    let text = "[app]\nname = \"t\"\n[components.x]\nsource = \"nope.wasm\"\nbuild = \"true\"\n";
    let err = format!("{:#}", TestManifest::new(text).load_sync().err().unwrap());
    assert!(
        err.contains("components.x.source") && err.contains("flagon build"),
        "{err}"
    );
}

#[test]
fn missing_required_variable_stops_the_start() {
    let text = format!(
        "[app]\nname = \"t\"\n[components.h]\nsource = {}\n[variables]\ntoken = {{ env = \"FLAGON_TEST_SURELY_UNSET\", secret = true }}\n",
        program(programs::HOSTILE)
    );
    let err = format!("{:#}", TestManifest::new(&text).load_sync().err().unwrap());
    assert!(
        err.contains("`FLAGON_TEST_SURELY_UNSET` is not set"),
        "{err}"
    );
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn ungranted_outbound_http_is_refused_at_load() {
    let err = refused_without(", outbound = [\"http://127.0.0.1:9\"]");
    assert!(err.contains("`flagon:app/outbound-http@0.1.0`"), "{err}");
    assert!(err.contains("grants = { outbound = ["), "{err}");
}

#[test]
fn bad_outbound_grants_name_the_key() {
    let text = app_manifest("").replace("http://127.0.0.1:9", "https://user@api.example.com/path");
    let err = format!("{:#}", TestManifest::new(&text).load_sync().err().unwrap());
    assert!(err.contains("components.hello.grants.outbound[0]"), "{err}");
}

/// Outbound HTTP reaches the granted origin (here another Flagon on 127.0.0.1, granted by its
/// IP literal) and nothing else, whatever spelling the guest tries.
#[tokio::test]
async fn outbound_http_reaches_only_granted_origins() {
    let upstream = TestServer::start(&app_manifest("")).await;
    let origin = format!("http://127.0.0.1:{}", upstream.addr.port());
    let s = TestServer::start(&app_manifest("").replace("http://127.0.0.1:9", &origin)).await;
    let fetch = |url: String| {
        let s = &s;
        async move {
            let q = percent_encoding::utf8_percent_encode(&url, percent_encoding::NON_ALPHANUMERIC);
            s.get(&format!("/fetch?url={q}")).await.text()
        }
    };
    assert_eq!(
        fetch(format!("{origin}/")).await,
        "status=200 body=hello from wasm"
    );
    // A redirect within the granted origin is followed.
    assert_eq!(
        fetch(format!("{origin}/redirect")).await,
        "status=200 body=hello from wasm"
    );
    let port = upstream.addr.port();
    for (url, why) in [
        (format!("http://localhost:{port}/"), "not allowed"),
        (format!("http://127.0.0.1:{}/", port + 1), "not allowed"),
        (
            format!("http://127.0.0.1:{port}@evil.example/"),
            "user info",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "not allowed",
        ),
        (format!("https://127.0.0.1:{port}/"), "not allowed"),
        ("file:///etc/passwd".to_string(), ""),
    ] {
        let text = fetch(url.clone()).await;
        assert!(text.starts_with("refused: "), "{url}: {text}");
        assert!(text.contains(why), "{url}: {text}");
        assert!(!text.contains("hello from wasm"), "{url}: {text}");
    }
}
