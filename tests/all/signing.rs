//! Signed components (docs/security.md#signed-components): `flagon keygen`, `sign` and `verify`
//! through the real binary, and the check at load under `[app] require_signatures` with real
//! components: signed apps load and serve; unsigned, tampered, forged, wrong-id and
//! untrusted-key components and DB adapters are refused, naming the table, the file and the
//! fix; the embedded first-party plugins pass, and every plugin in `plugins/dist` is signed by
//! the committed first-party key.

use std::path::{Path, PathBuf};
use std::process::Command;

use flagon::LoadOptions;
use flagon::plugins::PLUGINS;
use flagon::signature::{self, Policy, PublicKey, SignatureFile, SigningKey, Subject, Verdict};

use crate::harness::{TestManifest, TestServer, cache_dir};
use crate::programs;

fn flagon(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flagon"))
        .args(args)
        .env("FLAGON_CACHE_DIR", cache_dir())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The `hello` program as a handler, with the grants it imports, and the `[app]` keys given.
fn hello_app(app: &str, table: &str, extra: &str) -> String {
    format!(
        r#"
[app]
name = "signed"
{app}

[components.{table}]
source = "hello.wasm"
grants = {{ variables = ["greeting"], crypto = true, outbound = ["http://127.0.0.1:9"] }}

[variables]
greeting = {{ default = "howdy" }}

[[routes]]
path = "/"
component = "{table}"
name = "index"
{extra}
"#
    )
}

fn requiring(key: &PublicKey) -> String {
    format!("trusted_keys = [\"{key}\"]\nrequire_signatures = true")
}

/// A manifest in a directory of its own with `hello.wasm` copied beside it.
fn app_with_hello(text: &str) -> (TestManifest, PathBuf) {
    let m = TestManifest::new(text);
    let wasm = m.dir.path().join("hello.wasm");
    std::fs::copy(programs::HELLO, &wasm).unwrap();
    (m, wasm)
}

fn sign_file(key: &SigningKey, id: &str, wasm: &Path) {
    let sig = key.sign(id, &std::fs::read(wasm).unwrap());
    std::fs::write(signature::signature_path(wasm), sig.to_text()).unwrap();
}

async fn load_error(m: &TestManifest) -> String {
    match m.load().await {
        Ok(_) => panic!("the app must be refused"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn keygen_sign_verify_round_trip_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("release.pk8");
    let (ok, out, err) = flagon(&["keygen", "--out", s(&key_file)], &[]);
    assert!(ok, "{out}\n{err}");
    let public = out.trim().to_string();
    let public_key: PublicKey = public.parse().unwrap_or_else(|e| panic!("{public}: {e}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let private = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        private.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "PKCS#8 PEM"
    );
    let secret: String = private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let never_shown = |out: &str| {
        assert!(!out.contains(&secret), "the private key was printed");
        for line in private.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!out.contains(line), "part of the private key was printed");
        }
    };
    never_shown(&format!("{out}{err}"));

    // Never overwritten.
    let (ok, _, err) = flagon(&["keygen", "--out", s(&key_file)], &[]);
    assert!(!ok && err.contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), private);

    let wasm = dir.path().join("hello.wasm");
    std::fs::copy(programs::HELLO, &wasm).unwrap();
    let (ok, out, err) = flagon(&["sign", "--key", s(&key_file), s(&wasm)], &[]);
    assert!(ok, "{out}\n{err}");
    never_shown(&format!("{out}{err}"));
    assert!(out.contains("as `hello`") && out.contains(&public), "{out}");
    let sig_path = dir.path().join("hello.wasm.sig");
    let sig = SignatureFile::parse(&std::fs::read_to_string(&sig_path).unwrap()).unwrap();
    assert_eq!(
        (sig.id.as_str(), sig.key.as_str()),
        ("hello", public.as_str())
    );
    assert_eq!(
        signature::verify(
            &std::fs::read(&wasm).unwrap(),
            &sig,
            &["hello"],
            &[public_key]
        ),
        Ok(public_key)
    );

    // Verified with the key given inline or as a file.
    let pub_file = dir.path().join("release.pub");
    std::fs::write(&pub_file, format!("{public}\n")).unwrap();
    for key in [public.as_str(), s(&pub_file)] {
        let (ok, out, err) = flagon(&["verify", "--key", key, s(&wasm)], &[]);
        assert!(ok, "{out}\n{err}");
        assert!(out.contains("ok:") && out.contains(&public), "{out}");
    }

    // Another key is not trusted; another id is not this component.
    let other = SigningKey::generate().unwrap().0.public_key().to_string();
    let (ok, _, err) = flagon(&["verify", "--key", &other, s(&wasm)], &[]);
    assert!(
        !ok && err.contains("not trusted") && err.contains(&public),
        "{err}"
    );
    let (ok, _, err) = flagon(
        &["verify", "--key", &public, "--id", "other", s(&wasm)],
        &[],
    );
    assert!(!ok && err.contains("signed as component `hello`"), "{err}");

    // From an environment variable, as a CI secret, signed as another id.
    let (ok, out, err) = flagon(
        &[
            "sign",
            "--key-env",
            "RELEASE_KEY",
            "--id",
            "greeter",
            s(&wasm),
        ],
        &[("RELEASE_KEY", &private)],
    );
    assert!(ok, "{out}\n{err}");
    never_shown(&format!("{out}{err}"));
    let (ok, _, err) = flagon(
        &["verify", "--key", &public, "--id", "greeter", s(&wasm)],
        &[],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = flagon(&["sign", "--key-env", "NO_SUCH_VAR", s(&wasm)], &[]);
    assert!(!ok && err.contains("`NO_SUCH_VAR` is not set"), "{err}");

    // A changed file no longer verifies.
    let mut bytes = std::fs::read(&wasm).unwrap();
    bytes.extend_from_slice(b"\0");
    std::fs::write(&wasm, &bytes).unwrap();
    let (ok, _, err) = flagon(
        &["verify", "--key", &public, "--id", "greeter", s(&wasm)],
        &[],
    );
    assert!(!ok && err.contains("changed after it was signed"), "{err}");

    // A file that is not a key, and an unsigned file.
    let (ok, _, err) = flagon(&["sign", "--key", s(&pub_file), s(&wasm)], &[]);
    assert!(!ok && err.contains("it is a public key"), "{err}");
    std::fs::remove_file(&sig_path).unwrap();
    let (ok, _, err) = flagon(&["verify", "--key", &public, s(&wasm)], &[]);
    assert!(!ok && err.contains("is not signed"), "{err}");
}

/// Whether any part of the private key in `pem` (a PEM document) shows in `out`.
fn shows_private_key(pem: &str, out: &str) -> bool {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    // Any 12 characters of its base64, wherever the lines break.
    body.as_bytes()
        .windows(12)
        .any(|w| out.contains(std::str::from_utf8(w).unwrap()))
}

#[test]
fn sign_replaces_the_sig_without_following_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("release.pk8");
    let (ok, _, err) = flagon(&["keygen", "--out", s(&key_file)], &[]);
    assert!(ok, "{err}");
    let wasm = dir.path().join("hello.wasm");
    std::fs::copy(programs::HELLO, &wasm).unwrap();
    let sig_path = signature::signature_path(&wasm);
    // Files someone who can write the directory points the names `sign` writes at.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let old_tmp = dir.path().join("hello.wasm.sig.tmp");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&victim, &old_tmp).unwrap();
        std::os::unix::fs::symlink(&victim, &sig_path).unwrap();
    }
    for _ in 0..2 {
        let (ok, out, err) = flagon(&["sign", "--key", s(&key_file), s(&wasm)], &[]);
        assert!(ok, "{out}\n{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        let meta = std::fs::symlink_metadata(&sig_path).unwrap();
        assert!(
            meta.file_type().is_file(),
            "the `.sig` is a file of its own"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o777;
            assert!(mode & !0o644 == 0 && mode & 0o600 == 0o600, "{mode:o}");
        }
        let sig = SignatureFile::read(&sig_path).unwrap().unwrap();
        assert_eq!(sig.id, "hello");
        // No temporary file is left behind.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut expected = vec!["hello.wasm", "hello.wasm.sig", "release.pk8", "victim"];
        if cfg!(unix) {
            expected.insert(2, "hello.wasm.sig.tmp");
        }
        assert_eq!(names, expected);
    }
}

#[test]
fn a_private_key_given_where_a_path_or_name_was_meant_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("release.pk8");
    let (ok, _, err) = flagon(&["keygen", "--out", s(&key_file)], &[]);
    assert!(ok, "{err}");
    let pem = std::fs::read_to_string(&key_file).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let wasm = dir.path().join("hello.wasm");
    std::fs::copy(programs::HELLO, &wasm).unwrap();
    let wasm = s(&wasm);
    // (The forms a shell passes to flagon as the flag's value; `--key "$(cat key.pk8)"`, with a
    // value starting `-----`, is an error of the argument parser before any of this.)
    let cases: Vec<Vec<String>> = [
        vec!["sign".into(), format!("--key={pem}"), wasm.into()],
        vec!["sign".into(), "--key".into(), body.clone(), wasm.into()],
        vec!["sign".into(), format!("--key-env={pem}"), wasm.into()],
        vec!["sign".into(), "--key-env".into(), body.clone(), wasm.into()],
        vec![
            "sign".into(),
            "--key".into(),
            s(&key_file).into(),
            format!("--id={pem}"),
            wasm.into(),
        ],
        vec![
            "sign".into(),
            "--key".into(),
            s(&key_file).into(),
            body.clone(),
        ],
        vec!["verify".into(), format!("--key={pem}"), wasm.into()],
        vec!["verify".into(), "--key".into(), body.clone(), wasm.into()],
        vec!["keygen".into(), "--out".into(), body.clone()],
    ]
    .into_iter()
    .collect();
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out, err) = flagon(&args, &[]);
        let shown = format!("{out}{err}");
        assert!(!ok, "{}", args[0]);
        assert!(!shows_private_key(&pem, &shown), "{}: {shown}", args[0]);
        assert!(shown.contains("looks like a private key"), "{shown}");
    }
    // `--key-env` with the key in the variable, and a key file that is not one: errors name
    // only the variable and the file.
    let (ok, _, err) = flagon(
        &["sign", "--key-env", "RELEASE_KEY", wasm],
        &[("RELEASE_KEY", &pem.replace('M', "m"))],
    );
    assert!(!ok && err.contains("`RELEASE_KEY`"), "{err}");
    assert!(!shows_private_key(&pem, &err), "{err}");
    let broken = dir.path().join("broken.pk8");
    std::fs::write(&broken, pem.replace('M', "m")).unwrap();
    let (ok, _, err) = flagon(&["sign", "--key", s(&broken), wasm], &[]);
    assert!(!ok && err.contains("broken.pk8"), "{err}");
    assert!(!shows_private_key(&pem, &err), "{err}");
}

