//! `[databases.<name>] url_variable`: a database given by one URL in a variable, so that the
//! same app runs on SQLite or Postgres by setting one environment variable.
//!
//! `sqlite:<path>` (relative to the manifest; `sqlite:` alone is the default file) or
//! `postgres://user[:password]@host[:port][/database][?sslmode=verify-full|disable]
//! [&sslrootcert=<file>]`. At load the URL fills in the keys a table would otherwise spell out
//! (`adapter`, `path`, `host`, `port`, `user`, `database`, `tls`, `ca_file`), the password
//! becomes the adapter's secret, and the database is checked like any other. The URL is a
//! secret: no error quotes it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;

use super::databases::{DatabaseSection, TlsMode};
use super::variables::Variable;
use super::{Manifest, Result};

/// A URL, taken apart.
#[derive(Debug, PartialEq, Eq)]
enum Url {
    Sqlite(Option<PathBuf>),
    Postgres {
        host: String,
        port: Option<u16>,
        user: String,
        password: Option<String>,
        database: Option<String>,
        tls: TlsMode,
        ca_file: Option<PathBuf>,
    },
}

/// Why a URL was refused; never quotes it, since it may hold a password.
fn parse(text: &str) -> std::result::Result<Url, String> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("sqlite:") {
        // `sqlite://data/app.db` and `sqlite:data/app.db` alike; `sqlite:///abs` is absolute.
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.contains(['?', '#']) {
            return Err("a `sqlite:` URL takes a path only, no query or fragment".into());
        }
        return Ok(Url::Sqlite((!path.is_empty()).then(|| PathBuf::from(path))));
    }
    let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "the scheme `{}` is not `sqlite:` or `postgres://`",
            url.scheme()
        ));
    }
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(h) => h.to_string(),
        None => return Err("a `postgres://` URL needs a host".into()),
    };
    let user = decode(url.username());
    if user.is_empty() {
        return Err("a `postgres://` URL needs a user (`postgres://user@host/db`)".into());
    }
    let database = url.path().trim_start_matches('/');
    if database.contains('/') {
        return Err("the database name holds a `/`".into());
    }
    let mut tls = TlsMode::Verify;
    let mut ca_file = None;
    for (k, v) in url.query_pairs() {
        match (k.as_ref(), v.as_ref()) {
            ("sslmode", "verify-full") => tls = TlsMode::Verify,
            ("sslmode", "disable") => tls = TlsMode::Off,
            ("sslmode", other) => {
                return Err(format!(
                    "`sslmode={other}` is not offered: Flagon checks the server's certificate and \
                     name (`verify-full`, the default) or uses plain TCP on loopback (`disable`)"
                ));
            }
            ("sslrootcert", file) => ca_file = Some(PathBuf::from(file)),
            (other, _) => {
                return Err(format!(
                    "the URL parameter `{other}` is not one of `sslmode`, `sslrootcert`"
                ));
            }
        }
    }
    Ok(Url::Postgres {
        host,
        port: url.port(),
        user,
        password: url.password().map(decode),
        database: (!database.is_empty()).then(|| decode(database)),
        tls,
        ca_file,
    })
}

impl Manifest {
    /// The keys a database with `url_variable` must leave to the URL; checked with the rest of
    /// the manifest, before any variable is read.
    pub(super) fn check_url_variable(&self, key: &str, db: &DatabaseSection) -> Result<()> {
        let Some(var) = &db.url_variable else {
            return Ok(());
        };
        if !self.variables.contains_key(var) {
            return Err(self.invalid(
                format!("{key}.url_variable"),
                format!("no variable `{var}` is declared"),
                format!(
                    "declare it: `[variables] {var} = {{ env = \"DATABASE_URL\", default = \"sqlite:\", secret = true }}`"
                ),
            ));
        }
        // The keys a URL sets, which the table may then not set itself.
        let set = [
            ("adapter", !db.adapter.is_empty()),
            ("path", db.path.is_some()),
            ("host", db.host.is_some()),
            ("port", db.port.is_some()),
            ("user", db.user.is_some()),
            ("database", db.database.is_some()),
            ("tls", db.tls.is_some()),
            ("ca_file", db.ca_file.is_some()),
            ("secrets", !db.secrets.is_empty()),
            ("settings", !db.settings.is_empty()),
        ];
        if let Some((k, _)) = set.iter().find(|(_, set)| *set) {
            return Err(self.invalid(
                format!("{key}.{k}"),
                format!("`{k}` comes from the URL in variable `{var}` (`url_variable`)"),
                format!("remove `{k}`, or remove `url_variable` and spell the database out"),
            ));
        }
        Ok(())
    }

