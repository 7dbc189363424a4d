//! What a migration needs of the server it goes to: the SurrealDB major
//! version it declares (`-- migrate:requires surrealdb >= 4`), and the
//! clauses only SurrealDB 4 understands. surql links SurrealDB 3.3.5's
//! parser; a 4.x clause is found here, blanked out (its text kept aside,
//! line numbers unchanged), and the rest parsed by that parser, so every
//! other check (destructive statements, statements that would end the
//! transaction) still runs on SurrealDB's own syntax tree.

use super::lexer::{Token, tokens};

/// The directive line that limits a migration to servers new enough.
pub const REQUIRES_MARKER: &str = "-- migrate:requires";

/// A clause only SurrealDB 4 understands, where it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct V4Clause {
    /// What it is: `MIGRATE EXISTING ROWS`, `COMPATIBILITY`.
    pub clause: &'static str,
    /// The file line it starts on.
    pub line: usize,
    /// Its text, whitespace collapsed.
    pub text: String,
}

/// A named run-once conversion of a table's rows (`DEFINE FIELD … MIGRATE
/// EXISTING ROWS AS name USING …`): SurrealDB 4 runs a name once per table
/// and refuses the same name for a different conversion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowMigration {
    /// The table whose rows it converts.
    pub table: String,
    /// The field it converts (empty for `ALTER TABLE … REMOVE UNDECLARED FIELDS`).
    pub field: String,
    /// Its name.
    pub name: String,
    /// The conversion after the name (`USING … FALLBACK …`), whitespace collapsed.
    pub step: String,
    /// The file line it starts on.
    pub line: usize,
}

/// An index built in the background (`DEFINE INDEX … CONCURRENTLY`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConcurrentIndex {
    /// The index.
    pub index: String,
    /// Its table.
    pub table: String,
}

/// What a migration needs of the server it goes to, and what a deployment
/// waits for there once it is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerRequirements {
    /// `-- migrate:requires surrealdb >= N`: it applies only on servers of
    /// major version N or newer, and is passed over (SKIPPED) elsewhere.
    pub min_major: Option<u64>,
    /// Clauses of its up section only SurrealDB 4 understands.
    pub v4_clauses: Vec<V4Clause>,
    /// Its run-once row conversions.
    pub row_migrations: Vec<RowMigration>,
    /// The compatibility level it raises its database to (`ALTER DATABASE COMPATIBILITY n`).
    pub compatibility: Option<u64>,
    /// Indexes it builds in the background.
    pub concurrent_indexes: Vec<ConcurrentIndex>,
}

impl ServerRequirements {
    /// Whether it depends on the server's version at all (a `requires` line,
    /// or a clause only SurrealDB 4 understands).
    pub fn asks_server_version(&self) -> bool {
        self.min_major.is_some() || !self.v4_clauses.is_empty()
    }

    /// Whether anything after applying it is waited for on the server: its
    /// rows verified at a raised compatibility level, its indexes built.
    pub fn awaits_server(&self) -> bool {
        self.compatibility.is_some() || !self.concurrent_indexes.is_empty()
    }
}

/// Whether a server can take a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// It applies there.
    Applies,
    /// Its `-- migrate:requires` names a newer server: passed over (the reason).
    PassedOver(String),
    /// It holds what the server cannot run, or the server does not tell its
    /// version: refused before anything runs (where, why, and what to do).
    Refused(String),
}

impl super::Migration {
    /// Whether a server of `version` (`None`: it does not tell) can take
    /// this migration; `place` names the environment or database in messages.
    pub fn fit(&self, version: Option<&crate::connection::ServerVersion>, place: &str) -> Fit {
        let requires = &self.requires;
        if !requires.asks_server_version() {
            return Fit::Applies;
        }
        let Some(version) = version else {
            return Fit::Refused(format!(
                "{} needs SurrealDB >= {}, and {place} does not tell which version its server runs (it denies the version request): let it answer, or deploy this migration elsewhere",
                self.id(),
                requires.min_major.unwrap_or(4)
            ));
        };
        if let Some(min) = requires.min_major.filter(|&min| version.major() < min) {
            return Fit::PassedOver(format!("{} requires SurrealDB >= {min}", self.id()));
        }
        match requires.v4_clauses.first().filter(|_| version.major() < 4) {
            Some(clause) => Fit::Refused(format!(
                "{}:{}: {} needs SurrealDB 4 and {place} is on SurrealDB {version}; nothing was applied. Add '-- migrate:requires surrealdb >= 4' to {} to apply it only where the server is new enough",
                self.path.display(),
                clause.line,
                clause.text,
                self.id()
            )),
            None => Fit::Applies,
        }
    }
}

