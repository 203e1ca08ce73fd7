//! The app's templates, rendered by the host with minijinja, so no guest has to get escaping
//! right by itself.
//!
//! - Every template is escaped for HTML unless its name ends in `.txt` (plain text) or `.json`
//!   (JSON-escaped). The HTML escaping is stricter than minijinja's default: besides
//!   `& < > " ' /` it escapes `=` and `` ` ``, so a value in an unquoted attribute can at most
//!   add inert attribute names (it can never give an event handler a value). Quote attributes
//!   anyway.
//! - `safe_url` makes a value fit for `href`/`src`: anything with a scheme other than http(s),
//!   mailto or tel (`javascript:`, `data:`, `vbscript:`, ...) becomes a harmless `about:invalid`
//!   URL. The default Content-Security-Policy blocks inline script as a second line.
//! - Globals: `url_for(name, **params)` builds paths from named routes, `csrf_token()` and
//!   `get_flashed_messages()` read the request's session.
//! - All templates are read and compiled at start (a syntax error stops the start, naming the
//!   file and line); development mode re-reads them on every render.
//! - Rendering is bounded by minijinja's fuel, so a template looping over a huge context cannot
//!   hold a worker thread for long.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail};
use minijinja::value::{Kwargs, Object, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::session::Session;
use crate::manifest::Manifest;

/// Largest template file read.
const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;
/// Most template files in an app.
const MAX_TEMPLATES: usize = 10_000;
/// Instructions one render may execute (roughly 0.1-0.5 s of CPU); past it the render fails.
const RENDER_FUEL: u64 = 20_000_000;
/// Where `safe_url` sends a URL with a dangerous scheme.
pub const UNSAFE_URL: &str = "about:invalid#flagon-unsafe-url";

/// Characters left alone in a path segment built by `url_for` (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Route names and patterns for `url_for`, and the first static mount for
/// `url_for("static", filename=...)`.
#[derive(Debug, Default)]
pub struct UrlMap {
    routes: BTreeMap<String, String>,
    static_url: Option<String>,
}

impl UrlMap {
    pub fn new(manifest: &Manifest) -> Self {
        Self {
            routes: manifest
                .routes
                .iter()
                .filter_map(|r| Some((r.name.clone()?, r.path.clone())))
                .collect(),
            static_url: manifest.statics.first().map(|s| s.url.clone()),
        }
    }

    /// The path of route `name` with `params` filled in; parameters the pattern does not use
    /// become the query string.
    pub fn url_for(&self, name: &str, params: &[(String, String)]) -> Result<String, String> {
        let mut used = vec![false; params.len()];
        let mut lookup = |key: &str| {
            params
                .iter()
                .enumerate()
                .find(|(_, (k, _))| k == key)
                .map(|(i, (_, v))| {
                    used[i] = true;
                    v.as_str()
                })
        };
        let mut out = String::new();
        if name == "static" && !self.routes.contains_key("static") {
            let Some(prefix) = &self.static_url else {
                return Err("`url_for(\"static\", ...)` needs a `[[static]]` mount".into());
            };
            let file = lookup("filename").ok_or("`url_for(\"static\")` needs `filename=`")?;
            out.push_str(prefix);
            for seg in file.split('/').filter(|s| !s.is_empty()) {
                dot_segment_check(seg, "filename", name)?;
                out.push('/');
                out.extend(utf8_percent_encode(seg, SEGMENT));
            }
        } else {
            let Some(pattern) = self.routes.get(name) else {
                let known: Vec<&str> = self.routes.keys().map(String::as_str).collect();
                return Err(format!(
                    "no route named `{name}` (named routes: {})",
                    if known.is_empty() {
                        "none; give routes a `name` in the manifest".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            };
            let mut rest = pattern.as_str();
            while let Some(open) = rest.find('{') {
                // `{{` and `}}` are literal braces in matchit patterns.
                if rest[open..].starts_with("{{") {
                    out.push_str(&rest[..open + 1]);
                    rest = &rest[open + 2..];
                    continue;
                }
                out.push_str(&rest[..open].replace("}}", "}"));
                let close = rest[open..]
                    .find('}')
                    .map(|c| open + c)
                    .unwrap_or(rest.len());
                let param = &rest[open + 1..close];
                let (catch_all, key) = match param.strip_prefix('*') {
                    Some(k) => (true, k),
                    None => (false, param),
                };
                let value = lookup(key)
                    .ok_or_else(|| format!("route `{name}` (`{pattern}`) needs `{key}=`"))?;
                if catch_all {
                    // `/` stays a separator here, so a leading one would make `//host`, a
                    // link to another site.
                    if value.starts_with('/') {
                        return Err(format!(
                            "`{key}` in `url_for(\"{name}\")` starts with `/`; pass the path without it"
                        ));
                    }
                    let mut segs = Vec::new();
                    for seg in value.split('/') {
                        dot_segment_check(seg, key, name)?;
                        segs.push(utf8_percent_encode(seg, SEGMENT).to_string());
                    }
                    out.push_str(&segs.join("/"));
                } else {
                    if value.is_empty() {
                        return Err(format!("`{key}` is empty in `url_for(\"{name}\")`"));
                    }
                    dot_segment_check(value, key, name)?;
                    out.extend(utf8_percent_encode(value, SEGMENT));
                }
                rest = &rest[(close + 1).min(rest.len())..];
            }
            out.push_str(&rest.replace("}}", "}"));
        }
        let mut query = form_urlencoded_pairs(
            params
                .iter()
                .zip(&used)
                .filter(|(_, u)| !**u)
                .map(|(p, _)| p),
        );
        if !query.is_empty() {
            query.insert(0, '?');
            out.push_str(&query);
        }
        Ok(out)
    }
}

/// `.` and `..` are left as they are by percent-encoding, and a browser resolves them: a
/// parameter that is one would move the link to another path.
fn dot_segment_check(segment: &str, key: &str, name: &str) -> Result<(), String> {
    if segment == "." || segment == ".." {
        return Err(format!(
            "`{key}` in `url_for(\"{name}\")` has the path segment `{segment}`, which would change the link's path"
        ));
    }
    Ok(())
}

fn form_urlencoded_pairs<'a>(pairs: impl Iterator<Item = &'a (String, String)>) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.extend(utf8_percent_encode(k, SEGMENT));
        out.push('=');
        out.extend(utf8_percent_encode(v, SEGMENT));
    }
    out
}

/// What a render may reach of the current request, passed as the hidden `__flagon` value.
#[derive(Debug, Default)]
pub struct RequestGlobals {
    pub session: Option<Arc<Mutex<Session>>>,
    /// The request's identity on a route with `auth`, shown as `current_user` (`none` without).
    pub current_user: Option<Value>,
}

impl Object for RequestGlobals {}

/// The loaded templates.
pub struct Templates {
    dir: PathBuf,
    urls: Arc<UrlMap>,
    dev: bool,
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("dir", &self.dir)
            .field("dev", &self.dev)
            .finish_non_exhaustive()
    }
}

