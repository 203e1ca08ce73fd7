//! Checking a compact JWS (RFC 7515) carrying JWT claims (RFC 7519), by the rules of RFC 8725
//! (JWT best current practices): the algorithm is the key's, never the token's choice.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{hmac, signature};
use serde::Deserialize;
use serde_json::Value;

/// The algorithms this authenticator verifies. `none` is not one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "HS256" => Alg::Hs256,
            "HS384" => Alg::Hs384,
            "HS512" => Alg::Hs512,
            "RS256" => Alg::Rs256,
            "ES256" => Alg::Es256,
            "EdDSA" => Alg::EdDsa,
            _ => return None,
        })
    }
}

/// A verification key, with the one algorithm it may be used with.
pub struct Key {
    pub kid: Option<String>,
    pub alg: Alg,
    material: Material,
}

enum Material {
    Hmac(hmac::Key),
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed P-256 point (`0x04 || x || y`) or an Ed25519 public key.
    Public(Vec<u8>),
}

/// One JWK as a JWKS lists it (RFC 7517); only the members needed here.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    k: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

fn b64(field: &str, value: Option<&String>) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("the key has no `{field}`"))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| format!("`{field}` is not base64url without padding"))
}

impl Key {
    /// A shared secret for HS256/384/512.
    pub fn secret(alg: Alg, secret: &[u8], kid: Option<String>) -> Result<Self, String> {
        let algorithm = match alg {
            Alg::Hs256 => hmac::HMAC_SHA256,
            Alg::Hs384 => hmac::HMAC_SHA384,
            Alg::Hs512 => hmac::HMAC_SHA512,
            _ => return Err("a shared secret is only for HS256, HS384 or HS512".into()),
        };
        // RFC 7518 3.2: a key at least as long as the hash output.
        let min = match alg {
            Alg::Hs256 => 32,
            Alg::Hs384 => 48,
            _ => 64,
        };
        if secret.len() < min {
            return Err(format!(
                "the secret must be at least {min} bytes for this algorithm"
            ));
        }
        Ok(Self {
            kid,
            alg,
            material: Material::Hmac(hmac::Key::new(algorithm, secret)),
        })
    }

    /// Every key of a JWKS document. Each key must name its `alg`; the `kty` (and `crv`) must
    /// fit it, so no key can be used with an algorithm of another family.
    pub fn from_jwks(text: &str) -> Result<Vec<Self>, String> {
        let jwks: Jwks =
            serde_json::from_str(text).map_err(|e| format!("the JWKS is not valid: {e}"))?;
        let mut keys = Vec::new();
        for (i, jwk) in jwks.keys.iter().enumerate() {
            let which = jwk
                .kid
                .as_deref()
                .map_or(format!("key {i}"), |k| format!("key `{k}`"));
            if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let alg_name = jwk
                .alg
                .as_deref()
                .ok_or_else(|| format!("{which} has no `alg`: pin each key to one algorithm"))?;
            let alg = Alg::parse(alg_name)
                .ok_or_else(|| format!("{which}: algorithm `{alg_name}` is not supported"))?;
            let material = match (alg, jwk.kty.as_str()) {
                (Alg::Hs256 | Alg::Hs384 | Alg::Hs512, "oct") => {
                    let k = b64("k", jwk.k.as_ref()).map_err(|e| format!("{which}: {e}"))?;
                    let key = Key::secret(alg, &k, jwk.kid.clone())
                        .map_err(|e| format!("{which}: {e}"))?;
                    keys.push(key);
                    continue;
                }
                (Alg::Rs256, "RSA") => {
                    let n = b64("n", jwk.n.as_ref()).map_err(|e| format!("{which}: {e}"))?;
                    let e = b64("e", jwk.e.as_ref()).map_err(|e| format!("{which}: {e}"))?;
                    if n.len() < 256 {
                        return Err(format!("{which}: RSA keys must be at least 2048 bits"));
                    }
                    Material::Rsa { n, e }
                }
                (Alg::Es256, "EC") if jwk.crv.as_deref() == Some("P-256") => {
                    let x = b64("x", jwk.x.as_ref()).map_err(|e| format!("{which}: {e}"))?;
                    let y = b64("y", jwk.y.as_ref()).map_err(|e| format!("{which}: {e}"))?;
                    if x.len() != 32 || y.len() != 32 {
                        return Err(format!("{which}: `x` and `y` must be 32 bytes"));
                    }
                    let mut point = vec![4];
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    Material::Public(point)
                }
                (Alg::EdDsa, "OKP") if jwk.crv.as_deref() == Some("Ed25519") => {
                    let x = b64("x", jwk.x.as_ref()).map_err(|e| format!("{which}: {e}"))?;
                    if x.len() != 32 {
                        return Err(format!("{which}: `x` must be 32 bytes"));
                    }
                    Material::Public(x)
                }
                (_, kty) => {
                    return Err(format!(
                        "{which}: key type `{kty}` does not fit algorithm `{alg_name}`"
                    ));
                }
            };
            keys.push(Key {
                kid: jwk.kid.clone(),
                alg,
                material,
            });
        }
        if keys.is_empty() {
            return Err("the JWKS has no signing keys".into());
        }
        Ok(keys)
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            Material::Hmac(key) => hmac::verify(key, message, sig).is_ok(),
            Material::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
            Material::Public(public) => {
                let algorithm: &dyn signature::VerificationAlgorithm = match self.alg {
                    Alg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
                    _ => &signature::ED25519,
                };
                signature::UnparsedPublicKey::new(algorithm, public)
                    .verify(message, sig)
                    .is_ok()
            }
        }
    }
}

