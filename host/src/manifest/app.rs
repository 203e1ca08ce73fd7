//! `[app]`: the application itself.

use serde::Deserialize;

use super::AdapterKind;
use super::{Manifest, Result};
use crate::signature::{self, PublicKey};
use crate::text::log_safe;

/// `[app]`: the application itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// Example: `name = "todo"`
    pub name: String,
    /// Public keys whose signatures (`<file>.wasm.sig`, made by `flagon sign`) the app trusts,
    /// each `ed25519:<base64>` as `flagon keygen` prints it.
    /// Example: `trusted_keys = ["ed25519:W4yR..."]`
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// Refuse to load any component or DB adapter file not signed by one of `trusted_keys`
    /// (embedded plugins pass as signed by the built-in first-party key).
    /// Example: `require_signatures = true`
    #[serde(default)]
    pub require_signatures: bool,
}

impl Manifest {
    /// Checks `[app]`.
    pub(super) fn validate_app(&self) -> Result<()> {
        if self.app.name.trim().is_empty() {
            return Err(self.invalid(
                "app.name",
                "the app name is empty",
                "set `name = \"myapp\"` in `[app]`",
            ));
        }
        for (i, key) in self.app.trusted_keys.iter().enumerate() {
            if let Err(why) = key.parse::<PublicKey>() {
                // Never echo what may be a private key pasted in the wrong place.
                if signature::looks_like_private_key(key.as_bytes()) {
                    return Err(self.invalid(
                        format!("app.trusted_keys[{i}]"),
                        "this looks like a private key (not quoted here); a private key must never be in the manifest".to_string(),
                        "remove it now and treat it as leaked; list the public key `flagon keygen` printed: `\"ed25519:<base64 of 32 bytes>\"`",
                    ));
                }
                return Err(self.invalid(
                    format!("app.trusted_keys[{i}]"),
                    format!("`{}` is not an Ed25519 public key: {why}", log_safe(key)),
                    "write each key as `flagon keygen` prints it: `\"ed25519:<base64 of 32 bytes>\"`",
                ));
            }
        }
        if self.app.require_signatures && self.app.trusted_keys.is_empty() {
            let file = self
                .components
                .iter()
                .find(|(_, c)| c.plugin.is_none())
                .map(|(id, _)| format!("component `{id}`"))
                .or_else(|| {
                    self.databases
                        .iter()
                        .find(|(_, d)| matches!(d.kind(), AdapterKind::Component(_)))
                        .map(|(name, _)| format!("the adapter of database `{name}`"))
                });
            if let Some(what) = file {
                return Err(self.invalid(
                    "app.trusted_keys",
                    format!(
                        "`require_signatures = true` but no key is trusted, so {what} (a `.wasm` file) can never load"
                    ),
                    "add the public key that signed it: `trusted_keys = [\"ed25519:...\"]` (`flagon keygen` printed it)",
                ));
            }
        }
        Ok(())
    }

    /// What the app requires of its components' signatures (`require_signatures`,
    /// `trusted_keys`), for `signature::check`.
    pub fn signature_policy(&self) -> signature::Policy {
        signature::Policy {
            required: self.app.require_signatures,
            // Validated above.
            trusted: self
                .app
                .trusted_keys
                .iter()
                .filter_map(|k| k.parse().ok())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(app: &str) -> Result<Manifest> {
        let text = format!(
            "[app]\nname = \"t\"\n{app}\n[components.hello]\nsource = \"hello.wasm\"\n[[routes]]\npath = \"/\"\ncomponent = \"hello\"\n"
        );
        Manifest::parse(Path::new("app/flagon.toml"), &text)
    }

    const KEY: &str = "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    #[test]
    fn signatures_are_off_by_default() {
        let m = parse("").unwrap();
        let policy = m.signature_policy();
        assert!(!policy.required && policy.trusted.is_empty());
    }

    #[test]
    fn trusted_keys_and_require_signatures_parse() {
        let m = parse(&format!(
            "trusted_keys = [\"{KEY}\"]\nrequire_signatures = true"
        ))
        .unwrap();
        let policy = m.signature_policy();
        assert!(policy.required);
        assert_eq!(policy.trusted, vec![KEY.parse::<PublicKey>().unwrap()]);
    }

    #[test]
    fn a_bad_key_names_the_file_key_value_and_fix() {
        for (key, why) in [
            ("11qYAYKxCrfVS", "written `ed25519:<base64>`"),
            ("ed25519:11qYAYKxCrfVS", "not standard base64"),
            ("ed25519:AAAA", "decodes to 3 bytes"),
        ] {
            let err = parse(&format!("trusted_keys = [\"{KEY}\", \"{key}\"]"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("app/flagon.toml"), "{err}");
            assert!(err.contains("`app.trusted_keys[1]`"), "{err}");
            assert!(err.contains(key) && err.contains(why), "{err}");
            assert!(err.contains("flagon keygen"), "{err}");
        }
    }

    #[test]
    fn requiring_signatures_without_a_trusted_key_is_refused() {
        let err = parse("require_signatures = true").unwrap_err().to_string();
        assert!(
            err.contains("`app.trusted_keys`") && err.contains("component `hello`"),
            "{err}"
        );
        let err = parse("unknown = true").unwrap_err().to_string();
        assert!(err.contains("unknown"), "{err}");
    }
}
