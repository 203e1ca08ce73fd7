//! `[auth]` and `[[middleware]]`: which components authenticate requests and which run around
//! routes, and the checks that keep the two kinds apart from handlers.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{Manifest, Result};

/// `[auth]`: the authenticators and what an unauthenticated request gets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// `[components.<id>]` exporting the `authenticator` world, asked in order on routes with
    /// `auth`; the first identity wins. Example: `authenticators = ["jwt", "session"]`
    #[serde(default)]
    pub authenticators: Vec<String>,
    /// The `name` of the login route. A browser (a GET that accepts `text/html`) without an
    /// identity on an `auth = "required"` route is redirected there with `?next=<path>`;
    /// everything else gets 401. Example: `login_route = "login"`
    pub login_route: Option<String>,
    /// The `WWW-Authenticate` challenge of a 401 (default `Bearer realm="<app name>"`).
    /// Example: `challenge = 'Bearer realm="api"'`
    pub challenge: Option<String>,
}

/// `auth = ...` on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No identity: 401 (or the login redirect).
    Required,
    /// The handler gets the identity if the request has one; bad credentials are still 401.
    Optional,
}

/// `[[middleware]]`: a component run around the routes it lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiddlewareSection {
    /// The `[components.<id>]` exporting the `middleware` world. Example: `component = "cors"`
    pub component: String,
    /// Route names it applies to. Example: `routes = ["login"]`
    #[serde(default)]
    pub routes: Vec<String>,
    /// Path prefixes it applies to (matched on `/` boundaries). Example: `prefixes = ["/api"]`.
    /// With neither `routes` nor `prefixes`, it applies to every route.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Fields of a urlencoded form body this middleware sees in its `request-head` (for
    /// example a login limit per account). The host then reads the body before the
    /// middleware runs. Example: `form_fields = ["username"]`
    #[serde(default)]
    pub form_fields: Vec<String>,
}

impl MiddlewareSection {
    /// Whether it applies to a request for `path` matched to the route named `route`.
    pub fn applies(&self, path: &str, route: Option<&str>) -> bool {
        if self.routes.is_empty() && self.prefixes.is_empty() {
            return true;
        }
        route.is_some_and(|r| self.routes.iter().any(|n| n == r))
            || self.prefixes.iter().any(|p| under_prefix(path, p))
    }
}

/// `path` is `prefix` or below it (`/api` covers `/api` and `/api/x`, not `/apix`).
fn under_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What a component is for, as the manifest uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentRole {
    Handler,
    Authenticator,
    Middleware,
}

impl ComponentRole {
    /// The WIT world a component in this role exports.
    pub fn world(self) -> &'static str {
        match self {
            ComponentRole::Handler => "handler",
            ComponentRole::Authenticator => "authenticator",
            ComponentRole::Middleware => "middleware",
        }
    }
}

impl Manifest {
    /// The role of component `id`: an authenticator if any authenticator list names it, a
    /// middleware if a `[[middleware]]` entry does, else a handler.
    pub fn role(&self, id: &str) -> ComponentRole {
        let in_chain = self.auth.authenticators.iter().any(|a| a == id)
            || self
                .routes
                .iter()
                .any(|r| r.authenticators.iter().flatten().any(|a| a == id));
        if in_chain {
            ComponentRole::Authenticator
        } else if self.middleware.iter().any(|m| m.component == id) {
            ComponentRole::Middleware
        } else {
            ComponentRole::Handler
        }
    }

    /// The authenticators asked on route `i`, in order (its own list, else `[auth]`'s).
    pub fn route_authenticators(&self, i: usize) -> &[String] {
        self.routes[i]
            .authenticators
            .as_deref()
            .unwrap_or(&self.auth.authenticators)
    }

