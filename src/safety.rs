//! Safety analysis: which statements lose data (classified from SurrealDB's own
//! parser output, never by pattern matching text), and approval decisions.

use std::collections::HashSet;

use serde::Serialize;
use surrealdb::types::ToSql;
use surrealdb_sql::statements::alter::{AlterKind, AlterStatement};
use surrealdb_sql::statements::define::{DefineKind, DefineStatement};
use surrealdb_sql::{Data, Expr, TopLevelExpr};

use crate::migration::Migration;

/// One data-losing statement of a migration's up section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestructiveStatement {
    /// `version_name` of the migration.
    pub migration: String,
    /// The file it is in.
    pub file: String,
    /// The file line of the top-level statement it is in (0 when unknown).
    pub line: usize,
    /// What makes it destructive, e.g. `REMOVE TABLE`.
    pub kind: String,
    /// The statement, as SurrealDB prints it back.
    pub statement: String,
}

impl std::fmt::Display for DestructiveStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} ({}): {}", self.file, self.line, self.kind, self.statement)
    }
}

/// The data-losing statements of `migration`'s up section: every `REMOVE`,
/// `DELETE`, `UNSET`, `DEFINE TABLE/FIELD … OVERWRITE`, and `ALTER` that
/// changes a field's type or makes a table schemafull — also inside blocks,
/// `IF` and `FOR`.
pub fn destructive_statements(migration: &Migration) -> Vec<DestructiveStatement> {
    let mut found = Vec::new();
    let starts = crate::migration::statement_starts(&migration.up);
    for (index, top) in migration.up_ast.expressions.iter().enumerate() {
        let line = starts.get(index).map_or(0, |(line, _)| migration.up_line + line - 1);
        if let TopLevelExpr::Expr(expr) = top {
            classify(expr, &mut |kind, expr| {
                found.push(DestructiveStatement {
                    migration: migration.id(),
                    file: migration.path.display().to_string(),
                    line,
                    kind: kind.to_string(),
                    statement: shorten(&expr.to_sql()),
                })
            });
        }
    }
    // SurrealDB 4's clauses are read aside from the syntax tree (see
    // `migration::dialect`): a conversion that drops undeclared fields loses data.
    for row in &migration.requires.row_migrations {
        if row.step.to_ascii_uppercase().contains("REMOVE UNDECLARED FIELDS") {
            found.push(DestructiveStatement {
                migration: migration.id(),
                file: migration.path.display().to_string(),
                line: row.line,
                kind: "REMOVE UNDECLARED FIELDS".to_string(),
                statement: format!(
                    "ALTER TABLE {} MIGRATE EXISTING ROWS AS {} {}",
                    row.table, row.name, row.step
                ),
            });
        }
    }
    found.sort_by_key(|d| d.line);
    found
}

fn classify(expr: &Expr, report: &mut dyn FnMut(&str, &Expr)) {
    match expr {
        Expr::Remove(statement) => {
            let sql = statement.to_sql();
            // "REMOVE TABLE", "REMOVE FIELD", … from SurrealDB's own rendering.
            let kind: Vec<&str> = sql.split_whitespace().take(2).collect();
            report(&kind.join(" "), expr);
        }
        Expr::Delete(_) => report("DELETE", expr),
        Expr::Update(statement) if matches!(statement.data, Some(Data::UnsetExpression(_))) => {
            report("UPDATE … UNSET", expr)
        }
        Expr::Upsert(statement) if matches!(statement.data, Some(Data::UnsetExpression(_))) => {
            report("UPSERT … UNSET", expr)
        }
        Expr::Define(statement) => match statement.as_ref() {
            DefineStatement::Table(t) if t.kind == DefineKind::Overwrite => report("DEFINE TABLE … OVERWRITE", expr),
            DefineStatement::Field(f) if f.kind == DefineKind::Overwrite => report("DEFINE FIELD … OVERWRITE", expr),
            _ => {}
        },
        Expr::Alter(statement) => match statement.as_ref() {
            AlterStatement::Field(f) if !matches!(f.kind, AlterKind::None) => report("ALTER FIELD … TYPE", expr),
            AlterStatement::Table(t) if matches!(t.schemafull, AlterKind::Set(())) => {
                report("ALTER TABLE … SCHEMAFULL", expr)
            }
            _ => {}
        },
        Expr::Block(block) => block.0.iter().for_each(|e| classify(e, report)),
        Expr::IfElse(statement) => {
            for (_, body) in &statement.exprs {
                classify(body, report);
            }
            if let Some(body) = &statement.close {
                classify(body, report);
            }
        }
        Expr::Foreach(statement) => statement.block.0.iter().for_each(|e| classify(e, report)),
        _ => {}
    }
}

fn shorten(sql: &str) -> String {
    const MAX: usize = 160;
    if sql.chars().count() <= MAX {
        sql.to_string()
    } else {
        format!("{}…", sql.chars().take(MAX).collect::<String>())
    }
}

/// The answer of an approval gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", content = "reason", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ApprovalDecision {
    /// Go ahead.
    Approved,
    /// Do not deploy; the environment is SKIPPED with this reason.
    Denied(String),
    /// No answer yet (plugins poll until their timeout).
    Pending(String),
    /// The gate itself failed (a plugin error or panic): the environment is FAILED.
    Error(String),
}