/// A 4.x section's clauses and the text 3.3.5's parser reads in its place.
pub(crate) struct Blanked {
    pub(super) clauses: Vec<V4Clause>,
    pub(super) row_migrations: Vec<RowMigration>,
    pub(super) compatibility: Option<u64>,
    /// The section with each clause replaced by spaces (newlines kept).
    pub(super) text: String,
}

/// Words that start a clause of `DEFINE FIELD`/`ALTER FIELD`, and so end
/// the expression after `USING` or `FALLBACK`.
const CLAUSE_WORDS: &[&str] = &[
    "FALLBACK",
    "TYPE",
    "DEFAULT",
    "ASSERT",
    "VALUE",
    "COMMENT",
    "PERMISSIONS",
    "READONLY",
    "FLEXIBLE",
    "REFERENCE",
    "COMPUTED",
    "INLINE",
    "MIGRATE",
    "DROP",
];

/// Finds the 4.x-only clauses of `text` (a section whose first line is file
/// line `first_line`). `None` when it has none.
pub(super) fn blank_v4_clauses(text: &str, first_line: usize) -> Option<Blanked> {
    let all = tokens(text);
    let mut bytes = text.as_bytes().to_vec();
    let mut clauses = Vec::new();
    let mut row_migrations = Vec::new();
    let mut compatibility = None;
    for statement in all.split(|t| t.depth == 0 && t.text == ";") {
        let word = |i: usize| {
            statement
                .get(i)
                .map(|t| t.text.to_ascii_uppercase())
                .unwrap_or_default()
        };
        let mut i = 0;
        while i < statement.len() {
            let at_top = statement[i].depth == statement[0].depth;
            let upper = word(i);
            if at_top && upper == "MIGRATE" && word(i + 1) == "EXISTING" && word(i + 2) == "ROWS" {
                let end = migrate_clause_end(statement, i);
                let found = clause("MIGRATE EXISTING ROWS", text, &statement[i..=end], first_line);
                row_migrations.push(row_migration(statement, &statement[i..=end], &found));
                clauses.push(found);
                blank(&mut bytes, &statement[i..=end]);
                i = end + 1;
                continue;
            }
            let (first, second) = (word(0), word(1));
            let database_statement = (first == "ALTER" && (second == "DATABASE" || second == "SYSTEM"))
                || (first == "DEFINE" && second == "DATABASE");
            let level_follows = statement
                .get(i + 1)
                .is_some_and(|t| t.text.bytes().all(|b| b.is_ascii_digit()));
            if at_top && upper == "COMPATIBILITY" && database_statement && level_follows {
                clauses.push(clause("COMPATIBILITY", text, &statement[i..=i + 1], first_line));
                // `ALTER DATABASE [name] COMPATIBILITY n` (or `ALTER SYSTEM …`)
                // alone is not a statement without its clause: 3.3.5's parser
                // reads a no-op in its place, so statements keep their count.
                if first == "ALTER" && second == "DATABASE" {
                    compatibility = statement[i + 1].text.parse::<u64>().ok();
                }
                // 3.3.5 reads `ALTER DATABASE` with no name and COMPACT only:
                // the whole statement becomes a no-op there.
                if first == "ALTER" {
                    blank(&mut bytes, statement);
                    write_over(&mut bytes, statement[0].start, "NONE");
                } else {
                    blank(&mut bytes, &statement[i..=i + 1]);
                }
                i += 2;
                continue;
            }
            i += 1;
        }
    }
    if clauses.is_empty() {
        return None;
    }
    // Only ASCII bytes were written over ASCII-or-other bytes of whole tokens.
    let text = String::from_utf8(bytes).ok()?;
    Some(Blanked {
        clauses,
        row_migrations,
        compatibility,
        text,
    })
}