    /// Checks `[auth]`, every route's `auth`/`roles`/`authenticators`, and `[[middleware]]`.
    pub(super) fn validate_auth(&self) -> Result<()> {
        let known = |id: &str| self.components.contains_key(id);
        let known_list = || {
            self.components
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let route_components: BTreeSet<&str> =
            self.routes.iter().map(|r| r.component.as_str()).collect();
        let middleware: BTreeSet<&str> = self
            .middleware
            .iter()
            .map(|m| m.component.as_str())
            .collect();

        let check_chain = |key: String, chain: &[String]| -> Result<()> {
            let mut seen = BTreeSet::new();
            for (j, id) in chain.iter().enumerate() {
                let key = format!("{key}[{j}]");
                if !known(id) {
                    return Err(self.invalid(
                        key,
                        format!("unknown component `{id}`"),
                        format!(
                            "define `[components.{id}]` (an authenticator component), or use one of: {}",
                            known_list()
                        ),
                    ));
                }
                if route_components.contains(id.as_str()) || middleware.contains(id.as_str()) {
                    return Err(self.invalid(
                        key,
                        format!("component `{id}` is also a route's handler or a middleware"),
                        "a component has one role: give the authenticator a `[components.<id>]` entry of its own",
                    ));
                }
                if !seen.insert(id.as_str()) {
                    return Err(self.invalid(
                        key,
                        format!("`{id}` is listed twice"),
                        "list each authenticator once",
                    ));
                }
            }
            Ok(())
        };
        check_chain("auth.authenticators".into(), &self.auth.authenticators)?;
        for (i, r) in self.routes.iter().enumerate() {
            if let Some(chain) = &r.authenticators {
                check_chain(format!("routes[{i}].authenticators"), chain)?;
            }
        }

        if let Some(challenge) = &self.auth.challenge
            && (challenge.trim().is_empty() || http::HeaderValue::from_str(challenge).is_err())
        {
            return Err(self.invalid(
                "auth.challenge",
                "not a valid header value",
                "write e.g. `challenge = 'Bearer realm=\"api\"'`",
            ));
        }
        if let Some(login) = &self.auth.login_route {
            let Some(route) = self.routes.iter().find(|r| r.name.as_ref() == Some(login)) else {
                return Err(self.invalid(
                    "auth.login_route",
                    format!("no route is named `{login}`"),
                    format!("add `name = \"{login}\"` to the login page's `[[routes]]` entry"),
                ));
            };
            if route.path.contains('{') {
                return Err(self.invalid(
                    "auth.login_route",
                    format!("route `{login}` has parameters (`{}`)", route.path),
                    "point it at a route with a fixed path such as `/login`",
                ));
            }
            if !route.methods.iter().any(|m| m.0 == http::Method::GET) {
                return Err(self.invalid(
                    "auth.login_route",
                    format!("route `{login}` does not answer GET"),
                    "browsers are redirected there with a GET: add \"GET\" to its `methods`",
                ));
            }
            if route.auth == Some(AuthMode::Required) {
                return Err(self.invalid(
                    "auth.login_route",
                    format!("route `{login}` itself has `auth = \"required\"`"),
                    "the login page must be reachable without an identity: remove `auth` or use `auth = \"optional\"`",
                ));
            }
        }

        for (i, r) in self.routes.iter().enumerate() {
            let key = format!("routes[{i}]");
            if r.auth.is_none() && !r.roles.is_empty() {
                return Err(self.invalid(
                    format!("{key}.roles"),
                    "`roles` without `auth`",
                    "add `auth = \"required\"` to the route",
                ));
            }
            if r.auth == Some(AuthMode::Optional) && !r.roles.is_empty() {
                return Err(self.invalid(
                    format!("{key}.roles"),
                    "`roles` on an `auth = \"optional\"` route",
                    "use `auth = \"required\"`: a role check needs an identity",
                ));
            }
            if r.roles.iter().any(|role| role.trim().is_empty()) {
                return Err(self.invalid(
                    format!("{key}.roles"),
                    "a role is empty",
                    "list role names, e.g. `roles = [\"admin\"]`",
                ));
            }
            if r.authenticators.is_some() && r.auth.is_none() {
                return Err(self.invalid(
                    format!("{key}.authenticators"),
                    "`authenticators` without `auth`",
                    "add `auth = \"required\"` or `auth = \"optional\"` to the route",
                ));
            }
            let chain = self.route_authenticators(i);
            if r.auth.is_some() && chain.is_empty() {
                return Err(self.invalid(
                    format!("{key}.auth"),
                    "the route needs an identity but no authenticator is configured",
                    "list authenticators in `[auth] authenticators = [\"...\"]` (or `authenticators` on the route)",
                ));
            }
            // A cookie-session authenticator on a route without CSRF checks would let any site
            // make the browser act as its user.
            let unsafe_method = r
                .methods
                .iter()
                // The methods `web::csrf::is_safe_method` lets through.
                .any(|m| {
                    !matches!(
                        m.0,
                        http::Method::GET
                            | http::Method::HEAD
                            | http::Method::OPTIONS
                            | http::Method::TRACE
                    )
                });
            if r.auth.is_some()
                && !r.csrf
                && unsafe_method
                && let Some(id) = chain
                    .iter()
                    .find(|id| self.components.get(*id).is_some_and(|c| c.grants.session))
            {
                {
                    return Err(self.invalid(
                        format!("{key}.csrf"),
                        format!(
                            "`csrf = false`, but authenticator `{id}` reads the cookie session: another site could send this request as the signed-in user"
                        ),
                        "keep CSRF checks on, or give the route `authenticators = [...]` that read no session (API tokens)",
                    ));
                }
            }
        }

        for (i, m) in self.middleware.iter().enumerate() {
            let key = format!("middleware[{i}]");
            if !known(&m.component) {
                return Err(self.invalid(
                    format!("{key}.component"),
                    format!("unknown component `{}`", m.component),
                    format!(
                        "define `[components.{}]` (a middleware component), or use one of: {}",
                        m.component,
                        known_list()
                    ),
                ));
            }
            if route_components.contains(m.component.as_str()) {
                return Err(self.invalid(
                    format!("{key}.component"),
                    format!("component `{}` is also a route's handler", m.component),
                    "a component has one role: give the middleware a `[components.<id>]` entry of its own",
                ));
            }
            for (j, name) in m.routes.iter().enumerate() {
                if !self.routes.iter().any(|r| r.name.as_ref() == Some(name)) {
                    return Err(self.invalid(
                        format!("{key}.routes[{j}]"),
                        format!("no route is named `{name}`"),
                        format!(
                            "add `name = \"{name}\"` to a `[[routes]]` entry, or list prefixes"
                        ),
                    ));
                }
            }
            for (j, p) in m.prefixes.iter().enumerate() {
                if !p.starts_with('/') {
                    return Err(self.invalid(
                        format!("{key}.prefixes[{j}]"),
                        format!("`{p}` does not start with `/`"),
                        format!("write `\"/{p}\"`"),
                    ));
                }
            }
            for (j, f) in m.form_fields.iter().enumerate() {
                if f.is_empty() || f == "csrf_token" {
                    return Err(self.invalid(
                        format!("{key}.form_fields[{j}]"),
                        format!("`{f}` is not a field a middleware may see"),
                        "name the form fields the middleware needs, e.g. `form_fields = [\"username\"]`",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(under_prefix("/api", "/api"));
        assert!(under_prefix("/api/x", "/api"));
        assert!(under_prefix("/api/x", "/api/"));
        assert!(!under_prefix("/apix", "/api"));
        assert!(under_prefix("/anything", "/"));
    }

    #[test]
    fn form_fields_name_real_fields_but_never_the_csrf_token() {
        let text = |fields: &str| {
            format!(
                "[app]\nname = \"t\"\n[components.h]\nsource = \"h.wasm\"\n[components.m]\nsource = \"m.wasm\"\n\
                 [[routes]]\npath = \"/login\"\ncomponent = \"h\"\nname = \"login\"\n\
                 [[middleware]]\ncomponent = \"m\"\nroutes = [\"login\"]\nform_fields = {fields}\n"
            )
        };
        let parse = |t: &str| Manifest::parse(std::path::Path::new("app/flagon.toml"), t);
        assert!(parse(&text("[\"username\"]")).is_ok());
        for bad in ["[\"csrf_token\"]", "[\"\"]"] {
            let err = parse(&text(bad)).unwrap_err().to_string();
            assert!(err.contains("middleware[0].form_fields[0]"), "{bad}: {err}");
        }
    }

    #[test]
    fn middleware_without_lists_applies_everywhere() {
        let m = MiddlewareSection {
            component: "m".into(),
            routes: vec![],
            prefixes: vec![],
            form_fields: vec![],
        };
        assert!(m.applies("/x", None));
        let m = MiddlewareSection {
            component: "m".into(),
            routes: vec!["login".into()],
            prefixes: vec!["/api".into()],
            form_fields: vec![],
        };
        assert!(m.applies("/login", Some("login")));
        assert!(m.applies("/api/v1", None));
        assert!(!m.applies("/other", Some("other")));
    }
}