#[tokio::test]
async fn a_signed_app_loads_and_serves() {
    let key = SigningKey::generate().unwrap().0;
    let (m, wasm) = app_with_hello(&hello_app(&requiring(&key.public_key()), "hello", ""));
    sign_file(&key, "hello", &wasm);
    let s = TestServer::serve(m, LoadOptions::default()).await;
    let r = s.get("/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello from wasm"));
    s.shutdown().await;
}

#[tokio::test]
async fn an_unsigned_component_is_refused_when_signatures_are_required() {
    let key = SigningKey::generate().unwrap().0;
    let (m, wasm) = app_with_hello(&hello_app(&requiring(&key.public_key()), "hello", ""));
    let e = load_error(&m).await;
    assert!(e.contains("[components.hello]"), "{e}");
    assert!(e.contains(s(&wasm)) && e.contains("is not signed"), "{e}");
    assert!(e.contains("require_signatures = true"), "{e}");
    assert!(e.contains("flagon sign --key"), "{e}");

    // `flagon check` refuses it too.
    let (ok, out, err) = flagon(&["check", s(&m.path)], &[]);
    assert!(
        !ok && format!("{out}{err}").contains("is not signed"),
        "{out}\n{err}"
    );

    // Without `require_signatures`, an unsigned component loads as before.
    let (m, _) = app_with_hello(&hello_app("", "hello", ""));
    m.load().await.unwrap();
}