/// A failed render: a short message for the log line and the guest, and in development mode
/// the full report with the template source around the error.
#[derive(Debug, Clone)]
pub struct RenderError {
    pub summary: String,
    pub detail: String,
}

impl Templates {
    /// Read and compile every template under `dir`. A missing directory is an empty set.
    pub fn load(dir: &Path, urls: Arc<UrlMap>, dev: bool) -> Result<Self> {
        let env = build_env(dir, urls.clone(), dev)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            urls,
            dev,
            env,
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.env.templates().map(|(n, _)| n.to_string()).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    /// Render `name` with a JSON object as context.
    pub fn render_json(
        &self,
        name: &str,
        context_json: &str,
        globals: RequestGlobals,
    ) -> Result<String, RenderError> {
        // Straight into template values: no intermediate `serde_json::Value`.
        let ctx: Value = serde_json::from_str(context_json).map_err(|e| RenderError {
            summary: format!("context for template `{name}` is not valid JSON: {e}"),
            detail: String::new(),
        })?;
        if ctx.kind() != minijinja::value::ValueKind::Map {
            return Err(RenderError {
                summary: format!("context for template `{name}` must be a JSON object"),
                detail: String::new(),
            });
        }
        self.render(name, ctx, globals)
    }

    /// Render `name` with `ctx` (a map).
    pub fn render(
        &self,
        name: &str,
        ctx: Value,
        globals: RequestGlobals,
    ) -> Result<String, RenderError> {
        let reloaded;
        let env = if self.dev {
            reloaded = build_env(&self.dir, self.urls.clone(), true).map_err(|e| RenderError {
                summary: format!("{e:#}"),
                detail: format!("{e:#}"),
            })?;
            &reloaded
        } else {
            &self.env
        };
        let current_user = globals.current_user.clone();
        let ctx = minijinja::context! {
            __flagon => Value::from_object(globals),
            current_user => current_user,
            ..ctx
        };
        env.get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| describe(name, &e))
    }
}

