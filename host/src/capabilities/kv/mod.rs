//! `flagon:app/kv`: the `[kv.<name>]` stores, each granted to a component by name
//! (`grants.kv`). The stores themselves (embedded redb files or Redis) are in [`store`].

pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use wasmtime::component::Linker;

use super::{AppSetup, CapData, Capability, ComponentSetup, Cx, Grant, HostState};
use crate::manifest::{ComponentSection, KvBackendKind, Manifest};
use crate::metrics::KvOp;
use crate::runtime::bindings::flagon::app::kv;
use store::{KvBackendConfig, KvLimits, KvStore};

pub struct Kv;

impl Capability for Kv {
    const NAME: &'static str = "Kv";
    const INTERFACES: &'static [&'static str] = &["flagon:app/kv"];
    const GRANT: Option<Grant> = Some(Grant {
        key: "kv",
        example: "grants = { kv = [\"name\"] }",
    });
    /// Every store of the app, opened at load.
    type App = BTreeMap<String, Arc<KvStore>>;
    /// The stores granted to the component.
    type Component = Box<[String]>;
    type Instance = ();

    fn granted(section: &ComponentSection) -> bool {
        section.grants.kv.as_ref().is_some_and(|k| !k.is_empty())
    }

    fn describe(_: &Manifest, section: &ComponentSection) -> Vec<String> {
        let kv = section.grants.kv.iter();
        kv.map(|k| format!("kv [{}]", k.join(", "))).collect()
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        kv::add_to_linker::<_, CapData<Self>>(linker, HostState::cx::<Self>)
    }

    /// Open every store (a Redis store must answer `PING`).
    async fn setup(app: &AppSetup<'_>) -> anyhow::Result<Self::App> {
        let manifest = app.manifest;
        let mut stores = BTreeMap::new();
        for (name, section) in &manifest.kv {
            let limits = KvLimits {
                max_key_bytes: section.max_key.unwrap_or(KvLimits::default().max_key_bytes),
                max_value_bytes: section
                    .max_value
                    .map(|s| usize::try_from(s.0).unwrap_or(usize::MAX))
                    .unwrap_or(KvLimits::default().max_value_bytes),
                max_entries: section
                    .max_entries
                    .unwrap_or(KvLimits::default().max_entries),
                max_bytes: section
                    .max_bytes
                    .map_or(KvLimits::default().max_bytes, |s| s.0),
                ..KvLimits::default()
            };
            let config = match section.backend {
                KvBackendKind::Embedded => KvBackendConfig::Embedded {
                    durable: section.durable.unwrap_or(true),
                    dir: manifest.resolve(section.path.as_deref().unwrap_or("data/kv".as_ref())),
                },
                KvBackendKind::Redis => {
                    // The manifest checked that `url` names a declared variable.
                    let var = section.url.as_deref().unwrap_or_default();
                    KvBackendConfig::Redis {
                        url: app.variables[var].value.clone(),
                        prefix: Some(
                            section
                                .prefix
                                .clone()
                                .unwrap_or_else(|| redis_prefix(&manifest.app.name, name)),
                        ),
                    }
                }
            };
            // A reload keeps the previous app's store when nothing it was opened from changed.
            if let Some(previous) = app.previous.and_then(|p| p.kv.get(name)) {
                if previous.fingerprint() == KvStore::fingerprint_of(name, &config, &limits) {
                    stores.insert(name.clone(), previous.clone());
                    continue;
                }
                // redb allows one open of a file per process.
                if previous.is_embedded() && matches!(config, KvBackendConfig::Embedded { .. }) {
                    anyhow::bail!(
                        "`[kv.{name}]` in `{}` changed, and an embedded store cannot be reopened \
                         while the running app uses it\n  help: restart flagon to apply this change",
                        manifest.file.display()
                    );
                }
            }
            let store = KvStore::open(name, config, limits).await.with_context(|| {
                format!(
                    "cannot open key-value store `{name}` (`[kv.{name}]` in `{}`)",
                    manifest.file.display()
                )
            })?;
            stores.insert(name.clone(), Arc::new(store));
        }
        Ok(stores)
    }

    fn configure(_: &Self::App, c: &ComponentSetup<'_>) -> anyhow::Result<Self::Component> {
        // The manifest checked that every granted store is declared.
        Ok(c.section.grants.kv.iter().flatten().cloned().collect())
    }

    fn prepare(_: &Self::Component) {}
}

