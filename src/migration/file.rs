//! Migration files: discovery, sections, checksum, and a parse of every section
//! with SurrealDB's own parser before anything runs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use surrealdb_sql::Ast;

use super::dialect::{ServerRequirements, blank_v4_clauses, concurrent_indexes, requires_directive};
use super::sections::{
    Section, VerifySection, is_blank, is_deliberately_empty, parse_section, parse_verify, split_sections,
};

pub use super::file_error::MigrationFileError;
pub use super::sections::{DOWN_MARKER, EMPTY_MARKER, UP_MARKER, VERIFY_MARKER};

/// One migration file, parsed and checked.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The digits before the first `_` of the file name, as written.
    pub version: String,
    /// The rest of the file name, without `.surql`.
    pub name: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// SurrealQL of the up section.
    pub up: String,
    /// SurrealQL of the down section; `None` when the migration cannot be rolled back.
    pub down: Option<String>,
    /// Hex SHA-256 of the up section.
    pub checksum: String,
    /// Statements of the up section, as SurrealDB parsed them.
    pub up_ast: Ast,
    /// The file line `up` (trimmed) starts on.
    pub up_line: usize,
    /// How many top-level statements the down section has (0 without one).
    pub down_statements: usize,
    /// Read-only checks run by `verify` once the migration is applied.
    pub verify: Option<VerifySection>,
    /// What it needs of the server it goes to (its SurrealDB version), and
    /// what a deployment waits for there once it is applied.
    pub requires: ServerRequirements,
}

impl Migration {
    /// `version_name`, as in the file name.
    pub fn id(&self) -> String {
        format!("{}_{}", self.version, self.name)
    }

    /// Numeric order key of the version (leading zeros ignored).
    pub fn order_key(&self) -> (usize, String) {
        version_order_key(&self.version)
    }
}

/// Orders digit strings numerically without a size limit.
pub fn version_order_key(version: &str) -> (usize, String) {
    let trimmed = version.trim_start_matches('0');
    (trimmed.len(), trimmed.to_string())
}

/// Reads every `<digits>_<name>.surql` file of `dir`, ordered by numeric version.
pub fn discover_migrations(dir: impl AsRef<Path>) -> Result<Vec<Migration>, MigrationFileError> {
    let dir = dir.as_ref();
    if dir.is_file() {
        return Err(MigrationFileError::NotADir(dir.to_path_buf()));
    }
    if !dir.is_dir() {
        return Err(MigrationFileError::MissingDir(dir.to_path_buf()));
    }
    let io = |error| MigrationFileError::Io {
        path: dir.to_path_buf(),
        error,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if let Some(path) = migration_path(path)? {
            paths.push(path);
        }
    }
    let mut migrations = paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|error| MigrationFileError::Io {
                path: path.clone(),
                error,
            })?;
            parse_migration(&path, &text)
        })
        .collect::<Result<Vec<_>, _>>()?;
    migrations.sort_by(|a, b| a.order_key().cmp(&b.order_key()).then(a.path.cmp(&b.path)));
    for pair in migrations.windows(2) {
        if pair[0].order_key() == pair[1].order_key() {
            return Err(MigrationFileError::DuplicateVersion {
                version: pair[1].version.clone(),
                first: pair[0].path.clone(),
                second: pair[1].path.clone(),
            });
        }
    }
    check_row_migrations(&migrations)?;
    Ok(migrations)
}

