//! Routing: path (matchit) then method, decided before the body is read.

use std::sync::Arc;

use http::{HeaderValue, Method};
use percent_encoding::percent_decode_str;

use crate::manifest::{AuthMode, Manifest};

/// One `[[routes]]` entry, resolved.
#[derive(Debug, Clone)]
pub struct Route {
    /// Position in the manifest's `[[routes]]` list.
    pub index: usize,
    pub path: String,
    pub methods: Vec<Method>,
    /// Index of the component in the app's component list.
    pub component: usize,
    pub component_id: String,
    pub name: Option<Arc<str>>,
    pub max_body: u64,
    /// CSRF checks for unsafe methods when the component uses the session.
    pub csrf: bool,
    /// `auth = ...`: whether the authenticators run, and whether an identity is required.
    pub auth: Option<AuthMode>,
    /// Roles of which the identity needs one.
    pub roles: Vec<String>,
    /// The authenticators asked, in order, as indices in the app's component list.
    pub authenticators: Vec<usize>,
}

/// All routes sharing one path pattern, by method.
#[derive(Debug)]
struct PathRoutes {
    by_method: Vec<(Method, usize)>,
    /// The `Allow` header for this path: its methods, plus HEAD with GET, plus OPTIONS.
    allow: HeaderValue,
}

/// The result of routing a request head.
#[derive(Debug)]
pub enum Match<'a> {
    Found {
        route: &'a Route,
        params: Vec<(String, String)>,
        /// A HEAD request answered by the GET route; the body is dropped.
        head_from_get: bool,
    },
    /// OPTIONS on a path that has no OPTIONS route: answered by the host with `Allow`.
    Options {
        allow: &'a HeaderValue,
        /// The first route at this path (for the middleware that apply to it).
        route: &'a Route,
    },
    MethodNotAllowed {
        allow: &'a HeaderValue,
    },
    NotFound,
    /// A path parameter is not valid UTF-8 after percent-decoding.
    BadParam,
}

#[derive(Debug)]
pub struct Router {
    matcher: matchit::Router<usize>,
    paths: Vec<PathRoutes>,
    routes: Vec<Route>,
}

/// A route table error, naming the manifest keys involved.
#[derive(Debug, thiserror::Error)]
#[error("invalid manifest `{file}`: `{key}`: {message}\n  help: {help}")]
pub struct RouteError {
    pub file: String,
    pub key: String,
    pub message: String,
    pub help: String,
}