/// The default Redis key prefix of store `store` of app `app`: `flagon:<app>:<store>:`, with
/// `%` and `:` in the app's name percent-encoded, so that no two (app, store) pairs share a
/// prefix (`a:b` + `c` and `a` + `b` would otherwise both start `flagon:a:b:`). Store names
/// are ids, which have no `:`.
fn redis_prefix(app: &str, store: &str) -> String {
    let app = app.replace('%', "%25").replace(':', "%3A");
    format!("flagon:{app}:{store}:")
}

impl Cx<'_, Kv> {
    /// The store `name`, if this component was granted it.
    fn store(&self, name: &str) -> Result<Arc<KvStore>, String> {
        if !self.component.iter().any(|k| k == name) {
            return Err(format!(
                "key-value store `{name}` is not granted to this component (add it to `grants.kv`)"
            ));
        }
        self.app
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no key-value store `{name}`"))
    }
}

impl kv::Host for Cx<'_, Kv> {
    async fn get(&mut self, store: String, key: String) -> Result<Option<Vec<u8>>, String> {
        let s = self.store(&store)?;
        s.metrics()
            .observe(KvOp::Get, s.get(&key))
            .await
            .map_err(|e| e.to_string())
    }

    async fn set(
        &mut self,
        store: String,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), String> {
        let s = self.store(&store)?;
        let ttl = ttl_ms.map(std::time::Duration::from_millis);
        s.metrics()
            .observe(KvOp::Set, s.set(&key, &value, ttl))
            .await
            .map_err(|e| e.to_string())
    }

    async fn delete(&mut self, store: String, key: String) -> Result<bool, String> {
        let s = self.store(&store)?;
        s.metrics()
            .observe(KvOp::Delete, s.delete(&key))
            .await
            .map_err(|e| e.to_string())
    }

    async fn exists(&mut self, store: String, key: String) -> Result<bool, String> {
        let s = self.store(&store)?;
        s.metrics()
            .observe(KvOp::Exists, s.exists(&key))
            .await
            .map_err(|e| e.to_string())
    }

    async fn increment(&mut self, store: String, key: String, delta: i64) -> Result<i64, String> {
        let s = self.store(&store)?;
        s.metrics()
            .observe(KvOp::Increment, s.increment(&key, delta, None))
            .await
            .map_err(|e| e.to_string())
    }

    async fn increment_new(
        &mut self,
        store: String,
        key: String,
        delta: i64,
        ttl_ms: u64,
    ) -> Result<i64, String> {
        let s = self.store(&store)?;
        s.metrics()
            .observe(KvOp::Increment, s.increment(&key, delta, Some(ttl_ms)))
            .await
            .map_err(|e| e.to_string())
    }

    async fn list_keys(&mut self, store: String, prefix: String) -> Result<Vec<String>, String> {
        let s = self.store(&store)?;
        s.metrics()
            .observe(KvOp::ListKeys, s.list_keys(&prefix))
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::redis_prefix;

    #[test]
    fn redis_prefixes_of_different_apps_and_stores_never_nest() {
        assert_eq!(redis_prefix("todo", "cache"), "flagon:todo:cache:");
        let a = redis_prefix("a:b", "c");
        let b = redis_prefix("a", "b");
        assert!(!a.starts_with(&b) && !b.starts_with(&a), "{a} {b}");
        assert_eq!(redis_prefix("50%:x", "s"), "flagon:50%25%3Ax:s:");
        assert_ne!(redis_prefix("a%3Ab", "c"), redis_prefix("a:b", "c"));
    }
}