/// The largest migration file surql reads: a schema change, not a data dump.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// `Some(path)` for a migration file of the folder, `None` for a file that
/// is plainly something else (a README); an error for one that looks meant
/// as a migration but would be skipped: a near-miss extension, a dangling
/// symbolic link, a file over [`MAX_FILE_BYTES`].
fn migration_path(path: PathBuf) -> Result<Option<PathBuf>, MigrationFileError> {
    let unusable = |reason: String| MigrationFileError::Unusable {
        path: path.clone(),
        reason,
    };
    let extension = path.extension().map(|e| e.to_string_lossy().to_string());
    let Some(extension) = extension else {
        return Ok(None);
    };
    let lower = extension.to_ascii_lowercase();
    if extension != "surql" {
        return match lower.as_str() {
            "surql" | "sql" | "surrealql" => Err(unusable(format!(
                "'.{extension}' is not read as a migration: rename it to .surql, or move it out of the migrations folder"
            ))),
            _ => Ok(None),
        };
    }
    let metadata = match std::fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(_) if path.symlink_metadata().is_ok() => {
            return Err(unusable(
                "a symbolic link to a file that does not exist: fix or remove the link".into(),
            ));
        }
        Err(error) => return Err(MigrationFileError::Io { path, error }),
    };
    if !metadata.is_file() {
        return Ok(None);
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(unusable(format!(
            "{:.1} MiB is over the {} MiB limit for a migration file: split it, or load data another way",
            metadata.len() as f64 / (1024.0 * 1024.0),
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    Ok(Some(path))
}

/// Splits `<digits>_<name>.surql` into version and name.
pub fn split_file_name(path: &Path) -> Option<(String, String)> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".surql")?;
    let (version, name) = stem.split_once('_')?;
    let name_ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (!version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) && name_ok)
        .then(|| (version.to_string(), name.to_string()))
}

/// Parses one migration file's text.
pub fn parse_migration(path: &Path, text: &str) -> Result<Migration, MigrationFileError> {
    // Editors on Windows write a byte-order mark; it is not SurrealQL.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (version, name) = split_file_name(path).ok_or_else(|| MigrationFileError::BadName(path.to_path_buf()))?;
    let sections = split_sections(path, text)?;
    let up = sections.up.text.trim().to_string();
    let leading = sections.up.text.len() - sections.up.text.trim_start().len();
    let up_line = sections.up.first_line + sections.up.text[..leading].matches('\n').count();
    // An up section with no statements is a mistake, unless it says it is
    // empty on purpose (an imported no-op migration).
    if is_blank(&up) && !is_deliberately_empty(&up) {
        return Err(MigrationFileError::Format {
            path: path.to_path_buf(),
            line: sections.up.first_line.saturating_sub(1).max(1),
            message: "the up section is empty: write the SurrealQL to apply after '-- migrate:up'".into(),
        });
    }
    let min_major = requires_directive(text).map_err(|(line, message)| MigrationFileError::Format {
        path: path.to_path_buf(),
        line,
        message,
    })?;
    let (up_ast, four) = parse_for_any_server(path, "up", &sections.up)?;
    super::sections::refuse_reserved_parameters(path, "up", &sections.up)?;
    // A down section in SurrealDB 4 syntax needs a 4.x server as much as an
    // up one: its rollback would fail on 3.x.
    let mut down_clauses = Vec::new();
    let (down, down_statements) = match &sections.down {
        Some(down) if !is_blank(&down.text) || is_deliberately_empty(&down.text) => {
            let (ast, blanked) = parse_for_any_server(path, "down", down)?;
            super::sections::refuse_reserved_parameters(path, "down", down)?;
            down_clauses = blanked.map(|b| b.clauses).unwrap_or_default();
            (Some(down.text.trim().to_string()), ast.expressions.len())
        }
        _ => (None, 0),
    };
    let mut requires = ServerRequirements {
        min_major,
        concurrent_indexes: concurrent_indexes(&up_ast),
        ..four
            .map(|blanked| ServerRequirements {
                v4_clauses: blanked.clauses,
                row_migrations: blanked.row_migrations,
                compatibility: blanked.compatibility,
                ..ServerRequirements::default()
            })
            .unwrap_or_default()
    };
    requires.v4_clauses.extend(down_clauses);
    let verify = match &sections.verify {
        Some(verify) if !is_blank(&verify.text) => Some(parse_verify(path, verify)?),
        _ => None,
    };
    Ok(Migration {
        version,
        name,
        path: path.to_path_buf(),
        checksum: checksum(&up),
        up,
        down,
        up_ast,
        up_line,
        down_statements,
        verify,
        requires,
    })
}

