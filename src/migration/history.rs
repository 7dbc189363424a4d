//! The `_migration_history` table: one row per applied migration, keyed by
//! version so the database itself refuses a second row for the same version.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::file::version_order_key;
use crate::connection::Db;
use crate::connection::{QueryError, QueryErrorKind, run_query};

/// Name of the history table.
pub const HISTORY_TABLE: &str = "_migration_history";

/// Defines the history table (idempotent). Rows are written only by surql,
/// with a fixed shape and the version as record id; seven `DEFINE FIELD`s per
/// database cost ~10 % of a 1,000-tenant deployment (BENCHMARKS.md) and
/// protected nothing the record id does not.
pub const DEFINE_HISTORY_TABLE: &str = "DEFINE TABLE IF NOT EXISTS _migration_history SCHEMALESS COMMENT 'surql migration history: version, name, checksum, applied_at, execution_ms, deployment_id, actor';";

/// One row of `_migration_history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedMigration {
    pub version: String,
    pub name: String,
    pub checksum: String,
    /// RFC 3339 time the migration committed.
    pub applied_at: String,
    pub execution_ms: i64,
    pub deployment_id: String,
    pub actor: String,
}

/// Creates the history and lock tables if they are missing.
pub async fn ensure_history_table(db: &Db) -> Result<(), QueryError> {
    let sql = format!("{DEFINE_HISTORY_TABLE}\n{}", super::lock::DEFINE_LOCK_TABLE);
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
        .map(|result| history_from_answer(result.map(Some)))
        .collect())
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
    let mut applied: Vec<AppliedMigration> = serde_json::from_value(rows)
        .map_err(|e| QueryError::unreadable(format!("unreadable {HISTORY_TABLE} row: {e}")))?;
    applied.sort_by_key(|row| version_order_key(&row.version));
    Ok(applied)
}

/// Every applied migration, ordered by numeric version. Empty when the table is missing.
pub async fn applied_migrations(db: &Db) -> Result<Vec<AppliedMigration>, QueryError> {
    Ok(read_history(db).await?.unwrap_or_default())
}
