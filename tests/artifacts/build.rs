//! Builds the guest test programs in `tests/programs` for `wasm32-wasip2` with a nested
//! `cargo build` (and the `lean` program also for `wasm32-unknown-unknown`), and writes `programs.rs` with one constant per component path plus a
//! `foreach_program!` macro so that the integration tests can insist every program has a test.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// The lean handler build: a core module importing only `flagon:app`.
const LEAN_TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest_dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let programs = repo.join("tests/programs");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let target_dir = out_dir.join("target");

    ensure_target(TARGET);
    ensure_target(LEAN_TARGET);

    let status = nested_build(&programs, &target_dir, TARGET)
        .status()
        .expect("failed to run the nested `cargo build` of tests/programs");
    assert!(
        status.success(),
        "building the guest test programs failed; run `cargo build --release --target {TARGET} \
         --manifest-path tests/programs/Cargo.toml` to see why"
    );

    // The first-party plugins, from source. Run in `plugins/` so that its `.cargo/config.toml`
    // (the C compiler for SQLite) applies.
    let plugins = repo.join("plugins");
    let plugin_target = out_dir.join("plugins-target");
    // As `plugins/build` does, so that the bytes match the committed build (see there).
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let status = nested_build(&programs, &target_dir, LEAN_TARGET)
        .args(["-p", "lean"])
        .status()
        .expect("failed to run the nested `cargo build` of tests/programs/lean");
    assert!(
        status.success(),
        "building the lean test program failed; run `cargo build --release --target \
         {LEAN_TARGET} -p lean --manifest-path tests/programs/Cargo.toml` to see why"
    );

    let status = nested_build(&plugins, &plugin_target, TARGET)
        .current_dir(&plugins)
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        )
        .status()
        .expect("failed to run the nested `cargo build` of plugins");
    assert!(
        status.success(),
        "building the plugins failed; they need Debian's `clang-19`, `llvm-19` and `wasi-libc` \
         (`bash tests/run` installs them); run `cd plugins && cargo build --release --target \
         {TARGET}` to see why"
    );

    let wasm_dir = target_dir.join(TARGET).join("release");
    let members = workspace_members(&programs.join("Cargo.toml"));
    let mut generated = String::new();
    let mut names = Vec::new();
    for member in &members {
        let crate_name = member.replace('-', "_");
        let wasm = wasm_dir.join(format!("{crate_name}.wasm"));
        assert!(wasm.exists(), "expected {} after the build", wasm.display());
        let _ = writeln!(
            generated,
            "/// The `{member}` test program, a component built for `{TARGET}`.\n\
             pub const {}: &str = {:?};",
            crate_name.to_uppercase(),
            wasm.display().to_string()
        );
        names.push(crate_name.clone());
        rerun_for_dep_info(&wasm_dir.join(format!("{crate_name}.d")));
    }
    let _ = writeln!(
        generated,
        "/// Calls `$mac!(name)` for every test program.\n\
         #[macro_export]\nmacro_rules! foreach_program {{\n    ($mac:ident) => {{\n{}    }};\n}}",
        names
            .iter()
            .map(|n| format!("        $mac!({n});\n"))
            .collect::<String>()
    );
    let lean = target_dir.join(LEAN_TARGET).join("release/lean.wasm");
    assert!(lean.exists(), "expected {} after the build", lean.display());
    let _ = writeln!(
        generated,
        "/// The `lean` test program built for `{LEAN_TARGET}`: a core module.\n\
         pub const LEAN_CORE: &str = {:?};",
        lean.display().to_string()
    );
    let plugin_dir = plugin_target.join(TARGET).join("release");
    for (plugin, constant) in [
        ("sqlite", "PLUGIN_SQLITE"),
        ("postgres", "PLUGIN_POSTGRES"),
        ("auth-jwt", "PLUGIN_AUTH_JWT"),
        ("auth-session", "PLUGIN_AUTH_SESSION"),
        ("auth-apikey", "PLUGIN_AUTH_APIKEY"),
        ("auth-apikey-sql", "PLUGIN_AUTH_APIKEY_SQL"),
        ("cors", "PLUGIN_CORS"),
        ("ratelimit", "PLUGIN_RATELIMIT"),
    ] {
        let file = plugin.replace('-', "_");
        let wasm = plugin_dir.join(format!("flagon_{file}.wasm"));
        assert!(wasm.exists(), "expected {} after the build", wasm.display());
        let _ = writeln!(
            generated,
            "/// `plugins/{plugin}` built from source in this build.\n\
             pub const {constant}: &str = {:?};",
            wasm.display().to_string()
        );
        rerun_for_dep_info(&plugin_dir.join(format!("flagon_{file}.d")));
    }
    // By name, for the test that every embedded plugin is what its source builds to.
    let _ = writeln!(
        generated,
        "/// Every plugin built in this build, by its name in `flagon::plugins`.\n\
         pub const PLUGINS_BUILT: &[(&str, &str)] = &[{}];",
        [
            ("sqlite", "PLUGIN_SQLITE"),
            ("postgres", "PLUGIN_POSTGRES"),
            ("auth-jwt", "PLUGIN_AUTH_JWT"),
            ("auth-session", "PLUGIN_AUTH_SESSION"),
            ("auth-apikey", "PLUGIN_AUTH_APIKEY"),
            ("auth-apikey-sql", "PLUGIN_AUTH_APIKEY_SQL"),
            ("cors", "PLUGIN_CORS"),
            ("ratelimit", "PLUGIN_RATELIMIT"),
        ]
        .iter()
        .map(|(n, c)| format!("({n:?}, {c})"))
        .collect::<Vec<_>>()
        .join(", ")
    );
    fs::write(out_dir.join("programs.rs"), generated).unwrap();
    for f in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", plugins.join(f).display());
    }

    println!(
        "cargo:rerun-if-changed={}",
        programs.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        programs.join("Cargo.lock").display()
    );
    println!("cargo:rerun-if-changed={}", repo.join("wit").display());
    println!(
        "cargo:rerun-if-changed={}",
        repo.join("sdk/rust/Cargo.toml").display()
    );
}

