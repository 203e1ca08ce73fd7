//! `flagon new NAME --lang L`: a new app, made from the hello example of that language (a
//! manifest, a handler, templates, a stylesheet and request tests for `flagon test`), with that
//! language's SDK and Flagon's WIT copied in beside it so that it builds offline and on its own:
//! the example's `../../sdk/<lang>` and `../../wit` become `sdk/<lang>` and `wit`.
//!
//! Every file is embedded in the binary from the repository, so a scaffold is always the example
//! the tests build and serve (`scaffold_lists_match_the_examples` keeps the lists whole).

use std::path::Path;

use anyhow::{Context as _, Result, bail};

/// A guest language `flagon new` can scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    #[value(alias = "javascript")]
    Js,
    #[value(alias = "py")]
    Python,
    C,
}

/// One embedded file: its path in the new app, its bytes.
struct File {
    path: &'static str,
    bytes: &'static [u8],
}

/// Files of the repository embedded under a prefix: `files!("examples/hello" => "" : "a", "b")`
/// embeds `examples/hello/a` as `a`.
macro_rules! files {
    ($root:literal => $to:literal : $($path:literal),* $(,)?) => {
        &[$(File {
            path: concat!($to, $path),
            bytes: include_bytes!(concat!("../../../", $root, "/", $path)),
        }),*]
    };
}

const WIT: &[File] = files!("wit" => "wit/": "types.wit", "worlds.wit");

const RUST_EXAMPLE: &[File] = files!("examples/hello" => "":
    ".gitignore",
    "Cargo.lock",
    "Cargo.toml",
    "flagon.toml",
    "src/lib.rs",
    "static/style.css",
    "templates/base.html",
    "templates/errors/error.html",
    "templates/index.html",
    "templates/login.html",
    "tests/requests.toml",
);

const RUST_SDK: &[File] = files!("sdk/rust" => "sdk/rust/":
    "Cargo.toml",
    "src/lean_alloc.rs",
    "src/lib.rs",
    "src/sql.rs",
);

const JS_EXAMPLE: &[File] = files!("examples/hello-js" => "":
    ".gitignore",
    "flagon.toml",
    "package-lock.json",
    "package.json",
    "src/app.js",
    "static/style.css",
    "templates/base.html",
    "templates/errors/error.html",
    "templates/index.html",
    "templates/login.html",
    "tests/requests.toml",
);

const JS_SDK: &[File] = files!("sdk/js" => "sdk/js/":
    ".gitignore",
    "README.md",
    "build.mjs",
    "index.d.ts",
    "index.js",
    "package-lock.json",
    "package.json",
);

const PYTHON_EXAMPLE: &[File] = files!("examples/hello-py" => "":
    ".gitignore",
    "app.py",
    "flagon.toml",
    "static/style.css",
    "templates/base.html",
    "templates/errors/error.html",
    "templates/index.html",
    "templates/login.html",
    "tests/requests.toml",
);

const PYTHON_SDK: &[File] = files!("sdk/python" => "sdk/python/":
    ".gitignore",
    "README.md",
    "build.py",
    "flagon/__init__.py",
    "flagon/_host.py",
    "flagon/app.py",
    "flagon/config.py",
    "flagon/crypto.py",
    "flagon/errors.py",
    "flagon/kv.py",
    "flagon/log.py",
    "flagon/outbound.py",
    "flagon/py.typed",
    "flagon/request.py",
    "flagon/response.py",
    "flagon/session.py",
    "flagon/settings.py",
    "flagon/sql.py",
    "flagon/templates.py",
);

const C_EXAMPLE: &[File] = files!("examples/hello-c" => "":
    ".gitignore",
    "Makefile",
    "flagon.toml",
    "hello.c",
    "static/style.css",
    "templates/base.html",
    "templates/errors/error.html",
    "templates/index.html",
    "templates/login.html",
    "tests/requests.toml",
);

const C_SDK: &[File] = files!("sdk/c" => "sdk/c/":
    "README.md",
    "flagon.c",
    "flagon.h",
    "flagon.mk",
    "tool/.gitignore",
    "tool/Cargo.lock",
    "tool/Cargo.toml",
    "tool/src/main.rs",
);

impl Lang {
    /// The example the scaffold is made from, as a repository path.
    pub fn example(self) -> &'static str {
        match self {
            Lang::Rust => "examples/hello",
            Lang::Js => "examples/hello-js",
            Lang::Python => "examples/hello-py",
            Lang::C => "examples/hello-c",
        }
    }

    fn files(self) -> [&'static [File]; 3] {
        match self {
            Lang::Rust => [RUST_EXAMPLE, RUST_SDK, WIT],
            Lang::Js => [JS_EXAMPLE, JS_SDK, WIT],
            Lang::Python => [PYTHON_EXAMPLE, PYTHON_SDK, WIT],
            Lang::C => [C_EXAMPLE, C_SDK, WIT],
        }
    }

    /// What changes in the SDK's files inside an app.
    fn sdk_rewrites(self) -> &'static [(&'static str, &'static str)] {
        match self {
            // In the repository the SDK is a workspace of its own; in an app it is a member of
            // the app's (two workspace roots, one inside the other, do not build).
            Lang::Rust => &[(
                "# Guest crates build for wasm32-wasip2 and never share a workspace with the host.\n[workspace]\n",
                "",
            )],
            Lang::Js | Lang::Python | Lang::C => &[],
        }
    }

    /// The text the example's name appears as, and what it becomes for an app called `name`.
    fn renames(self, name: &str) -> Vec<(String, String)> {
        let crate_name = name.replace('-', "_");
        match self {
            Lang::Rust => vec![
                ("name = \"hello\"".into(), format!("name = \"{name}\"")),
                (
                    "release/hello.wasm".into(),
                    format!("release/{crate_name}.wasm"),
                ),
            ],
            Lang::Js => vec![
                ("name = \"hello-js\"".into(), format!("name = \"{name}\"")),
                (
                    "\"name\": \"hello-js\"".into(),
                    format!("\"name\": \"{name}\""),
                ),
            ],
            Lang::Python => vec![("name = \"hello-py\"".into(), format!("name = \"{name}\""))],
            Lang::C => vec![("name = \"hello-c\"".into(), format!("name = \"{name}\""))],
        }
    }
}