    /// This manifest with every `url_variable` database filled in from its URL, checked again;
    /// `None` when no database has one. A URL's password becomes a secret variable of its own
    /// (named `<variable>#password`, which no manifest can declare) that only the adapter gets.
    pub fn with_database_urls(
        &self,
        variables: &mut BTreeMap<String, Variable>,
    ) -> Result<Option<Manifest>> {
        if self.databases.values().all(|db| db.url_variable.is_none()) {
            return Ok(None);
        }
        let mut out = self.clone();
        for (name, db) in &mut out.databases {
            let Some(var) = db.url_variable.take() else {
                continue;
            };
            let key = format!("databases.{name}.url_variable");
            let url = parse(&variables[&var].value).map_err(|why| {
                self.invalid(
                    key.clone(),
                    format!("the value of variable `{var}` is not a database URL: {why}"),
                    "set it to `sqlite:<path>` or `postgres://user[:password]@host[:port]/database[?sslmode=disable]`",
                )
            })?;
            match url {
                Url::Sqlite(path) => {
                    db.adapter = "sqlite".into();
                    db.path = path;
                }
                Url::Postgres {
                    host,
                    port,
                    user,
                    password,
                    database,
                    tls,
                    ca_file,
                } => {
                    db.adapter = "postgres".into();
                    db.host = Some(host);
                    db.port = port;
                    db.user = Some(user);
                    db.database = database;
                    db.tls = Some(tls);
                    db.ca_file = ca_file;
                    if let Some(password) = password {
                        let secret = format!("{var}#password");
                        variables.insert(
                            secret.clone(),
                            Variable {
                                value: password,
                                secret: true,
                            },
                        );
                        db.secrets.insert("password".into(), secret);
                    }
                }
            }
        }
        // The URL's keys are checked as if written in the table. (The secret's variable is not
        // declared, so skip that one check.)
        out.validate_databases_filled()?;
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = r#"
[app]
name = "t"
[components.h]
source = "h.wasm"
grants = { sql = ["main"] }
[variables]
database_url = { env = "DATABASE_URL", default = "sqlite:", secret = true }
[databases.main]
url_variable = "database_url"
"#;

    fn filled(url: &str) -> Result<Manifest> {
        let m = Manifest::parse(std::path::Path::new("app/flagon.toml"), APP)?;
        let mut vars = m.resolve_variables(|k| (k == "DATABASE_URL").then(|| url.to_string()))?;
        let out = m
            .with_database_urls(&mut vars)?
            .expect("a url_variable database");
        if let Some(var) = out.databases["main"].secrets.get("password") {
            assert!(vars[var].secret);
            assert_eq!(vars[var].value, "hunter2hunter2");
        }
        Ok(out)
    }

    #[test]
    fn a_url_fills_in_the_database() {
        let db = &filled("sqlite:").unwrap().databases["main"];
        assert_eq!((db.adapter.as_str(), db.path.as_ref()), ("sqlite", None));
        let db = &filled("postgres://todo:hunter2hunter2@localhost:5433/todo?sslmode=disable")
            .unwrap()
            .databases["main"];
        assert_eq!(db.adapter, "postgres");
        assert_eq!(db.host.as_deref(), Some("localhost"));
        assert_eq!(db.port(), Some(5433));
        assert_eq!(db.tls(), TlsMode::Off);
        assert_eq!(db.secrets.len(), 1);
        // A bad URL names the key and variable, and never quotes the URL.
        let err = filled("postgres://:hunter2hunter2@h/x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("databases.main.url_variable") && err.contains("needs a user"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        // A key the URL sets may not be written beside it.
        let err = Manifest::parse(
            std::path::Path::new("app/flagon.toml"),
            &APP.replace("url_variable =", "adapter = \"sqlite\"\nurl_variable ="),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("databases.main.adapter") && err.contains("comes from the URL"),
            "{err}"
        );
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(parse("sqlite:"), Ok(Url::Sqlite(None)));
        assert_eq!(
            parse("sqlite:data/app.db"),
            Ok(Url::Sqlite(Some("data/app.db".into())))
        );
        assert_eq!(
            parse("sqlite://data/app.db"),
            Ok(Url::Sqlite(Some("data/app.db".into())))
        );
        assert_eq!(
            parse("sqlite:///var/lib/app.db"),
            Ok(Url::Sqlite(Some("/var/lib/app.db".into())))
        );
        assert!(parse("sqlite:x.db?mode=ro").is_err());
    }

    #[test]
    fn postgres_urls() {
        assert_eq!(
            parse("postgres://todo:p%40ss@127.0.0.1:5433/todo?sslmode=disable"),
            Ok(Url::Postgres {
                host: "127.0.0.1".into(),
                port: Some(5433),
                user: "todo".into(),
                password: Some("p@ss".into()),
                database: Some("todo".into()),
                tls: TlsMode::Off,
                ca_file: None,
            })
        );
        assert_eq!(
            parse("postgresql://app@[::1]/?sslrootcert=ca.pem"),
            Ok(Url::Postgres {
                host: "::1".into(),
                port: None,
                user: "app".into(),
                password: None,
                database: None,
                tls: TlsMode::Verify,
                ca_file: Some("ca.pem".into()),
            })
        );
        for (bad, says) in [
            ("postgres://db.internal/x", "needs a user"),
            (
                "postgres://u@h/x?sslmode=require",
                "`sslmode=require` is not offered",
            ),
            ("postgres://u@h/x?application_name=a", "`application_name`"),
            ("mysql://u:secret@h/x", "scheme `mysql`"),
            ("db.internal", "not a URL"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
