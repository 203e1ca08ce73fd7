//! `flagon:app/templates`: the app's templates, rendered by the host with auto-escaping
//! (`web::templates`). A failed render is remembered for the request, which then ends in the
//! 500 error page whatever the guest returns.

use std::sync::Arc;

use wasmtime::component::Linker;

use super::{AppSetup, CapData, Capability, ComponentSetup, Cx, Grant, HostState};
use crate::manifest::{ComponentSection, Manifest};
use crate::runtime::bindings::flagon::app::templates;
use crate::text::log_safe;
use crate::web::templates::{RenderError, RequestGlobals};

pub struct Templates;

impl Capability for Templates {
    const NAME: &'static str = "Templates";
    const INTERFACES: &'static [&'static str] = &["flagon:app/templates"];
    const GRANT: Option<Grant> = Some(Grant {
        key: "templates",
        example: "grants = { templates = true }",
    });
    /// The web layer's templates (it loads them: error pages use them too).
    type App = Option<Arc<crate::web::templates::Templates>>;
    type Component = ();
    /// The first render of this request that failed.
    type Instance = Option<RenderError>;

    fn granted(section: &ComponentSection) -> bool {
        section.grants.templates
    }

    fn describe(_: &Manifest, section: &ComponentSection) -> Vec<String> {
        let granted = section.grants.templates;
        granted.then(|| "templates".into()).into_iter().collect()
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        templates::add_to_linker::<_, CapData<Self>>(linker, HostState::cx::<Self>)
    }

    async fn setup(app: &AppSetup<'_>) -> anyhow::Result<Self::App> {
        Ok(app.web.templates.clone())
    }

    fn configure(_: &Self::App, _: &ComponentSetup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn prepare(_: &()) -> Self::Instance {
        None
    }
}

impl templates::Host for Cx<'_, Templates> {
    fn render(&mut self, name: String, context: String) -> Result<String, String> {
        let globals = RequestGlobals {
            session: self.request.session.clone(),
            current_user: self.request.identity.as_deref().map(current_user),
        };
        let Some(t) = self.app.as_ref() else {
            return Err("this app has no templates".into());
        };
        match t.render_json(&name, &context, globals) {
            Ok(html) => Ok(html),
            Err(e) => {
                tracing::error!(component = %self.guest.id, request_id = %self.request.request_id, "{}", log_safe(&e.summary));
                let message = e.summary.clone();
                self.instance.get_or_insert(e);
                Err(message)
            }
        }
    }
}

/// An identity as templates see it: `current_user.subject`, `.name`, `.roles`, `.claims`,
/// `.authenticator`.
fn current_user(identity: &crate::runtime::bindings::Identity) -> minijinja::Value {
    let claims: std::collections::BTreeMap<String, String> =
        identity.claims.iter().cloned().collect();
    minijinja::context! {
        subject => identity.subject.clone(),
        name => identity.display_name.clone(),
        roles => identity.roles.clone(),
        claims => claims,
        authenticator => identity.authenticator.clone(),
    }
}