/// Scaffold a new app in `dir` (created; it must not exist or must be empty).
pub fn new(dir: &Path, lang: Lang) -> Result<()> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("`{}` does not end in an app name", dir.display()))?;
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!(
            "`{name}` is not a valid app name\n  help: use lowercase letters, digits and `-`, starting with a letter (e.g. `my-app`)"
        );
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read `{}`", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "`{}` already exists and is not empty\n  help: choose a new directory",
            dir.display()
        );
    }
    let renames = lang.renames(name);
    let [example, sdk, wit] = lang.files();
    // Only the example's own files are rewritten: the SDK keeps its `../../wit`, which from
    // `sdk/<lang>` in the new app is the app's `wit`, as in the repository.
    let files = example
        .iter()
        .map(|f| (f, true))
        .chain(sdk.iter().chain(wit).map(|f| (f, false)));
    for (file, own) in files {
        let target = dir.join(file.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        let bytes = match std::str::from_utf8(file.bytes) {
            Ok(text) if own => rewrite(text, &renames).into_bytes(),
            Ok(text) => {
                let mut text = text.to_string();
                for (from, to) in lang.sdk_rewrites() {
                    text = text.replace(from, to);
                }
                text.into_bytes()
            }
            Err(_) => file.bytes.to_vec(),
        };
        std::fs::write(&target, bytes)
            .with_context(|| format!("cannot write `{}`", target.display()))?;
    }
    let shown = dir.display();
    eprintln!(
        "created the {lang:?} app `{name}` in {shown} (from {})\n\n  flagon serve {shown} --build --dev    then open http://127.0.0.1:8080/\n  flagon test {shown} --build           its request tests (tests/*.toml)\n",
        lang.example()
    );
    Ok(())
}

/// The example's text for the new app: the SDK and WIT beside it, and its own name.
fn rewrite(text: &str, renames: &[(String, String)]) -> String {
    let mut text = text
        .replace("../../sdk/", "sdk/")
        .replace("../../wit", "wit");
    for (from, to) in renames {
        text = text.replace(from.as_str(), to);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file git tracks in each example, SDK and the WIT is in its scaffold list, so a new
    /// app is the whole example.
    #[test]
    fn scaffold_lists_match_the_examples() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let lists: &[(&str, &str, &[File])] = &[
            ("examples/hello", "", RUST_EXAMPLE),
            ("sdk/rust", "sdk/rust/", RUST_SDK),
            ("examples/hello-js", "", JS_EXAMPLE),
            ("sdk/js", "sdk/js/", JS_SDK),
            ("examples/hello-py", "", PYTHON_EXAMPLE),
            ("sdk/python", "sdk/python/", PYTHON_SDK),
            ("examples/hello-c", "", C_EXAMPLE),
            ("sdk/c", "sdk/c/", C_SDK),
            ("wit", "wit/", WIT),
        ];
        for (root, to, list) in lists {
            let out = std::process::Command::new("git")
                .args(["ls-files", "--", root])
                .current_dir(&repo)
                .output()
                .expect("git");
            assert!(out.status.success());
            let prefix = format!("{root}/");
            let mut tracked: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| l.strip_prefix(&prefix).unwrap().to_string())
                // The Rust SDK's own lock file does not apply inside an app (the app's does).
                .filter(|p| !(*root == "sdk/rust" && p == "Cargo.lock"))
                .collect();
            let mut listed: Vec<String> = list
                .iter()
                .map(|f| f.path.strip_prefix(to).unwrap().to_string())
                .collect();
            tracked.sort();
            listed.sort();
            assert_eq!(tracked, listed, "the scaffold list for `{root}`");
        }
    }

    #[test]
    fn every_sdk_rewrite_applies() {
        for lang in [Lang::Rust, Lang::Js, Lang::Python, Lang::C] {
            let [_, sdk, _] = lang.files();
            for (from, _) in lang.sdk_rewrites() {
                assert!(
                    sdk.iter()
                        .any(|f| std::str::from_utf8(f.bytes).is_ok_and(|t| t.contains(from))),
                    "{lang:?}: {from:?} is in no SDK file"
                );
            }
        }
    }

    #[test]
    fn the_example_paths_become_the_apps_own() {
        let renames = Lang::Rust.renames("my-app");
        let toml = rewrite(
            "[app]\nname = \"hello\"\nsource = \"target/wasm32-wasip2/release/hello.wasm\"\nflagon-sdk = { path = \"../../sdk/rust\" }\npath: \"../../wit\"",
            &renames,
        );
        assert_eq!(
            toml,
            "[app]\nname = \"my-app\"\nsource = \"target/wasm32-wasip2/release/my_app.wasm\"\nflagon-sdk = { path = \"sdk/rust\" }\npath: \"wit\""
        );
    }
}