fn describe(name: &str, e: &Error) -> RenderError {
    let mut summary = format!("template `{}`", e.name().unwrap_or(name));
    if let Some(line) = e.line() {
        let _ = write!(summary, " line {line}");
    }
    let _ = write!(summary, ": {}", e.kind());
    if let Some(d) = e.detail() {
        let _ = write!(summary, ": {d}");
    }
    let mut detail = format!("{e:#}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(detail, "\ncaused by: {s:#}");
        source = s.source();
    }
    let _ = write!(detail, "\n{}", e.display_debug_info());
    RenderError { summary, detail }
}

fn build_env(dir: &Path, urls: Arc<UrlMap>, dev: bool) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(auto_escape_for);
    env.set_formatter(strict_formatter);
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_fuel(Some(RENDER_FUEL));
    env.set_debug(dev);
    env.add_filter("safe_url", safe_url);
    env.add_function("url_for", move |name: String, kwargs: Kwargs| {
        let mut params = Vec::new();
        for key in kwargs.args() {
            let v: Value = kwargs.get(key)?;
            params.push((key.to_string(), v.to_string()));
        }
        urls.url_for(&name, &params)
            .map_err(|m| Error::new(ErrorKind::InvalidOperation, m))
    });
    env.add_function("csrf_token", |state: &State| -> Result<Value, Error> {
        let session = request_session(state, "csrf_token()")?;
        let token = lock(&session).csrf_token();
        Ok(Value::from(token))
    });
    env.add_function(
        "get_flashed_messages",
        |state: &State| -> Result<Value, Error> {
            let session = request_session(state, "get_flashed_messages()")?;
            let flashes = lock(&session).take_flashes();
            Ok(Value::from_iter(flashes.into_iter().map(
                |(category, message)| {
                    minijinja::context! { category, message }
                },
            )))
        },
    );

    if !dir.exists() {
        return Ok(env);
    }
    let mut files = Vec::new();
    collect(dir, dir, &mut files)
        .with_context(|| format!("cannot read templates from `{}`", dir.display()))?;
    if files.len() > MAX_TEMPLATES {
        bail!(
            "`{}` holds more than {MAX_TEMPLATES} templates",
            dir.display()
        );
    }
    for (name, path) in files {
        let meta = std::fs::metadata(&path)
            .with_context(|| format!("cannot read template `{}`", path.display()))?;
        if meta.len() > MAX_TEMPLATE_BYTES {
            bail!("template `{}` is larger than 1 MiB", path.display());
        }
        let source = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read template `{}` (is it UTF-8?)", path.display()))?;
        if is_html(&name)
            && let Err((line, why)) = json_outside_safe_contexts(&source)
        {
            bail!("template `{}` line {line}: {why}", path.display());
        }
        env.add_template_owned(name.clone(), source).map_err(|e| {
            anyhow::anyhow!(
                "template `{}` line {}: {}",
                path.display(),
                e.line().unwrap_or(0),
                e.detail()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.kind().to_string())
            )
        })?;
    }
    Ok(env)
}

fn is_html(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".html") || lower.ends_with(".htm")
}

