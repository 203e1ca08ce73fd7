//! `[server]`: the listener and the limits that protect it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::{HumanDuration, IpNetwork, Size};
use super::{HOUR, Manifest, Result};

/// `[server]`: the listener and the limits that protect it. Every limit has a safe default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Example: `listen = "0.0.0.0:8080"` (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Largest request body accepted, unless a route sets its own (413 past it).
    /// Example: `max_body = "1MiB"`
    pub max_body: Size,
    /// Largest request head (request line + headers) accepted (431 past it). At least 8KiB.
    /// Example: `max_header_bytes = "16KiB"`
    pub max_header_bytes: Size,
    /// Most header fields in one request (431 past it). Example: `max_headers = 100`
    pub max_headers: usize,
    /// Time a client has to send a complete request head; slower connections are closed
    /// (slowloris protection). Example: `header_read_timeout = "10s"`
    pub header_read_timeout: HumanDuration,
    /// Time a client has to send the request body once its head is in; slower clients get 408.
    /// Example: `body_read_timeout = "30s"`
    pub body_read_timeout: HumanDuration,
    /// Open connections accepted at once; further clients wait in the listen backlog.
    /// Example: `max_connections = 4096`
    pub max_connections: usize,
    /// Component instances alive at once, across all components (the pooling allocator's
    /// size); requests past it get 503. Example: `max_instances = 1000`
    pub max_instances: u32,
    /// How long a write to the client may wait for it to read; a client that stops reading
    /// (or reads slower than this allows for one write) is disconnected, freeing its slot.
    /// Example: `write_timeout = "30s"`
    pub write_timeout: HumanDuration,
    /// How long a connection may stay open with no request on it (HTTP/1 keep-alive or
    /// HTTP/2); then it is closed gracefully. Example: `idle_timeout = "60s"`
    pub idle_timeout: HumanDuration,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    /// Example: `shutdown_grace = "30s"`
    pub shutdown_grace: HumanDuration,
    /// Where precompiled components are cached (default: `$XDG_CACHE_HOME/flagon` or
    /// `~/.cache/flagon`). Example: `cache_dir = "/var/cache/flagon"`
    pub cache_dir: Option<PathBuf>,
    /// Host names (and `*.domain` wildcards) this app answers to; a request whose `Host`
    /// matches none gets 400. Empty (the default) accepts any host: set it in production.
    /// Example: `allowed_hosts = ["example.com", "*.example.com"]`
    pub allowed_hosts: Vec<String>,
    /// Addresses of reverse proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` /
    /// `X-Forwarded-Host` headers are believed; from anyone else they are ignored.
    /// Example: `trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]`
    pub trusted_proxies: Vec<IpNetwork>,
    /// Most fields (parts) in one urlencoded or multipart form (400 past it).
    /// Example: `max_form_parts = 100`
    pub max_form_parts: usize,
    /// Largest non-file form field value (400 past it); uploaded files are bounded by the
    /// route's `max_body`. Example: `max_form_field = "64KiB"`
    pub max_form_field: Size,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body: Size(1024 * 1024),
            max_header_bytes: Size(16 * 1024),
            max_headers: 100,
            header_read_timeout: HumanDuration(Duration::from_secs(10)),
            body_read_timeout: HumanDuration(Duration::from_secs(30)),
            max_connections: 4096,
            max_instances: 1000,
            shutdown_grace: HumanDuration(Duration::from_secs(30)),
            write_timeout: HumanDuration(Duration::from_secs(30)),
            idle_timeout: HumanDuration(Duration::from_secs(60)),
            cache_dir: None,
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            max_form_parts: 100,
            max_form_field: Size(64 * 1024),
        }
    }
}

impl Manifest {
    /// Checks `[server]`: limits within their bounds, host names well formed.
    pub(super) fn validate_server(&self) -> Result<()> {
        const MIN_HEADER_BYTES: u64 = 8 * 1024;
        let s = &self.server;
        if s.max_header_bytes.0 < MIN_HEADER_BYTES {
            return Err(self.invalid(
                "server.max_header_bytes",
                format!("`{}` is below the minimum of 8KiB", s.max_header_bytes),
                "set `max_header_bytes = \"8KiB\"` or more",
            ));
        }
        // Upper bounds keep a typo from exhausting memory or overflowing a deadline.
        for (key, value, max) in [
            ("server.max_headers", s.max_headers as u64, 10_000),
            (
                "server.max_connections",
                s.max_connections as u64,
                1_000_000,
            ),
            ("server.max_instances", u64::from(s.max_instances), 100_000),
        ] {
            if value == 0 || value > max {
                return Err(self.invalid(
                    key,
                    format!("`{value}` is outside 1..={max}"),
                    format!("remove `{key}` to use the default"),
                ));
            }
        }
        for (key, value, max) in [
            ("server.header_read_timeout", s.header_read_timeout, HOUR),
            ("server.body_read_timeout", s.body_read_timeout, HOUR),
            ("server.shutdown_grace", s.shutdown_grace, HOUR),
            ("server.write_timeout", s.write_timeout, HOUR),
            ("server.idle_timeout", s.idle_timeout, HOUR),
        ] {
            if value.0.is_zero() || value.0 > max {
                return Err(self.invalid(
                    key,
                    format!("`{value}` is outside 1ms..1h"),
                    format!("remove `{key}` to use the default"),
                ));
            }
        }
        for (i, h) in self.server.allowed_hosts.iter().enumerate() {
            let bare = h.strip_prefix("*.").unwrap_or(h);
            let ok = !bare.is_empty()
                && bare.chars().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || c == '.'
                        || c == '-'
                        || c == ':'
                        || c == '['
                        || c == ']'
                });
            if !ok {
                return Err(self.invalid(
                    format!("server.allowed_hosts[{i}]"),
                    format!("`{h}` is not a host name"),
                    "write lowercase names such as `\"example.com\"` or `\"*.example.com\"`, without scheme or port",
                ));
            }
        }
        if !(1..=10_000).contains(&self.server.max_form_parts) {
            return Err(self.invalid(
                "server.max_form_parts",
                format!("`{}` is outside 1..=10000", self.server.max_form_parts),
                "remove `max_form_parts` to use the default",
            ));
        }
        Ok(())
    }
}

/// The default cache directory: `$FLAGON_CACHE_DIR`, else `$XDG_CACHE_HOME/flagon`, else
/// `~/.cache/flagon`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("FLAGON_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("flagon"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("flagon"))
}
