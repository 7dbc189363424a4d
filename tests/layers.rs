//! The architecture holds: every `crate::` import in `src/` goes down the
//! layers (README "Layout"), no source file grows past 600 lines, and the
//! Layout table names every module.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::path::{Path, PathBuf};

/// Modules from the bottom up; a module may import only lower ranks.
/// `error` is split: its exit-code constants are usable everywhere, its
/// `Error` (which wraps every layer's error) only from the top.
const LAYERS: &[(&str, u8)] = &[
    ("concurrent", 0),
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
    ("cli", 11),
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
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let Some(own) = rank(&module) else {
            assert!(
                ["lib", "main", "fuzz"].contains(&module.as_str()),
                "{} is not in LAYERS: add it here and to README's Layout table",
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
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let layout = &readme[readme.find("## Layout").expect("README has a Layout section")..];
    for (module, _) in LAYERS {
        let (dir, file) = (format!("`src/{module}/`"), format!("`src/{module}.rs`"));
        assert!(
            layout.contains(&dir) || layout.contains(&file),
            "README's Layout table does not name src/{module}"
        );
    }
}