/// `tojson` output is JSON: safe as text, in a `<script>` and in a single-quoted attribute
/// (it escapes `<`, `>`, `&` and `'`), but its own `"` would end a double-quoted attribute
/// and its spaces an unquoted one, letting the value write attributes of its own. The HTML
/// escaper cannot help (the output must stay JSON for scripts), so such templates are
/// refused when they load. A light scan of the template's HTML: tags, quoted attribute
/// values, comments and `<script>`/`<style>` text, with `{% %}` and `{# #}` skipped.
fn json_outside_safe_contexts(source: &str) -> Result<(), (usize, &'static str)> {
    #[derive(PartialEq)]
    enum At {
        Text,
        Tag,
        Double,
        Single,
        Comment,
        RawText(&'static str),
    }
    let mut at = At::Text;
    let bytes = source.as_bytes();
    let mut i = 0;
    let line = |i: usize| source[..i].matches('\n').count() + 1;
    while i < bytes.len() {
        let rest = &source[i..];
        if rest.starts_with("{%") || rest.starts_with("{#") {
            let close = if rest.starts_with("{%") { "%}" } else { "#}" };
            i += rest.find(close).map_or(rest.len(), |e| e + 2);
            continue;
        }
        if let Some(expr) = rest.strip_prefix("{{") {
            let end = expr.find("}}").unwrap_or(expr.len());
            if expr[..end].contains("tojson") && matches!(at, At::Tag | At::Double) {
                return Err((
                    line(i),
                    "`tojson` inside a double-quoted or unquoted attribute: its quotes or spaces would end the value; use single quotes, e.g. `data-v='{{ v|tojson }}'`",
                ));
            }
            i += 2 + end + 2;
            continue;
        }
        let b = bytes[i];
        at = match at {
            At::Text if rest.starts_with("<!--") => At::Comment,
            At::Text if b == b'<' && bytes.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic()) => {
                let tag = rest[1..].split(|c: char| !c.is_ascii_alphanumeric()).next();
                match tag.map(str::to_ascii_lowercase).as_deref() {
                    Some("script") => At::RawText("</script"),
                    Some("style") => At::RawText("</style"),
                    _ => At::Tag,
                }
            }
            At::Text if rest.starts_with("</") => At::Tag,
            At::Tag if b == b'"' => At::Double,
            At::Tag if b == b'\'' => At::Single,
            At::Tag if b == b'>' => At::Text,
            At::Double if b == b'"' => At::Tag,
            At::Single if b == b'\'' => At::Tag,
            At::Comment if rest.starts_with("-->") => {
                i += 3;
                At::Text
            }
            // The script's own opening tag is scanned as a tag until its `>`; after it,
            // only the closing tag ends the raw text.
            At::RawText(end)
                if rest.len() >= end.len() && rest[..end.len()].eq_ignore_ascii_case(end) =>
            {
                At::Tag
            }
            other => other,
        };
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    Ok(())
}

/// Template files under `dir`, named by their `/`-separated path. Dotfiles and dot-directories
/// are skipped; symlinks are followed only if they stay inside `root`.
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    let canonical_root = root.canonicalize()?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let real = path.canonicalize()?;
        if !real.starts_with(&canonical_root) {
            continue;
        }
        if real.is_dir() {
            collect(root, &path, out)?;
        } else if real.is_file() {
            let rel = path
                .strip_prefix(root)
                .map_err(std::io::Error::other)?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
        if out.len() > MAX_TEMPLATES {
            break;
        }
    }
    Ok(())
}

fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|p| p.into_inner())
}

fn request_session(state: &State, what: &str) -> Result<Arc<Mutex<Session>>, Error> {
    state
        .lookup("__flagon")
        .and_then(|v| {
            v.downcast_object_ref::<RequestGlobals>()
                .and_then(|g| g.session.clone())
        })
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("{what} needs the session: add `session = true` to the component's grants"),
            )
        })
}

/// `.txt` templates are plain text, `.json` JSON-escaped, everything else HTML-escaped.
fn auto_escape_for(name: &str) -> AutoEscape {
    let name = name
        .strip_suffix(".j2")
        .or_else(|| name.strip_suffix(".jinja"))
        .unwrap_or(name);
    match name.rsplit('.').next() {
        Some("txt" | "text") => AutoEscape::None,
        Some("json") => AutoEscape::Json,
        _ => AutoEscape::Html,
    }
}

/// HTML escaping that is safe in text, quoted and unquoted attributes.
fn strict_formatter(
    out: &mut minijinja::Output,
    state: &mut State,
    value: &Value,
) -> Result<(), Error> {
    if *state.auto_escape() != AutoEscape::Html || value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    if value.is_undefined() || value.is_none() {
        return minijinja::escape_formatter(out, state, value);
    }
    let text;
    let s = match value.as_str() {
        Some(s) => s,
        None => {
            text = value.to_string();
            &text
        }
    };
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&#34;",
            b'\'' => "&#39;",
            b'/' => "&#47;",
            b'`' => "&#96;",
            b'=' => "&#61;",
            _ => continue,
        };
        out.write_str(&s[last..i])?;
        out.write_str(rep)?;
        last = i + 1;
    }
    out.write_str(&s[last..])?;
    Ok(())
}