/// `cargo build --release --locked --target <target>` of the workspace at `workspace` into
/// `target_dir`.
fn nested_build(workspace: &Path, target_dir: &Path, target: &str) -> Command {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--locked")
        .arg("--target")
        .arg(target)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // The outer build's flags and settings are for the host; the nested build must not inherit
    // them (RUSTFLAGS for x86_64, a target dir that is locked by the outer cargo, and so on).
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_ENCODED_RUSTFLAGS")
            || key == "RUSTFLAGS"
            || key == "CARGO_TARGET_DIR"
            || key == "CARGO_BUILD_TARGET"
            || key.starts_with("CARGO_PROFILE_")
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key == "CARGO_LLVM_COV"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

/// The `target` standard library must be installed; try rustup once, else say what to run.
fn ensure_target(target: &str) {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let installed = |root: &Option<String>| {
        root.as_ref()
            .is_some_and(|r| Path::new(r).join("lib/rustlib").join(target).exists())
    };
    if installed(&sysroot) {
        return;
    }
    let added = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .is_ok_and(|s| s.success());
    // This is the one place a missing toolchain piece can be explained; panic with the fix
    // rather than letting the nested build fail with "can't find crate for `core`".
    assert!(
        added && installed(&sysroot),
        "the `{target}` target is not installed and `rustup target add {target}` failed; \
         run `rustup target add {target}` and build again"
    );
}

/// The `members` list of the test-programs workspace (a tiny, format-stable parse: one quoted
/// name per entry on the `members = [...]` line).
fn workspace_members(manifest: &Path) -> Vec<String> {
    let text = fs::read_to_string(manifest).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("tests/programs/Cargo.toml lists its `members` on one line");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Re-run when any source file of the program changes, as listed in cargo's dep-info file.
fn rerun_for_dep_info(dep_info: &Path) {
    let Ok(text) = fs::read_to_string(dep_info) else {
        return;
    };
    for line in text.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        for dep in deps.split_whitespace() {
            if !dep.ends_with('\\') {
                println!("cargo:rerun-if-changed={dep}");
            }
        }
    }
}
