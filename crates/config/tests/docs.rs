//! Keeps `docs/configuration.md` honest: its complete examples must load without a single
//! message, and its diagnostic examples must produce exactly the output the page shows.
//!
//! Markers in the page (HTML comments, invisible when rendered):
//! - `<!-- example: PATH -->` before a ```toml block: one file of the complete configuration.
//! - `<!-- diagnostics: PATH -->` before a ```toml block: one file of a problem case; the next
//!   ```text block is the expected output of loading the files of that case together.

// Test helpers outside `#[test]` functions may panic too: a panic is a test failure here.
#![allow(clippy::panic)]

use std::path::{Path, PathBuf};

use dynamod_config::{Config, load_sources};

/// One marked block.
#[derive(Debug)]
enum Block {
    Example(PathBuf, String),
    Diagnostic(PathBuf, String),
    Expected(String),
}

/// The marked blocks of the page, in order.
fn blocks(page: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = page.lines();
    let mut pending: Option<(bool, PathBuf)> = None;
    let mut after_diagnostic = false;
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("<!-- example: ") {
            pending = Some((true, PathBuf::from(rest.trim_end_matches(" -->"))));
        } else if let Some(rest) = line.strip_prefix("<!-- diagnostics: ") {
            pending = Some((false, PathBuf::from(rest.trim_end_matches(" -->"))));
        } else if line == "```toml" || line == "```text" {
            let body: String = lines
                .by_ref()
                .take_while(|l| *l != "```")
                .map(|l| format!("{l}\n"))
                .collect();
            match (line, pending.take()) {
                ("```toml", Some((true, path))) => out.push(Block::Example(path, body)),
                ("```toml", Some((false, path))) => {
                    after_diagnostic = true;
                    out.push(Block::Diagnostic(path, body));
                }
                ("```text", _) if after_diagnostic => {
                    after_diagnostic = false;
                    out.push(Block::Expected(body));
                }
                _ => {}
            }
        }
    }
    out
}

/// Loads files, sorting them into the two directories by path.
fn load(files: Vec<(PathBuf, String)>) -> Config {
    let (sups, svcs): (Vec<_>, Vec<_>) = files
        .into_iter()
        .map(|(p, t)| (p, t.into_bytes()))
        .partition(|(p, _)| p.to_string_lossy().contains("/supervisors/"));
    load_sources(svcs, sups)
}

fn page() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn complete_examples_load_without_any_message() {
    let examples: Vec<(PathBuf, String)> = blocks(&page())
        .into_iter()
        .filter_map(|b| match b {
            Block::Example(p, t) => Some((p, t)),
            _ => None,
        })
        .collect();
    assert!(examples.len() >= 5, "the page lost its examples");
    let count = examples.len();
    let config = load(examples);
    let shown: Vec<String> = config.diagnostics.iter().map(ToString::to_string).collect();
    assert!(shown.is_empty(), "{}", shown.join("\n"));
    assert!(config.invalid.is_empty());
    assert_eq!(config.services.len() + config.supervisors.len() - 1, count);
}

#[test]
fn diagnostic_examples_print_exactly_what_the_page_shows() {
    let mut group = Vec::new();
    let mut checked = 0;
    for block in blocks(&page()) {
        match block {
            Block::Diagnostic(path, text) => group.push((path, text)),
            Block::Expected(want) => {
                let config = load(std::mem::take(&mut group));
                let got: String = config
                    .diagnostics
                    .iter()
                    .map(|d| format!("{d}\n"))
                    .collect();
                assert_eq!(got, want);
                checked += 1;
            }
            Block::Example(..) => {}
        }
    }
    assert!(checked >= 2, "the page lost its diagnostic examples");
    assert!(
        group.is_empty(),
        "a diagnostics block has no expected output after it"
    );
}
