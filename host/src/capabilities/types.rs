//! `flagon:app/types`: type definitions only, importable by every component.

use wasmtime::component::Linker;

use super::{AppSetup, CapData, Capability, ComponentSetup, Cx, HostState};
use crate::manifest::ComponentSection;
use crate::runtime::bindings::flagon::app::types;

pub struct Types;

impl Capability for Types {
    const NAME: &'static str = "Types";
    const INTERFACES: &'static [&'static str] = &["flagon:app/types"];
    const GRANT: Option<super::Grant> = None;
    type App = ();
    type Component = ();
    type Instance = ();

    fn granted(_: &ComponentSection) -> bool {
        true
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        types::add_to_linker::<_, CapData<Self>>(linker, HostState::cx::<Self>)
    }

    async fn setup(_: &AppSetup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn configure(_: &(), _: &ComponentSetup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn prepare(_: &()) {}
}

impl types::Host for Cx<'_, Types> {}