#[tokio::test]
async fn a_tampered_component_is_refused_even_when_signatures_are_not_required() {
    let key = SigningKey::generate().unwrap().0;
    for app in [requiring(&key.public_key()), String::new()] {
        let (m, wasm) = app_with_hello(&hello_app(&app, "hello", ""));
        sign_file(&key, "hello", &wasm);
        // Another real component put in its place, under hello's signature.
        std::fs::copy(programs::HOSTILE, &wasm).unwrap();
        let e = load_error(&m).await;
        assert!(
            e.contains("[components.hello]") && e.contains(s(&wasm)),
            "{e}"
        );
        assert!(e.contains("changed after it was signed"), "{e}");
        assert!(e.contains("sign it again"), "{e}");
    }
}

#[tokio::test]
async fn a_forged_or_broken_signature_is_refused() {
    let key = SigningKey::generate().unwrap().0;
    let (m, wasm) = app_with_hello(&hello_app(&requiring(&key.public_key()), "hello", ""));
    let sig = key.sign("hello", &std::fs::read(&wasm).unwrap());
    // The signature of another message, by the trusted key.
    let forged = SignatureFile {
        signature: key.sign("hello", b"other bytes").signature,
        ..sig.clone()
    };
    std::fs::write(signature::signature_path(&wasm), forged.to_text()).unwrap();
    let e = load_error(&m).await;
    assert!(e.contains("does not verify"), "{e}");
    // A file that is not a signature at all.
    std::fs::write(signature::signature_path(&wasm), "garbage").unwrap();
    let e = load_error(&m).await;
    assert!(
        e.contains("hello.wasm.sig") && e.contains("unusable"),
        "{e}"
    );
}

