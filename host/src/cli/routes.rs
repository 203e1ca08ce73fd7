//! `flagon routes`: the route table, like `flask routes`.

use std::path::Path;

use anyhow::Result;

use crate::http::router::Router;
use crate::manifest::Manifest;

pub(super) fn routes(path: &Path) -> Result<()> {
    let manifest = Manifest::load(path)?;
    let router = Router::new(&manifest)?;
    let rows: Vec<[String; 4]> = router
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
                r.component_id.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["Name", "Methods", "Rule", "Component"], &rows)
    );
    Ok(())
}

fn table(header: &[&str; 4], rows: &[[String; 4]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 4]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 3 {
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
