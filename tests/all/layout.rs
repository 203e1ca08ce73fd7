//! The host's folders import each other in one direction only (see `docs/architecture.md`,
//! "Host layout"): this reads every source file and checks its `crate::` paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which folders each folder may import: what its arrows in the picture reach. `runtime` and
/// `manifest` import no other folder but the leaf `text`.
/// `text` (log escaping), `plugins` (the embedded plugins' bytes) and `metrics` (the process-wide
/// registry, a file beside `lib.rs`) are leaves every folder may use; so is `signature` (signed
/// components), which uses `text` and `plugins`.
const ALLOWED: &[(&str, &[&str])] = &[
    ("text", &[]),
    ("plugins", &[]),
    ("metrics", &[]),
    ("signature", &["text", "plugins"]),
    ("manifest", &["text", "metrics", "plugins", "signature"]),
    ("runtime", &["text", "metrics", "plugins", "signature"]),
    (
        "http",
        &["manifest", "text", "metrics", "plugins", "signature"],
    ),
    (
        "web",
        &[
            "http",
            "manifest",
            "text",
            "metrics",
            "plugins",
            "signature",
        ],
    ),
    (
        "capabilities",
        &[
            "runtime",
            "web",
            "http",
            "manifest",
            "text",
            "metrics",
            "plugins",
            "signature",
        ],
    ),
    (
        "app",
        &[
            "capabilities",
            "runtime",
            "web",
            "http",
            "manifest",
            "text",
            "metrics",
            "plugins",
            "signature",
        ],
    ),
    (
        "cli",
        &[
            // `flagon test` runs an app's request tests through `flagon::testing`.
            "testing",
            "app",
            "capabilities",
            "runtime",
            "web",
            "http",
            "manifest",
            "text",
            "metrics",
            "plugins",
            "signature",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn folders_import_in_one_direction() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let Some(folder) = rel.components().next().and_then(|c| c.as_os_str().to_str()) else {
            continue;
        };
        if rel.components().count() == 1 {
            continue; // lib.rs and main.rs sit above every folder
        }
        let Some(may) = allowed.get(folder) else {
            panic!("`{folder}/` is not in the layout table of this test and docs/architecture.md");
        };
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.contains("crate::{"),
            "{}: write one `use crate::<folder>::...` per folder so this test can read it",
            rel.display()
        );
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if name != folder && !may.contains(&name.as_str()) {
                wrong.push(format!("{} imports `crate::{name}`", rel.display()));
            }
        }
    }
    assert!(files.len() > 40, "found only {} files", files.len());
    assert!(
        wrong.is_empty(),
        "imports against the layout (docs/architecture.md):\n{}",
        wrong.join("\n")
    );
}