impl Router {
    /// Build the table from the manifest. A route's `component` is the position of its
    /// component in `manifest.components` (the order the app loads them in).
    pub fn new(manifest: &Manifest) -> Result<Self, RouteError> {
        let component_index = |id: &str| {
            manifest
                .components
                .keys()
                .position(|k| k == id)
                .expect("the manifest checked that routes name known components")
        };
        let err = |key: String, message: String, help: String| RouteError {
            file: manifest.file.display().to_string(),
            key,
            message,
            help,
        };
        let mut matcher = matchit::Router::new();
        let mut paths: Vec<PathRoutes> = Vec::new();
        let mut patterns: Vec<(String, usize)> = Vec::new();
        let mut routes = Vec::new();
        for (i, r) in manifest.routes.iter().enumerate() {
            let route = Route {
                index: i,
                path: r.path.clone(),
                methods: r.methods.iter().map(|m| m.0.clone()).collect(),
                component: component_index(&r.component),
                component_id: r.component.clone(),
                name: r.name.as_deref().map(Arc::from),
                max_body: r.max_body.unwrap_or(manifest.server.max_body).0,
                csrf: r.csrf,
                auth: r.auth,
                roles: r.roles.clone(),
                authenticators: if r.auth.is_some() {
                    manifest
                        .route_authenticators(i)
                        .iter()
                        .map(|id| component_index(id))
                        .collect()
                } else {
                    Vec::new()
                },
            };
            let slot = match patterns.iter().find(|(p, _)| *p == r.path) {
                Some((_, slot)) => *slot,
                None => {
                    let slot = paths.len();
                    matcher.insert(r.path.as_str(), slot).map_err(|e| {
                        err(
                            format!("routes[{i}].path"),
                            format!("route path `{}` cannot be added: {e}", r.path),
                            "make the pattern distinct from the other routes (one `{param}` per segment, `{*rest}` only at the end)".into(),
                        )
                    })?;
                    patterns.push((r.path.clone(), slot));
                    paths.push(PathRoutes {
                        by_method: Vec::new(),
                        allow: HeaderValue::from_static(""),
                    });
                    slot
                }
            };
            for m in &route.methods {
                if let Some((_, other)) = paths[slot].by_method.iter().find(|(om, _)| om == m) {
                    return Err(err(
                        format!("routes[{i}].methods"),
                        format!("`{m} {}` is already routed by `routes[{other}]`", r.path),
                        "remove the method from one of the two routes".into(),
                    ));
                }
                paths[slot].by_method.push((m.clone(), i));
            }
            routes.push(route);
        }
        for p in &mut paths {
            let mut methods: Vec<&str> = p.by_method.iter().map(|(m, _)| m.as_str()).collect();
            if methods.contains(&"GET") && !methods.contains(&"HEAD") {
                methods.push("HEAD");
            }
            if !methods.contains(&"OPTIONS") {
                methods.push("OPTIONS");
            }
            p.allow = HeaderValue::from_str(&methods.join(", "))
                .expect("method tokens are valid header values");
        }
        Ok(Self {
            matcher,
            paths,
            routes,
        })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Route a request by its (still percent-encoded) path and method.
    pub fn at(&self, method: &Method, path: &str) -> Match<'_> {
        let Ok(m) = self.matcher.at(path) else {
            return Match::NotFound;
        };
        let set = &self.paths[*m.value];
        let find = |wanted: &Method| {
            set.by_method
                .iter()
                .find(|(m, _)| m == wanted)
                .map(|(_, i)| &self.routes[*i])
        };
        let (route, head_from_get) = match find(method) {
            Some(r) => (r, false),
            None if method == Method::HEAD => match find(&Method::GET) {
                Some(r) => (r, true),
                None => return Match::MethodNotAllowed { allow: &set.allow },
            },
            None if method == Method::OPTIONS => {
                let first = set.by_method.first().map(|(_, i)| *i).unwrap_or_default();
                return Match::Options {
                    allow: &set.allow,
                    route: &self.routes[first],
                };
            }
            None => return Match::MethodNotAllowed { allow: &set.allow },
        };
        let mut params = Vec::with_capacity(m.params.len());
        for (k, v) in m.params.iter() {
            let Ok(v) = percent_decode_str(v).decode_utf8() else {
                return Match::BadParam;
            };
            params.push((k.to_string(), v.into_owned()));
        }
        Match::Found {
            route,
            params,
            head_from_get,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn router(routes: &str) -> Result<Router, RouteError> {
        let text = format!("[app]\nname = \"t\"\n[components.c]\nsource = \"c.wasm\"\n{routes}");
        let m = Manifest::parse(Path::new("flagon.toml"), &text).unwrap();
        Router::new(&m)
    }

    #[test]
    fn params_catch_all_and_methods() {
        let r = router(
            "[[routes]]\npath = \"/u/{id}\"\ncomponent = \"c\"\n\
             [[routes]]\npath = \"/u/{id}\"\nmethods = [\"POST\", \"DELETE\"]\ncomponent = \"c\"\n\
             [[routes]]\npath = \"/static/{*rest}\"\ncomponent = \"c\"\n",
        )
        .unwrap();
        match r.at(&Method::GET, "/u/a%20b") {
            Match::Found {
                route,
                params,
                head_from_get,
            } => {
                assert_eq!(route.index, 0);
                assert_eq!(params, vec![("id".to_string(), "a b".to_string())]);
                assert!(!head_from_get);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(r.at(&Method::DELETE, "/u/1"), Match::Found { route, .. } if route.index == 1)
        );
        assert!(matches!(
            r.at(&Method::HEAD, "/u/1"),
            Match::Found {
                head_from_get: true,
                ..
            }
        ));
        match r.at(&Method::PUT, "/u/1") {
            Match::MethodNotAllowed { allow } => {
                assert_eq!(allow, "GET, POST, DELETE, HEAD, OPTIONS")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.at(&Method::OPTIONS, "/u/1"),
            Match::Options { .. }
        ));
        assert!(
            matches!(r.at(&Method::GET, "/static/a/b.css"), Match::Found { params, .. } if params[0].1 == "a/b.css")
        );
        assert!(matches!(r.at(&Method::GET, "/nope"), Match::NotFound));
        assert!(matches!(r.at(&Method::GET, "/u/%FF"), Match::BadParam));
    }

    #[test]
    fn duplicate_method_names_both_routes() {
        let err = router("[[routes]]\npath = \"/a\"\ncomponent = \"c\"\n[[routes]]\npath = \"/a\"\ncomponent = \"c\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("routes[1].methods") && err.contains("routes[0]"),
            "{err}"
        );
    }

    #[test]
    fn conflicting_patterns_are_reported() {
        let err = router("[[routes]]\npath = \"/a/{x}\"\ncomponent = \"c\"\n[[routes]]\npath = \"/a/{y}\"\ncomponent = \"c\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("routes[1].path"), "{err}");
    }
}