/// Make a value safe to place in a URL attribute.
pub fn safe_url(value: &str) -> String {
    // Browsers ignore ASCII whitespace and control characters inside a scheme
    // (`java\tscript:`), so look at the value without them.
    let squeezed: String = value
        .chars()
        .filter(|c| !c.is_ascii_control() && *c != ' ')
        .collect();
    let head = squeezed.split(['/', '?', '#']).next().unwrap_or("");
    match head.split_once(':') {
        None => value.to_string(),
        Some((scheme, _)) => {
            let scheme = scheme.to_ascii_lowercase();
            if matches!(scheme.as_str(), "http" | "https" | "mailto" | "tel") {
                value.to_string()
            } else {
                UNSAFE_URL.to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(templates: &[(&str, &str)]) -> (tempfile::TempDir, Templates) {
        let dir = tempfile::tempdir().unwrap();
        for (name, src) in templates {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, src).unwrap();
        }
        let manifest = Manifest::parse(
            Path::new("flagon.toml"),
            r#"
[app]
name = "t"
[components.c]
source = "c.wasm"
[[routes]]
path = "/users/{id}/files/{*path}"
component = "c"
name = "user_file"
[[routes]]
path = "/"
component = "c"
name = "index"
[[static]]
url = "/static"
dir = "static"
"#,
        )
        .unwrap();
        let t = Templates::load(dir.path(), Arc::new(UrlMap::new(&manifest)), false).unwrap();
        (dir, t)
    }

    fn render(t: &Templates, name: &str, ctx: &str) -> Result<String, RenderError> {
        t.render_json(name, ctx, RequestGlobals::default())
    }

    #[test]
    fn escapes_for_every_html_context() {
        let (_d, t) = env_with(&[("x.html", "<p>{{ v }}</p><a title={{ v }}>")]);
        let out = render(&t, "x.html", r#"{"v": "a onmouseover=alert(1) \"'<b>`"}"#).unwrap();
        assert!(!out.contains("<b>"), "{out}");
        assert!(!out.contains("onmouseover="), "{out}");
        assert!(!out.contains("=alert"), "{out}");
        assert!(out.contains("a onmouseover&#61;alert(1)"), "{out}");
    }

    #[test]
    fn plain_text_and_json_templates() {
        let (_d, t) = env_with(&[
            ("m.txt", "Hi {{ v }}"),
            ("d.json", "{\"v\": {{ v }}}"),
            ("s.html", "<script>const v = {{ v|tojson }};</script>"),
        ]);
        assert_eq!(render(&t, "m.txt", r#"{"v": "<b>"}"#).unwrap(), "Hi <b>");
        let json = render(&t, "d.json", r#"{"v": "a\"b"}"#).unwrap();
        assert_eq!(json, r#"{"v": "a\"b"}"#);
        // In a script context `tojson` keeps the value from closing the script element.
        let script = render(&t, "s.html", r#"{"v": "</script><script>alert(1)//"}"#).unwrap();
        assert_eq!(script.matches("</script>").count(), 1, "{script}");
    }

    #[test]
    fn inheritance_includes_and_errors_name_template_and_line() {
        let (_d, t) = env_with(&[
            (
                "base.html",
                "<title>{% block title %}{% endblock %}</title>{% include \"part.html\" %}",
            ),
            ("part.html", "<i>{{ v }}</i>"),
            (
                "page.html",
                "{% extends \"base.html\" %}{% block title %}T{{ v }}{% endblock %}",
            ),
            ("bad.html", "line1\n{{ missing.attr }}"),
        ]);
        assert_eq!(
            render(&t, "page.html", r#"{"v": 1}"#).unwrap(),
            "<title>T1</title><i>1</i>"
        );
        let e = render(&t, "bad.html", "{}").unwrap_err();
        assert!(
            e.summary.contains("bad.html") && e.summary.contains("line 2"),
            "{}",
            e.summary
        );
        assert!(render(&t, "nope.html", "{}").is_err());
        assert!(render(&t, "page.html", "[1]").is_err());
    }

    #[test]
    fn syntax_errors_stop_the_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.html"), "ok\n{% if %}").unwrap();
        let e = Templates::load(dir.path(), Arc::default(), false).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("a.html") && e.contains("line 2"), "{e}");
        // So does `tojson` where its quotes would end an attribute.
        let dir = tempfile::tempdir().unwrap();
        let page = "<p>\n<div data-v=\"{{ v|tojson }}\"></div>";
        std::fs::write(dir.path().join("p.html"), page).unwrap();
        let e = Templates::load(dir.path(), Arc::default(), false).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("p.html") && e.contains("line 2") && e.contains("single quotes"),
            "{e}"
        );
    }

    #[test]
    fn safe_url_refuses_script_schemes() {
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html,<script>",
            "vbscript:x",
        ] {
            assert_eq!(safe_url(bad), UNSAFE_URL, "{bad}");
        }
        for ok in [
            "https://x.example/a",
            "/path",
            "page?x=a:b",
            "mailto:a@b",
            "#frag",
        ] {
            assert_eq!(safe_url(ok), ok);
        }
        let (_d, t) = env_with(&[("u.html", "<a href=\"{{ v|safe_url }}\">")]);
        let out = render(&t, "u.html", r#"{"v": "javascript:alert(1)"}"#).unwrap();
        assert!(out.contains("about:invalid"), "{out}");
    }

    #[test]
    fn url_for_builds_encoded_paths() {
        let (_d, t) = env_with(&[(
            "l.html",
            "{{ url_for('user_file', id='a b', path='x/y z', page=2) }}|{{ url_for('static', filename='css/app.css') }}|{{ url_for('index') }}",
        )]);
        assert_eq!(
            render(&t, "l.html", "{}").unwrap(),
            "&#47;users&#47;a%20b&#47;files&#47;x&#47;y%20z?page&#61;2|&#47;static&#47;css&#47;app.css|&#47;"
        );
        let (_d, t) = env_with(&[("l.html", "{{ url_for('user_file', id='1') }}")]);
        let e = render(&t, "l.html", "{}").unwrap_err();
        assert!(e.summary.contains("needs `path=`"), "{}", e.summary);
    }

    #[test]
    fn tojson_only_where_its_quotes_cannot_end_an_attribute() {
        for ok in [
            "<script>const v = {{ v|tojson }};</script>",
            "<div data-v='{{ v|tojson }}'>x</div>",
            "<p>{{ v|tojson }}</p>",
            "<script type=\"application/json\">{{ v|tojson }}</script>",
            "<!-- \" --><p title=\"a\">{{ v|tojson }}</p>",
            "<a href=\"/x\" data-v='{{ tojson(v) }}'>{% if a %}\"{% endif %}</a>",
            "<p title=\"{{ v }}\">{{ v|tojson }}</p>",
        ] {
            assert_eq!(json_outside_safe_contexts(ok), Ok(()), "{ok}");
        }
        for bad in [
            "<div data-v=\"{{ v|tojson }}\">",
            "<div data-v={{ v|tojson }}>",
            "<div\n  data-v=\"{{ v | tojson }}\">",
            "<script>x</script><div title=\"{{ v|tojson(indent=2) }}\">",
        ] {
            assert!(json_outside_safe_contexts(bad).is_err(), "{bad}");
        }
        assert_eq!(
            json_outside_safe_contexts("<p>\n\n<div data-v=\"{{ v|tojson }}\">")
                .unwrap_err()
                .0,
            3
        );
    }

    #[test]
    fn url_for_refuses_dot_segments_and_other_sites() {
        for (call, says) in [
            (
                "url_for('user_file', id='1', path='/evil.example')",
                "starts with `/`",
            ),
            (
                "url_for('user_file', id='1', path='//evil.example/x')",
                "starts with `/`",
            ),
            ("url_for('user_file', id='..', path='x')", "`..`"),
            ("url_for('user_file', id='.', path='x')", "`.`"),
            ("url_for('user_file', id='1', path='a/../../admin')", "`..`"),
            ("url_for('user_file', id='1', path='./x')", "`.`"),
            ("url_for('static', filename='../flagon.toml')", "`..`"),
        ] {
            let (_d, t) = env_with(&[("l.html", &format!("{{{{ {call} }}}}"))]);
            let e = render(&t, "l.html", "{}").unwrap_err();
            assert!(e.summary.contains(says), "{call}: {}", e.summary);
        }
        // Dots inside a segment are ordinary characters.
        let (_d, t) = env_with(&[(
            "l.html",
            "{{ url_for('user_file', id='v1.2', path='a/..b/c.') }}",
        )]);
        assert_eq!(
            render(&t, "l.html", "{}").unwrap(),
            "&#47;users&#47;v1.2&#47;files&#47;a&#47;..b&#47;c."
        );
    }

    #[test]
    fn session_globals_need_the_grant() {
        let (_d, t) = env_with(&[("c.html", "{{ csrf_token() }}")]);
        let e = render(&t, "c.html", "{}").unwrap_err();
        assert!(e.summary.contains("session = true"), "{}", e.summary);
    }

    #[test]
    fn fuel_bounds_runaway_templates() {
        let (_d, t) = env_with(&[(
            "loop.html",
            "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}",
        )]);
        assert!(render(&t, "loop.html", "{}").is_err());
    }
}
