//! `migrate import`: another tool's migration files as surql files, each
//! keeping its version (as digits: `20260102_120000` → `20260102120000`, the
//! version `adopt` matches) and passing surql's own parser before it is
//! written. What cannot be converted is reported by name, never half-written.
//!
//! Formats: `oneiriq` — oneiriq-surql's Rust `.surql` files (`-- @up`,
//! `-- @down`, optional `-- @metadata`) and its Python `.py` files whose
//! `up()`/`down()` return literal lists of SurrealQL strings (read as text,
//! never run); `surrealdb-migrations` — see [`super::import_sm`].

use std::path::{Path, PathBuf};

pub use super::foreign::{Converted, ImportError, ImportReport};
use super::foreign::{slug, surql_version, write_converted};
use super::import_py::{PythonError, dict_string, returned_list};

/// Converts every migration file of `format` in `source` into `out`.
pub fn import(format: &str, source: &Path, out: &Path) -> Result<ImportReport, ImportError> {
    match format {
        "oneiriq" => import_oneiriq(source, out),
        "surrealdb-migrations" => super::import_sm::import(source, out),
        other => Err(ImportError::UnknownFormat { format: other.into() }),
    }
}

fn import_oneiriq(source: &Path, out: &Path) -> Result<ImportReport, ImportError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(source)
        .map_err(ImportError::read(source))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    std::fs::create_dir_all(out).map_err(ImportError::create(out))?;
    let mut report = ImportReport::default();
    for path in entries {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let converted = match path.extension().and_then(|e| e.to_str()) {
            _ if path.is_dir() => {
                report.left_out.push((
                    path,
                    "a folder: oneiriq-surql reads only the top level of its migrations folder".into(),
                ));
                continue;
            }
            _ if file_name.starts_with('_') => {
                report.left_out.push((
                    path,
                    "starts with `_`: oneiriq-surql does not read it as a migration".into(),
                ));
                continue;
            }
            Some("surql") => oneiriq_surql(&path),
            Some("py") => oneiriq_python(&path),
            _ => {
                report
                    .left_out
                    .push((path, "neither .py nor .surql: not an oneiriq-surql migration".into()));
                continue;
            }
        };
        match converted {
            Ok(converted) => write_converted(&mut report, path, &converted, "oneiriq-surql", out),
            Err(why) => report.skipped.push((path, why.to_string())),
        }
    }
    Ok(report)
}

/// Why one oneiriq-surql file is not converted (its reason in the report).
#[derive(Debug, thiserror::Error)]
enum NotConverted {
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    #[error("no `-- @up` line: not an oneiriq-surql migration")]
    NoUpSection,
    #[error("no version: neither a `version` in its metadata nor a YYYYMMDD_HHMMSS_name file name")]
    NoVersion,
    #[error("version '{0}' is not digits (and '_'): surql versions are numbers")]
    NotDigits(String),
    #[error(transparent)]
    Python(#[from] PythonError),
}

/// `YYYYMMDD_HHMMSS_desc` → (version, desc).
fn from_file_name(stem: &str) -> Option<(String, String)> {
    let mut parts = stem.splitn(3, '_');
    let (date, time, rest) = (parts.next()?, parts.next()?, parts.next().unwrap_or("migration"));
    let digits = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_digit());
    (digits(date, 8) && digits(time, 6)).then(|| (format!("{date}_{time}"), rest.to_string()))
}

fn version_and_name(
    version: Option<String>,
    description: Option<String>,
    path: &Path,
) -> Result<(String, String), NotConverted> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let from_name = from_file_name(&stem);
    let version = version
        .or_else(|| from_name.as_ref().map(|(v, _)| v.clone()))
        .ok_or(NotConverted::NoVersion)?;
    let digits = surql_version(&version).ok_or_else(|| NotConverted::NotDigits(version.clone()))?;
    let name = from_name
        .map(|(_, rest)| rest)
        .or(description)
        .unwrap_or_else(|| "migration".into());
    Ok((digits, slug(&name)))
}

/// The Rust port's `.surql`: `-- @metadata` (`-- key: value`), `-- @up`, `-- @down`.
fn oneiriq_surql(path: &Path) -> Result<Converted, NotConverted> {
    let text = std::fs::read_to_string(path).map_err(NotConverted::Read)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let (mut section, mut up, mut down, mut metadata) = (None, Vec::new(), Vec::new(), Vec::new());
    let (mut saw_up, mut saw_down) = (false, false);
    for line in text.lines() {
        let marker = line
            .trim()
            .strip_prefix("--")
            .map(str::trim)
            .and_then(|m| m.strip_prefix('@'));
        match marker.map(str::trim) {
            Some(name @ ("metadata" | "up" | "down")) => {
                saw_up |= name == "up";
                saw_down |= name == "down";
                section = Some(name);
            }
            _ => match section {
                Some("metadata") => metadata.push(line),
                Some("up") => up.push(line),
                Some("down") => down.push(line),
                _ => {}
            },
        }
    }
    if !saw_up {
        return Err(NotConverted::NoUpSection);
    }
    let meta = |key: &str| {
        metadata.iter().find_map(|line| {
            let (k, v) = line.trim().strip_prefix("--")?.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let (version, name) = version_and_name(meta("version"), meta("description"), path)?;
    // Sections present and empty (as its `migrate create` writes them) are
    // an empty migration: the tool applies and records it.
    Ok(Converted {
        version,
        name,
        up: up.join("\n"),
        down: saw_down.then(|| down.join("\n")),
    })
}

/// The Python tool's `.py`: `up()` and `down()` returning literal lists of
/// strings, and a `metadata` dict, read as Python reads them (see
/// [`super::import_py`]). Anything computed makes the file not convertible.
fn oneiriq_python(path: &Path) -> Result<Converted, NotConverted> {
    let text = std::fs::read_to_string(path).map_err(NotConverted::Read)?;
    // Python reads source with universal newlines.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text).replace("\r\n", "\n");
    let up = returned_list(&text, "up")?;
    let down = returned_list(&text, "down")?;
    let metadata = |key: &str| dict_string(&text, "metadata", key);
    let (version, name) = version_and_name(metadata("version"), metadata("description"), path)?;
    let statements = |list: Vec<String>| {
        list.iter()
            .map(|s| {
                let s = s.trim();
                if s.ends_with(';') {
                    s.to_string()
                } else {
                    format!("{s};")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Converted {
        version,
        name,
        up: statements(up),
        down: Some(statements(down)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_metadata_or_the_file_name() {
        let path = Path::new("20260102_120000_create_user_table.surql");
        assert_eq!(
            version_and_name(None, None, path).unwrap(),
            ("20260102120000".to_string(), "create_user_table".to_string())
        );
        assert_eq!(
            version_and_name(
                Some("20260105_090000".into()),
                Some("Add orders".into()),
                Path::new("x.py")
            )
            .unwrap(),
            ("20260105090000".to_string(), "add_orders".to_string())
        );
        assert!(
            version_and_name(Some("v1.2".into()), None, path)
                .unwrap_err()
                .to_string()
                .contains("not digits")
        );
    }
}