/// A section parsed by SurrealDB 3.3.5's parser; one that holds clauses only
/// SurrealDB 4 understands is parsed without them (see `dialect`), and those
/// clauses returned. An error is the parser's on the section as written
/// when it has no such clause, and on the rest of it when it has.
fn parse_for_any_server(
    path: &Path,
    name: &'static str,
    section: &Section,
) -> Result<(Ast, Option<super::dialect::Blanked>), MigrationFileError> {
    match parse_section(path, name, section) {
        Ok(ast) => Ok((ast, None)),
        Err(error) => match blank_v4_clauses(&section.text, section.first_line) {
            Some(blanked) => {
                let rest = Section {
                    text: blanked.text.clone(),
                    first_line: section.first_line,
                };
                Ok((parse_section(path, name, &rest)?, Some(blanked)))
            }
            None => Err(error),
        },
    }
}

/// Refuses a run-once row conversion's name given to two different
/// conversions of one table across `migrations` (in version order).
fn check_row_migrations(migrations: &[Migration]) -> Result<(), MigrationFileError> {
    let mut first: std::collections::HashMap<(&str, &str), (&Migration, &super::dialect::RowMigration)> =
        std::collections::HashMap::new();
    for migration in migrations {
        for row in &migration.requires.row_migrations {
            match first.get(&(row.table.as_str(), row.name.as_str())) {
                Some((earlier, named)) if named.field != row.field || named.step != row.step => {
                    return Err(MigrationFileError::RowMigrationReused {
                        name: row.name.clone(),
                        table: row.table.clone(),
                        first: earlier.path.clone(),
                        first_line: named.line,
                        second: migration.path.clone(),
                        second_line: row.line,
                    });
                }
                Some(_) => {}
                None => {
                    first.insert((&row.table, &row.name), (migration, row));
                }
            }
        }
    }
    Ok(())
}

