//! Origins as the manifest writes them: the site origins of `[security] redirect_origins`
//! ([`Origin`]) and the outbound allow-list entries of `grants.outbound` ([`AllowedOrigin`]).
//!
//! They live with the manifest because the manifest validates them when it is parsed; the web
//! layer and the outbound capability use the parsed values.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

/// An `outbound` grant in the manifest is malformed; `reason` says how to write it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid outbound origin `{origin}`: {reason}")]
pub struct InvalidOrigin {
    pub origin: String,
    pub reason: String,
}

/// A web origin: scheme, host and port (the port is explicit even when it is the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parse `scheme://host[:port]` (no userinfo, path, query or fragment; `http` or `https`).
    pub fn parse(s: &str) -> Option<Self> {
        let (scheme, rest) = s.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = split_host_port(rest)?;
        Some(Origin {
            scheme,
            host: host.into_owned(),
            port: port.unwrap_or(default_port),
        })
    }
}

/// Split `host[:port]` (with `[v6]` literals), lowercasing the host (borrowed when it already
/// is). `None` when malformed or when anything but a host and port is present (userinfo, path,
/// backslash, whitespace).
pub fn split_host_port(s: &str) -> Option<(Cow<'_, str>, Option<u16>)> {
    if s.is_empty()
        || s.bytes().any(|b| {
            matches!(b, b'/' | b'\\' | b'@' | b'?' | b'#' | b'%') || b <= b' ' || b >= 0x7f
        })
    {
        return None;
    }
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        addr.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        // `[addr]`, brackets included.
        (&s[..addr.len() + 2], port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || (!host.starts_with('[') && host.contains(':')) {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0)?),
        None => None,
    };
    let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    Some((host, port))
}

/// The scheme of an allowed origin or request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn from_url_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            _ => None,
        }
    }

    /// The scheme as written in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    /// The port used when a URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// The host part of an [`AllowedOrigin`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Exactly this (lowercase, ASCII) host name.
    Exact(String),
    /// Any proper subdomain of this name, written `*.example.org`. The name itself does not
    /// match: granting subdomains of a service should not silently include its apex.
    Subdomains(String),
    /// Exactly this IP address.
    Ip(IpAddr),
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Subdomains(base) => write!(f, "*.{base}"),
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// One origin a guest may call: scheme, host pattern and port.
///
/// Written `scheme://host[:port]` in the manifest; see [`AllowedOrigin::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AllowedOrigin {
    scheme: Scheme,
    host: HostPattern,
    port: u16,
    allow_private: bool,
}

impl AllowedOrigin {
    /// Parses `scheme://host[:port]`, for example `https://api.example.com`,
    /// `https://*.example.org` or `http://127.0.0.1:8081`.
    ///
    /// Only the canonical spelling is accepted (lowercase, ASCII/punycode, dotted-quad IPv4,
    /// compressed `[v6]`), so that what the operator reads in the manifest is exactly what is
    /// compared; the error names the canonical form. A single trailing `/` is tolerated; any
    /// other path, a query, a fragment or user info is refused. The port defaults to the
    /// scheme's.
    ///
    /// Names granted this way may only reach public addresses. An IP literal is an explicit
    /// choice of address, so it may be private (`http://127.0.0.1:8081` reaches exactly
    /// 127.0.0.1).
    pub fn parse(s: &str) -> Result<Self, InvalidOrigin> {
        Self::parse_inner(s, false)
    }