/// The table, field and name of the `MIGRATE EXISTING ROWS` clause `tokens`
/// of `statement` (`DEFINE FIELD [OVERWRITE | IF NOT EXISTS] f ON [TABLE] t`,
/// `ALTER FIELD [IF EXISTS] f ON [TABLE] t`, `ALTER TABLE [IF EXISTS] t`).
fn row_migration(statement: &[Token], tokens: &[Token], found: &V4Clause) -> RowMigration {
    let depth = statement[0].depth;
    let upper = |t: &Token| t.text.to_ascii_uppercase();
    let skip = ["OVERWRITE", "IF", "NOT", "EXISTS", "TABLE"];
    let head: Vec<&Token> = statement
        .iter()
        .take_while(|t| t.start < tokens[0].start)
        .filter(|t| t.depth == depth)
        .collect();
    let on = head.iter().position(|t| upper(t) == "ON");
    let words = |range: &[&Token]| -> String {
        let kept: Vec<&str> = range
            .iter()
            .filter(|t| !skip.contains(&upper(t).as_str()))
            .map(|t| t.text)
            .collect();
        kept.first().map(|_| kept.concat()).unwrap_or_default()
    };
    let (field, table) = match on {
        Some(on) => (
            words(head.get(2..on).unwrap_or_default()),
            head.get(on + 1..)
                .and_then(|rest| rest.iter().find(|t| upper(t) != "TABLE"))
                .map(|t| unquote(t.text))
                .unwrap_or_default(),
        ),
        None => (
            String::new(),
            head.get(2..)
                .and_then(|rest| rest.iter().find(|t| !skip.contains(&upper(t).as_str())))
                .map(|t| unquote(t.text))
                .unwrap_or_default(),
        ),
    };
    let name = tokens.get(4).map(|t| unquote(t.text)).unwrap_or_default();
    let step_start = tokens.get(5).map_or(tokens[tokens.len() - 1].end, |t| t.start);
    let step_text: Vec<&str> = tokens
        .iter()
        .filter(|t| t.start >= step_start)
        .map(|t| t.text)
        .collect();
    RowMigration {
        table,
        field: unquote(&field),
        name,
        step: step_text.join(" "),
        line: found.line,
    }
}

/// An identifier as written, without its `` ` `` or `⟨⟩` quotes.
fn unquote(text: &str) -> String {
    text.trim_start_matches(['`', '⟨'])
        .trim_end_matches(['`', '⟩'])
        .to_string()
}

/// The last token of the `MIGRATE EXISTING ROWS AS name …` clause that
/// starts at `start`: `… USING expr [FALLBACK expr]` or `… REMOVE UNDECLARED FIELDS`.
fn migrate_clause_end(statement: &[Token], start: usize) -> usize {
    let depth = statement[start].depth;
    let mut end = (start + 4).min(statement.len() - 1);
    let mut i = start + 5;
    let mut seen_using = false;
    while i < statement.len() {
        let token = &statement[i];
        let upper = token.text.to_ascii_uppercase();
        if token.depth == depth {
            match upper.as_str() {
                "USING" if !seen_using => seen_using = true,
                "FALLBACK" if seen_using => {}
                "REMOVE" if !seen_using => {
                    return (i + 2).min(statement.len() - 1);
                }
                // `type::int(…)` is a function, not the TYPE clause.
                word if seen_using && CLAUSE_WORDS.contains(&word) && !is_path(statement, i) => break,
                _ if !seen_using => break,
                _ => {}
            }
        }
        end = i;
        i += 1;
    }
    end
}

/// Whether the word at `i` is part of a path (`type::int`, `$a.type`).
fn is_path(statement: &[Token], i: usize) -> bool {
    let text = |j: usize| statement.get(j).map(|t| t.text);
    text(i + 1) == Some("::") || (i > 0 && matches!(text(i - 1), Some("::" | ".")))
}

