//! `plugins/auth-jwt` over real HTTP: a valid token per algorithm, and the attack corpus (each
//! a 401, never a 500 or a pass).

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

use crate::harness::{Req, TestManifest, TestServer, program};
use crate::programs;
use crate::web::SESSION_KEY;

const HS_SECRET: &[u8] = b"an HS256 test secret of 32 bytes+";

struct Keys {
    rsa: RsaKeyPair,
    /// The RSA public key as DER, what an attacker would HMAC with.
    rsa_public_der: Vec<u8>,
    ec: EcdsaKeyPair,
    ed: Ed25519KeyPair,
}

impl Keys {
    fn new(dir: &std::path::Path) -> Self {
        let rng = SystemRandom::new();
        let der = dir.join("rsa.der");
        let ok = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .args(["-outform", "DER", "-out"])
            .arg(&der)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is needed for the RSA test key (`bash tests/run` installs it)");
        assert!(ok.success());
        // `genpkey -outform DER` writes PKCS#1 (RSAPrivateKey).
        let rsa = RsaKeyPair::from_der(&std::fs::read(&der).unwrap()).unwrap();
        let rsa_public_der = rsa.public().as_ref().to_vec();
        let ec_doc =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .unwrap();
        let ec = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            ec_doc.as_ref(),
            &rng,
        )
        .unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
            .unwrap();
        Self {
            rsa,
            rsa_public_der,
            ec,
            ed,
        }
    }

    fn jwks(&self) -> String {
        let rsa: signature::RsaPublicKeyComponents<Vec<u8>> = self.rsa.public().into();
        let point = self.ec.public_key().as_ref();
        serde_json::json!({ "keys": [
            { "kty": "oct", "kid": "hs", "alg": "HS256", "k": B64.encode(HS_SECRET) },
            { "kty": "RSA", "kid": "rsa", "alg": "RS256", "use": "sig",
              "n": B64.encode(&rsa.n), "e": B64.encode(&rsa.e) },
            { "kty": "EC", "kid": "ec", "alg": "ES256", "crv": "P-256",
              "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]) },
            { "kty": "OKP", "kid": "ed", "alg": "EdDSA", "crv": "Ed25519",
              "x": B64.encode(self.ed.public_key().as_ref()) },
        ]})
        .to_string()
    }

    /// A compact JWS of `header` and `claims`, signed as `how` says.
    fn token(&self, header: serde_json::Value, claims: serde_json::Value, how: Sign) -> String {
        let signed = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match how {
            Sign::Hs(secret) => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
                ring::hmac::sign(&key, signed.as_bytes()).as_ref().to_vec()
            }
            Sign::Rs => {
                let mut sig = vec![0; self.rsa.public().modulus_len()];
                self.rsa
                    .sign(
                        &signature::RSA_PKCS1_SHA256,
                        &rng,
                        signed.as_bytes(),
                        &mut sig,
                    )
                    .unwrap();
                sig
            }
            Sign::Es => self
                .ec
                .sign(&rng, signed.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Sign::Ed => self.ed.sign(signed.as_bytes()).as_ref().to_vec(),
            Sign::Unsigned => Vec::new(),
        };
        format!("{signed}.{}", B64.encode(sig))
    }
}