#[tokio::test]
async fn an_untrusted_key_is_refused() {
    let (trusted, stranger) = (
        SigningKey::generate().unwrap().0,
        SigningKey::generate().unwrap().0,
    );
    let (m, wasm) = app_with_hello(&hello_app(&requiring(&trusted.public_key()), "hello", ""));
    sign_file(&stranger, "hello", &wasm);
    let e = load_error(&m).await;
    assert!(
        e.contains("[components.hello]") && e.contains(s(&wasm)),
        "{e}"
    );
    let stranger = stranger.public_key().to_string();
    assert!(
        e.contains(&format!("signed by {stranger}, which is not trusted")),
        "{e}"
    );
    assert!(
        e.contains(&format!("trusted_keys = [\"{stranger}\"]")),
        "{e}"
    );

    // Not required: a valid signature by another key is only logged.
    let (m, wasm) = app_with_hello(&hello_app("", "hello", ""));
    sign_file(&trusted, "hello", &wasm);
    m.load().await.unwrap();
}

#[tokio::test]
async fn a_component_signed_as_another_id_is_refused() {
    let key = SigningKey::generate().unwrap().0;
    let app = requiring(&key.public_key());
    let (m, wasm) = app_with_hello(&hello_app(&app, "hello", ""));
    sign_file(&key, "admin", &wasm);
    let e = load_error(&m).await;
    assert!(e.contains("[components.hello]"), "{e}");
    assert!(
        e.contains("signed as component `admin`, not `hello`"),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "sign it as `hello`: `flagon sign --key <private key file> {}`",
            s(&wasm)
        )),
        "{e}"
    );

    // Signed as the table's id, or as the file's name: both are this component.
    let (m, wasm) = app_with_hello(&hello_app(&app, "greeter", ""));
    sign_file(&key, "greeter", &wasm);
    m.load().await.unwrap();
    sign_file(&key, "hello", &wasm);
    m.load().await.unwrap();
    sign_file(&key, "other", &wasm);
    let e = load_error(&m).await;
    assert!(e.contains("not `greeter` or `hello`"), "{e}");
    assert!(
        e.contains("flagon sign --key <private key file> --id greeter"),
        "{e}"
    );
}

