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

use super::adopt::surql_version;
use super::file::parse_migration;

/// What `import` did with each source file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImportReport {
    /// (source, written file).
    pub converted: Vec<(PathBuf, PathBuf)>,
    /// (source, why not).
    pub skipped: Vec<(PathBuf, String)>,
}

/// One migration read from another tool's file.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub version: String,
    pub name: String,
    pub up: String,
    pub down: Option<String>,
}

impl Converted {
    /// The surql file's name and text.
    pub fn surql_file(&self, source: &Path, tool: &str) -> (String, String) {
        let file = format!("{}_{}.surql", self.version, self.name);
        let mut text = format!(
            "-- imported from {tool}: {}\n-- migrate:up\n{}\n",
            source.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            self.up.trim_end()
        );
        if let Some(down) = &self.down {
            text.push_str(&format!("\n-- migrate:down\n{}\n", down.trim_end()));
        }
        (file, text)
    }
}

/// Converts every migration file of `format` in `source` into `out`.
pub fn import(format: &str, source: &Path, out: &Path) -> Result<ImportReport, String> {
    match format {
        "oneiriq" => import_oneiriq(source, out),
        "surrealdb-migrations" => super::import_sm::import(source, out),
        other => Err(format!(
            "--from {other}: surql imports `oneiriq` (oneiriq-surql's .surql and .py files) and `surrealdb-migrations` (a project folder with migrations/, schemas/, events/)"
        )),
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

fn import_oneiriq(source: &Path, out: &Path) -> Result<ImportReport, String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(source)
        .map_err(|e| format!("cannot read {}: {e}", source.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut report = ImportReport::default();
    for path in entries {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let converted = match path.extension().and_then(|e| e.to_str()) {
            _ if file_name.starts_with('_') => continue,
            Some("surql") => oneiriq_surql(&path),
            Some("py") => oneiriq_python(&path),
            _ => continue,
        };
        match converted {
            Ok(converted) => write_converted(&mut report, path, &converted, "oneiriq-surql", out),
            Err(why) => report.skipped.push((path, why)),
        }
    }
    Ok(report)
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
) -> Result<(String, String), String> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let from_name = from_file_name(&stem);
    let version = version
        .or_else(|| from_name.as_ref().map(|(v, _)| v.clone()))
        .ok_or("no version: neither a `version` in its metadata nor a YYYYMMDD_HHMMSS_name file name")?;
    let digits = surql_version(&version)
        .ok_or_else(|| format!("version '{version}' is not digits (and '_'): surql versions are numbers"))?;
    let name = from_name
        .map(|(_, rest)| rest)
        .or(description)
        .unwrap_or_else(|| "migration".into());
    Ok((digits, slug(&name)))
}

/// The Rust port's `.surql`: `-- @metadata` (`-- key: value`), `-- @up`, `-- @down`.
fn oneiriq_surql(path: &Path) -> Result<Converted, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let (mut section, mut up, mut down, mut metadata) = (None, Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let marker = line
            .trim()
            .strip_prefix("--")
            .map(str::trim)
            .and_then(|m| m.strip_prefix('@'));
        match marker.map(str::trim) {
            Some(name @ ("metadata" | "up" | "down")) => section = Some(name),
            _ => match section {
                Some("metadata") => metadata.push(line),
                Some("up") => up.push(line),
                Some("down") => down.push(line),
                _ => {}
            },
        }
    }
    if up.iter().all(|l| l.trim().is_empty()) {
        return Err("no `-- @up` section: not an oneiriq-surql migration".into());
    }
    let meta = |key: &str| {
        metadata.iter().find_map(|line| {
            let (k, v) = line.trim().strip_prefix("--")?.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let (version, name) = version_and_name(meta("version"), meta("description"), path)?;
    let down = down.join("\n");
    Ok(Converted {
        version,
        name,
        up: up.join("\n"),
        down: (!down
            .trim()
            .lines()
            .all(|l| l.trim().is_empty() || l.trim().starts_with("--")))
        .then_some(down),
    })
}

/// The Python tool's `.py`: `up()` and `down()` returning literal lists of
/// strings, and a `metadata` dict. Anything else in those lists (a
/// variable, a call, a comprehension) makes the file not convertible.
fn oneiriq_python(path: &Path) -> Result<Converted, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let up = returned_list(&text, "up")?;
    let down = returned_list(&text, "down")?;
    let metadata = |key: &str| {
        let at = text.find("metadata")?;
        let rest = &text[at..];
        let key_at = rest
            .find(&format!("'{key}'"))
            .or_else(|| rest.find(&format!("\"{key}\"")))?;
        let after = rest[key_at + key.len() + 2..]
            .trim_start()
            .strip_prefix(':')?
            .trim_start();
        let (value, _) = string_literal(after)?;
        Some(value)
    };
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
        down: (!down.is_empty()).then(|| statements(down)),
    })
}

/// The strings of `def name(...)`'s `return [ ... ]`, which must be a list
/// of string literals only.
fn returned_list(text: &str, function: &str) -> Result<Vec<String>, String> {
    let start = text
        .find(&format!("def {function}("))
        .ok_or_else(|| format!("no `def {function}()`: not an oneiriq-surql Python migration"))?;
    let body = &text[start..];
    let body_end = body[1..].find("\ndef ").map_or(body.len(), |i| i + 1);
    let body = &body[..body_end];
    let list = body
        .find("return [")
        .map(|i| &body[i + "return [".len()..])
        .ok_or_else(|| format!("{function}() does not return a literal list: it computes its statements, so it cannot be converted without running Python"))?;
    let mut items = Vec::new();
    let mut rest = list;
    loop {
        rest = skip_space_and_comments(rest);
        if let Some(after) = rest.strip_prefix(']') {
            let _ = after;
            return Ok(items);
        }
        let Some((first, mut after)) = string_literal(rest) else {
            return Err(format!(
                "{function}() returns something other than string literals (`{}`): it computes its statements, so it cannot be converted without running Python",
                rest.lines().next().unwrap_or_default().trim()
            ));
        };
        let mut item = first;
        // Adjacent literals concatenate, as in Python.
        while let Some((more, next)) = string_literal(skip_space_and_comments(after)) {
            item.push_str(&more);
            after = next;
        }
        items.push(item);
        rest = skip_space_and_comments(after);
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn skip_space_and_comments(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        match text.strip_prefix('#') {
            Some(comment) => text = comment.split_once('\n').map_or("", |(_, rest)| rest),
            None => return text,
        }
    }
}

/// A Python string literal at the start of `text` ('…' or "…", escapes
/// \\ \' \" \n \t): its value and the rest.
fn string_literal(text: &str) -> Option<(String, &str)> {
    let quote = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let mut value = String::new();
    let mut chars = text[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            c if c == quote => return Some((value, &text[1 + i + 1..])),
            '\n' => return None,
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_lists_of_literals_are_read_and_anything_else_is_refused() {
        let text = "def up() -> list[str]:\n  return [\n    'DEFINE TABLE user SCHEMAFULL;',  # the table\n    \"DEFINE FIELD name ON user \"\n    'TYPE string;',\n    'DEFINE FIELD note ON user TYPE string DEFAULT \\'x\\';',\n  ]\n\n\ndef down() -> list[str]:\n  return []\n";
        let up = returned_list(text, "up").unwrap();
        assert_eq!(
            up,
            [
                "DEFINE TABLE user SCHEMAFULL;",
                "DEFINE FIELD name ON user TYPE string;",
                "DEFINE FIELD note ON user TYPE string DEFAULT 'x';"
            ]
        );
        assert_eq!(returned_list(text, "down").unwrap(), Vec::<String>::new());
        let computed = "def up():\n  return [f'DEFINE TABLE {name};']\n";
        assert!(
            returned_list(computed, "up")
                .unwrap_err()
                .contains("computes its statements")
        );
        let built = "def up():\n  statements = []\n  return statements\n";
        assert!(
            returned_list(built, "up")
                .unwrap_err()
                .contains("does not return a literal list")
        );
    }

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
                .contains("not digits")
        );
    }
}
