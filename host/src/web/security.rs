//! Request-level defences the host applies around every guest: the `Host` allow-list, forwarded
//! headers from trusted proxies only, same-origin checks for CSRF, redirect targets, and the
//! security headers added to responses.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::manifest::{IpNetwork, Manifest};

use crate::manifest::origin::{Origin, split_host_port};
/// Where a request really came from, after believing forwarded headers from trusted proxies.
#[derive(Debug, Clone)]
pub struct Peer<'a> {
    /// The client: the connection's address, or the first untrusted address in
    /// `X-Forwarded-For` when the connection is from a trusted proxy.
    pub client: SocketAddr,
    /// `https` when a trusted proxy says so, else `http`.
    pub scheme: &'static str,
    /// The host the client asked for (lowercase, port stripped), from `Host`, the URI authority
    /// (HTTP/2), or a trusted proxy's `X-Forwarded-Host`.
    pub host: Option<Cow<'a, str>>,
    /// The port of the requested host, if one was given.
    pub port: Option<u16>,
}

impl Peer<'_> {
    /// This request's own origin, for same-origin checks.
    pub fn origin(&self) -> Option<Origin> {
        let host = self.host.as_deref()?.to_string();
        let default = if self.scheme == "https" { 443 } else { 80 };
        Some(Origin {
            scheme: self.scheme.to_string(),
            host,
            port: self.port.unwrap_or(default),
        })
    }
}

/// The `Host` allow-list and trusted proxies, from `[server]`.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    allowed_hosts: Vec<String>,
    trusted_proxies: Vec<IpNetwork>,
}

impl HostPolicy {
    pub fn new(manifest: &Manifest) -> Self {
        Self {
            allowed_hosts: manifest.server.allowed_hosts.clone(),
            trusted_proxies: manifest.server.trusted_proxies.clone(),
        }
    }

    /// True when `ip` is one of `[server] trusted_proxies`.
    pub fn trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|n| n.0.contains(&ip))
    }

    /// Work out the client, scheme and host of a request. `Err(())` when the host is not
    /// allowed (or malformed): the caller answers 400.
    #[allow(clippy::result_unit_err)]
    pub fn peer<'a>(
        &self,
        remote: SocketAddr,
        uri: &'a http::Uri,
        headers: &'a HeaderMap,
    ) -> Result<Peer<'a>, ()> {
        let from_proxy = !self.trusted_proxies.is_empty() && self.trusted(remote.ip());
        let mut client = remote;
        let mut scheme = "http";
        // An absolute-form request target (`GET http://host/ HTTP/1.1`) or HTTP/2's
        // `:authority` names the host; `Host` is then ignored (RFC 9112, section 3.2.2).
        let mut host_header = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()));
        if from_proxy {
            // X-Forwarded-For lists hops left to right; walking from the right, the first
            // address that is not one of our proxies is the client, and anything left of it
            // could be forged by the client. An entry that is not an address (`unknown`,
            // garbage) ends the walk: what lies left of it cannot be trusted either, so the
            // client is the last proxy we know of.
            let values: Vec<&str> = headers
                .get_all("x-forwarded-for")
                .iter()
                // A value that is not text is an entry that does not parse.
                .map(|v| v.to_str().unwrap_or("?"))
                .collect();
            let mut hops = values
                .iter()
                .rev()
                .flat_map(|v| v.rsplit(','))
                .map(|entry| forwarded_ip(entry.trim()));
            let mut nearest = remote.ip();
            loop {
                match hops.next() {
                    Some(Some(ip)) if self.trusted(ip) => nearest = ip,
                    Some(Some(ip)) => {
                        nearest = ip;
                        break;
                    }
                    // Not an address: stop at the proxy that sent it.
                    Some(None) | None => break,
                }
            }
            client = SocketAddr::new(nearest, 0);
            if last_value(headers, "x-forwarded-proto")
                .is_some_and(|p| p.eq_ignore_ascii_case("https"))
            {
                scheme = "https";
            }
            if let Some(h) = last_value(headers, "x-forwarded-host") {
                host_header = Some(h);
            }
        }
        let (host, port) = match host_header {
            Some(h) => {
                let (h, p) = split_host_port(h).ok_or(())?;
                (Some(h), p)
            }
            None => (None, None),
        };
        if !self.allowed_hosts.is_empty() {
            let Some(h) = &host else { return Err(()) };
            let h = h.trim_end_matches('.');
            let ok = self
                .allowed_hosts
                .iter()
                .any(|a| match a.strip_prefix("*.") {
                    Some(domain) => h
                        .strip_suffix(domain)
                        .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                    None => a == h,
                });
            if !ok {
                return Err(());
            }
        }
        Ok(Peer {
            client,
            scheme,
            host,
            port,
        })
    }
}