/// What the claims must say, besides a valid signature.
#[derive(Debug, Clone)]
pub struct Rules {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_secs: u64,
    pub max_bytes: usize,
}

/// The claims of a token that passed every check.
#[derive(Debug)]
pub struct Verified {
    pub claims: BTreeMap<String, Value>,
}

impl Verified {
    pub fn subject(&self) -> &str {
        self.claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<Value>,
}

/// Check `token` against `keys` and `rules` at time `now` (seconds since the epoch). The error
/// says why, for the log.
pub fn verify(token: &str, keys: &[Key], rules: &Rules, now: u64) -> Result<Verified, String> {
    if token.len() > rules.max_bytes {
        return Err(format!(
            "the token is longer than {} bytes",
            rules.max_bytes
        ));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS (three dot-separated parts)".into());
    };
    let decode = |what: &str, part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| format!("the {what} is not base64url"))
    };
    let header: Header = serde_json::from_slice(&decode("header", h)?)
        .map_err(|_| "the header is not a JSON object with `alg`".to_string())?;
    // RFC 7515 4.1.11: extensions marked critical must be understood; this verifier knows none.
    if header.crit.is_some() {
        return Err("the header has `crit`, which is not supported".into());
    }
    if let Some(typ) = &header.typ
        && !(typ.eq_ignore_ascii_case("JWT") || typ.eq_ignore_ascii_case("at+jwt"))
    {
        return Err("`typ` is not JWT".into());
    }
    let Some(alg) = Alg::parse(&header.alg) else {
        return Err("the algorithm is not accepted".into());
    };
    // The `kid` is only ever compared with the configured keys' ids: never a path or URL.
    let key = match &header.kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid.as_str())),
        None if keys.len() == 1 => keys.first(),
        None => None,
    }
    .ok_or_else(|| "no configured key matches the token's `kid`".to_string())?;
    if key.alg != alg {
        return Err("the token's `alg` is not the key's algorithm".into());
    }
    let sig = decode("signature", s)?;
    let signed = &token[..h.len() + 1 + p.len()];
    if !key.verify(signed.as_bytes(), &sig) {
        return Err("bad signature".into());
    }

    let claims: BTreeMap<String, Value> = serde_json::from_slice(&decode("payload", p)?)
        .map_err(|_| "the payload is not a JSON object".to_string())?;
    let time = |name: &str| -> Result<Option<u64>, String> {
        match claims.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .map(|t| Some(t as u64))
                .ok_or_else(|| format!("`{name}` is not a NumericDate")),
        }
    };
    let exp = time("exp")?.ok_or_else(|| "the token has no `exp`".to_string())?;
    if now >= exp.saturating_add(rules.leeway_secs) {
        return Err("the token has expired".into());
    }
    if let Some(nbf) = time("nbf")?
        && now.saturating_add(rules.leeway_secs) < nbf
    {
        return Err("the token is not valid yet (`nbf`)".into());
    }
    if let Some(issuer) = &rules.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
    {
        return Err("wrong issuer".into());
    }
    if let Some(audience) = &rules.audience {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !ok {
            return Err("wrong audience".into());
        }
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => {}
        _ => return Err("the token has no `sub`".into()),
    }
    Ok(Verified { claims })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn rules() -> Rules {
        Rules {
            issuer: Some("https://id.example".into()),
            audience: Some("api".into()),
            leeway_secs: 30,
            max_bytes: 4096,
        }
    }

    fn sign_hs256(header: &str, claims: &str) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let p = URL_SAFE_NO_PAD.encode(claims);
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
        let tag = hmac::sign(&key, format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    fn claims(exp: u64) -> String {
        format!(r#"{{"sub":"ada","iss":"https://id.example","aud":["api","x"],"exp":{exp}}}"#)
    }

    #[test]
    fn a_good_token_passes_and_every_broken_rule_fails() {
        let keys = vec![Key::secret(Alg::Hs256, SECRET, None).unwrap()];
        let good = sign_hs256(r#"{"alg":"HS256","typ":"JWT"}"#, &claims(2000));
        assert_eq!(
            verify(&good, &keys, &rules(), 1000).unwrap().subject(),
            "ada"
        );
        // Leeway on both sides.
        assert!(verify(&good, &keys, &rules(), 2029).is_ok());
        assert!(verify(&good, &keys, &rules(), 2030).is_err());
        let nbf = sign_hs256(
            r#"{"alg":"HS256"}"#,
            r#"{"sub":"a","iss":"https://id.example","aud":"api","exp":9999,"nbf":1100}"#,
        );
        assert!(verify(&nbf, &keys, &rules(), 1069).is_err());
        assert!(verify(&nbf, &keys, &rules(), 1070).is_ok());
        for (header, body, why) in [
            (r#"{"alg":"none"}"#, claims(2000), "not accepted"),
            (r#"{"alg":"HS384"}"#, claims(2000), "not the key's"),
            (r#"{"alg":"HS256","crit":["exp"]}"#, claims(2000), "crit"),
            (
                r#"{"alg":"HS256","kid":"../../etc/passwd"}"#,
                claims(2000),
                "kid",
            ),
            (
                r#"{"alg":"HS256"}"#,
                r#"{"sub":"a","iss":"https://id.example","aud":"api"}"#.into(),
                "no `exp`",
            ),
            (
                r#"{"alg":"HS256"}"#,
                r#"{"sub":"a","iss":"https://evil","aud":"api","exp":9999}"#.into(),
                "issuer",
            ),
            (
                r#"{"alg":"HS256"}"#,
                r#"{"sub":"a","iss":"https://id.example","aud":"web","exp":9999}"#.into(),
                "audience",
            ),
            (
                r#"{"alg":"HS256"}"#,
                r#"{"iss":"https://id.example","aud":"api","exp":9999}"#.into(),
                "`sub`",
            ),
        ] {
            let t = sign_hs256(header, &body);
            let e = verify(&t, &keys, &rules(), 1000).unwrap_err();
            assert!(e.contains(why), "{header} {body}: {e}");
        }
        // A flipped signature byte, and an unsigned token.
        let mut bad = good.clone().into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert!(verify(std::str::from_utf8(&bad).unwrap(), &keys, &rules(), 1000).is_err());
        let (signed, _) = good.rsplit_once('.').unwrap();
        assert!(verify(&format!("{signed}."), &keys, &rules(), 1000).is_err());
        let long = format!("{good}{}", "A".repeat(5000));
        assert!(
            verify(&long, &keys, &rules(), 1000)
                .unwrap_err()
                .contains("longer")
        );
    }

    #[test]
    fn jwks_keys_are_pinned_to_their_algorithm_and_type() {
        let k = URL_SAFE_NO_PAD.encode(SECRET);
        let ok = format!(r#"{{"keys":[{{"kty":"oct","kid":"a","alg":"HS256","k":"{k}"}}]}}"#);
        assert_eq!(Key::from_jwks(&ok).unwrap().len(), 1);
        for (jwks, why) in [
            (
                format!(r#"{{"keys":[{{"kty":"oct","kid":"a","k":"{k}"}}]}}"#),
                "no `alg`",
            ),
            (
                format!(r#"{{"keys":[{{"kty":"oct","alg":"RS256","k":"{k}"}}]}}"#),
                "does not fit",
            ),
            (
                format!(r#"{{"keys":[{{"kty":"RSA","alg":"HS256","n":"{k}","e":"AQAB"}}]}}"#),
                "does not fit",
            ),
            (
                r#"{"keys":[{"kty":"oct","alg":"HS256","k":"c2hvcnQ"}]}"#.to_string(),
                "at least 32",
            ),
            (
                r#"{"keys":[{"kty":"oct","alg":"none","k":"c2hvcnQ"}]}"#.to_string(),
                "not supported",
            ),
        ] {
            let e = Key::from_jwks(&jwks).err().unwrap();
            assert!(e.contains(why), "{jwks}: {e}");
        }
    }
}
