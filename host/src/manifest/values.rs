//! Validated value types used across the manifest: sizes, durations, methods, ids, networks.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// An IP network such as `"10.0.0.0/8"`, or one address such as `"127.0.0.1"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IpNetwork(pub ipnet::IpNet);

impl TryFrom<String> for IpNetwork {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        t.parse::<ipnet::IpNet>()
            .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map(|n| IpNetwork(n.trunc()))
            .map_err(|_| {
                format!(
                    "invalid address `{s}`: write an IP address or a network such as \"10.0.0.0/8\""
                )
            })
    }
}

/// A size such as `"64MiB"`, `"512KiB"` or `"1MB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Size(pub u64);

impl TryFrom<String> for Size {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        bytesize::ByteSize::from_str(s.trim())
            .map(|b| Size(b.as_u64()))
            .map_err(|_| {
                format!(
                    "invalid size `{s}`: write a number and a unit, e.g. \"64MiB\" or \"512KiB\""
                )
            })
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bytesize::ByteSize(self.0).display().iec())
    }
}

/// A duration such as `"2s"`, `"500ms"` or `"1m 30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HumanDuration(pub Duration);

impl TryFrom<String> for HumanDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| format!("invalid duration `{s}` ({e}): write e.g. \"2s\" or \"500ms\""))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// An HTTP method token, uppercase. Example: `"POST"`
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Method(pub http::Method);

impl TryFrom<String> for Method {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.bytes().any(|b| !b.is_ascii_uppercase()) {
            return Err(format!(
                "invalid method `{s}`: write an uppercase method such as \"GET\" or \"POST\""
            ));
        }
        http::Method::from_bytes(s.as_bytes())
            .map(Method)
            .map_err(|_| format!("invalid method `{s}`"))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// A component or variable id: lowercase letters, digits, `-` and `_`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Id(pub(super) String);

impl TryFrom<String> for Id {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok && s.len() <= 64 {
            Ok(Id(s))
        } else {
            Err(format!(
                "invalid id `{s}`: use lowercase letters, digits, `-` and `_`, starting with a letter (at most 64)"
            ))
        }
    }
}
