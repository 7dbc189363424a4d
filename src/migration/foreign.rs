//! The foreign formats surql imports and adopts from (oneiriq-surql,
//! surrealdb-migrations): their versions as surql's, and a migration read
//! from one of their files, written as a surql file. A leaf both `import`
//! readers and `adopt` share.

use std::path::{Path, PathBuf};

use super::file::{EMPTY_MARKER, parse_migration};
use super::sections::is_blank;

/// Why `import` converted nothing: the source cannot be read or the output
/// folder cannot be made. (A file that cannot be converted is no error: the
/// report names it.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// `--from` names no format surql reads.
    #[error(
        "--from {format}: surql imports `oneiriq` (oneiriq-surql's .surql and .py files) and `surrealdb-migrations` (a project folder with migrations/, schemas/, events/)"
    )]
    UnknownFormat {
        /// What `--from` said.
        format: String,
    },
    /// A source folder or file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The output folder could not be created.
    #[error("cannot create {}: {error}", path.display())]
    Create {
        /// The output folder.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The folder is no surrealdb-migrations project.
    #[error("{}: no migrations/, schemas/ or events/ folder (give the surrealdb-migrations project folder)", path.display())]
    NotAProject {
        /// The folder given.
        path: PathBuf,
    },
}

impl ImportError {
    pub(super) fn read(path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |error| Self::Read { path, error }
    }

    pub(super) fn create(path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |error| Self::Create { path, error }
    }
}

/// What `import` did with each source file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImportReport {
    /// (source, written file).
    pub converted: Vec<(PathBuf, PathBuf)>,
    /// (source, why not): files the tool would apply that surql did not
    /// convert, and files the tool leaves out only by default (tagged `old`).
    pub skipped: Vec<(PathBuf, String)>,
    /// (source, why): files in the folders that the tool itself never
    /// reads as migrations (named so that nothing is dropped unseen).
    pub left_out: Vec<(PathBuf, String)>,
}

/// One migration read from another tool's file.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// surql's version: the source's digits (`0` for surrealdb-migrations'
    /// schemas and events).
    pub version: String,
    /// The file name's part after the version: lowercase letters, digits, `_`.
    pub name: String,
    /// The source's up section.
    pub up: String,
    /// The source's down section; `None` when it has none. An empty one
    /// (no statements) becomes a no-op down only for an empty migration.
    pub down: Option<String>,
}

impl Converted {
    /// The surql file's name and text. An up section without statements
    /// (the tool applied and recorded it all the same) is written as a
    /// deliberate no-op: [`EMPTY_MARKER`].
    pub fn surql_file(&self, source: &Path, tool: &str) -> (String, String) {
        let file = format!("{}_{}.surql", self.version, self.name);
        let empty = is_blank(&self.up);
        let no_op = |text: &str, what: &str| {
            let comments = text.trim();
            let comments = if comments.is_empty() {
                String::new()
            } else {
                format!("{comments}\n")
            };
            format!("{comments}{EMPTY_MARKER} (imported empty migration: nothing to {what})")
        };
        let up = match empty {
            true => no_op(&self.up, "apply"),
            false => self.up.trim_end().to_string(),
        };
        let mut text = format!(
            "-- imported from {tool}: {}\n-- migrate:up\n{up}\n",
            source.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        );
        match &self.down {
            Some(down) if !is_blank(down) => text.push_str(&format!("\n-- migrate:down\n{}\n", down.trim_end())),
            // Rolling back an empty migration undoes nothing, as in the tool.
            Some(down) if empty => text.push_str(&format!("\n-- migrate:down\n{}\n", no_op(down, "undo"))),
            _ => {}
        }
        (file, text)
    }
}

/// Writes `converted` as a surql file in `out` once it passes surql's
/// parser and no file of that name exists; notes either way in `report`.
pub(super) fn write_converted(
    report: &mut ImportReport,
    source: PathBuf,
    converted: &Converted,
    tool: &str,
    out: &Path,
) {
    let (name, text) = converted.surql_file(&source, tool);
    let target = out.join(&name);
    if let Err(error) = parse_migration(&target, &text) {
        report
            .skipped
            .push((source, format!("does not pass surql's parser: {error}")));
        return;
    }
    if target.exists() {
        report
            .skipped
            .push((source, format!("{} exists already; not overwritten", target.display())));
        return;
    }
    match std::fs::write(&target, text) {
        Ok(()) => report.converted.push((source, target)),
        Err(e) => report
            .skipped
            .push((source, format!("cannot write {}: {e}", target.display()))),
    }
}

/// A name surql accepts: lowercase letters, digits and `_`.
pub(super) fn slug(text: &str) -> String {
    let slug: String = text
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let slug = slug.trim_matches('_').to_string();
    if slug.is_empty() { "migration".into() } else { slug }
}

/// oneiriq's version as surql's: its digits (`20260102_120000` →
/// `20260102120000`), as `migrate import` names the file.
pub fn surql_version(foreign: &str) -> Option<String> {
    let digits: String = foreign.chars().filter(|c| *c != '_').collect();
    (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())).then_some(digits)
}

/// surql's version for a `script_migration.script_name`.
pub fn version_of(script_name: &str) -> Option<String> {
    if script_name == "__Initial" {
        return Some("0".into());
    }
    let mut parts = script_name.splitn(3, '_');
    let (date, time) = (parts.next()?, parts.next()?);
    let digits = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_digit());
    (digits(date, 8) && digits(time, 6)).then(|| format!("{date}{time}"))
}
