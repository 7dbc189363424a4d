//! The architecture holds: every `crate::` import in `src/` goes down the
//! layers (docs/development.md, "Layout"), no source file (the library's or
//! the CLI's) grows past 600 lines, the Layout table names every module, and
//! the library depends on nothing of the command line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::path::{Path, PathBuf};

/// Modules from the bottom up; a module may import only lower ranks.
/// `error` is split: its exit-code constants are usable everywhere, its
/// `Error` (which wraps every layer's error) only from the top.
const LAYERS: &[(&str, u8)] = &[
    ("concurrent", 0),
    ("exit", 0),
    ("redact", 0),
    ("connection", 1),
    ("migration", 2),
    ("policy", 2),
    ("safety", 3),
    ("registry", 3),
    ("health", 4),
    ("plugin", 4),
    ("config", 5),
    ("discovery", 6),
    ("engine", 7),
    ("script", 8),
    ("state", 8),
    ("coordinator", 9),
    ("observe", 9),
    ("error", 10),
];

fn rank(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, rank)| *rank)
}

fn source_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/engine/undo.rs` → `engine`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// `crate::name` uses outside comments and `#[cfg(test)]` modules.
fn imports(text: &str) -> Vec<(usize, String, String)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("mod tests") || line.contains("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let after: String = rest[name.len()..].chars().take(9).collect();
            found.push((index + 1, name, after));
        }
    }
    found
}

