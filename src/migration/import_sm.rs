//! `migrate import --from surrealdb-migrations`: a project of that tool as
//! surql files. Its history key is the file stem (`20231201_120000_AddPost`,
//! or `__Initial`); surql's version is the stem's date and time as digits
//! (`20231201120000`), `__Initial` version 0 — what `adopt` matches.

use std::path::{Path, PathBuf};

use super::import::{Converted, ImportReport, slug, write_converted};

const TOOL: &str = "surrealdb-migrations";

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

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// `.surql` files directly in `dir`, sorted.
fn surql_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "surql"))
        .collect();
    files.sort();
    files
}

/// Converts the project at `project` (holding `migrations/`, and maybe
/// `schemas/` and `events/`) into `out`.
pub fn import(project: &Path, out: &Path) -> Result<ImportReport, String> {
    let migrations = project.join("migrations");
    if !migrations.is_dir() {
        return Err(format!(
            "{}: no migrations/ folder (give the surrealdb-migrations project folder)",
            project.display()
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut report = ImportReport::default();
    // Definitions mode: schemas and events are re-applied on every run, not
    // recorded; here they become one version-0 migration, first.
    let definitions: Vec<PathBuf> = surql_files(&project.join("schemas"))
        .into_iter()
        .chain(surql_files(&project.join("events")))
        .collect();
    if !definitions.is_empty() {
        let mut up = String::new();
        for path in &definitions {
            match read(path) {
                Ok(text) => {
                    let shown = path.strip_prefix(project).unwrap_or(path);
                    up.push_str(&format!("-- {}\n{}\n", shown.display(), text.trim_end()));
                }
                Err(why) => {
                    report.skipped.push((path.clone(), why));
                    return Ok(report);
                }
            }
        }
        let converted = Converted {
            version: "0".into(),
            name: "schemas_and_events".into(),
            up,
            down: None,
        };
        write_converted(&mut report, project.join("schemas"), &converted, TOOL, out);
    }
    // Version 0 is the schemas' when there are any: `__Initial` then is skipped, named.
    let mut seen: Vec<String> = match definitions.is_empty() {
        true => Vec::new(),
        false => vec!["0".into()],
    };
    for path in surql_files(&migrations) {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if stem.ends_with(".down") {
            continue;
        }
        let Some(version) = version_of(&stem) else {
            report
                .skipped
                .push((path, format!("'{stem}' is not YYYYMMDD_HHMMSS_Name or __Initial")));
            continue;
        };
        if seen.contains(&version) {
            report.skipped.push((
                path,
                format!("another migration has the same second ({version}); give one of them another time"),
            ));
            continue;
        }
        seen.push(version.clone());
        let down_file = [
            migrations.join("down").join(format!("{stem}.surql")),
            migrations.join(format!("{stem}.down.surql")),
        ]
        .into_iter()
        .find(|p| p.is_file());
        let up = match read(&path) {
            Ok(up) => up,
            Err(why) => {
                report.skipped.push((path, why));
                continue;
            }
        };
        let down = match down_file.map(|p| read(&p)).transpose() {
            Ok(down) => down.filter(|d| !d.trim().is_empty()),
            Err(why) => {
                report.skipped.push((path, why));
                continue;
            }
        };
        let name = match stem.as_str() {
            "__Initial" => "initial".to_string(),
            _ => slug(stem.splitn(3, '_').nth(2).unwrap_or("migration")),
        };
        let converted = Converted {
            version,
            name,
            up,
            down,
        };
        write_converted(&mut report, path, &converted, TOOL, out);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names_map_to_versions() {
        assert_eq!(version_of("20231201_120000_AddPost").as_deref(), Some("20231201120000"));
        assert_eq!(version_of("__Initial").as_deref(), Some("0"));
        assert_eq!(version_of("AddPost"), None);
    }
}
