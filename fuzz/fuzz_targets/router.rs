//! Any method and path against a route table: routing never panics.
#![no_main]

use std::sync::OnceLock;

use flagon::http::router::Router;
use libfuzzer_sys::fuzz_target;

const MANIFEST: &str = r#"
[app]
name = "fuzz"
[components.c]
source = "c.wasm"
[[routes]]
path = "/"
component = "c"
[[routes]]
path = "/users/{id}"
methods = ["GET", "POST"]
component = "c"
[[routes]]
path = "/files/{*path}"
component = "c"
[[routes]]
path = "/img-{id}.png"
component = "c"
"#;

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let m = flagon::Manifest::parse(std::path::Path::new("flagon.toml"), MANIFEST).unwrap();
        Router::new(&m).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&m, path)) = data.split_first() else {
        return;
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let method = [
        http::Method::GET,
        http::Method::HEAD,
        http::Method::POST,
        http::Method::OPTIONS,
        http::Method::DELETE,
    ][usize::from(m) % 5]
        .clone();
    let _ = router().at(&method, path);
});
