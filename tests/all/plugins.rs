//! The first-party plugins the host embeds are what their sources build to.

use crate::programs;

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every plugin in `plugins/dist` (embedded in the host: `flagon::plugins::PLUGINS`, the
/// `sqlite` and `postgres` adapters and the `plugin = "..."` components) is byte for byte what
/// its source in `plugins/` built to in this run; and every plugin built is embedded.
#[test]
fn every_embedded_plugin_is_built_from_its_source() {
    let mut stale = Vec::new();
    for plugin in flagon::plugins::PLUGINS {
        let (_, built) = programs::PLUGINS_BUILT
            .iter()
            .find(|(name, _)| *name == plugin.name)
            .unwrap_or_else(|| panic!("plugin `{}` is embedded but not built", plugin.name));
        let built = std::fs::read(built).unwrap();
        if built != plugin.wasm {
            stale.push(format!(
                "plugins/dist/flagon-{}.wasm (sha256 {}) is not what plugins/{} builds to (sha256 {})",
                plugin.name,
                sha256(plugin.wasm),
                plugin.name,
                sha256(&built)
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "{}\nrun `bash plugins/build` and commit plugins/dist",
        stale.join("\n")
    );
    for (name, _) in programs::PLUGINS_BUILT {
        assert!(
            flagon::plugins::find(name).is_some(),
            "plugin `{name}` is built but not embedded: add it to host/src/plugins/mod.rs and plugins/build"
        );
    }
}
