//! `migrate import --from surrealdb-migrations`: a project of that tool as
//! surql files. Its history key is the file stem (`20231201_120000_AddPost`,
//! or `__Initial`); surql's version is the stem's date and time as digits
//! (`20231201120000`), `__Initial` version 0 — what `adopt` matches.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lexicmp::natural_lexical_cmp;
use surrealdb_sql::statements::define::DefineStatement;
use surrealdb_sql::{Expr, TopLevelExpr};

pub use super::foreign::version_of;
use super::foreign::{Converted, ImportError, ImportReport, slug, write_converted};

const TOOL: &str = "surrealdb-migrations";

fn read(path: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(ImportError::read(path))
}

/// A `.surql` file of the project as surrealdb-migrations sees it.
#[derive(Debug, Clone)]
struct ProjectFile {
    path: PathBuf,
    /// Its file stem: the tool's name for it (a migration's `script_name`).
    name: String,
    tags: BTreeSet<String>,
}

impl ProjectFile {
    fn tagged(&self, tag: &str) -> bool {
        self.tags.contains(tag)
    }
}

/// A tag as the tool accepts one: ASCII letters and digits only.
fn is_valid_tag(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Every `.surql` file under `dir`, with its tags, as the tool reads them:
/// a sub-folder whose name is a valid tag adds that tag (as written) to
/// everything under it; a file at the top is tagged `root`; the dotted
/// parts of a file's name after the first are tags too (lowercased:
/// `post.old.surql` is tagged `old`). Anything else is noted in `left_out`.
fn walk(
    dir: &Path,
    parent: Option<&BTreeSet<String>>,
    files: &mut Vec<ProjectFile>,
    left_out: &mut Vec<(PathBuf, String)>,
) -> Result<(), ImportError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(ImportError::read(dir))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(ImportError::read(dir))?;
    entries.sort();
    for path in entries {
        let full_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            let mut tags = parent.cloned().unwrap_or_default();
            if is_valid_tag(&full_name) {
                tags.insert(full_name);
            }
            walk(&path, Some(&tags), files, left_out)?;
        } else if full_name.ends_with(".surql") {
            let mut tags: BTreeSet<String> = full_name
                .split('.')
                .skip(1)
                .filter(|part| is_valid_tag(part))
                .map(str::to_lowercase)
                .collect();
            match parent {
                Some(parent) => tags.extend(parent.iter().cloned()),
                None => {
                    tags.insert("root".into());
                }
            }
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push(ProjectFile { path, name, tags });
        } else {
            let why = match path.extension().is_some_and(|e| e == "json")
                && path.parent().is_some_and(|p| p.ends_with("definitions"))
            {
                true => {
                    "surrealdb-migrations' record of how its schemas changed between migrations, not a migration: the schemas/ and events/ files are imported as they are now"
                }
                false => "not a .surql file: surrealdb-migrations does not read it",
            };
            left_out.push((path, why.into()));
        }
    }
    Ok(())
}

/// The files of the project's `folder` (none when it has no such folder),
/// those tagged `old` moved to `skipped` as the tool leaves them out by default.
fn project_files(project: &Path, folder: &str, report: &mut ImportReport) -> Result<Vec<ProjectFile>, ImportError> {
    let dir = project.join(folder);
    let mut files = Vec::new();
    if dir.is_dir() {
        walk(&dir, None, &mut files, &mut report.left_out)?;
    }
    let (old, files): (Vec<ProjectFile>, Vec<ProjectFile>) = files.into_iter().partition(|f| f.tagged("old"));
    for file in old {
        report.skipped.push((
            file.path,
            "tagged `old` (in an old/ folder, or `.old.` in its name): surrealdb-migrations leaves it out unless told otherwise (exclude_tags); move or rename it to import it".into(),
        ));
    }
    Ok(files)
}

/// A schema or event file with the tables it defines and the tables its
/// views (`DEFINE TABLE … AS SELECT … FROM t`) read.
struct Definition {
    file: ProjectFile,
    text: String,
    defines: BTreeSet<String>,
    consumes: BTreeSet<String>,
}

impl Definition {
    fn new(file: ProjectFile, text: String) -> Self {
        let (mut defines, mut consumes) = (BTreeSet::new(), BTreeSet::new());
        // A file SurrealDB cannot parse defines nothing, as in the tool; it
        // is refused with the rest once the migration is parsed.
        if let Ok(ast) = surrealdb_core::syn::parse(&text) {
            for statement in &ast.expressions {
                let TopLevelExpr::Expr(Expr::Define(define)) = statement else {
                    continue;
                };
                let DefineStatement::Table(table) = define.as_ref() else {
                    continue;
                };
                if let Expr::Table(name) = &table.name {
                    defines.insert(name.as_str().to_string());
                }
                if let Some(view) = &table.view {
                    consumes.extend(view.what.iter().map(|t| t.as_str().to_string()));
                }
            }
        }
        Definition {
            file,
            text,
            defines,
            consumes,
        }
    }
}

/// surrealdb-migrations' order of two schema (or event) files: a file
/// whose view reads a table the other defines comes after it; then files
/// whose views read a table of another file come after those that do not;
/// then natural name order (`post2` before `post10`).
fn definition_order(a: &Definition, b: &Definition, all: &BTreeSet<String>) -> Ordering {
    if !a.consumes.is_disjoint(&b.defines) {
        return Ordering::Greater;
    }
    if !b.consumes.is_disjoint(&a.defines) {
        return Ordering::Less;
    }
    let reads_another = |d: &Definition| d.consumes.iter().any(|t| all.contains(t) && !d.defines.contains(t));
    match (reads_another(a), reads_another(b)) {
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => natural_lexical_cmp(&a.file.name, &b.file.name),
    }
}