#[test]
fn every_import_goes_down_the_layers() {
    let src = crate::common::repo().join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let Some(own) = rank(&module) else {
            assert!(
                ["lib", "fuzz"].contains(&module.as_str()),
                "{} is not in LAYERS: add it here and to the Layout table of docs/development.md",
                file.display()
            );
            continue;
        };
        for (line, name, after) in imports(&std::fs::read_to_string(file).unwrap()) {
            let allowed = match (name.as_str(), rank(&name)) {
                // Root re-exports are the public API, for callers above.
                (_, None) => own >= rank("coordinator").unwrap(),
                ("error", _) if after.starts_with("::EXIT_") || after.starts_with("::{EXIT_") => true,
                (_, Some(theirs)) => name == module || theirs < own,
            };
            if !allowed {
                wrong.push(format!("{}:{line}: {module} uses crate::{name}{after}", file.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "imports that go up the layers:\n{}", wrong.join("\n"));
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut files = Vec::new();
    source_files(&crate::common::repo().join("src"), &mut files);
    source_files(&crate::common::repo().join("cli/src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).unwrap().lines().count();
            (lines > 600).then(|| format!("{}: {lines} lines", file.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these by concern:\n{}", long.join("\n"));
}

#[test]
fn the_layout_table_names_every_module() {
    let root = crate::common::repo();
    let chapter = std::fs::read_to_string(root.join("docs/development.md")).unwrap();
    let layout = &chapter[chapter
        .find("## Layout")
        .expect("docs/development.md has a Layout section")..];
    for (module, _) in LAYERS {
        let (dir, file) = (format!("`src/{module}/`"), format!("`src/{module}.rs`"));
        assert!(
            layout.contains(&dir) || layout.contains(&file),
            "the Layout table of docs/development.md does not name src/{module}"
        );
    }
}

/// A program using the library compiles no command line: clap, the
/// terminal output crates and the allocator belong to `surql-cli`.
#[test]
fn the_library_has_no_cli_dependencies() {
    let manifest = std::fs::read_to_string(crate::common::repo().join("Cargo.toml")).unwrap();
    let start = manifest
        .find("\n[dependencies]")
        .expect("Cargo.toml has [dependencies]");
    let section = &manifest[start + 1..];
    let section = &section[..section[1..].find("\n[").map_or(section.len(), |end| end + 1)];
    for crate_name in [
        "clap",
        "clap_complete",
        "clap_mangen",
        "indicatif",
        "comfy-table",
        "tikv-jemallocator",
    ] {
        assert!(
            !section.lines().any(|line| line.starts_with(&format!("{crate_name} "))),
            "the library depends on {crate_name}: it belongs to cli/Cargo.toml"
        );
    }
}

/// Each source file as a module path (`engine::wave`; `engine` for its
/// `mod.rs`), with its text before any `#[cfg(test)]` and without comments.
fn modules(src: &Path) -> std::collections::BTreeMap<String, String> {
    let mut files = Vec::new();
    source_files(src, &mut files);
    let mut modules = std::collections::BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        if parts == ["lib"] || parts == ["main"] {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: Vec<&str> = text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect();
        modules.insert(parts.join("::"), code.join("\n"));
    }
    modules
}

/// The first name of each path in a `use super::{…}` group (its text after
/// the `{`): `a::x, b::{c}, d}` → a, b, d.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let (mut depth, mut at_start) = (1, true);
    let mut name = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 1 => break,
            '}' => depth -= 1,
            ',' if depth == 1 => at_start = true,
            c if at_start && depth == 1 && (c.is_alphanumeric() || c == '_') => name.push(c),
            _ if !name.is_empty() => {
                heads.push(std::mem::take(&mut name));
                at_start = false;
            }
            _ => {}
        }
    }
    if !name.is_empty() {
        heads.push(name);
    }
    heads
}

/// Which sibling modules each module uses: `super::NAME`, names inside
/// `use super::{…}`, and `crate::FOLDER::NAME` (top level: `crate::NAME`).
fn sibling_uses(
    modules: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let parent_of = |module: &str| module.rsplit_once("::").map_or(String::new(), |(p, _)| p.to_string());
    let mut uses = std::collections::BTreeMap::new();
    for (module, text) in modules {
        let parent = parent_of(module);
        let sibling = |name: &str| {
            let path = if parent.is_empty() {
                name.to_string()
            } else {
                format!("{parent}::{name}")
            };
            (path != *module && modules.contains_key(&path)).then_some(path)
        };
        let mut names: Vec<String> = Vec::new();
        for (at, _) in text.match_indices("super::") {
            let after = &text[at + "super::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                names.extend(group_heads(group));
            } else {
                names.push(after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
            }
        }
        let prefix = if parent.is_empty() {
            "crate::".to_string()
        } else {
            format!("crate::{parent}::")
        };
        for (at, _) in text.match_indices(&prefix) {
            names.push(
                text[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
        let mut targets: Vec<String> = names.iter().filter_map(|n| sibling(n)).collect();
        targets.sort();
        targets.dedup();
        uses.insert(module.clone(), targets);
    }
    uses
}

fn circles(uses: &std::collections::BTreeMap<String, Vec<String>>) -> Vec<String> {
    // A module is on a circle when it can reach itself.
    let mut circles = Vec::new();
    for start in uses.keys() {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        while let Some((module, path)) = stack.pop() {
            for next in &uses[&module] {
                if next == start {
                    circles.push(format!("{} → {start}", path.join(" → ")));
                    stack.clear();
                    break;
                }
                if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    circles
}

/// No two modules of one folder (or two top-level modules) use each other,
/// directly or round a circle: shared pieces go in a leaf module both use.
#[test]
fn no_module_circles() {
    let uses = sibling_uses(&modules(&crate::common::repo().join("src")));
    let circles = circles(&uses);
    assert!(
        circles.is_empty(),
        "modules that use each other:\n{}",
        circles.join("\n")
    );
}

/// The circle check finds a circle where there is one.
#[test]
fn the_circle_check_sees_a_circle() {
    let modules: std::collections::BTreeMap<String, String> = [
        ("a::x", "use super::y::Thing;"),
        ("a::y", "use super::{z::Other, w};"),
        ("a::z", "fn f() { crate::a::x::g() }"),
        ("a::w", ""),
    ]
    .into_iter()
    .map(|(m, t)| (m.to_string(), t.to_string()))
    .collect();
    let uses = sibling_uses(&modules);
    assert_eq!(uses["a::x"], ["a::y"]);
    assert_eq!(uses["a::y"], ["a::w", "a::z"]);
    assert_eq!(uses["a::z"], ["a::x"]);
    assert_eq!(circles(&uses).len(), 3, "x → y → z → x, seen from each");
    let mut broken = uses.clone();
    broken.insert("a::z".into(), Vec::new());
    assert!(circles(&broken).is_empty());
}
