//! `docs/tutorial.md` builds `examples/todo` step by step, and its code is the example's code:
//! every code block of a source language is preceded by `<!-- file: <path> -->` and appears,
//! verbatim, in that file. So the tutorial and the example never drift; change one and this
//! test says which block to change in the other.

use std::path::Path;

/// Languages whose blocks must be the example's code. Shell sessions and output (`sh`,
/// `console`, `text`) are free.
const CHECKED: &[&str] = &["rust", "toml", "sql", "html", "jinja", "css"];

struct Block {
    line: usize,
    lang: String,
    file: Option<String>,
    code: String,
}

fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    let mut lines = md.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("<!-- file:") {
            marker = Some(rest.trim_end_matches("-->").trim().to_string());
            continue;
        }
        if let Some(lang) = t.strip_prefix("```") {
            let mut code = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
                code.push_str(l);
                code.push('\n');
            }
            out.push(Block {
                line: i + 1,
                lang: lang.trim().to_string(),
                file: marker.take(),
                code,
            });
        } else if !t.is_empty() {
            // A marker names the block right after it, with nothing but blank lines between.
            marker = None;
        }
    }
    out
}

#[test]
fn every_tutorial_block_is_the_examples_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let md = std::fs::read_to_string(root.join("docs/tutorial.md")).unwrap();
    let blocks = blocks(&md);
    assert!(
        blocks.len() >= 10,
        "the tutorial has {} code blocks",
        blocks.len()
    );
    let mut wrong = Vec::new();
    for b in &blocks {
        let Some(file) = &b.file else {
            if CHECKED.contains(&b.lang.as_str()) {
                wrong.push(format!(
                    "docs/tutorial.md:{}: a ```{} block without `<!-- file: examples/todo/... -->` before it",
                    b.line, b.lang
                ));
            }
            continue;
        };
        assert!(
            file.starts_with("examples/todo/"),
            "docs/tutorial.md:{}: `{file}` is not in examples/todo",
            b.line
        );
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("docs/tutorial.md:{}: cannot read `{file}`: {e}", b.line));
        if !text.contains(b.code.trim_end()) {
            wrong.push(format!(
                "docs/tutorial.md:{}: the block is not in `{file}` as written; copy it from the file again",
                b.line
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
