//! The `_migration_history` table: one row per applied migration, keyed by
//! version so the database itself refuses a second row for the same version.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::file::version_order_key;
use crate::connection::Db;
use crate::connection::{QueryError, QueryErrorKind, run_query};

/// Name of the history table.
pub const HISTORY_TABLE: &str = "_migration_history";

pub use super::tables::DEFINE_HISTORY_TABLE;

/// One row of `_migration_history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedMigration {
    /// The migration's version, the file name's prefix (`0001` of `0001_users.surql`).
    pub version: String,
    /// The rest of the file name, without the extension.
    pub name: String,
    /// Checksum of the up section as applied; a later edit of the file is drift.
    pub checksum: String,
    /// RFC 3339 time the migration committed.
    pub applied_at: String,
    /// How long its transaction took on the server, in milliseconds.
    pub execution_ms: i64,
    /// The deployment that applied it.
    pub deployment_id: String,
    /// Who ran that deployment (`--actor`, or the OS user).
    pub actor: String,
    /// Recorded by `baseline`: its schema was made another way, nothing of it ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub baseline: bool,
}

/// What surql says on meeting the history of oneiriq-surql (the Python
/// `surql` or its Rust port): same table name, other rows.
pub const FOREIGN_ONEIRIQ: &str = "_migration_history was written by another tool, oneiriq-surql (the Python `surql` or its Rust port: rows with `description` and `execution_time_ms`, no `name`): convert its migration files with `surql migrate import --from oneiriq DIR --out migrations`, then adopt its history with `surql migrate adopt` (one database) or `surql orchestrate adopt -e …`; nothing was changed";

/// Whether a history row was written by oneiriq-surql rather than surql.
fn is_oneiriq_row(has: impl Fn(&str) -> bool) -> bool {
    has("description") && !has("name")
}

/// Creates the history and lock tables if they are missing.
pub async fn ensure_history_table(db: &Db) -> Result<(), QueryError> {
    let sql = format!("{DEFINE_HISTORY_TABLE}\n{}", super::tables::DEFINE_LOCK_TABLE);
    crate::connection::run_idempotent(db, &sql, json!({})).await.map(|_| ())
}

/// Whether the history table exists. A missing namespace or database counts as
/// "no table": read-only callers must not create them.
pub async fn history_table_exists(db: &Db) -> Result<bool, QueryError> {
    match run_query(db, "INFO FOR DB;", json!({})).await {
        Ok(results) => Ok(results
            .first()
            .and_then(|info| info.get("tables"))
            .and_then(|tables| tables.get(HISTORY_TABLE))
            .is_some()),
        Err(error) if error.kind() == QueryErrorKind::NotFound => Ok(false),
        Err(other) => Err(other),
    }
}

/// Reads the history in one statement. SurrealDB 3 refuses to read an
/// undefined table, which is how an uninitialised database shows (a
/// [`QueryErrorKind::NotFound`]); cheaper than asking `INFO FOR DB` first. The
/// record range `:..` is every row, read about three times faster than a
/// table scan by SurrealDB 3.3.5 (BENCHMARKS.md).
pub const READ_HISTORY: &str = "SELECT * FROM _migration_history:..;";

/// The history, `None` when the table is missing (the database is uninitialised).
pub async fn read_history(db: &Db) -> Result<Option<Vec<AppliedMigration>>, QueryError> {
    history_from_answer(
        run_query(db, READ_HISTORY, json!({}))
            .await
            .map(|results| results.into_iter().last()),
    )
}

/// The history from [`READ_HISTORY`]'s answer: a missing scope or table is an
/// uninitialised database (`None`), any other error stays one.
fn history_from_answer(
    answer: Result<Option<serde_json::Value>, QueryError>,
) -> Result<Option<Vec<AppliedMigration>>, QueryError> {
    match answer {
        Ok(rows) => history_from_read(rows),
        Err(error) if error.kind() == QueryErrorKind::NotFound => Ok(None),
        Err(other) => Err(other),
    }
}

/// The histories of many databases of one server in one request, through a
/// session that may switch to each (see [`crate::connection::run_in_each_scope`]):
/// each `None` when its table is missing. `Err` when the request failed as a whole.
pub async fn read_histories(
    session: &Db,
    databases: &[(&str, &str)],
) -> Result<Vec<Result<Option<Vec<AppliedMigration>>, QueryError>>, QueryError> {
    let scopes: Vec<(&str, Option<&str>)> = databases.iter().map(|(ns, db)| (*ns, Some(*db))).collect();
    let results = crate::connection::run_in_each_scope(session, &scopes, READ_HISTORY).await?;
    Ok(results
        .into_iter()
        .map(|result| match result {
            Ok(rows) => history_from_rows(rows),
            Err(error) if error.kind() == QueryErrorKind::NotFound => Ok(None),
            Err(other) => Err(other),
        })
        .collect())
}

/// The histories of many databases of one server in one read transaction,
/// databases not known to exist included (see
/// [`crate::connection::run_in_every_scope_or_none`]): `Ok(None)`, with
/// nothing created, unless every database exists and has its history table.
pub async fn read_histories_if_all_exist(
    session: &Db,
    databases: &[(&str, &str)],
) -> Result<Option<Vec<Result<Option<Vec<AppliedMigration>>, QueryError>>>, QueryError> {
    let scopes: Vec<(&str, Option<&str>)> = databases.iter().map(|(ns, db)| (*ns, Some(*db))).collect();
    let results = crate::connection::run_in_every_scope_or_none(session, &scopes, READ_HISTORY).await?;
    Ok(results.map(|rows| rows.into_iter().map(history_from_rows).collect()))
}

