//! `flagon:app/session`: the host's cookie session (`web::session`), which the host loads
//! before the call and seals into the cookie after it. Components granted it get CSRF checks
//! on their unsafe routes.

use wasmtime::component::Linker;

use super::{AppSetup, CapData, Capability, ComponentSetup, Cx, Grant, HostState};
use crate::manifest::{ComponentSection, Manifest};
use crate::runtime::bindings::flagon::app::session;

/// The session capability (named apart from `web::session::Session`, the session itself).
pub struct SessionCap;

impl Capability for SessionCap {
    const NAME: &'static str = "Session";
    const INTERFACES: &'static [&'static str] = &["flagon:app/session"];
    const GRANT: Option<Grant> = Some(Grant {
        key: "session",
        example: "grants = { session = true }",
    });
    type App = ();
    type Component = ();
    type Instance = ();

    fn granted(section: &ComponentSection) -> bool {
        section.grants.session
    }

    fn describe(_: &Manifest, section: &ComponentSection) -> Vec<String> {
        let granted = section.grants.session;
        granted.then(|| "session".into()).into_iter().collect()
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        session::add_to_linker::<_, CapData<Self>>(linker, HostState::cx::<Self>)
    }

    async fn setup(_: &AppSetup<'_>) -> anyhow::Result<()> {
        // The web layer derives the keys and checks `[session]` (it writes the cookie).
        Ok(())
    }

    fn configure(_: &(), _: &ComponentSetup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn prepare(_: &()) {}
}

// Linked only for components granted the session, and the host loads a session for every
// request to such a component.
impl Cx<'_, SessionCap> {
    /// The session if this caller may change it; authenticators and middleware only read.
    fn writable(
        &mut self,
        what: &str,
    ) -> Option<std::sync::MutexGuard<'_, crate::web::session::Session>> {
        if self.request.session_read_only {
            tracing::warn!(component = %self.guest.id, request_id = %self.request.request_id, "session.{what} ignored: the session is read-only for authenticators and middleware");
            return None;
        }
        Some(self.request.session_guard())
    }
}

const READ_ONLY: &str = "the session is read-only for authenticators and middleware";

impl session::Host for Cx<'_, SessionCap> {
    fn get(&mut self, key: String) -> Option<String> {
        self.request.session_guard().get(&key)
    }

    fn set(&mut self, key: String, value: String) -> Result<(), String> {
        let Some(mut session) = self.writable("set") else {
            return Err(READ_ONLY.into());
        };
        session.set(&key, &value).map_err(|e| e.to_string())
    }

    fn remove(&mut self, key: String) -> bool {
        self.writable("remove").is_some_and(|mut s| s.remove(&key))
    }

    fn keys(&mut self) -> Vec<String> {
        self.request.session_guard().keys()
    }

    fn clear(&mut self) {
        if let Some(mut s) = self.writable("clear") {
            s.clear();
        }
    }

    fn rotate(&mut self) {
        if let Some(mut s) = self.writable("rotate") {
            s.rotate();
        }
    }

    fn flash(&mut self, category: String, message: String) -> Result<(), String> {
        let Some(mut session) = self.writable("flash") else {
            return Err(READ_ONLY.into());
        };
        session
            .flash(&category, &message)
            .map_err(|e| e.to_string())
    }

    fn take_flashes(&mut self) -> Vec<(String, String)> {
        self.writable("take-flashes")
            .map(|mut s| s.take_flashes())
            .unwrap_or_default()
    }

    fn csrf_token(&mut self) -> String {
        // Making a token may create the session's CSRF secret.
        self.writable("csrf-token")
            .map(|mut s| s.csrf_token())
            .unwrap_or_default()
    }
}