fn clause(name: &'static str, text: &str, tokens: &[Token], first_line: usize) -> V4Clause {
    let (start, end) = (tokens[0].start, tokens[tokens.len() - 1].end);
    V4Clause {
        clause: name,
        line: first_line + text[..start].matches('\n').count(),
        text: text[start..end].split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// Spaces over the tokens' bytes, newlines kept.
fn blank(bytes: &mut [u8], tokens: &[Token]) {
    let (start, end) = (tokens[0].start, tokens[tokens.len() - 1].end);
    for byte in &mut bytes[start..end] {
        if *byte != b'\n' {
            *byte = b' ';
        }
    }
}

fn write_over(bytes: &mut [u8], at: usize, text: &str) {
    bytes[at..at + text.len()].copy_from_slice(text.as_bytes());
}

/// The indexes of `ast` defined `CONCURRENTLY` (at the top level).
pub(super) fn concurrent_indexes(ast: &surrealdb_sql::Ast) -> Vec<ConcurrentIndex> {
    use surrealdb::types::ToSql;
    use surrealdb_sql::statements::define::DefineStatement;
    use surrealdb_sql::{Expr, TopLevelExpr};
    ast.expressions
        .iter()
        .filter_map(|top| match top {
            TopLevelExpr::Expr(Expr::Define(define)) => match define.as_ref() {
                DefineStatement::Index(index) if index.concurrently => Some(ConcurrentIndex {
                    index: unquote(&index.name.to_sql()),
                    table: unquote(&index.what.to_sql()),
                }),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Reads `-- migrate:requires surrealdb >= N` lines: the major version
/// named, and the line of any directive that does not read so.
pub(super) fn requires_directive(text: &str) -> Result<Option<u64>, (usize, String)> {
    let mut found = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        let Some(rest) = (trimmed.len() >= REQUIRES_MARKER.len())
            .then(|| &trimmed[..REQUIRES_MARKER.len()])
            .filter(|head| head.eq_ignore_ascii_case(REQUIRES_MARKER))
            .map(|_| trimmed[REQUIRES_MARKER.len()..].trim())
        else {
            continue;
        };
        let bad = || {
            (
                index + 1,
                format!("'{trimmed}' is not a requirement surql reads: write '{REQUIRES_MARKER} surrealdb >= 4'"),
            )
        };
        let spaced = rest.replace(">=", " >= ");
        let words: Vec<&str> = spaced.split_whitespace().collect();
        let [product, ">=", version] = words.as_slice() else {
            return Err(bad());
        };
        if !product.eq_ignore_ascii_case("surrealdb") {
            return Err(bad());
        }
        // A major version only: `4`, `4.0`, `4.0.0`.
        let mut parts = version.split('.');
        let major = parts.next().and_then(|m| m.parse::<u64>().ok()).ok_or_else(bad)?;
        if !parts.all(|part| part == "0") {
            return Err((
                index + 1,
                format!(
                    "'{trimmed}': surql checks major versions only: write '{REQUIRES_MARKER} surrealdb >= {major}' or >= {}",
                    major + 1
                ),
            ));
        }
        if found.is_some_and(|earlier| earlier != major) {
            return Err((
                index + 1,
                format!("a second '{REQUIRES_MARKER}' line that names another version"),
            ));
        }
        found = Some(major);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_migration_clause_is_blanked_with_its_expressions() {
        let text = "DEFINE FIELD OVERWRITE age ON account TYPE int\n  MIGRATE EXISTING ROWS AS age_int USING <int> $value FALLBACK 0 COMMENT 'x';\nDEFINE TABLE b;\n";
        let blanked = blank_v4_clauses(text, 10).unwrap();
        assert_eq!(blanked.clauses.len(), 1);
        let found = &blanked.clauses[0];
        assert_eq!((found.clause, found.line), ("MIGRATE EXISTING ROWS", 11));
        assert_eq!(
            found.text,
            "MIGRATE EXISTING ROWS AS age_int USING <int> $value FALLBACK 0"
        );
        let row = &blanked.row_migrations[0];
        assert_eq!(
            (
                row.table.as_str(),
                row.field.as_str(),
                row.name.as_str(),
                row.step.as_str()
            ),
            ("account", "age", "age_int", "USING < int > $value FALLBACK 0")
        );
        assert!(blanked.text.contains("TYPE int\n") && blanked.text.contains("COMMENT 'x';"));
        assert_eq!(blanked.text.len(), text.len());
        assert!(surrealdb_core::syn::parse(&blanked.text).is_ok(), "{}", blanked.text);
    }

    #[test]
    fn a_compatibility_raise_reads_as_a_no_op_statement() {
        let text = "ALTER DATABASE COMPATIBILITY 4;\nDEFINE DATABASE x COMPATIBILITY 3;\n";
        let blanked = blank_v4_clauses(text, 1).unwrap();
        let lines: Vec<usize> = blanked.clauses.iter().map(|c| c.line).collect();
        assert_eq!(lines, [1, 2]);
        assert!(blanked.text.starts_with("NONE "));
        assert_eq!(blanked.compatibility, Some(4));
        let ast = surrealdb_core::syn::parse(&blanked.text).unwrap();
        assert_eq!(ast.expressions.len(), 2, "statements keep their count");
    }

    #[test]
    fn the_clauses_end_where_surrealdb_4_ends_them() {
        let cases = [
            // A `type::` function inside the conversion is not the TYPE clause.
            (
                "DEFINE FIELD OVERWRITE n ON t TYPE int MIGRATE EXISTING ROWS AS n_int USING type::int($value) FALLBACK 0 COMMENT 'n';",
                "t",
                "n",
                "n_int",
            ),
            (
                "ALTER TABLE t MIGRATE EXISTING ROWS AS tidy REMOVE UNDECLARED FIELDS COMMENT 'x';",
                "t",
                "",
                "tidy",
            ),
            (
                "ALTER TABLE `user` SCHEMAFULL MIGRATE EXISTING ROWS AS tidy REMOVE UNDECLARED FIELDS;",
                "user",
                "",
                "tidy",
            ),
            (
                "DEFINE FIELD ⟨full name⟩ ON TABLE ⟨people⟩ TYPE string MIGRATE EXISTING ROWS AS named USING '';",
                "people",
                "full name",
                "named",
            ),
        ];
        for (text, table, field, name) in cases {
            let blanked = blank_v4_clauses(text, 1).unwrap();
            let row = &blanked.row_migrations[0];
            assert_eq!(
                (row.table.as_str(), row.field.as_str(), row.name.as_str()),
                (table, field, name),
                "{text}"
            );
            assert!(
                surrealdb_core::syn::parse(&blanked.text).is_ok(),
                "{text} → {}",
                blanked.text
            );
        }
        let blanked = blank_v4_clauses(
            "ALTER TABLE t MIGRATE EXISTING ROWS AS tidy REMOVE UNDECLARED FIELDS COMMENT 'x';",
            1,
        )
        .unwrap();
        assert!(blanked.text.contains("COMMENT 'x'"), "{}", blanked.text);
        assert_eq!(blanked.row_migrations[0].step, "REMOVE UNDECLARED FIELDS");
    }

    #[test]
    fn compatibility_is_a_clause_of_database_statements_only() {
        assert!(blank_v4_clauses("DEFINE FIELD compatibility ON t TYPE int;", 1).is_none());
        assert!(blank_v4_clauses("SELECT compatibility FROM t;", 1).is_none());
        let blanked = blank_v4_clauses("ALTER DATABASE main COMPATIBILITY 4 COMPACT;", 1).unwrap();
        assert_eq!(blanked.compatibility, Some(4));
        assert!(surrealdb_core::syn::parse(&blanked.text).is_ok(), "{}", blanked.text);
    }

    #[test]
    fn a_migration_fits_a_server_by_its_major_version() {
        use crate::connection::ServerVersion;
        let parse = |text: &str| super::super::file::parse_migration(std::path::Path::new("2_m.surql"), text).unwrap();
        let (v3, v4) = (ServerVersion::parse("3.3.5"), ServerVersion::parse("4.0.0-beta.1"));
        let plain = parse("-- migrate:up\nDEFINE TABLE a;\n");
        assert_eq!(plain.fit(None, "'x'"), Fit::Applies);
        let declared = parse("-- migrate:requires surrealdb >= 4\n-- migrate:up\nDEFINE TABLE a;\n");
        assert_eq!(declared.fit(v4.as_ref(), "'x'"), Fit::Applies);
        assert_eq!(
            declared.fit(v3.as_ref(), "'x'"),
            Fit::PassedOver("2_m requires SurrealDB >= 4".into())
        );
        assert!(matches!(declared.fit(None, "'x'"), Fit::Refused(why) if why.contains("does not tell")));
        let undeclared = parse("-- migrate:up\nDEFINE FIELD n ON a TYPE int MIGRATE EXISTING ROWS AS n0 USING 0;\n");
        assert_eq!(undeclared.fit(v4.as_ref(), "'x'"), Fit::Applies);
        assert!(matches!(undeclared.fit(v3.as_ref(), "'x'"), Fit::Refused(why) if why.starts_with("2_m.surql:2:")));
        // A rollback in SurrealDB 4 syntax would fail on 3.x: refused there too.
        let down = parse("-- migrate:up\nDEFINE TABLE a;\n-- migrate:down\nALTER DATABASE COMPATIBILITY 3;\n");
        assert!(matches!(down.fit(v3.as_ref(), "'x'"), Fit::Refused(why) if why.starts_with("2_m.surql:4:")));
        assert_eq!(down.fit(v4.as_ref(), "'x'"), Fit::Applies);
    }

    #[test]
    fn text_in_strings_and_comments_is_not_a_clause() {
        let text = "-- MIGRATE EXISTING ROWS AS x USING 1\nCREATE note SET body = 'MIGRATE EXISTING ROWS';\n";
        assert!(blank_v4_clauses(text, 1).is_none());
    }

    #[test]
    fn the_requires_directive_names_a_major_version() {
        assert_eq!(requires_directive("-- migrate:requires surrealdb >= 4\n"), Ok(Some(4)));
        assert_eq!(
            requires_directive("-- MIGRATE:REQUIRES SurrealDB >= 4.0\n"),
            Ok(Some(4))
        );
        assert_eq!(requires_directive("DEFINE TABLE a;\n"), Ok(None));
        let (line, message) = requires_directive("\n-- migrate:requires surrealdb 4\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(message.contains("surrealdb >= 4"), "{message}");
        let (_, message) = requires_directive("-- migrate:requires surrealdb >= 4.1\n").unwrap_err();
        assert!(message.contains("major versions only"), "{message}");
    }
}
