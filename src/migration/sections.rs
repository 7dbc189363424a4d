//! The sections of a migration file — up, down and verify — split by their
//! marker lines and parsed with SurrealDB's own parser, each refused where it
//! holds a statement surql cannot run safely there.

use std::path::Path;

use surrealdb::types::ToSql;
use surrealdb_sql::{Ast, Expr, TopLevelExpr};

use super::file_error::MigrationFileError;
use super::statements::{refused, statement_starts};

/// Marker line that starts the up section.
pub const UP_MARKER: &str = "-- migrate:up";
/// Marker line that starts the down section.
pub const DOWN_MARKER: &str = "-- migrate:down";
/// Marker line that starts the verify section: read-only checks.
pub const VERIFY_MARKER: &str = "-- migrate:verify";
/// A comment line that makes an up (or down) section with no statements a
/// deliberate no-op instead of a mistake: `migrate import` writes it for
/// another tool's empty migrations, which that tool applied and recorded.
pub const EMPTY_MARKER: &str = "-- surql:empty";

pub(super) struct Section {
    pub(super) text: String,
    /// 1-based file line of the section's first line.
    pub(super) first_line: usize,
}

pub(super) struct Sections {
    pub(super) up: Section,
    pub(super) down: Option<Section>,
    pub(super) verify: Option<Section>,
}

pub(super) fn split_sections(path: &Path, text: &str) -> Result<Sections, MigrationFileError> {
    let format_err = |line: usize, message: String| MigrationFileError::Format {
        path: path.to_path_buf(),
        line,
        message,
    };
    const MARKERS: [&str; 3] = [UP_MARKER, DOWN_MARKER, VERIFY_MARKER];
    // Up, down, verify; the section lines go to `current`.
    let mut sections: [Option<Section>; 3] = [None, None, None];
    let mut current: Option<usize> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let marker = line.trim().to_ascii_lowercase();
        if let Some(which) = MARKERS.iter().position(|m| *m == marker) {
            if sections[which].is_some() {
                return Err(format_err(number, format!("a second '{}' marker", MARKERS[which])));
            }
            if which == 0 && sections[1..].iter().any(Option::is_some) {
                return Err(format_err(
                    number,
                    "'-- migrate:up' must come before '-- migrate:down' and '-- migrate:verify'".into(),
                ));
            }
            if which > 0 && sections[0].is_none() {
                return Err(format_err(
                    number,
                    format!(
                        "'{}' before '-- migrate:up': the up section comes first",
                        MARKERS[which]
                    ),
                ));
            }
            sections[which] = Some(Section {
                text: String::new(),
                first_line: number + 1,
            });
            current = Some(which);
            continue;
        }
        match current.and_then(|which| sections[which].as_mut()) {
            Some(section) => {
                section.text.push_str(line);
                section.text.push('\n');
            }
            None if !is_blank(line) => {
                return Err(format_err(
                    number,
                    "SurrealQL before '-- migrate:up': put statements inside the up or down section".into(),
                ));
            }
            None => {}
        }
    }
    let [up, down, verify] = sections;
    let up = up.ok_or_else(|| format_err(1, "no '-- migrate:up' line: a migration needs an up section".into()))?;
    Ok(Sections { up, down, verify })
}

/// True when a text holds only whitespace and `--`/`//`/`#` comments.
pub(super) fn is_blank(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with("--") || line.starts_with("//") || line.starts_with('#')
    })
}

/// True when a section has no statements on purpose: only comments, one of
/// them [`EMPTY_MARKER`].
pub(super) fn is_deliberately_empty(text: &str) -> bool {
    is_blank(text)
        && text
            .lines()
            .any(|line| line.trim().to_ascii_lowercase().starts_with(EMPTY_MARKER))
}

pub(super) fn parse_section(
    path: &Path,
    section_name: &'static str,
    section: &Section,
) -> Result<Ast, MigrationFileError> {
    // surql wraps each migration, with its history row, in one transaction:
    // statements that end it early, manage it, or change the scope or options
    // of the rest of the request would break that guarantee.
    parse_checked(path, section_name, section, refused)
}

