//! `flagon:app/clock` and `flagon:app/random`: the time and random bytes, for every component
//! without a grant. They are what a lean handler (built for `wasm32-unknown-unknown`, without
//! WASI) has instead of `wasi:clocks` and `wasi:random`, and reveal nothing a full-WASI
//! component could not already read.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::component::Linker;

use super::{AppSetup, CapData, Capability, ComponentSetup, Cx, Grant, HostState};
use crate::manifest::ComponentSection;
use crate::runtime::bindings::flagon::app::{clock, random};

/// The most bytes one `random.bytes` call returns; more is a guest bug and traps.
pub const MAX_RANDOM_BYTES: u32 = 65536;

pub struct System;

impl Capability for System {
    const NAME: &'static str = "System";
    const INTERFACES: &'static [&'static str] = &["flagon:app/clock", "flagon:app/random"];
    const GRANT: Option<Grant> = None;
    /// Where the monotonic clock starts: when the app was loaded.
    type App = Instant;
    type Component = ();
    type Instance = ();

    fn granted(_: &ComponentSection) -> bool {
        true
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        clock::add_to_linker::<_, CapData<Self>>(linker, HostState::cx::<Self>)?;
        random::add_to_linker::<_, CapData<Self>>(linker, HostState::cx::<Self>)
    }

    async fn setup(app: &AppSetup<'_>) -> anyhow::Result<Instant> {
        // A reload keeps the start, so the monotonic clock never goes backwards.
        Ok(app.previous.map_or_else(Instant::now, |p| p.system))
    }

    fn configure(_: &Instant, _: &ComponentSetup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn prepare(_: &()) {}
}

impl clock::Host for Cx<'_, System> {
    fn now(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn monotonic(&mut self) -> u64 {
        u64::try_from(self.app.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl random::Host for Cx<'_, System> {
    fn bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            wasmtime::bail!("random.bytes: asked for {len} bytes, at most {MAX_RANDOM_BYTES}");
        }
        let mut out = vec![0; len as usize];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut out)
            .map_err(|_| wasmtime::format_err!("the operating system's random source failed"))?;
        Ok(out)
    }
}