/// The address in one `X-Forwarded-For` entry: an IP address, or one with a port
/// (`203.0.113.7:4711`, `[2001:db8::1]:4711`) as some proxies write it.
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The last comma-separated element of the last header named `name` (the hop nearest us).
fn last_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(name)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The browser's verdict on where an unsafe request came from.
#[derive(Debug, PartialEq, Eq)]
pub enum SameOrigin {
    Yes,
    /// The browser says the request is cross-site (or from an opaque `null` origin).
    No(&'static str),
    /// No `Sec-Fetch-Site` and no `Origin`: not a modern browser; the CSRF token decides.
    Unknown,
}

/// Decide whether an unsafe request comes from this site, from `Sec-Fetch-Site` (sent by
/// every current browser) and else `Origin`.
pub fn same_origin(headers: &HeaderMap, peer: &Peer<'_>) -> SameOrigin {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return match site {
            // `none`: the user started it (typed the URL, a bookmark).
            "same-origin" | "none" => SameOrigin::Yes,
            "same-site" => SameOrigin::No("Sec-Fetch-Site: same-site"),
            _ => SameOrigin::No("Sec-Fetch-Site: cross-site"),
        };
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => SameOrigin::Unknown,
        Some("null") => SameOrigin::No("Origin: null"),
        Some(o) => match (Origin::parse(o), peer.origin()) {
            (Some(theirs), Some(ours)) if theirs == ours => SameOrigin::Yes,
            _ => SameOrigin::No("Origin does not match the request's host"),
        },
    }
}

/// Whether a guest may redirect to `location`: a place on this site (`/x`, `x`, `?q`, `#f`,
/// not `//x` or `/\x`), or an absolute URL on one of `allowed` origins.
///
/// The decision is made on what a browser would resolve, not on the raw string: the value is
/// resolved with the WHATWG URL parser (the `url` crate, as browsers do) against two unrelated
/// bases. It stays on this site only if it keeps each base's origin; otherwise it must resolve
/// to the same absolute URL from both (so it names its own scheme and host), with `http` or
/// `https`, no user info, and an allowed origin. Anything a browser might read differently
/// from us is refused first: leading or trailing whitespace (browsers trim it), control
/// characters anywhere (browsers drop tabs and newlines from URLs), and `\` (read as `/`).
pub fn redirect_allowed(location: &str, allowed: &[Origin]) -> bool {
    use std::sync::LazyLock;
    use url::Url;
    static BASES: LazyLock<[Url; 2]> = LazyLock::new(|| {
        [
            "https://a.flagon.invalid/p/q",
            "http://b.flagon.invalid:1/p/q",
        ]
        .map(|b| Url::parse(b).expect("the redirect check's bases are valid URLs"))
    });
    let trimmed = location.trim_matches(|c: char| c.is_ascii_whitespace() || c.is_control());
    if location.is_empty()
        || trimmed.len() != location.len()
        || location.chars().any(|c| c.is_control() || c == '\\')
    {
        return false;
    }
    let [a, b] = &*BASES;
    let (Ok(from_a), Ok(from_b)) = (a.join(location), b.join(location)) else {
        return false;
    };
    if from_a.origin() == a.origin() && from_b.origin() == b.origin() {
        return true;
    }
    if from_a != from_b
        || !matches!(from_a.scheme(), "http" | "https")
        || !from_a.username().is_empty()
        || from_a.password().is_some()
    {
        return false;
    }
    let (Some(host), Some(port)) = (from_a.host_str(), from_a.port_or_known_default()) else {
        return false;
    };
    allowed
        .iter()
        .any(|o| o.scheme == from_a.scheme() && o.host == host && o.port == port)
}

