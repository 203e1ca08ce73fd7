//! `flagon routes`: the route table, like `flask routes`.

use std::path::Path;

use anyhow::Result;

use crate::http::router::Router;
use crate::manifest::Manifest;

pub(super) fn routes(path: &Path) -> Result<()> {
    let manifest = Manifest::load(path)?;
    let router = Router::new(&manifest)?;
    let rows: Vec<[String; 5]> = router
        .routes()
        .iter()
        .map(|r| {
            let mut methods: Vec<String> = r.methods.iter().map(ToString::to_string).collect();
            if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
                methods.push("HEAD".into());
            }
            [
                r.name.as_deref().unwrap_or("-").to_string(),
                methods.join(", "),
                r.path.clone(),
                auth(&manifest, r),
                r.component_id.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["Name", "Methods", "Rule", "Auth", "Component"], &rows)
    );
    Ok(())
}

/// What a route asks of the request: `-`, or `required`/`optional` with its roles and
/// authenticators, e.g. `required roles=admin by=jwt,session`.
fn auth(manifest: &Manifest, r: &crate::http::router::Route) -> String {
    let Some(mode) = r.auth else {
        return "-".into();
    };
    let mut out = match mode {
        crate::manifest::AuthMode::Required => "required".to_string(),
        crate::manifest::AuthMode::Optional => "optional".to_string(),
    };
    if !r.roles.is_empty() {
        out.push_str(&format!(" roles={}", r.roles.join(",")));
    }
    out.push_str(&format!(
        " by={}",
        manifest.route_authenticators(r.index).join(",")
    ));
    out
}

fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; N]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == N - 1 {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(*header);
    out.push_str(&line(
        widths.map(|w| "-".repeat(w)).each_ref().map(String::as_str),
    ));
    for row in rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}
