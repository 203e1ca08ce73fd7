//! `[[routes]]`: path patterns answered by components.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::values::{Method, Size};
use super::{MAX_ROUTE_PARAMS, Manifest, Result};

/// `[[routes]]`: a path pattern answered by a component.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// `{name}` matches one segment, `{*name}` the rest of the path.
    /// Example: `path = "/users/{id}"`
    pub path: String,
    /// Methods this route answers (default `["GET"]`); HEAD is answered from GET.
    /// Example: `methods = ["GET", "POST"]`
    #[serde(default = "default_methods")]
    pub methods: Vec<Method>,
    /// The `[components.<id>]` that handles it. Example: `component = "hello"`
    pub component: String,
    /// A unique name, passed to the guest and used to build URLs. Example: `name = "user"`
    pub name: Option<String>,
    /// Body limit for this route, overriding `[server] max_body`. Example: `max_body = "10MiB"`
    pub max_body: Option<Size>,
    /// CSRF protection for unsafe methods when the component uses the session (default
    /// true). Turn it off only for routes authenticated by something other than the cookie,
    /// e.g. an API token. Example: `csrf = false`
    #[serde(default = "yes")]
    pub csrf: bool,
    /// Whether the route needs an identity from the authenticators: `"required"` (none: 401,
    /// or the login redirect for a browser) or `"optional"`. Without it no authenticator runs.
    /// Example: `auth = "required"`
    pub auth: Option<super::AuthMode>,
    /// Roles of which the identity needs at least one (else 403). Needs `auth = "required"`.
    /// Example: `roles = ["admin"]`
    #[serde(default)]
    pub roles: Vec<String>,
    /// The authenticators for this route, in order, instead of `[auth] authenticators`.
    /// Example: `authenticators = ["jwt"]`
    pub authenticators: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

fn default_methods() -> Vec<Method> {
    vec![Method(http::Method::GET)]
}

impl Manifest {
    /// Checks every `[[routes]]`: known component, path syntax, unique names.
    pub(super) fn validate_routes(&self) -> Result<()> {
        let mut names = BTreeSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            let key = format!("routes[{i}]");
            if !self.components.contains_key(&r.component) {
                let known = self
                    .components
                    .keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>();
                return Err(self.invalid(
                    format!("{key}.component"),
                    format!("unknown component `{}`", r.component),
                    if known.is_empty() {
                        format!("define `[components.{}]` with a `source`", r.component)
                    } else {
                        format!(
                            "define `[components.{}]` or use one of: {}",
                            r.component,
                            known.join(", ")
                        )
                    },
                ));
            }
            if !r.path.starts_with('/') {
                return Err(self.invalid(
                    format!("{key}.path"),
                    format!("route path `{}` does not start with `/`", r.path),
                    format!("write `path = \"/{}\"`", r.path),
                ));
            }
            if r.path.contains("/:") || r.path.starts_with(':') {
                return Err(self.invalid(
                    format!("{key}.path"),
                    format!("route path `{}` uses `:param`", r.path),
                    "write parameters as `{param}`, and the rest of the path as `{*rest}`",
                ));
            }
            let params = r.path.matches('{').count() - r.path.matches("{{").count() * 2;
            if params > MAX_ROUTE_PARAMS {
                return Err(self.invalid(
                    format!("{key}.path"),
                    format!("route path `{}` has {params} parameters", r.path),
                    format!("use at most {MAX_ROUTE_PARAMS} parameters per route"),
                ));
            }
            if r.methods.is_empty() {
                return Err(self.invalid(
                    format!("{key}.methods"),
                    "the list is empty",
                    "list at least one method, e.g. `methods = [\"GET\"]`, or remove the key for GET",
                ));
            }
            if let Some(name) = &r.name {
                if name.is_empty() {
                    return Err(self.invalid(
                        format!("{key}.name"),
                        "the name is empty",
                        "give the route a name or remove the key",
                    ));
                }
                if !names.insert(name.as_str()) {
                    return Err(self.invalid(
                        format!("{key}.name"),
                        format!("route name `{name}` is used twice"),
                        "give every route a unique name",
                    ));
                }
            }
        }
        Ok(())
    }
}