/// How approvals are given without a plugin: `--approve NAME`, `--yes`, or a
/// y/N prompt when a person is at the terminal.
#[derive(Debug, Clone, Default)]
pub struct ApprovalPolicy {
    /// Environments approved up front (`--approve a,b`).
    pub approved: HashSet<String>,
    /// `--yes`: approve every environment that requires it.
    pub approve_all: bool,
    /// A person can be asked (stdin and stderr are a terminal).
    pub interactive: bool,
}

impl ApprovalPolicy {
    /// The decision that needs no prompt, or `None` when a person must be asked.
    pub fn decide_without_prompt(&self, environment: &str) -> Option<ApprovalDecision> {
        if self.approve_all || self.approved.contains(environment) {
            Some(ApprovalDecision::Approved)
        } else if self.interactive {
            None
        } else {
            Some(ApprovalDecision::Denied(
                "approval required: pass --approve NAME or --yes, or run on a terminal to be asked".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::file::parse_migration;
    use std::path::Path;

    fn kinds(up: &str) -> Vec<String> {
        let m = parse_migration(Path::new("7_x.surql"), &format!("-- migrate:up\n{up}\n")).unwrap();
        destructive_statements(&m).into_iter().map(|d| d.kind).collect()
    }

    #[test]
    fn data_losing_statements_are_found() {
        assert_eq!(kinds("REMOVE TABLE user;"), ["REMOVE TABLE"]);
        assert_eq!(kinds("REMOVE FIELD email ON user;"), ["REMOVE FIELD"]);
        assert_eq!(kinds("REMOVE INDEX idx ON user;"), ["REMOVE INDEX"]);
        assert_eq!(kinds("DELETE user WHERE active = false;"), ["DELETE"]);
        assert_eq!(kinds("UPDATE user UNSET legacy;"), ["UPDATE … UNSET"]);
        assert_eq!(
            kinds("DEFINE FIELD OVERWRITE age ON user TYPE int;"),
            ["DEFINE FIELD … OVERWRITE"]
        );
        assert_eq!(kinds("IF true { DELETE user; };"), ["DELETE"]);
        assert_eq!(kinds("FOR $t IN ['a'] { REMOVE TABLE a; };"), ["REMOVE TABLE"]);
    }

    #[test]
    fn each_destructive_statement_names_its_file_line() {
        let text = "-- a comment\n-- migrate:up\n\nDEFINE TABLE a;\nIF true {\n  REMOVE TABLE b;\n};\nDELETE c;\n-- migrate:down\nDEFINE TABLE b;\n";
        let m = parse_migration(Path::new("7_x.surql"), text).unwrap();
        let found: Vec<(usize, String)> = destructive_statements(&m)
            .into_iter()
            .map(|d| (d.line, d.kind))
            .collect();
        assert_eq!(found, [(5, "REMOVE TABLE".to_string()), (8, "DELETE".to_string())]);
        assert!(
            destructive_statements(&m)[1]
                .to_string()
                .starts_with("7_x.surql:8 (DELETE)")
        );
    }

    #[test]
    fn surrealdb_4_clauses_are_analysed_too() {
        // The type change is still seen with its row conversion beside it.
        let retyped =
            kinds("ALTER FIELD age ON user TYPE string MIGRATE EXISTING ROWS AS age_text USING <string> $value;");
        assert_eq!(retyped.len(), 1, "{retyped:?}");
        assert_eq!(
            kinds("ALTER TABLE user MIGRATE EXISTING ROWS AS tidy REMOVE UNDECLARED FIELDS;"),
            ["REMOVE UNDECLARED FIELDS"]
        );
        assert!(kinds("DEFINE FIELD age ON user TYPE int MIGRATE EXISTING ROWS AS age_zero USING 0;").is_empty());
        assert!(kinds("ALTER DATABASE COMPATIBILITY 4;").is_empty());
        // The statements that would end surql's transaction are refused in a 4.x file as in any.
        let error = parse_migration(
            Path::new("7_x.surql"),
            "-- migrate:up\nDEFINE FIELD age ON user TYPE int MIGRATE EXISTING ROWS AS a USING 0;\nRETURN 1;\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("7_x.surql:3:1") && error.contains("RETURN is not allowed"),
            "{error}"
        );
    }

    #[test]
    fn additive_statements_are_not_destructive() {
        assert!(kinds("DEFINE TABLE user SCHEMAFULL; DEFINE FIELD email ON user TYPE string;").is_empty());
        assert!(kinds("DEFINE INDEX idx ON user FIELDS email; UPDATE user SET active = true;").is_empty());
        // A string that merely mentions REMOVE is not a statement.
        assert!(kinds("CREATE note SET text = 'REMOVE TABLE user; DELETE everything';").is_empty());
    }

    #[test]
    fn approvals_without_a_terminal_need_a_flag() {
        let mut policy = ApprovalPolicy::default();
        assert!(matches!(
            policy.decide_without_prompt("prod"),
            Some(ApprovalDecision::Denied(_))
        ));
        policy.approved.insert("prod".into());
        assert_eq!(policy.decide_without_prompt("prod"), Some(ApprovalDecision::Approved));
        assert!(matches!(
            policy.decide_without_prompt("other"),
            Some(ApprovalDecision::Denied(_))
        ));
        policy.interactive = true;
        assert_eq!(policy.decide_without_prompt("other"), None);
        policy.approve_all = true;
        assert_eq!(policy.decide_without_prompt("other"), Some(ApprovalDecision::Approved));
    }
}
