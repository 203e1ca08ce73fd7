//! Any `Location` a guest writes: an allowed one lands, as a browser resolves it from a page of
//! this site, on this site or on an allowed origin.
#![no_main]

use flagon::manifest::origin::Origin;
use flagon::web::security::{redirect_allowed, refresh_allowed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|location: &str| {
    let allowed = [Origin::parse("https://accounts.example.com").unwrap()];
    let _ = refresh_allowed(location, &allowed);
    if !redirect_allowed(location, &allowed) {
        return;
    }
    // What a browser does first: trim C0 controls and spaces, drop tabs and newlines.
    let seen: String = location
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    for page in ["https://www.site.example/a/b?c", "http://10.0.0.1:8080/"] {
        let base = url::Url::parse(page).unwrap();
        let to = base.join(&seen).unwrap();
        let on_site = to.origin() == base.origin();
        let allowed = to.scheme() == "https"
            && to.host_str() == Some("accounts.example.com")
            && to.port_or_known_default() == Some(443)
            && to.username().is_empty();
        assert!(on_site || allowed, "{location:?} -> {to}");
    }
});
