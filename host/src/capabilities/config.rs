//! `flagon:app/config`: the variables granted to a component (`grants.variables`), and only
//! those.

use wasmtime::component::Linker;

use super::{AppSetup, CapData, Capability, ComponentSetup, Cx, Grant, HostState};
use crate::manifest::{ComponentSection, Manifest};
use crate::runtime::bindings::flagon::app::config;

pub struct Config;

impl Capability for Config {
    const NAME: &'static str = "Config";
    const INTERFACES: &'static [&'static str] = &["flagon:app/config"];
    const GRANT: Option<Grant> = Some(Grant {
        key: "variables",
        example: "grants = { variables = [\"name\"] }",
    });
    type App = ();
    /// The granted variables: name and value.
    type Component = Box<[(String, String)]>;
    type Instance = ();

    fn granted(section: &ComponentSection) -> bool {
        section.grants.variables.is_some()
    }

    fn describe(_: &Manifest, section: &ComponentSection) -> Vec<String> {
        let v = section.grants.variables.iter();
        v.map(|v| format!("variables [{}]", v.join(", "))).collect()
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        config::add_to_linker::<_, CapData<Self>>(linker, HostState::cx::<Self>)
    }

    async fn setup(_: &AppSetup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn configure(_: &(), c: &ComponentSetup<'_>) -> anyhow::Result<Self::Component> {
        // The manifest checked that every granted name is declared, and every declared
        // variable was resolved.
        let granted = c.section.grants.variables.iter().flatten();
        Ok(granted
            .map(|name| (name.clone(), c.variables[name].value.clone()))
            .collect())
    }

    fn prepare(_: &Self::Component) {}
}

impl config::Host for Cx<'_, Config> {
    fn get(&mut self, name: String) -> Option<String> {
        self.component
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }

    fn get_all(&mut self) -> Vec<(String, String)> {
        self.component.to_vec()
    }
}
