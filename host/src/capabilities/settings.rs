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
        let json = serde_json::to_string(&c.section.settings)
            .with_context(|| format!("`components.{}.settings` cannot be written as JSON", c.id))?;
        Ok(json.into())
    }

    fn prepare(_: &Self::Component) {}
}

impl settings::Host for Cx<'_, Settings> {
    fn get(&mut self) -> String {
        self.component.to_string()
    }
}
