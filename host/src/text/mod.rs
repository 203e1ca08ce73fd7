//! Text the host writes into its log on behalf of someone else: one escaping function that
//! every log line quoting request data, guest output or other untrusted text goes through.
//!
//! A leaf of the host: every folder may import it, and it imports none.

use std::borrow::Cow;

/// Untrusted text made safe to put in a log line: control characters (CR, LF, ESC, ...), the
/// Unicode line and paragraph separators (U+2028, U+2029) and the bidirectional overrides and
/// isolates (U+202A-U+202E, U+2066-U+2069) are escaped, so no byte of a request or a guest can
/// start a new log line, send terminal escape sequences, or reorder what a reader sees.
pub fn log_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::log_safe;

    #[test]
    fn untrusted_text_cannot_forge_log_lines() {
        assert_eq!(log_safe("plain ü"), "plain ü");
        assert_eq!(
            log_safe("a\nINFO flagon::access: fake\r\u{1b}[31m"),
            "a\\nINFO flagon::access: fake\\r\\u{1b}[31m"
        );
        assert_eq!(log_safe("a\u{2028}b\u{2029}c"), "a\\u{2028}b\\u{2029}c");
        assert_eq!(log_safe("\u{202e}gnp.exe"), "\\u{202e}gnp.exe");
        assert_eq!(log_safe("x\u{2066}y\u{2069}"), "x\\u{2066}y\\u{2069}");
        assert_eq!(log_safe("\u{85}\u{7f}"), "\\u{85}\\u{7f}");
    }
}