/// Whether a guest's `Refresh` header (`5; url=/next`) may be sent: a refresh of the same
/// page, or one whose URL passes [`redirect_allowed`]. Parsed as the HTML standard's
/// declarative refresh steps parse it; a value they would not parse is refused.
pub fn refresh_allowed(value: &str, allowed: &[Origin]) -> bool {
    let ws = |c: char| c.is_ascii_whitespace();
    let rest = value.trim_start_matches(ws);
    let time_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    if time_end == 0 {
        return false;
    }
    let rest = &rest[time_end..];
    if rest.is_empty() {
        return true;
    }
    if !rest.starts_with(|c: char| ws(c) || c == ';' || c == ',') {
        return false;
    }
    let rest = rest.trim_start_matches(ws);
    let rest = rest.strip_prefix([';', ',']).unwrap_or(rest);
    let rest = rest.trim_start_matches(ws);
    if rest.is_empty() {
        return true;
    }
    let mut url = rest;
    // `get`, not indexing: the third byte may be inside a multi-byte character.
    if let Some(after) = url
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("url"))
        .and_then(|_| url.get(3..))
    {
        let after = after.trim_start_matches(ws);
        if let Some(after) = after.strip_prefix('=') {
            url = after.trim_start_matches(ws);
        }
    }
    if let Some(quote) = url.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let inner = &url[1..];
        url = inner.split(quote).next().unwrap_or(inner);
    }
    redirect_allowed(url, allowed)
}

/// The security headers added to every response that does not set its own.
#[derive(Debug, Clone, Default)]
pub struct SecurityHeaders {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl SecurityHeaders {
    pub fn new(manifest: &Manifest) -> Self {
        let sec = &manifest.security;
        let mut headers = vec![(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        )];
        for (name, value) in [
            (
                header::CONTENT_SECURITY_POLICY,
                &sec.content_security_policy,
            ),
            (header::X_FRAME_OPTIONS, &sec.frame_options),
            (header::REFERRER_POLICY, &sec.referrer_policy),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                &sec.cross_origin_opener_policy,
            ),
        ] {
            // The manifest validated these values.
            if let Ok(v) = HeaderValue::from_str(value)
                && !value.is_empty()
            {
                headers.push((name, v));
            }
        }
        if let Some(max_age) = sec.hsts {
            let mut v = format!("max-age={}", max_age.0.as_secs());
            if sec.hsts_include_subdomains {
                v.push_str("; includeSubDomains");
            }
            if let Ok(v) = HeaderValue::from_str(&v) {
                headers.push((header::STRICT_TRANSPORT_SECURITY, v));
            }
        }
        Self { headers }
    }

