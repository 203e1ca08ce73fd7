//! `[variables.<name>]`: values from the environment, files or defaults, and how they resolve.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Manifest, ManifestError, Result};

/// `[variables.<name>]`: a value components can be granted.
/// Example: `greeting = { default = "Hello", env = "GREETING" }`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableSection {
    /// Environment variable to read the value from; wins over `default` when set.
    pub env: Option<String>,
    /// File to read the value from when `env` is unset (relative to the manifest), e.g. a
    /// mounted Kubernetes or Docker secret; one trailing newline is dropped.
    /// Example: `file = "/run/secrets/api_token"`
    pub file: Option<PathBuf>,
    /// Value used when neither `env` nor `file` provides one. A variable without a default is
    /// required.
    pub default: Option<String>,
    /// Secret values are never printed by Flagon (logs, `flagon check`).
    #[serde(default)]
    pub secret: bool,
    /// With `flagon serve --dev` only: when neither `env` nor `file` gives a value, use a fresh
    /// random one for this run (32 random bytes, base64url), as the session key is in
    /// development. Without `--dev` the variable stays required. For peppers and signing keys,
    /// so that an example runs with no setup; what was made with the value stops working at
    /// the next start. Example: `pepper = { env = "PEPPER", secret = true, dev_random = true }`
    #[serde(default)]
    pub dev_random: bool,
}

impl fmt::Debug for VariableSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VariableSection")
            .field("env", &self.env)
            .field("file", &self.file)
            .field(
                "default",
                &self.default.as_ref().map(|d| {
                    if self.secret {
                        "<redacted>"
                    } else {
                        d.as_str()
                    }
                }),
            )
            .field("secret", &self.secret)
            .field("dev_random", &self.dev_random)
            .finish()
    }
}

impl Manifest {
    /// Checks every `[variables.<name>]`.
    pub(super) fn validate_variables(&self) -> Result<()> {
        for (name, v) in &self.variables {
            if let Some(env) = &v.env
                && (env.is_empty() || env.contains('='))
            {
                return Err(self.invalid(
                    format!("variables.{name}.env"),
                    format!("invalid environment variable name `{env}`"),
                    "write the name of an environment variable, e.g. `env = \"API_TOKEN\"`",
                ));
            }
            if v.dev_random && v.default.is_some() {
                return Err(self.invalid(
                    format!("variables.{name}.dev_random"),
                    "a `default` would always win over `dev_random`",
                    "remove `default` (a secret should not have one in the manifest anyway)",
                ));
            }
        }
        Ok(())
    }
}

impl Manifest {
    /// The value of every variable: from the environment (`env`), else from a file (`file`,
    /// e.g. a mounted Kubernetes secret), else its `default`.
    ///
    /// Fails on the first required variable that has no value, naming where it was looked up,
    /// and on a `file` that exists but cannot be read.
    pub fn resolve_variables(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, Variable>> {
        self.resolve_variables_for(env, false)
    }

    /// [`Manifest::resolve_variables`], in development mode (`dev`) giving each unset
    /// `dev_random` variable a fresh random value.
    pub fn resolve_variables_for(
        &self,
        env: impl Fn(&str) -> Option<String>,
        dev: bool,
    ) -> Result<BTreeMap<String, Variable>> {
        let mut out = BTreeMap::new();
        for (name, v) in &self.variables {
            let mut value = v.env.as_deref().and_then(&env);
            if value.is_none()
                && let Some(file) = &v.file
            {
                let path = self.resolve(file);
                match std::fs::read_to_string(&path) {
                    Ok(text) => value = Some(trim_line_end(text)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(self.invalid(
                            format!("variables.{name}.file"),
                            format!("cannot read `{}`: {e}", path.display()),
                            "make the file readable by the account running Flagon",
                        ));
                    }
                }
            }
            if value.is_none() && dev && v.dev_random {
                tracing::warn!(
                    variable = %name,
                    "development mode: variable `{name}` has a random value for this run; what is made with it stops working at the next start"
                );
                value = Some(dev_random_value(&self.file, name));
            }
            let Some(value) = value.or_else(|| v.default.clone()) else {
                let mut looked = Vec::new();
                if let Some(e) = &v.env {
                    looked.push(format!("the environment variable `{e}` is not set"));
                }
                if let Some(f) = &v.file {
                    looked.push(format!(
                        "the file `{}` does not exist",
                        self.resolve(f).display()
                    ));
                }
                let looked = if looked.is_empty() {
                    "it has no `env`, `file` or `default`".to_string()
                } else {
                    format!("{} and there is no `default`", looked.join(", "))
                };
                return Err(self.invalid(
                    format!("variables.{name}"),
                    format!("required variable `{name}` has no value: {looked}"),
                    match (&v.env, &v.file) {
                        (Some(e), _) if v.dev_random => {
                            format!("set `{e}` in the environment (only `--dev` makes one up)")
                        }
                        (Some(e), _) => {
                            format!("set `{e}` in the environment, or add `default = \"...\"`")
                        }
                        (None, Some(f)) => format!("create `{}`", self.resolve(f).display()),
                        (None, None) => format!(
                            "add `env = \"{}\"` or `default = \"...\"`",
                            name.to_uppercase()
                        ),
                    },
                ));
            };
            out.insert(
                name.clone(),
                Variable {
                    value,
                    secret: v.secret,
                },
            );
        }
        Ok(out)
    }
}

/// Read a `.env` file (`NAME=value` lines, `#` comments, optional quotes) into a map whose
/// values stand in for environment variables that are not set.
pub fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let iter = dotenvy::from_path_iter(path).map_err(|source| ManifestError::Read {
        file: path.to_path_buf(),
        source: std::io::Error::other(source.to_string()),
    })?;
    let mut out = BTreeMap::new();
    for item in iter {
        let (k, v) = item.map_err(|e| ManifestError::Parse {
            file: path.to_path_buf(),
            message: format!("{e}; write one `NAME=value` per line"),
        })?;
        out.insert(k, v);
    }
    Ok(out)
}

/// 32 random bytes from the system's generator, base64url without padding.
/// The `dev_random` value of variable `name` of the app at `manifest`: made once per process,
/// so that a reload keeps it (and what was made with it keeps working) until the next start.
fn dev_random_value(manifest: &Path, name: &str) -> String {
    static VALUES: std::sync::Mutex<BTreeMap<(PathBuf, String), String>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut values = VALUES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    values
        .entry((manifest.to_path_buf(), name.to_owned()))
        .or_insert_with(random_value)
        .clone()
}

fn random_value() -> String {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Secret files usually end with one newline that is not part of the value.
fn trim_line_end(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// A resolved variable value.
#[derive(Clone)]
pub struct Variable {
    pub value: String,
    pub secret: bool,
}

impl fmt::Debug for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("Variable(<redacted>)")
        } else {
            write!(f, "Variable({:?})", self.value)
        }
    }
}