/// Hex SHA-256 of a section, with line endings normalised so a checkout on
/// another OS does not look like drift.
pub fn checksum(section: &str) -> String {
    let digest = Sha256::digest(section.replace("\r\n", "\n").as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_once_name_is_one_conversion_per_table() {
        let dir = tempfile::tempdir().unwrap();
        let write =
            |name: &str, up: &str| std::fs::write(dir.path().join(name), format!("-- migrate:up\n{up}\n")).unwrap();
        write(
            "1_a.surql",
            "DEFINE FIELD age ON user TYPE int MIGRATE EXISTING ROWS AS age_zero USING 0;",
        );
        // The same conversion again (SurrealDB makes it a no-op), and the name on another table.
        write(
            "2_b.surql",
            "ALTER FIELD age ON user MIGRATE EXISTING ROWS AS age_zero USING 0;",
        );
        write(
            "3_c.surql",
            "DEFINE FIELD age ON team TYPE int MIGRATE EXISTING ROWS AS age_zero USING 1;",
        );
        let found = discover_migrations(dir.path()).unwrap();
        assert_eq!(found[0].requires.row_migrations[0].name, "age_zero");
        assert_eq!(found[2].requires.row_migrations[0].table, "team");
        write(
            "4_d.surql",
            "\nALTER FIELD age ON user MIGRATE EXISTING ROWS AS age_zero USING 1;",
        );
        let error = discover_migrations(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("4_d.surql:3") && error.contains("1_a.surql:2"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_requires_line_is_refused_naming_it() {
        let error = parse(
            "1_a.surql",
            "-- migrate:requires surrealdb 4+\n-- migrate:up\nDEFINE TABLE a;\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("1_a.surql:1") && error.contains("surrealdb >= 4"),
            "{error}"
        );
        let declared = parse(
            "1_a.surql",
            "-- migrate:requires surrealdb >= 4\n-- migrate:up\nDEFINE TABLE a;\n",
        )
        .unwrap();
        assert_eq!(declared.requires.min_major, Some(4));
    }

    fn parse(name: &str, text: &str) -> Result<Migration, MigrationFileError> {
        parse_migration(Path::new(name), text)
    }

    #[test]
    fn sections_and_checksum() {
        let m = parse(
            "0001_users.surql",
            "-- a comment\n-- migrate:up\nDEFINE TABLE user SCHEMAFULL;\n-- migrate:down\nREMOVE TABLE user;\n",
        )
        .unwrap();
        assert_eq!(m.version, "0001");
        assert_eq!(m.name, "users");
        assert_eq!(m.up, "DEFINE TABLE user SCHEMAFULL;");
        assert_eq!(m.down.as_deref(), Some("REMOVE TABLE user;"));
        assert_eq!(m.checksum, checksum("DEFINE TABLE user SCHEMAFULL;"));
        assert_eq!(m.checksum.len(), 64);
        assert_ne!(m.checksum, checksum("DEFINE TABLE users SCHEMAFULL;"));
    }

    #[test]
    fn a_file_or_a_missing_path_is_not_a_migrations_directory() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let error = discover_migrations(&manifest).unwrap_err().to_string();
        assert!(error.contains("is a file, not a migrations directory"), "{error}");
        let error = discover_migrations(manifest.with_file_name("no-such-dir"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not exist"), "{error}");
    }

    #[test]
    fn missing_down_means_no_rollback() {
        let m = parse("2_x.surql", "-- migrate:up\nDEFINE TABLE a;\n").unwrap();
        assert!(m.down.is_none());
    }

    #[test]
    fn parse_errors_name_file_and_line() {
        let err = parse(
            "3_bad.surql",
            "-- migrate:up\nDEFINE TABLE a;\nDEFINE FIELD x ON a TYPE strin g;\n-- migrate:down\nREMOVE TABLE a;\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("3_bad.surql:3:"), "{text}");
        assert!(text.contains("up section does not parse"), "{text}");
    }

    #[test]
    fn down_section_is_parsed_too() {
        let err = parse(
            "4_bad.surql",
            "-- migrate:up\nDEFINE TABLE a;\n-- migrate:down\nREMOVE TABLEZ a;\n",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("4_bad.surql:4:"), "{err}");
        assert!(err.to_string().contains("down section"), "{err}");
    }

    /// Statements that would end surql's transaction early are refused with
    /// the file, line and column of the statement; contained ones are fine.
    #[test]
    fn statements_that_end_the_transaction_early_are_refused_where_they_are() {
        let refused = |up: &str| {
            parse("7_x.surql", &format!("-- a note\n-- migrate:up\n{up}"))
                .unwrap_err()
                .to_string()
        };
        let error = refused("DEFINE TABLE a;\n  RETURN 1;\nDEFINE TABLE b;\n");
        assert!(
            error.starts_with("7_x.surql:4:3: up section: RETURN is not allowed"),
            "{error}"
        );
        let error = refused("DEFINE TABLE a; IF true { RETURN 1 };\n");
        assert!(error.starts_with("7_x.surql:3:17: up section: RETURN"), "{error}");
        for up in [
            "LET $x = { RETURN 1 };",
            "LET $x = true AND { RETURN 1 };",
            "FOR $i IN [1] { RETURN $i; };",
            "BREAK;",
            "IF true { CONTINUE };",
            "OPTION IMPORT;",
            "BEGIN;",
            "DEFINE TABLE a; COMMIT;",
        ] {
            assert!(refused(up).contains("not allowed"), "{up}: {}", refused(up));
        }
        let down = parse(
            "8_x.surql",
            "-- migrate:up\nDEFINE TABLE a;\n-- migrate:down\nREMOVE TABLE a;\nRETURN 1;\n",
        );
        assert!(
            down.unwrap_err()
                .to_string()
                .starts_with("8_x.surql:5:1: down section: RETURN")
        );
        for fine in [
            "DEFINE FUNCTION fn::one() { RETURN 1; };",
            "FOR $i IN [1, 2] { IF $i = 2 { BREAK }; CREATE t SET i = $i; };",
            "DEFINE TABLE t; LET $f = |$x| { RETURN $x; };",
            "SELECT * FROM (RETURN 1);",
        ] {
            assert!(parse("9_x.surql", &format!("-- migrate:up\n{fine}")).is_ok(), "{fine}");
        }
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_migration() {
        let plain = "-- migrate:up\nDEFINE TABLE a;\n";
        let with_mark = parse("1_a.surql", &format!("\u{feff}{plain}")).unwrap();
        assert_eq!(with_mark.checksum, parse("1_a.surql", plain).unwrap().checksum);
    }

    /// Files that look meant as migrations are reported, never skipped.
    #[test]
    fn near_misses_dangling_links_and_huge_files_are_reported() {
        let reported = |name: &str, write: &dyn Fn(&Path)| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("1_ok.surql"), "-- migrate:up\nDEFINE TABLE ok;\n").unwrap();
            std::fs::write(dir.path().join("README.md"), "not a migration").unwrap();
            write(&dir.path().join(name));
            discover_migrations(dir.path()).unwrap_err().to_string()
        };
        let up = "-- migrate:up\nDEFINE TABLE x;\n";
        for name in ["2_x.SURQL", "2_x.sql", "2_x.Surql"] {
            let error = reported(name, &|path| std::fs::write(path, up).unwrap());
            assert!(error.contains(name) && error.contains("rename it to .surql"), "{error}");
        }
        let error = reported("2_x.surql", &|path| {
            std::os::unix::fs::symlink("/nonexistent/2_x.surql", path).unwrap()
        });
        assert!(error.contains("symbolic link to a file that does not exist"), "{error}");
        let error = reported("2_x.surql", &|path| {
            let file = std::fs::File::create(path).unwrap();
            file.set_len(MAX_FILE_BYTES + 1).unwrap();
        });
        assert!(error.contains("over the 16 MiB limit"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1_ok.surql"), up).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        assert_eq!(
            discover_migrations(dir.path()).unwrap().len(),
            1,
            "other files are not migrations"
        );
    }

    /// A section with no statements is refused unless it says it is empty
    /// on purpose; such a migration has no statements to send.
    #[test]
    fn only_a_deliberately_empty_section_may_have_no_statements() {
        let accidental = parse("6_x.surql", "-- migrate:up\n-- TODO\n\n-- migrate:down\n")
            .unwrap_err()
            .to_string();
        assert!(
            accidental.contains("the up section is empty: write the SurrealQL to apply after '-- migrate:up'"),
            "{accidental}"
        );
        let noop = parse(
            "6_x.surql",
            "-- migrate:up\n-- surql:empty (imported empty migration: nothing to apply)\n-- migrate:down\n-- surql:empty (nothing to undo)\n",
        )
        .unwrap();
        assert_eq!(noop.up_ast.expressions.len(), 0);
        assert_eq!(noop.up, "-- surql:empty (imported empty migration: nothing to apply)");
        assert_eq!(
            (noop.down.as_deref(), noop.down_statements),
            (Some("-- surql:empty (nothing to undo)"), 0)
        );
        let no_down = parse("6_x.surql", "-- migrate:up\n-- surql:empty\n-- migrate:down\n\n").unwrap();
        assert!(
            no_down.down.is_none(),
            "an empty down section without the marker is no down section"
        );
        assert!(
            parse("6_x.surql", "-- migrate:up\n-- surql:empty\nDEFINE TABLE a;\n").is_ok(),
            "the marker beside statements changes nothing"
        );
    }

    #[test]
    fn bad_layouts_are_refused() {
        assert!(parse("5_x.surql", "DEFINE TABLE a;\n").is_err());
        assert!(parse("5_x.surql", "-- migrate:up\n-- only a comment\n").is_err());
        assert!(
            parse(
                "5_x.surql",
                "-- migrate:down\nREMOVE TABLE a;\n-- migrate:up\nDEFINE TABLE a;"
            )
            .is_err()
        );
        assert!(parse("5_x.surql", "-- migrate:up\nBEGIN;\nDEFINE TABLE a;\nCOMMIT;").is_err());
        assert!(parse("5_x.surql", "-- migrate:up\nUSE NS other;\nDEFINE TABLE a;").is_err());
        assert!(parse("x_bad.surql", "-- migrate:up\nDEFINE TABLE a;").is_err());
        assert!(parse("12.surql", "-- migrate:up\nDEFINE TABLE a;").is_err());
    }

    #[test]
    fn versions_sort_numerically() {
        let mut v = vec!["10", "9", "0100", "20250101120000"];
        v.sort_by_key(|v| version_order_key(v));
        assert_eq!(v, vec!["9", "10", "0100", "20250101120000"]);
    }
}
