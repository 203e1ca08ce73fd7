//! `[kv.<name>]`: named key-value stores that components can be granted.

use std::path::PathBuf;

use serde::Deserialize;

use super::values::Size;
use super::{Manifest, Result};

/// `[kv.<name>]`: a named key-value store that components can be granted.
/// Example: `[kv.cache]` `backend = "redis"` `url = "redis_url"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvSection {
    /// `"embedded"` (default: a file under `path`, no setup) or `"redis"`.
    #[serde(default)]
    pub backend: KvBackendKind,
    /// Embedded: directory holding the store's file, relative to the manifest
    /// (default `data/kv`). Example: `path = "/var/lib/myapp/kv"`
    pub path: Option<PathBuf>,
    /// Embedded: fsync every write (default true). `false` fsyncs at most once a second, so a
    /// crash loses up to a second of writes: for counters written on every request (rate
    /// limits) and caches, never for data a user was told is saved. Example: `durable = false`
    pub durable: Option<bool>,
    /// Redis: the `[variables]` entry holding the URL (it may carry a password).
    /// Example: `url = "redis_url"`
    pub url: Option<String>,
    /// Redis: prefix put before every key (default `flagon:<app>:<store>:`).
    pub prefix: Option<String>,
    /// Largest key in bytes (default 512). Example: `max_key = 256`
    pub max_key: Option<usize>,
    /// Largest value (default 1MiB). Example: `max_value = "64KiB"`
    pub max_value: Option<Size>,
    /// Most entries the store holds (default 1000000); a write adding one past it fails with
    /// "kv store `<name>` is full". Example: `max_entries = 10000`
    pub max_entries: Option<u64>,
    /// Most bytes the store holds, each entry counting its key plus its value (default
    /// 256MiB). Example: `max_bytes = "16MiB"`
    pub max_bytes: Option<Size>,
}

/// Upper bounds of `max_entries` and `max_bytes`: past these a store is a database.
pub const MAX_ENTRIES_LIMIT: u64 = 1_000_000_000;
pub const MAX_BYTES_LIMIT: u64 = 1024 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvBackendKind {
    #[default]
    Embedded,
    Redis,
}

impl Manifest {
    /// Checks every `[kv.<name>]`: a redis store reads its URL from a variable; limits within bounds.
    pub(super) fn validate_kv(&self) -> Result<()> {
        for (name, kv) in &self.kv {
            let key = format!("kv.{name}");
            match kv.backend {
                KvBackendKind::Redis => {
                    let Some(url) = &kv.url else {
                        return Err(self.invalid(
                            format!("{key}.url"),
                            "a redis store needs a URL",
                            "add `url = \"redis_url\"` and declare `[variables.redis_url]` with `env = \"REDIS_URL\"`, `secret = true`",
                        ));
                    };
                    if !self.variables.contains_key(url) {
                        return Err(self.invalid(
                            format!("{key}.url"),
                            format!("unknown variable `{url}` (the URL is read from a variable, so a password in it stays out of the manifest)"),
                            format!("declare `[variables.{url}]` with `env = \"REDIS_URL\"`, `secret = true`"),
                        ));
                    }
                    if kv.durable.is_some() {
                        return Err(self.invalid(
                            format!("{key}.durable"),
                            "`durable` is for embedded stores (Redis keeps its own persistence settings)",
                            "remove `durable`",
                        ));
                    }
                    if kv.path.is_some() {
                        return Err(self.invalid(
                            format!("{key}.path"),
                            "`path` is for embedded stores",
                            "remove `path`",
                        ));
                    }
                }
                KvBackendKind::Embedded => {
                    if kv.url.is_some() || kv.prefix.is_some() {
                        return Err(self.invalid(
                            key,
                            "`url` and `prefix` are for redis stores",
                            "add `backend = \"redis\"` or remove them",
                        ));
                    }
                }
            }
            if kv.max_key.is_some_and(|n| n == 0 || n > 64 * 1024) {
                return Err(self.invalid(
                    format!("{key}.max_key"),
                    "outside 1..=65536",
                    "remove `max_key` to use 512",
                ));
            }
            if kv
                .max_value
                .is_some_and(|n| n.0 == 0 || n.0 > 64 * 1024 * 1024)
            {
                return Err(self.invalid(
                    format!("{key}.max_value"),
                    "outside 1B..64MiB",
                    "remove `max_value` to use 1MiB",
                ));
            }
            if kv
                .max_entries
                .is_some_and(|n| n == 0 || n > MAX_ENTRIES_LIMIT)
            {
                return Err(self.invalid(
                    format!("{key}.max_entries"),
                    format!("outside 1..={MAX_ENTRIES_LIMIT}"),
                    "remove `max_entries` to use 1000000",
                ));
            }
            if kv
                .max_bytes
                .is_some_and(|n| n.0 == 0 || n.0 > MAX_BYTES_LIMIT)
            {
                return Err(self.invalid(
                    format!("{key}.max_bytes"),
                    "outside 1B..1TiB",
                    "remove `max_bytes` to use 256MiB",
                ));
            }
        }
        Ok(())
    }
}