/// The verify section: read-only checks, each of whose statements must
/// answer a truthy value (`LET` excepted). Anything that could write is
/// refused where it is, judged by SurrealDB's own read-only analysis.
pub(super) fn parse_verify(path: &Path, section: &Section) -> Result<VerifySection, MigrationFileError> {
    let ast = parse_checked(path, "verify", section, refused_in_verify)?;
    let starts = statement_starts(&section.text);
    let checks = ast
        .expressions
        .iter()
        .enumerate()
        .map(|(index, statement)| VerifyCheck {
            line: starts
                .get(index)
                .map_or(section.first_line, |(line, _)| section.first_line - 1 + line),
            statement: statement.to_sql(),
            answers: !matches!(statement, TopLevelExpr::Expr(Expr::Let(_))),
        })
        .collect();
    Ok(VerifySection {
        text: section.text.trim().to_string(),
        checks,
    })
}

fn refused_in_verify(statement: &TopLevelExpr) -> Option<&'static str> {
    match statement {
        TopLevelExpr::Begin
        | TopLevelExpr::Commit
        | TopLevelExpr::Cancel
        | TopLevelExpr::Use(_)
        | TopLevelExpr::Option(_) => refused(statement),
        other if !other.read_only() => Some(
            "a verify section only reads: this statement could write (CREATE, UPDATE, DELETE, DEFINE, REMOVE, … or a function SurrealDB cannot prove read-only)",
        ),
        _ => None,
    }
}

/// A migration's `-- migrate:verify` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySection {
    /// The SurrealQL, as sent.
    pub text: String,
    /// One entry per top-level statement, in order.
    pub checks: Vec<VerifyCheck>,
}

/// One statement of a verify section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyCheck {
    /// Its file line.
    pub line: usize,
    /// As SurrealDB prints it back.
    pub statement: String,
    /// Must answer a truthy value (every statement but `LET`).
    pub answers: bool,
}

fn parse_checked(
    path: &Path,
    section_name: &'static str,
    section: &Section,
    refuse: fn(&TopLevelExpr) -> Option<&'static str>,
) -> Result<Ast, MigrationFileError> {
    // Parse the untrimmed text so the parser's line numbers map to file lines.
    let ast = surrealdb_core::syn::parse(&section.text).map_err(|error| {
        let offset = section.first_line - 1;
        let (line, column, message) = match error.downcast::<surrealdb_syn::ParseError>() {
            Ok(surrealdb_syn::ParseError::InvalidQuery(rendered)) => {
                let rendered = rendered.offset_location(offset, 0);
                let (line, column) = location_of(&rendered.to_string()).unwrap_or((section.first_line, 1));
                (line, column, rendered.to_string().trim_end().to_string())
            }
            Ok(other) => (section.first_line, 1, other.to_string()),
            Err(other) => (section.first_line, 1, other.to_string()),
        };
        MigrationFileError::Parse {
            path: path.to_path_buf(),
            section: section_name,
            line,
            column,
            message,
        }
    })?;
    if let Some((index, message)) = ast
        .expressions
        .iter()
        .enumerate()
        .find_map(|(i, e)| refuse(e).map(|m| (i, m)))
    {
        let (line, column) = statement_starts(&section.text)
            .get(index)
            .map(|(line, column)| (section.first_line - 1 + line, *column))
            .unwrap_or((section.first_line, 1));
        return Err(MigrationFileError::Refused {
            path: path.to_path_buf(),
            section: section_name,
            line,
            column,
            message,
        });
    }
    Ok(ast)
}

/// Reads `--> [line:column]` from a rendered parser error.
fn location_of(rendered: &str) -> Option<(usize, usize)> {
    let start = rendered.find("--> [")? + 5;
    let rest = &rendered[start..];
    let (pos, _) = rest.split_once(']')?;
    let (line, column) = pos.split_once(':')?;
    Some((line.trim().parse().ok()?, column.trim().parse().ok()?))
}