enum Sign<'a> {
    Hs(&'a [u8]),
    Rs,
    Es,
    Ed,
    Unsigned,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut c = serde_json::json!({
        "sub": "user-42",
        "name": "Ada",
        "iss": "https://id.test",
        "aud": ["api", "other"],
        "exp": now() + 300,
        "roles": ["reader"],
        "tenant": "acme",
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn manifest() -> String {
    format!(
        r#"
[app]
name = "jwttest"

[variables]
jwks = {{ file = "keys/jwks.json", secret = true }}

[auth]
authenticators = ["jwt"]

[components.jwt]
source = {jwt}
grants = {{ variables = ["jwks"] }}
settings = {{ keys_variable = "jwks", issuer = "https://id.test", audience = "api", leeway_secs = 5, max_token_bytes = 4096 }}

[components.web]
source = {web}
grants = {{ templates = true, session = true, kv = ["counter"] }}

[kv.counter]

[session]
secret = "session_key"

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
"#,
        jwt = program(programs::PLUGIN_AUTH_JWT),
        web = program(programs::WEB),
    )
    .replace(
        "[session]\nsecret = \"session_key\"",
        "[session]\nsecret = \"session_key\"\n\n[variables.session_key]\nfile = \"keys/session.key\"\nsecret = true",
    )
}

#[tokio::test]
async fn tokens_of_every_algorithm_pass_and_the_attack_corpus_is_401() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::new(dir.path());
    let m = TestManifest::with_files(
        &manifest(),
        &[
            ("keys/jwks.json", &keys.jwks()),
            ("keys/session.key", SESSION_KEY),
            ("templates/me.html", ""),
        ],
    );
    let s = TestServer::serve(m, Default::default()).await;
    let call = |path: &'static str, token: String| {
        let s = &s;
        async move {
            s.send(Req::new("GET", path).header("authorization", &format!("Bearer {token}")))
                .await
        }
    };

    for (kid, alg, how) in [
        ("hs", "HS256", Sign::Hs(HS_SECRET)),
        ("rsa", "RS256", Sign::Rs),
        ("ec", "ES256", Sign::Es),
        ("ed", "EdDSA", Sign::Ed),
    ] {
        let t = keys.token(
            serde_json::json!({ "alg": alg, "kid": kid, "typ": "JWT" }),
            claims(serde_json::json!({})),
            how,
        );
        let r = call("/me", t).await;
        assert_eq!(r.status, 200, "{alg}: {}", r.text());
        let me: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(me["subject"], "user-42", "{alg}");
        assert_eq!(me["name"], "Ada");
        assert_eq!(me["roles"], serde_json::json!(["reader"]));
        assert_eq!(me["authenticator"], "jwt");
        let claims = me["claims"].as_array().unwrap();
        assert!(
            claims.contains(&serde_json::json!(["tenant", "acme"])),
            "{me}"
        );
    }
    // Roles from the configured claim decide the 403.
    let hs = |claims: serde_json::Value| {
        keys.token(
            serde_json::json!({ "alg": "HS256", "kid": "hs" }),
            claims,
            Sign::Hs(HS_SECRET),
        )
    };
    assert_eq!(
        call("/admin", hs(claims(serde_json::json!({}))))
            .await
            .status,
        403
    );
    let admin = hs(claims(serde_json::json!({ "roles": ["reader", "admin"] })));
    assert_eq!(call("/admin", admin).await.status, 200);
    // Inside the leeway an expired token still passes; past it, not.
    assert_eq!(
        call("/me", hs(claims(serde_json::json!({ "exp": now() - 2 }))))
            .await
            .status,
        200
    );

    let unsigned = keys.token(
        serde_json::json!({ "alg": "none", "kid": "hs" }),
        claims(serde_json::json!({})),
        Sign::Unsigned,
    );
    let confused = keys.token(
        serde_json::json!({ "alg": "HS256", "kid": "rsa" }),
        claims(serde_json::json!({})),
        Sign::Hs(&keys.rsa_public_der),
    );
    let mut bad_sig = hs(claims(serde_json::json!({})));
    let flip = bad_sig.len() - 3;
    let c = if bad_sig.as_bytes()[flip] == b'A' {
        "B"
    } else {
        "A"
    };
    bad_sig.replace_range(flip..flip + 1, c);
    let with_header = |header: serde_json::Value| {
        keys.token(header, claims(serde_json::json!({})), Sign::Hs(HS_SECRET))
    };
    let corpus = [
        ("alg none", unsigned),
        ("HS256 signed with the RSA public key", confused),
        (
            "expired",
            hs(claims(serde_json::json!({ "exp": now() - 60 }))),
        ),
        (
            "not yet valid",
            hs(claims(serde_json::json!({ "nbf": now() + 60 }))),
        ),
        ("no exp", hs(claims(serde_json::json!({ "exp": null })))),
        (
            "wrong iss",
            hs(claims(serde_json::json!({ "iss": "https://evil.test" }))),
        ),
        ("wrong aud", hs(claims(serde_json::json!({ "aud": "web" })))),
        ("bad signature", bad_sig),
        (
            "unknown kid",
            with_header(serde_json::json!({ "alg": "HS256", "kid": "nope" })),
        ),
        (
            "kid that looks like a path",
            with_header(serde_json::json!({ "alg": "HS256", "kid": "../../../../dev/null" })),
        ),
        (
            "crit header",
            with_header(serde_json::json!({ "alg": "HS256", "kid": "hs", "crit": ["exp"] })),
        ),
        (
            "oversized",
            hs(claims(serde_json::json!({ "pad": "x".repeat(5000) }))),
        ),
        (
            "RS256 token verified as ES256",
            keys.token(
                serde_json::json!({ "alg": "ES256", "kid": "rsa" }),
                claims(serde_json::json!({})),
                Sign::Rs,
            ),
        ),
    ];
    for (what, token) in corpus {
        let r = call("/me", token).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="jwttest", error="invalid_token""#),
            "{what}"
        );
    }
    // No token, or a bearer token that is not a JWT: no identity (401 without `error`).
    for r in [s.get("/me").await, call("/me", "not-a-jwt".into()).await] {
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="jwttest""#)
        );
    }
}

#[test]
fn key_material_is_never_a_setting() {
    let text = manifest().replace(
        "settings = { keys_variable = \"jwks\",",
        "settings = { secret = \"hunter2-hunter2-hunter2-hunter2-hunter2\", keys_variable = \"jwks\",",
    );
    let m = TestManifest::with_files(
        &text,
        &[
            ("keys/jwks.json", r#"{"keys":[]}"#),
            ("keys/session.key", SESSION_KEY),
            ("templates/me.html", ""),
        ],
    );
    let e = format!("{:#}", m.load_sync().err().expect("refused"));
    assert!(e.contains("component `jwt` refused its settings"), "{e}");
    assert!(e.contains("secret variables"), "{e}");
    assert!(!e.contains("hunter2"), "the value is not echoed: {e}");
}
