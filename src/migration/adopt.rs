//! `adopt`: turning oneiriq-surql's `_migration_history` (the Python `surql`
//! and its Rust port write the same SCHEMAFULL table) into surql's — the
//! same migrations, their original `applied_at`, checksums of the imported
//! files — in one transaction under the lock, keeping the old rows in
//! `_migration_history_oneiriq` so nothing is lost.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::apply::{ApplyError, with_lock};
use super::file::Migration;
use super::history::{DEFINE_HISTORY_TABLE, ensure_history_table};
use crate::connection::{Db, QueryError, QueryErrorKind, first_cause, run_collecting_errors, run_query};

/// Where the adopted tool's rows are kept.
pub const KEPT_TABLE: &str = "_migration_history_oneiriq";

/// A row as oneiriq-surql writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ForeignRow {
    pub version: String,
    #[serde(default)]
    pub description: Option<String>,
    pub applied_at: String,
    #[serde(default)]
    pub execution_time_ms: Option<i64>,
}

/// A surql history row made from a foreign one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdoptedRow {
    /// oneiriq's version (`20260102_120000`).
    pub original_version: String,
    /// surql's (`20260102120000`), the imported file's.
    pub version: String,
    pub name: String,
    pub checksum: String,
    pub applied_at: String,
    pub execution_ms: i64,
}

impl AdoptedRow {
    /// `version_name`.
    pub fn id(&self) -> String {
        format!("{}_{}", self.version, self.name)
    }
}

/// oneiriq's version as surql's: its digits (`20260102_120000` →
/// `20260102120000`), as `migrate import` names the file.
pub fn surql_version(foreign: &str) -> Option<String> {
    let digits: String = foreign.chars().filter(|c| *c != '_').collect();
    (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())).then_some(digits)
}

/// The foreign rows, oldest first; `None` when the history is not
/// oneiriq's (missing, or surql's own).
pub async fn read_foreign(db: &Db) -> Result<Option<Vec<ForeignRow>>, QueryError> {
    let rows = match run_query(db, "SELECT * FROM _migration_history ORDER BY version;", json!({})).await {
        Ok(results) => results.into_iter().last().unwrap_or_default(),
        Err(error) if error.kind() == QueryErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let rows = rows.as_array().cloned().unwrap_or_default();
    let foreign = rows
        .first()
        .is_some_and(|row| row.get("description").is_some() && row.get("name").is_none());
    if !foreign {
        return Ok(None);
    }
    serde_json::from_value(serde_json::Value::Array(rows))
        .map(Some)
        .map_err(|e| QueryError::unreadable(format!("unreadable oneiriq-surql history row: {e}")))
}

/// surql's rows for `foreign`, each matched to the imported file of its
/// version. Refused, naming them, when a version has no file.
pub fn adopt_plan(migrations: &[Migration], foreign: &[ForeignRow]) -> Result<Vec<AdoptedRow>, ApplyError> {
    let mut unmatched = Vec::new();
    let mut adopted = Vec::new();
    for row in foreign {
        let file = surql_version(&row.version).and_then(|v| migrations.iter().find(|m| m.version == v));
        match file {
            Some(migration) => adopted.push(AdoptedRow {
                original_version: row.version.clone(),
                version: migration.version.clone(),
                name: migration.name.clone(),
                checksum: migration.checksum.clone(),
                applied_at: row.applied_at.clone(),
                execution_ms: row.execution_time_ms.unwrap_or(0),
            }),
            None => unmatched.push(row.version.clone()),
        }
    }
    if !unmatched.is_empty() {
        return Err(ApplyError::Refused(format!(
            "no migration file for oneiriq-surql version(s) {}: convert its files first (`surql migrate import --from oneiriq DIR --out migrations`) and pass that directory with -m; nothing was changed",
            unmatched.join(", ")
        )));
    }
    Ok(adopted)
}

/// The transaction that keeps the old rows and writes surql's.
pub fn adopt_script() -> String {
    format!(
        "BEGIN TRANSACTION;
IF _migration_lock:current.owner != $surql_owner {{ THROW 'surql: the lock is no longer held by this run' }};
DEFINE TABLE IF NOT EXISTS {KEPT_TABLE} SCHEMALESS COMMENT 'the history oneiriq-surql kept, as it was when surql adopted it';
FOR $row IN (SELECT * FROM _migration_history) {{ CREATE {KEPT_TABLE} SET original_id = $row.id, version = $row.version, description = $row.description, applied_at = $row.applied_at, checksum = $row.checksum, execution_time_ms = $row.execution_time_ms; }};
REMOVE TABLE _migration_history;
{DEFINE_HISTORY_TABLE}
FOR $row IN $surql_rows {{ CREATE type::record('_migration_history', $row.version) SET version = $row.version, name = $row.name, checksum = $row.checksum, applied_at = <datetime> $row.applied_at, execution_ms = $row.execution_ms, deployment_id = $surql_deployment_id, actor = $surql_actor, adopted_from = 'oneiriq-surql', original_version = $row.original_version; }};
COMMIT TRANSACTION;
"
    )
}

/// `migrate adopt`: under the lock, turns oneiriq-surql's history into
/// surql's (see the module). Returns the rows written; refused when the
/// history is not oneiriq's or a version has no imported file.
pub async fn adopt(
    db: &Db,
    migrations: &[Migration],
    ctx: &super::ApplyContext,
) -> Result<Vec<AdoptedRow>, ApplyError> {
    // The lock table; the foreign history table exists and is left as it is.
    ensure_history_table(db).await.map_err(|source| ApplyError::Setup {
        step: "cannot create _migration_lock",
        source,
    })?;
    with_lock(db, ctx, async |_| {
        let foreign = read_foreign(db).await?.ok_or_else(|| {
            ApplyError::Refused(
                "nothing to adopt: _migration_history is not oneiriq-surql's (it is missing, or surql's already)"
                    .into(),
            )
        })?;
        let rows = adopt_plan(migrations, &foreign)?;
        let vars = json!({
            "surql_owner": ctx.lock_owner(),
            "surql_deployment_id": ctx.deployment_id,
            "surql_actor": ctx.actor,
            "surql_rows": rows,
        });
        let collected = run_collecting_errors(db, &adopt_script(), vars, db.operation_timeout()).await?;
        if let Some(error) = first_cause(&collected.errors) {
            return Err(ApplyError::Query(error.clone()));
        }
        Ok(rows)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_their_digits_and_every_row_needs_a_file() {
        assert_eq!(surql_version("20260102_120000").as_deref(), Some("20260102120000"));
        assert_eq!(surql_version("v1.2"), None);
        let file = super::super::file::parse_migration(
            std::path::Path::new("20260102120000_create_user_table.surql"),
            "-- migrate:up\nDEFINE TABLE user;\n",
        )
        .unwrap();
        let row = |version: &str| ForeignRow {
            version: version.into(),
            description: Some("Create user table".into()),
            applied_at: "2026-01-02T12:00:00Z".into(),
            execution_time_ms: Some(42),
        };
        let adopted = adopt_plan(std::slice::from_ref(&file), &[row("20260102_120000")]).unwrap();
        assert_eq!(adopted[0].id(), "20260102120000_create_user_table");
        assert_eq!(adopted[0].checksum, file.checksum);
        assert_eq!(
            (adopted[0].applied_at.as_str(), adopted[0].execution_ms),
            ("2026-01-02T12:00:00Z", 42)
        );
        let refused = adopt_plan(&[file], &[row("20260103_090000")]).unwrap_err().to_string();
        assert!(
            refused.contains("20260103_090000") && refused.contains("migrate import"),
            "{refused}"
        );
    }
}