    /// Like [`AllowedOrigin::parse`], but the host may resolve to private, loopback or other
    /// non-public addresses. For operators granting an internal service by name
    /// (`http://billing.internal:8080`); never derive this from guest input.
    pub fn parse_with_private(s: &str) -> Result<Self, InvalidOrigin> {
        Self::parse_inner(s, true)
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host pattern.
    pub fn host(&self) -> &HostPattern {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the host may resolve to non-public addresses.
    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    fn parse_inner(s: &str, allow_private: bool) -> Result<Self, InvalidOrigin> {
        let invalid = |reason: String| InvalidOrigin {
            origin: s.to_owned(),
            reason,
        };
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(invalid(
                "write it as `scheme://host[:port]`, for example `https://api.example.com`".into(),
            ));
        };
        let scheme = match Scheme::from_url_scheme(scheme) {
            Some(scheme) => scheme,
            None if Scheme::from_url_scheme(&scheme.to_ascii_lowercase()).is_some() => {
                return Err(invalid(format!(
                    "write the scheme in lowercase, `{}`",
                    scheme.to_ascii_lowercase()
                )));
            }
            None => {
                return Err(invalid(format!(
                    "the scheme must be `http` or `https`, not `{scheme}`"
                )));
            }
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('@') {
            return Err(invalid(
                "remove the user info (`user@`); an origin carries no credentials".into(),
            ));
        }
        if authority.contains(['/', '?', '#']) {
            return Err(invalid(
                "remove the path, query and fragment; grant an origin, `scheme://host[:port]`"
                    .into(),
            ));
        }
        let (host, port) = split_authority(authority).ok_or_else(|| {
            invalid("write the host and port as `host:port`, or `[v6 address]:port`".into())
        })?;
        let port = match port {
            None => scheme.default_port(),
            Some(p) => parse_port(p).ok_or_else(|| {
                invalid(format!(
                    "the port `{p}` is not a number from 1 to 65535; omit it for the default"
                ))
            })?,
        };
        if host.is_empty() {
            return Err(invalid("the host is missing".into()));
        }

        let (host, ip_literal) = if let Some(base) = host.strip_prefix("*.") {
            if base.is_empty() {
                return Err(invalid(
                    "write a name after `*.`, such as `*.example.org`".into(),
                ));
            }
            match canonical_host(scheme, base).map_err(invalid)? {
                // `*.com` would grant most of the internet; a typo is far more likely.
                HostPattern::Exact(name) if !name.contains('.') => {
                    return Err(invalid(format!(
                        "a wildcard needs a name of two or more labels, such as \
                         `*.example.{name}`; list single-label hosts one by one"
                    )));
                }
                HostPattern::Exact(name) => (HostPattern::Subdomains(name), false),
                _ => {
                    return Err(invalid(
                        "a wildcard covers subdomains of a name, not of an IP address".into(),
                    ));
                }
            }
        } else if host.contains('*') {
            return Err(invalid(
                "a wildcard is written `*.example.org` and matches its subdomains only; \
                 a bare `*` or a `*` inside a name is not allowed"
                    .into(),
            ));
        } else {
            let pattern = canonical_host(scheme, host).map_err(invalid)?;
            let ip_literal = matches!(pattern, HostPattern::Ip(_));
            (pattern, ip_literal)
        };
        Ok(Self {
            scheme,
            host,
            port,
            allow_private: allow_private || ip_literal,
        })
    }
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// Splits `host[:port]` or `[v6][:port]`; `None` when the brackets or colons are misplaced.
fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, after) = authority.split_at(end + 1);
        match after {
            "" => Some((host, None)),
            _ => after.strip_prefix(':').map(|port| (host, Some(port))),
        }
    } else {
        match authority.split_once(':') {
            None => Some((authority, None)),
            Some((_, port)) if port.contains(':') => None,
            Some((host, port)) => Some((host, Some(port))),
        }
    }
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

/// Normalises `host` the way request URLs are normalised and insists that it was already
/// written that way; the error tells the operator the canonical spelling.
fn canonical_host(scheme: Scheme, host: &str) -> Result<HostPattern, String> {
    let url = Url::parse(&format!("{}://{host}/", scheme.as_str()))
        .map_err(|e| format!("the host `{host}` is not valid: {e}"))?;
    match url.host() {
        Some(Host::Domain(name)) => {
            if name != host {
                return Err(format!(
                    "write the host in lowercase ASCII (punycode for international names), as `{name}`"
                ));
            }
            if name.ends_with('.') {
                return Err(format!(
                    "remove the trailing dot: `{}`",
                    name.trim_end_matches('.')
                ));
            }
            if name.split('.').any(str::is_empty) {
                return Err(format!("the host `{host}` has an empty label"));
            }
            Ok(HostPattern::Exact(name.to_owned()))
        }
        Some(Host::Ipv4(ip)) => {
            if ip.to_string() != host {
                return Err(format!(
                    "write the IPv4 address in dotted-quad form, as `{ip}`"
                ));
            }
            Ok(HostPattern::Ip(IpAddr::V4(ip)))
        }
        Some(Host::Ipv6(ip)) => {
            let canonical = url.host_str().unwrap_or_default();
            if canonical != host {
                return Err(format!(
                    "write the IPv6 address in brackets and compressed lowercase form, as `{canonical}`"
                ));
            }
            Ok(HostPattern::Ip(IpAddr::V6(ip)))
        }
        None => Err("the host is missing".into()),
    }
}
