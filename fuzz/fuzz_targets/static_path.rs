//! Any request path below a static mount: an accepted one is made of plain segments only, so
//! it never leaves the mount.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|rest: &str| {
    if let Some(path) = flagon::web::static_files::decode_request_path(rest) {
        assert!(path.components().count() > 0);
        assert!(
            path.components().all(|c| matches!(c, Component::Normal(_))),
            "{path:?} from {rest:?}"
        );
        assert!(
            Path::new("/srv/static")
                .join(&path)
                .starts_with("/srv/static")
        );
    }
});