/// Refuses a section that assigns one of surql's own parameters
/// (`LET $surql_…`): the migration's transaction binds and sets them after
/// its statements to write the history row, which would then record the
/// section's values.
pub(super) fn refuse_reserved_parameters(path: &Path, name: &str, section: &Section) -> Result<(), MigrationFileError> {
    // Lexed only when the name appears at all: every file is checked at load.
    if !section.text.contains("$surql_") {
        return Ok(());
    }
    let tokens = super::lexer::tokens(&section.text);
    let assigned = tokens
        .windows(2)
        .find(|pair| pair[0].text.eq_ignore_ascii_case("LET") && pair[1].text.starts_with("$surql_"));
    match assigned {
        Some(pair) => Err(MigrationFileError::Format {
            path: path.to_path_buf(),
            line: section.first_line + section.text[..pair[1].start].matches('\n').count(),
            message: format!(
                "the {name} section assigns {}: parameters named $surql_… are surql's own (its history row is written with them); rename it",
                pair[1].text
            ),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::file::parse_migration;
    use super::*;

    fn parse(text: &str) -> Result<super::super::Migration, MigrationFileError> {
        parse_migration(Path::new("4_checked.surql"), text)
    }

    #[test]
    fn a_verify_section_keeps_each_statement_and_its_line() {
        let m = parse("-- migrate:up\nDEFINE TABLE a;\n-- migrate:verify\n\nLET $t = (INFO FOR DB).tables;\nRETURN $t.a != NONE;\nSELECT * FROM a LIMIT 1;\n-- migrate:down\nREMOVE TABLE a;\n").unwrap();
        let verify = m.verify.unwrap();
        let found: Vec<(usize, bool)> = verify.checks.iter().map(|c| (c.line, c.answers)).collect();
        assert_eq!(found, [(5, false), (6, true), (7, true)]);
        assert_eq!(m.down.as_deref(), Some("REMOVE TABLE a;"), "down after verify");
        assert_eq!(
            m.checksum,
            super::super::file::checksum("DEFINE TABLE a;"),
            "verify is not in the checksum"
        );
        assert!(
            parse("-- migrate:up\nDEFINE TABLE a;\n-- migrate:verify\n-- nothing yet\n")
                .unwrap()
                .verify
                .is_none()
        );
    }

    #[test]
    fn anything_that_writes_in_a_verify_section_is_refused_where_it_is() {
        for (statement, column) in [
            ("CREATE a SET x = 1;", 1),
            ("  UPDATE a SET x = 2;", 3),
            ("DEFINE TABLE b;", 1),
            ("RETURN fn::custom();", 1),
            ("BEGIN;", 1),
            ("USE NS other;", 1),
        ] {
            let text = format!("-- migrate:up\nDEFINE TABLE a;\n-- migrate:verify\nRETURN true;\n{statement}\n");
            let error = parse(&text).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("4_checked.surql:5:{column}: verify section")),
                "{statement}: {error}"
            );
        }
        let error = parse("-- migrate:up\nDEFINE TABLE a;\n-- migrate:verify\nRETURN true;\n-- migrate:verify\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("a second '-- migrate:verify' marker"), "{error}");
        let error = parse("-- migrate:verify\nRETURN true;\n-- migrate:up\nDEFINE TABLE a;\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("the up section comes first"), "{error}");
    }

    /// A section may not assign surql's own parameters; naming one in a
    /// string or a comment is fine.
    #[test]
    fn a_section_assigning_a_surql_parameter_is_refused_naming_its_line() {
        let parse = |text: &str| parse_migration(Path::new("3_a.surql"), text).map_err(|e| e.to_string());
        let refusals = [
            (
                "DEFINE TABLE a SCHEMALESS;\nLET $surql_version = 'x';\n-- migrate:down\n",
                "3_a.surql:3: the up section assigns $surql_version",
            ),
            (
                "DEFINE TABLE a SCHEMALESS;\n-- migrate:down\nLET $surql_started = 1;\n",
                "3_a.surql:4: the down section assigns $surql_started",
            ),
        ];
        for (sections, expected) in refusals {
            let error = parse(&format!("-- migrate:up\n{sections}REMOVE TABLE a;\n")).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        let quoted =
            "-- migrate:up\n-- LET $surql_row = 1\nCREATE a SET note = 'LET $surql_row = 1';\nLET $mine = 1;\n";
        assert!(parse(quoted).is_ok());
    }
}
