//! `flagon:app/settings`: a component's own `settings` table, as JSON. Every component gets its
//! own and no other's; it is how authenticators and middleware are configured.

use std::sync::Arc;

use anyhow::Context as _;
use wasmtime::component::Linker;

use super::{AppSetup, CapData, Capability, ComponentSetup, Cx, Grant, HostState};
use crate::manifest::ComponentSection;
use crate::runtime::bindings::flagon::app::settings;

pub struct Settings;

impl Capability for Settings {
    const NAME: &'static str = "Settings";
    const INTERFACES: &'static [&'static str] = &["flagon:app/settings"];
    const GRANT: Option<Grant> = None;
    type App = ();
    /// The `settings` table as a JSON object.
    type Component = Arc<str>;
    type Instance = ();

    fn granted(_: &ComponentSection) -> bool {
        true
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        settings::add_to_linker::<_, CapData<Self>>(linker, HostState::cx::<Self>)
    }

    async fn setup(_: &AppSetup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn configure(_: &(), c: &ComponentSetup<'_>) -> anyhow::Result<Self::Component> {
        let table = toml::Value::Table(c.section.settings.clone());
        let json = serde_json::to_string(&to_json(&table))
            .with_context(|| format!("`components.{}.settings` cannot be written as JSON", c.id))?;
        Ok(json.into())
    }

    fn prepare(_: &Self::Component) {}
}

/// TOML as JSON; a date or time becomes its RFC 3339 text.
fn to_json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => {
            J::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

impl settings::Host for Cx<'_, Settings> {
    fn get(&mut self) -> String {
        self.component.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn settings_become_plain_json() {
        let t: toml::Table = toml::from_str(
            "a = \"x\"\nn = 3\nf = 1.5\nb = true\nd = 2026-12-01T10:00:00Z\nl = [\"p\", 2]\nt = { k = \"v\" }",
        )
        .unwrap();
        let json = super::to_json(&toml::Value::Table(t));
        assert_eq!(
            json,
            serde_json::json!({"a": "x", "n": 3, "f": 1.5, "b": true, "d": "2026-12-01T10:00:00Z", "l": ["p", 2], "t": {"k": "v"}})
        );
    }
}