#[tokio::test]
async fn a_db_adapter_file_is_verified_too() {
    let key = SigningKey::generate().unwrap().0;
    let db = "[databases.bad]\nadapter = \"bad-adapter.wasm\"\npool = 1\n";
    let (m, wasm) = app_with_hello(&hello_app(&requiring(&key.public_key()), "hello", db));
    sign_file(&key, "hello", &wasm);
    let adapter = m.dir.path().join("bad-adapter.wasm");
    std::fs::copy(programs::BAD_ADAPTER, &adapter).unwrap();
    let e = load_error(&m).await;
    assert!(
        e.contains("[databases.bad]") && e.contains(s(&adapter)),
        "{e}"
    );
    assert!(e.contains("is not signed"), "{e}");
    sign_file(&key, "bad-adapter", &adapter);
    m.load().await.unwrap();
    // Replaced under its signature: refused.
    std::fs::copy(programs::DIAL_ADAPTER, &adapter).unwrap();
    let e = load_error(&m).await;
    assert!(
        e.contains("[databases.bad]") && e.contains("changed after"),
        "{e}"
    );
}

#[tokio::test]
async fn embedded_plugins_pass_as_signed_by_the_first_party_key() {
    let key = SigningKey::generate().unwrap().0;
    let extra = "[components.cors]\nplugin = \"cors\"\nsettings = { origins = [\"https://app.example\"] }\n\n\
                 [[middleware]]\ncomponent = \"cors\"\n\n\
                 [databases.main]\nadapter = \"sqlite\"\n";
    let (m, wasm) = app_with_hello(&hello_app(&requiring(&key.public_key()), "hello", extra));
    sign_file(&key, "hello", &wasm);
    let s = TestServer::serve(m, LoadOptions::default()).await;
    let r = s.get("/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello from wasm"));
    s.shutdown().await;

    // Every embedded plugin, under a policy that trusts no key of the app's.
    let policy = Policy {
        required: true,
        trusted: Vec::new(),
    };
    let first_party = signature::first_party_key();
    for plugin in PLUGINS {
        let place = signature::Place {
            table: "components.p",
            id: "p",
            manifest: Path::new("flagon.toml"),
        };
        let verdict = signature::check(&policy, Subject::Embedded(plugin), plugin.wasm, place)
            .unwrap_or_else(|e| panic!("{}: {e:#}", plugin.name));
        assert_eq!(verdict, Verdict::Trusted(first_party), "{}", plugin.name);
        // Other bytes under its name are not what it signed.
        let mut other = plugin.wasm.to_vec();
        other.push(0);
        let e = signature::check(&policy, Subject::Embedded(plugin), &other, place).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("first-party signature"), "{e}");
        assert!(
            e.contains("`FLAGON_SIGNING_KEY=/path/to/flagon-plugins.pk8 bash plugins/build`"),
            "{e}"
        );
    }
}

/// CI's check of the first-party signatures: every plugin in `plugins/dist` has a
/// `<file>.wasm.sig` that verifies, signed as its file name, by the committed public key
/// `plugins/flagon-plugins.pub`, which is the key the host embeds. After a plugin changes, sign
/// `plugins/dist` again: `FLAGON_SIGNING_KEY=/path/to/flagon-plugins.pk8 bash plugins/build`.
#[test]
fn every_plugin_in_dist_is_signed_by_the_first_party_key() {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let key = PublicKey::read_file(&plugins.join("flagon-plugins.pub")).unwrap();
    assert_eq!(
        key,
        signature::first_party_key(),
        "the host embeds another key"
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(plugins.join("dist"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    assert_eq!(files.len(), PLUGINS.len(), "{files:?}");
    let mut bad = Vec::new();
    for file in &files {
        let wasm = std::fs::read(file).unwrap();
        let id = signature::default_id(file).unwrap();
        let outcome = match SignatureFile::read(&signature::signature_path(file)) {
            Ok(Some(sig)) => {
                signature::verify(&wasm, &sig, &[&id], &[key]).map_err(|e| e.to_string())
            }
            Ok(None) => Err("no signature file".to_string()),
            Err(e) => Err(e),
        };
        if let Err(why) = outcome {
            bad.push(format!("{}: {why}", file.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "{}\nsign them with the first-party private key file: \
         `FLAGON_SIGNING_KEY=/path/to/flagon-plugins.pk8 bash plugins/build`",
        bad.join("\n")
    );
    // The binary agrees.
    let pub_file = plugins.join("flagon-plugins.pub");
    let mut args = vec!["verify", "--key", s(&pub_file)];
    args.extend(files.iter().map(|f| s(f)));
    let (ok, out, err) = flagon(&args, &[]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok:")).count(),
        files.len(),
        "{out}"
    );
}