/// The history from [`READ_HISTORY`]'s rows as the SDK answers them, read
/// field by field: for 10,000 tenants, going through JSON first cost the
/// client more than a second (BENCHMARKS.md). The same rows are accepted and
/// refused as by [`parse_history`].
fn history_from_rows(rows: surrealdb::types::Value) -> Result<Option<Vec<AppliedMigration>>, QueryError> {
    use surrealdb::types::Value;
    let rows = match rows {
        Value::None | Value::Null => return Ok(None),
        Value::Array(rows) => rows.into_inner(),
        other => return parse_history(other.into_json_value()).map(Some),
    };
    let mut applied = Vec::with_capacity(rows.len());
    for row in rows {
        let Value::Object(row) = row else {
            return parse_history(serde_json::Value::Array(vec![row.into_json_value()])).map(Some);
        };
        let mut fields = row.into_inner();
        if is_oneiriq_row(|key| fields.contains_key(key)) {
            return Err(QueryError::unreadable(FOREIGN_ONEIRIQ));
        }
        let mut field = |name: &str| {
            fields
                .remove(name)
                .filter(|value| !matches!(value, Value::None))
                .map(Value::into_json_value)
                .ok_or_else(|| {
                    QueryError::unreadable(format!("unreadable {HISTORY_TABLE} row: missing field `{name}`"))
                })
        };
        let text = |value: serde_json::Value, name: &str| match value {
            serde_json::Value::String(text) => Ok(text),
            other => Err(QueryError::unreadable(format!(
                "unreadable {HISTORY_TABLE} row: field `{name}` is {other}, not a string"
            ))),
        };
        // In the struct's order, so the first problem named is the one serde names.
        let version = text(field("version")?, "version")?;
        let name = text(field("name")?, "name")?;
        let checksum = text(field("checksum")?, "checksum")?;
        let applied_at = text(field("applied_at")?, "applied_at")?;
        let execution_ms = field("execution_ms")?;
        let execution_ms = execution_ms.as_i64().ok_or_else(|| {
            QueryError::unreadable(format!(
                "unreadable {HISTORY_TABLE} row: field `execution_ms` is {execution_ms}, not an integer"
            ))
        })?;
        applied.push(AppliedMigration {
            version,
            name,
            checksum,
            applied_at,
            execution_ms,
            deployment_id: text(field("deployment_id")?, "deployment_id")?,
            actor: text(field("actor")?, "actor")?,
            baseline: fields.remove("baseline").and_then(|v| v.into_json_value().as_bool()) == Some(true),
        });
    }
    applied.sort_by_key(|row| version_order_key(&row.version));
    Ok(Some(applied))
}

/// The history from the result of [`READ_HISTORY`] (`None`: no result).
pub fn history_from_read(result: Option<serde_json::Value>) -> Result<Option<Vec<AppliedMigration>>, QueryError> {
    match result {
        Some(serde_json::Value::Null) | None => Ok(None),
        Some(rows) => parse_history(rows).map(Some),
    }
}

/// History rows from a query result, ordered by numeric version.
pub fn parse_history(rows: serde_json::Value) -> Result<Vec<AppliedMigration>, QueryError> {
    let foreign = rows
        .as_array()
        .and_then(|rows| rows.first())
        .and_then(serde_json::Value::as_object)
        .is_some_and(|row| is_oneiriq_row(|key| row.contains_key(key)));
    if foreign {
        return Err(QueryError::unreadable(FOREIGN_ONEIRIQ));
    }
    let mut applied: Vec<AppliedMigration> = serde_json::from_value(rows)
        .map_err(|e| QueryError::unreadable(format!("unreadable {HISTORY_TABLE} row: {e}")))?;
    applied.sort_by_key(|row| version_order_key(&row.version));
    Ok(applied)
}

/// Every applied migration, ordered by numeric version. Empty when the table is missing.
pub async fn applied_migrations(db: &Db) -> Result<Vec<AppliedMigration>, QueryError> {
    Ok(read_history(db).await?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use surrealdb::types::SurrealValue;

    fn row(version: &str) -> serde_json::Value {
        json!({"id": format!("_migration_history:⟨{version}⟩"), "version": version, "name": "n", "checksum": "c",
            "applied_at": "2026-12-01T00:00:00Z", "execution_ms": 3, "deployment_id": "d", "actor": "a"})
    }

    /// The grouped read parses the SDK's rows itself; it must agree with the JSON path.
    #[test]
    fn rows_read_field_by_field_match_the_json_path() {
        let rows = json!([row("10"), row("9"), row("0002")]);
        let direct = history_from_rows(rows.clone().into_value()).unwrap().unwrap();
        assert_eq!(direct, parse_history(rows).unwrap());
        assert_eq!(
            direct.iter().map(|r| r.version.as_str()).collect::<Vec<_>>(),
            ["0002", "9", "10"]
        );
        assert_eq!(history_from_rows(serde_json::Value::Null.into_value()).unwrap(), None);
    }

    #[test]
    fn unreadable_rows_are_refused_naming_the_field() {
        for (broken, field) in [
            (json!([{"version": "1"}]), "`name`"),
            (json!([{"version": "1", "name": 5, "checksum": "c"}]), "`name`"),
            (
                json!([{"version": "1", "name": "n", "checksum": "c", "applied_at": "t", "execution_ms": "slow"}]),
                "`execution_ms`",
            ),
        ] {
            let direct = history_from_rows(broken.clone().into_value()).unwrap_err().to_string();
            assert!(parse_history(broken).is_err());
            assert!(direct.starts_with("unreadable _migration_history row"), "{direct}");
            assert!(direct.contains(field), "{direct}");
        }
    }
}