    /// How many headers [`SecurityHeaders::apply`] may add.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether [`SecurityHeaders::apply`] adds nothing.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Add each header the response does not already have.
    pub fn apply(&self, headers: &mut HeaderMap) {
        // One extra slot for `x-request-id`, added right after.
        headers.reserve(self.headers.len() + 1);
        for (name, value) in &self.headers {
            // One lookup per header; the value is cloned only when it is inserted.
            if let header::Entry::Vacant(slot) = headers.entry(name) {
                slot.insert(value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// Whatever a guest writes, a redirect that is allowed lands, as a browser resolves
        /// it from a real page of this site, on this site or on an allowed origin.
        #[test]
        fn an_allowed_redirect_is_never_off_site(
            location in "([a-z:/\\\\.@?#% \t]|https?://|//|evil\\.example|accounts\\.example\\.com|%2[fF]|%09){0,12}"
        ) {
            let allowed = [Origin::parse("https://accounts.example.com").unwrap()];
            if redirect_allowed(&location, &allowed) {
                // A browser trims C0 controls and spaces and drops tabs and newlines first.
                let browser_view: String = location
                    .trim_matches(|c: char| c <= ' ')
                    .chars()
                    .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
                    .collect();
                for page in ["https://www.site.example/a/b?c", "http://10.0.0.1:8080/"] {
                    let base = url::Url::parse(page).unwrap();
                    let to = base.join(&browser_view).unwrap();
                    let on_site = to.origin() == base.origin();
                    let to_allowed = to.scheme() == "https"
                        && to.host_str() == Some("accounts.example.com")
                        && to.port_or_known_default() == Some(443)
                        && to.username().is_empty();
                    prop_assert!(on_site || to_allowed, "{location:?} -> {to}");
                }
            }
        }
    }

    use super::*;

    #[test]
    fn redirects() {
        let allowed = [Origin::parse("https://accounts.example.com").unwrap()];
        for ok in [
            "/",
            "/a/b?c=d",
            "?page=2",
            "#top",
            "next",
            "../up",
            "https://accounts.example.com/login",
            "https://accounts.example.com:443/x",
            "HTTPS://ACCOUNTS.EXAMPLE.COM",
        ] {
            assert!(redirect_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https:evil.example",
            "https://evil.example",
            "http://accounts.example.com",
            "https://accounts.example.com.evil.example",
            "https://accounts.example.com@evil.example",
            "https://evil.example#@accounts.example.com",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,x",
            "/\t/evil.example",
            "\n//evil.example",
            "",
            // What a browser trims or drops before resolving.
            " //evil.example",
            "//evil.example ",
            "\t//evil.example",
            "\u{0}//evil.example",
            "/\r\n/evil.example",
            "\u{b}//evil.example",
            // Scheme-relative, user info, other schemes, odd spellings of a host.
            "//accounts.example.com/login",
            "///evil.example",
            "/\\evil.example",
            "https://user@accounts.example.com/",
            "https://:pw@accounts.example.com/",
            "https://accounts%2eexample%2ecom.evil.example/",
            "https://evil.example%2f@accounts.example.com",
            "https:/evil.example",
            "http:evil.example",
            "ftp://accounts.example.com/",
            "vbscript:x",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "https://[::1]/",
            "https://0x7f.1/",
        ] {
            assert!(!redirect_allowed(bad, &allowed), "{bad:?}");
        }
        // Percent-encoded slashes and tabs stay in the path: a browser stays on this site.
        for on_site in [
            "%2f%2fevil.example",
            "/%09/evil.example",
            "/%2F%2Fevil",
            "/a b",
        ] {
            assert!(redirect_allowed(on_site, &allowed), "{on_site:?}");
        }
    }

    #[test]
    fn refresh_headers_are_checked_like_redirects() {
        let allowed = [Origin::parse("https://accounts.example.com").unwrap()];
        for ok in [
            "5",
            "0;",
            "3; url=/next",
            "3;URL='/next'",
            "3, url=\"/next?a=b\"",
            "0.5 ; Url = https://accounts.example.com/x",
            "0; next",
            // Found by the fuzzer (it panicked): a multi-byte character where `url` would end.
            "0; u\u{f2c9a}t",
        ] {
            assert!(refresh_allowed(ok, &allowed), "{ok:?}");
        }
        for bad in [
            "0; url=//evil.example",
            "0;url= //evil.example",
            "0; URL='https://evil.example/'",
            "0,https://evil.example",
            "0; url=\"javascript:alert(1)\"",
            "0 //evil.example",
            "soon",
            "",
            "0x; url=/",
        ] {
            assert!(!refresh_allowed(bad, &allowed), "{bad:?}");
        }
    }

    #[test]
    fn origins_and_hosts() {
        assert_eq!(
            Origin::parse("http://Example.com:8080"),
            Some(Origin {
                scheme: "http".into(),
                host: "example.com".into(),
                port: 8080
            })
        );
        assert!(Origin::parse("https://user@example.com").is_none());
        assert!(Origin::parse("ftp://example.com").is_none());
        assert!(Origin::parse("https://example.com/path").is_none());
        assert_eq!(
            split_host_port("[::1]:80"),
            Some(("[::1]".into(), Some(80)))
        );
        assert!(split_host_port("a b").is_none());
        assert!(split_host_port("host:0").is_none());
    }

    fn policy(hosts: &[&str], proxies: &[&str]) -> HostPolicy {
        HostPolicy {
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            trusted_proxies: proxies
                .iter()
                .map(|s| IpNetwork::try_from(s.to_string()).unwrap())
                .collect(),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn allowed_hosts_and_wildcards() {
        let p = policy(&["example.com", "*.example.org"], &[]);
        let remote: SocketAddr = "10.1.1.1:5000".parse().unwrap();
        let uri = http::Uri::from_static("/");
        let check = |host: &str| p.peer(remote, &uri, &headers(&[("host", host)])).is_ok();
        assert!(check("example.com"));
        assert!(check("Example.COM:8080"));
        assert!(check("a.example.org"));
        assert!(!check("example.org"));
        assert!(!check("evilexample.org"));
        assert!(!check("evil.com"));
        assert!(!check("example.com.evil.com"));
        assert!(p.peer(remote, &uri, &HeaderMap::new()).is_err());
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let p = policy(&[], &["127.0.0.1", "10.0.0.0/8"]);
        let uri = http::Uri::from_static("/");
        let h = headers(&[
            ("host", "internal:8080"),
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "example.com"),
        ]);
        let peer = p.peer("127.0.0.1:4000".parse().unwrap(), &uri, &h).unwrap();
        assert_eq!(peer.client.ip().to_string(), "203.0.113.9");
        assert_eq!(peer.scheme, "https");
        assert_eq!(peer.host.as_deref(), Some("example.com"));
        let direct = p.peer("192.0.2.1:4000".parse().unwrap(), &uri, &h).unwrap();
        assert_eq!(direct.client.ip().to_string(), "192.0.2.1");
        assert_eq!(direct.scheme, "http");
        assert_eq!(direct.host.as_deref(), Some("internal"));
    }

    #[test]
    fn forwarded_for_entries_that_are_not_addresses_end_the_chain() {
        let p = policy(&[], &["127.0.0.1", "10.0.0.0/8"]);
        let uri = http::Uri::from_static("/");
        let client = |xff: &[&str]| {
            let pairs: Vec<(&str, &str)> = xff.iter().map(|v| ("x-forwarded-for", *v)).collect();
            let h = headers(&pairs);
            let peer = p.peer("127.0.0.1:4000".parse().unwrap(), &uri, &h).unwrap();
            peer.client.ip().to_string()
        };
        // A forged left-hand entry never becomes the client when an entry to its right does
        // not parse: the walk stops at the proxy that wrote the unparseable entry.
        assert_eq!(client(&["6.6.6.6, 203.0.113.9:4711"]), "203.0.113.9");
        assert_eq!(client(&["6.6.6.6, garbage, 10.0.0.2"]), "10.0.0.2");
        assert_eq!(client(&["6.6.6.6, unknown"]), "127.0.0.1");
        assert_eq!(client(&["6.6.6.6", "garbage"]), "127.0.0.1");
        assert_eq!(client(&["6.6.6.6, [2001:db8::1]:80"]), "2001:db8::1");
        // Several headers are one list, in order.
        assert_eq!(
            client(&["6.6.6.6", "203.0.113.9", "10.0.0.2"]),
            "203.0.113.9"
        );
        // Only proxies: the nearest to the client.
        assert_eq!(client(&["10.0.0.3, 10.0.0.2"]), "10.0.0.3");
    }

    #[test]
    fn the_request_target_names_the_host_before_host() {
        let p = policy(&["example.com"], &[]);
        let h = headers(&[("host", "example.com")]);
        let absolute = http::Uri::from_static("http://evil.example/x");
        assert!(
            p.peer("192.0.2.1:1".parse().unwrap(), &absolute, &h)
                .is_err()
        );
        let absolute = http::Uri::from_static("http://example.com/x");
        let h = headers(&[("host", "evil.example")]);
        let peer = p
            .peer("192.0.2.1:1".parse().unwrap(), &absolute, &h)
            .unwrap();
        assert_eq!(peer.host.as_deref(), Some("example.com"));
    }

    #[test]
    fn same_origin_checks() {
        let peer = Peer {
            client: "127.0.0.1:1".parse().unwrap(),
            scheme: "http",
            host: Some("localhost".into()),
            port: Some(8080),
        };
        let v = |pairs: &[(&str, &str)]| same_origin(&headers(pairs), &peer);
        assert_eq!(v(&[("sec-fetch-site", "same-origin")]), SameOrigin::Yes);
        assert!(matches!(
            v(&[("sec-fetch-site", "cross-site")]),
            SameOrigin::No(_)
        ));
        assert!(matches!(
            v(&[("sec-fetch-site", "same-site")]),
            SameOrigin::No(_)
        ));
        assert_eq!(v(&[("origin", "http://localhost:8080")]), SameOrigin::Yes);
        assert!(matches!(
            v(&[("origin", "http://localhost:8081")]),
            SameOrigin::No(_)
        ));
        assert!(matches!(
            v(&[("origin", "https://localhost:8080")]),
            SameOrigin::No(_)
        ));
        assert!(matches!(v(&[("origin", "null")]), SameOrigin::No(_)));
        assert_eq!(v(&[]), SameOrigin::Unknown);
    }
}
