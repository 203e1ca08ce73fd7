//! `[admin]`: the admin listener (health, readiness, metrics), apart from the public one.

use std::net::SocketAddr;

use serde::Deserialize;

use super::{Manifest, Result};

/// `[admin]`: where `/healthz`, `/readyz` and `/metrics` are served. Without the section (and
/// without `flagon serve --admin-listen`) there is no admin listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Example: `listen = "127.0.0.1:9464"` (the default). Loopback unless a scraper elsewhere
    /// needs it; never the public port.
    pub listen: SocketAddr,
}

impl AdminSection {
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            listen: Self::DEFAULT_LISTEN,
        }
    }
}

/// Why `admin` cannot listen beside `public`: they share a port (port 0, "any free port", is
/// never a clash).
pub fn admin_port_clash(admin: SocketAddr, public: SocketAddr) -> bool {
    admin.port() != 0 && admin.port() == public.port()
}

impl Manifest {
    /// Checks `[admin]`: not on the public listener's port.
    pub(super) fn validate_admin(&self) -> Result<()> {
        let Some(admin) = &self.admin else {
            return Ok(());
        };
        if admin_port_clash(admin.listen, self.server.listen) {
            return Err(self.invalid(
                "admin.listen",
                format!(
                    "`{}` is on the port of `[server] listen` (`{}`): health and metrics must never be served on the public listener",
                    admin.listen, self.server.listen
                ),
                format!(
                    "use a port of its own, e.g. `listen = \"{}\"`",
                    AdminSection::DEFAULT_LISTEN
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::manifest::Manifest;

    fn parse(extra: &str) -> crate::manifest::Result<Manifest> {
        Manifest::parse(
            Path::new("app/flagon.toml"),
            &format!("[app]\nname = \"t\"\n{extra}"),
        )
    }

    #[test]
    fn admin_is_off_unless_asked_and_loopback_by_default() {
        assert!(parse("").unwrap().admin.is_none());
        let m = parse("[admin]\n").unwrap();
        assert_eq!(m.admin.unwrap().listen, "127.0.0.1:9464".parse().unwrap());
        let m = parse("[admin]\nlisten = \"0.0.0.0:9100\"\n").unwrap();
        assert_eq!(m.admin.unwrap().listen, "0.0.0.0:9100".parse().unwrap());
    }

    #[test]
    fn admin_mistakes_name_file_key_value_and_fix() {
        let err =
            parse("[server]\nlisten = \"0.0.0.0:8080\"\n[admin]\nlisten = \"127.0.0.1:8080\"\n")
                .unwrap_err()
                .to_string();
        for part in [
            "app/flagon.toml",
            "`admin.listen`",
            "127.0.0.1:8080",
            "[server] listen",
            "help: use a port of its own",
        ] {
            assert!(err.contains(part), "no `{part}` in: {err}");
        }
        // The default public port is 8080 too.
        let err = parse("[admin]\nlisten = \"[::1]:8080\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("admin.listen"), "{err}");
        // Any free port for both (tests) is no clash.
        parse("[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n").unwrap();
        let err = parse("[admin]\nlisten = \"127.0.0.1:9464\"\nport = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `port`"), "{err}");
        let err = parse("[admin]\nlisten = \"localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen"), "{err}");
    }
}
