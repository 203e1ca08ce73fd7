//! Lean handlers: a core Wasm module (built for `wasm32-unknown-unknown` with the Rust SDK, or
//! any module carrying wit-bindgen's `component-type` section) becomes a component at load.
//!
//! Such a module imports only the `flagon:app` interfaces it calls, so the component made from
//! it has no WASI imports and one core instance, which is what makes a fresh instance per
//! request cheaper (docs/performance.md, "Lean handlers"). A module that imports anything else
//! (WASI preview 1 from `wasm32-wasip1`, `env` functions from C code, wasm-bindgen's JavaScript
//! glue) is refused with what to build instead: no adapter is ever applied here.

use std::borrow::Cow;

use anyhow::{Context as _, Result, bail};
use wasmparser::{Encoding, Parser, Payload};

/// Whether `wasm` is a core module (not a component).
pub fn is_core_module(wasm: &[u8]) -> bool {
    matches!(
        Parser::new(0).parse(wasm, true),
        Ok(wasmparser::Chunk::Parsed {
            payload: Payload::Version {
                encoding: Encoding::Module,
                ..
            },
            ..
        })
    )
}

/// `wasm` as a component: a component as it is, a core module made into one.
pub fn to_component(wasm: &[u8]) -> Result<Cow<'_, [u8]>> {
    if is_core_module(wasm) {
        componentize(wasm).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(wasm))
    }
}

/// Make a component of the core module `module`, which must import nothing but `flagon:app`
/// interfaces and carry the `component-type` section wit-bindgen embeds.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>> {
    let mut has_type = false;
    let mut others = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        match payload.context("not a valid Wasm module")? {
            Payload::CustomSection(c) if c.name().starts_with("component-type") => has_type = true,
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    let import = import.context("not a valid Wasm module")?;
                    if !import.module.starts_with("flagon:app/") && !others.contains(&import.module)
                    {
                        others.push(import.module);
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(first) = others.first() {
        let help = if others
            .iter()
            .any(|m| m.starts_with("wasi_snapshot_preview1"))
        {
            "it was built for WASI preview 1 (`wasm32-wasip1`); build for `wasm32-unknown-unknown` (lean) or `wasm32-wasip2` (full WASI, a component)"
        } else {
            "a lean handler (a core module) may import only `flagon:app` interfaces; build it for `wasm32-wasip2` if it needs more"
        };
        bail!(
            "the core module imports from `{first}`{}, which no Flagon world offers to a core module\n  help: {help}",
            if others.len() > 1 {
                format!(" (and {} more)", others.len() - 1)
            } else {
                String::new()
            }
        );
    }
    if !has_type {
        bail!(
            "the core module has no `component-type` section, so its world is unknown\n  help: build it with the Flagon SDK (wit-bindgen), or make it a component with `wasm-tools component new`"
        );
    }
    wit_component::ComponentEncoder::default()
        .module(module)
        .context("cannot read the module's `component-type` section")?
        .validate(true)
        .encode()
        .context("cannot make a component of the core module")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_modules_and_components() {
        let module = b"\0asm\x01\0\0\0";
        let component = b"\0asm\x0d\0\x01\0";
        assert!(is_core_module(module));
        assert!(!is_core_module(component));
        assert!(!is_core_module(b"not wasm"));
        assert!(matches!(to_component(component).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn a_module_without_a_world_is_refused_with_help() {
        let err = componentize(b"\0asm\x01\0\0\0").unwrap_err().to_string();
        assert!(err.contains("component-type"), "{err}");
    }
}
