//! Running the `-- migrate:verify` sections of the migrations applied on one
//! database: read-only checks, each of whose statements must answer a
//! truthy value.

use serde::Serialize;

use super::{AppliedMigration, Migration};
use crate::connection::{Db, QueryError, QueryErrorKind, run_collecting_errors};

/// The verify statement that did not hold on a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyFailure {
    /// `version_name` of the migration.
    pub migration: String,
    /// The migration file's path.
    pub file: String,
    /// The file line of the statement.
    pub line: usize,
    /// The statement, as SurrealDB prints it back.
    pub statement: String,
    /// What it answered, or its error.
    pub reason: String,
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "verify section of {} failed at {}:{}: {} ({})",
            self.migration, self.file, self.line, self.reason, self.statement
        )
    }
}

/// Runs, oldest first, the verify section of each of `migrations` that
/// `applied` holds; the first statement that fails or answers a falsy value
/// (NONE, NULL, false, 0, "", [] or {}) ends it. `Err` when a request did not
/// complete.
pub async fn run_verify_sections(
    db: &Db,
    migrations: &[Migration],
    applied: &[AppliedMigration],
) -> Result<Option<VerifyFailure>, QueryError> {
    for migration in migrations {
        let Some(section) = &migration.verify else { continue };
        if !applied.iter().any(|row| row.version == migration.version) {
            continue;
        }
        let answer = run_collecting_errors(db, &section.text, serde_json::json!({}), db.operation_timeout()).await?;
        if answer.statements != section.checks.len() {
            return Err(QueryError::new(
                QueryErrorKind::Inconsistent,
                format!(
                    "the verify section of {} has {} statements but SurrealDB answered {}",
                    migration.id(),
                    section.checks.len(),
                    answer.statements
                ),
            ));
        }
        let mut response = answer.response;
        for (index, check) in section.checks.iter().enumerate() {
            let failure = |reason: String| VerifyFailure {
                migration: migration.id(),
                file: migration.path.display().to_string(),
                line: check.line,
                statement: check.statement.clone(),
                reason,
            };
            if let Some(error) = answer.errors.iter().find(|e| e.statement() == Some(index)) {
                return Ok(Some(failure(format!("error: {}", error.message()))));
            }
            if !check.answers {
                continue;
            }
            let value = response
                .take::<surrealdb::types::Value>(index)
                .map(surrealdb::types::Value::into_json_value)
                .map_err(|e| QueryError::from_sdk(&e).at_statement(index))?;
            if !truthy(&value) {
                return Ok(Some(failure(format!("answered {value}, not a truthy value"))));
            }
        }
    }
    Ok(None)
}

/// SurrealDB's truthiness: NONE, NULL, false, 0, and empty strings, arrays
/// and objects are falsy.
fn truthy(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Array(items) => !items.is_empty(),
        serde_json::Value::Object(map) => !map.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn truthiness_is_surrealdbs() {
        for value in [
            json!(true),
            json!(1),
            json!(-0.5),
            json!("x"),
            json!([0]),
            json!({"a": 1}),
        ] {
            assert!(truthy(&value), "{value}");
        }
        for value in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(!truthy(&value), "{value}");
        }
    }
}