/// Sorts `definitions` as the tool does: starting from natural name order,
/// an insertion sort with [`definition_order`] — what Rust's stable sort
/// (which the tool calls) does for up to 20 files; its order is not a total
/// one, so this also keeps larger folders deterministic and panic-free.
fn sort_definitions(definitions: &mut [Definition]) {
    definitions.sort_by(|a, b| natural_lexical_cmp(&a.file.name, &b.file.name).then(a.file.path.cmp(&b.file.path)));
    let all: BTreeSet<String> = definitions.iter().flat_map(|d| d.defines.iter().cloned()).collect();
    for i in 1..definitions.len() {
        let mut j = i;
        while j > 0 && definition_order(&definitions[j], &definitions[j - 1], &all) == Ordering::Less {
            definitions.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// The schema (or event) files of `folder`, read and in the tool's order.
fn definitions(project: &Path, folder: &str, report: &mut ImportReport) -> Result<Vec<Definition>, ImportError> {
    let mut definitions = project_files(project, folder, report)?
        .into_iter()
        .map(|file| read(&file.path).map(|text| Definition::new(file, text)))
        .collect::<Result<Vec<_>, _>>()?;
    sort_definitions(&mut definitions);
    Ok(definitions)
}

/// Converts the project at `project` (holding `migrations/`, `schemas/`
/// and `events/`, each maybe with sub-folders) into `out`.
pub fn import(project: &Path, out: &Path) -> Result<ImportReport, ImportError> {
    if !["migrations", "schemas", "events"]
        .iter()
        .any(|f| project.join(f).is_dir())
    {
        return Err(ImportError::NotAProject {
            path: project.to_path_buf(),
        });
    }
    let mut report = ImportReport::default();
    // Everything is read before anything is written.
    let schemas = definitions(project, "schemas", &mut report)?;
    let events = definitions(project, "events", &mut report)?;
    let (down_files, forward): (Vec<ProjectFile>, Vec<ProjectFile>) =
        project_files(project, "migrations", &mut report)?
            .into_iter()
            .partition(|f| f.tagged("down"));
    let mut forward = forward;
    forward.sort_by(|a, b| natural_lexical_cmp(&a.name, &b.name).then(a.path.cmp(&b.path)));
    std::fs::create_dir_all(out).map_err(ImportError::create(out))?;

    // Definitions mode: schemas and events are re-applied on every run, not
    // recorded; here they become one version-0 migration, first, in the
    // order the tool applies them (schemas, then events).
    let has_definitions = !schemas.is_empty() || !events.is_empty();
    if has_definitions {
        let mut up = String::new();
        for definition in schemas.iter().chain(&events) {
            let shown = definition
                .file
                .path
                .strip_prefix(project)
                .unwrap_or(&definition.file.path);
            up.push_str(&format!("-- {}\n{}\n", shown.display(), definition.text.trim_end()));
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
    let mut seen: Vec<String> = match has_definitions {
        true => vec!["0".into()],
        false => Vec::new(),
    };
    let mut used_down: Vec<PathBuf> = Vec::new();
    for file in forward {
        let ProjectFile { path, name: stem, .. } = file;
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
        // Its down file: `down/<name>.surql` or `<name>.down.surql`, in any folder.
        let down_file = down_files
            .iter()
            .find(|d| d.name == stem || d.name.strip_suffix(".down") == Some(stem.as_str()));
        let up = match read(&path) {
            Ok(up) => up,
            Err(why) => {
                report.skipped.push((path, why.to_string()));
                continue;
            }
        };
        let down = match down_file.map(|d| read(&d.path)).transpose() {
            Ok(down) => down,
            Err(why) => {
                report.skipped.push((path, why.to_string()));
                continue;
            }
        };
        used_down.extend(down_file.map(|d| d.path.clone()));
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
    for down in down_files {
        if !used_down.contains(&down.path) {
            report.left_out.push((
                down.path,
                "a down file with no migration of the same name: surrealdb-migrations never runs it".into(),
            ));
        }
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

    fn definition(name: &str, text: &str) -> Definition {
        let file = ProjectFile {
            path: PathBuf::from(format!("schemas/{name}.surql")),
            name: name.into(),
            tags: BTreeSet::new(),
        };
        Definition::new(file, text.into())
    }

    /// The tool's order: a view after the tables it reads (also through
    /// another view), views of other files' tables last, then natural order.
    #[test]
    fn schema_files_are_ordered_as_the_tool_orders_them() {
        let mut definitions = vec![
            definition(
                "a_totals",
                "DEFINE TABLE a_totals AS SELECT count() FROM b_per_user GROUP ALL;",
            ),
            definition(
                "b_per_user",
                "DEFINE TABLE b_per_user AS SELECT count() AS total, name FROM user GROUP BY name;",
            ),
            definition("post10", "DEFINE TABLE post10;"),
            definition("post2", "DEFINE TABLE post2;"),
            definition("user", "DEFINE TABLE user; DEFINE FIELD name ON user TYPE string;"),
            definition("broken", "DEFINE TABLE;"),
        ];
        sort_definitions(&mut definitions);
        let order: Vec<&str> = definitions.iter().map(|d| d.file.name.as_str()).collect();
        assert_eq!(order, ["broken", "post2", "post10", "user", "b_per_user", "a_totals"]);
        assert_eq!(
            definitions[5].consumes.iter().collect::<Vec<_>>(),
            ["b_per_user"],
            "a view's FROM tables"
        );
    }
}
