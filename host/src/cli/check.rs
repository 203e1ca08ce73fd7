//! `flagon check`: the manifest, every variable (secrets hidden), and each component's imports
//! against what it was granted, with grants it does not use.

use std::path::Path;

use anyhow::{Result, bail};

use crate::app::LoadOptions;
use crate::app::component::compile_and_check;
use crate::capabilities::{Entry, REGISTRY};
use crate::http::router::Router;
use crate::manifest::{Manifest, World};
use crate::runtime::{EngineSettings, FlagonEngine};
use crate::signature::Verdict;

pub(super) fn check(path: &Path, options: &LoadOptions) -> Result<()> {
    let manifest = Manifest::load(path)?;
    println!(
        "manifest `{}`: ok (app `{}`)",
        manifest.file.display(),
        manifest.app.name
    );
    let variables = manifest.resolve_variables(options.env_lookup()?)?;
    for (name, v) in &variables {
        let shown = if v.secret {
            "<secret>".to_string()
        } else {
            format!("{:?}", v.value)
        };
        println!("variable `{name}` = {shown}");
    }
    let engine = FlagonEngine::new(&EngineSettings {
        max_instances: 1,
        max_memory: manifest.max_component_memory(),
    })?;
    let cache = manifest.cache_dir();
    let mut failures = 0;
    for (id, section) in &manifest.components {
        let source = section.wasm(&manifest);
        println!("\ncomponent `{id}` ({source})");
        println!(
            "  limits: memory {}, timeout {}",
            section.limits.memory, section.limits.timeout
        );
        let granted: Vec<String> = REGISTRY
            .iter()
            .flat_map(|cap| cap.describe(&manifest, section))
            .collect();
        println!("  granted: {}", granted.join(", "));
        match compile_and_check(
            &engine.engine,
            &manifest,
            id,
            section,
            &source,
            cache.as_deref(),
        ) {
            Ok(checked) => {
                let imports = &checked.imports;
                if checked.world == World::WasiHttp {
                    println!("  world: wasi:http/proxy (a standard wasi:http component)");
                }
                match &checked.signature {
                    Verdict::Trusted(key) => println!("  signed by {key} (trusted)"),
                    Verdict::Untrusted(key) => {
                        println!("  signed by {key} (not in `[app] trusted_keys`)")
                    }
                    Verdict::Unchecked => println!("  signature: none checked"),
                }
                for i in imports {
                    let cap = i.outcome.as_ref().expect("checked");
                    println!("  imports {} ({})", i.name, cap.name);
                }
                // A grant the component never uses is worth removing: least privilege.
                for cap in REGISTRY {
                    let Some(grant) = cap.grant else { continue };
                    // A wasi:http component sends its requests through `wasi:http`, under
                    // `grants.outbound`.
                    let sends_with = |c: &&Entry| {
                        *c == cap
                            || (checked.world == World::WasiHttp
                                && cap.name == "Outbound"
                                && c.name == "WasiHttp")
                    };
                    let uses = imports
                        .iter()
                        .any(|i| i.outcome.as_ref().is_ok_and(sends_with));
                    if !cap.describe(&manifest, section).is_empty() && !uses {
                        println!(
                            "  unused grant: `{}` (the component does not import `{}`)",
                            grant.key,
                            cap.interfaces.join("`, `")
                        );
                    }
                }
                println!("  ok");
            }
            Err(e) => {
                failures += 1;
                println!("  error: {e:#}");
            }
        }
    }
    Router::new(&manifest)?;
    println!("\nroutes: {} ok", manifest.routes.len());
    if failures > 0 {
        bail!("{failures} component(s) failed the check");
    }
    Ok(())
}
