//! Any parameters to `url_for`: a built URL is a path on this site with no dot segments and no
//! `//` that would make it another site.
#![no_main]

use std::sync::OnceLock;

use flagon::web::templates::UrlMap;
use libfuzzer_sys::fuzz_target;

const MANIFEST: &str = r#"
[app]
name = "fuzz"
[components.c]
source = "c.wasm"
[[routes]]
path = "/users/{id}"
component = "c"
name = "user"
[[routes]]
path = "/files/{*path}"
component = "c"
name = "files"
"#;

fn urls() -> &'static UrlMap {
    static URLS: OnceLock<UrlMap> = OnceLock::new();
    URLS.get_or_init(|| {
        let m = flagon::Manifest::parse(std::path::Path::new("flagon.toml"), MANIFEST).unwrap();
        UrlMap::new(&m)
    })
}

fuzz_target!(|input: (bool, &str, &str)| {
    let (catch_all, value, extra) = input;
    let (name, key) = if catch_all {
        ("files", "path")
    } else {
        ("user", "id")
    };
    let params = [
        (key.to_string(), value.to_string()),
        ("q".to_string(), extra.to_string()),
    ];
    if let Ok(url) = urls().url_for(name, &params) {
        let path = url.split('?').next().unwrap_or("");
        assert!(path.starts_with('/') && !path.starts_with("//"), "{url}");
        assert!(
            path.split('/').all(|seg| seg != "." && seg != ".."),
            "{url}"
        );
    }
});
