//! `adopt`: turning another tool's history into surql's — the same
//! migrations, their original `applied_at`, checksums of the imported files
//! — in one transaction under the lock, losing nothing: oneiriq-surql's
//! `_migration_history` (the Python `surql` and its Rust port write the same
//! SCHEMAFULL table) is kept as `_migration_history_oneiriq`;
//! surrealdb-migrations' `script_migration` is left as it is.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::apply::ApplyError;
use super::file::Migration;
pub use super::foreign::surql_version;
use super::history::DEFINE_HISTORY_TABLE;
use super::updown::with_lock;
use crate::connection::{Db, QueryError, QueryErrorKind, first_cause, run_collecting_errors, run_query};

/// Why a database without surql's history must not be deployed to as if
/// empty: another tool's tables there, named, with what to do.
pub async fn foreign_tables(db: &Db) -> Result<Option<String>, QueryError> {
    let info = match run_query(db, "INFO FOR DB;", json!({})).await {
        Ok(info) => info,
        Err(error) if error.kind() == QueryErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let has = |table: &str| {
        info.first()
            .and_then(|i| i.get("tables"))
            .and_then(|t| t.get(table))
            .is_some()
    };
    Ok(if has("script_migration") {
        Some("this database has surrealdb-migrations' history (its script_migration table) and no surql history: convert its project with `surql migrate import --from surrealdb-migrations PROJECT --out migrations`, then adopt its history with `surql migrate adopt` (one database) or `surql orchestrate adopt -e …`; nothing was changed".into())
    } else if has("__rollout") || has("__entity") {
        Some("this database is managed by SurrealKit (its __entity/__rollout tables) and has no surql history: its sync and rollouts are not up/down migrations; make its current schema your first surql migration and record it with `surql migrate baseline VERSION` (or `surql orchestrate baseline`); nothing was changed".into())
    } else {
        None
    })
}

/// Why there is nothing to adopt.
pub const NOTHING_TO_ADOPT: &str =
    "nothing to adopt: no history of oneiriq-surql or surrealdb-migrations here (none at all, or surql's already)";

/// Where the adopted tool's rows are kept.
pub const KEPT_TABLE: &str = "_migration_history_oneiriq";

/// A row as oneiriq-surql writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ForeignRow {
    /// oneiriq's version (`20260102_120000`).
    pub version: String,
    /// The migration's description; `None` when the row has none.
    #[serde(default)]
    pub description: Option<String>,
    /// When it was applied.
    pub applied_at: String,
    /// How long it took to apply; `None` when not recorded.
    #[serde(default)]
    pub execution_time_ms: Option<i64>,
}

/// A row as surrealdb-migrations writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ScriptRow {
    /// The migration's file name without extension (`20260102_120000_add_user`),
    /// or `__Initial`.
    pub script_name: String,
    /// When it was applied, as a string.
    pub executed_at: String,
}

/// Another tool's history.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Foreign {
    /// oneiriq-surql's `_migration_history` rows, oldest first.
    Oneiriq(Vec<ForeignRow>),
    /// surrealdb-migrations' `script_migration` rows, oldest first.
    SurrealdbMigrations(Vec<ScriptRow>),
}

impl Foreign {
    /// The tool's name, as rows record it in `adopted_from`.
    pub fn tool(&self) -> &'static str {
        match self {
            Foreign::Oneiriq(_) => "oneiriq-surql",
            Foreign::SurrealdbMigrations(_) => "surrealdb-migrations",
        }
    }
}

/// A surql history row made from a foreign one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdoptedRow {
    /// oneiriq's version (`20260102_120000`).
    pub original_version: String,
    /// surql's (`20260102120000`), the imported file's.
    pub version: String,
    /// The imported file's name part.
    pub name: String,
    /// Hex SHA-256 of the imported file's up section.
    pub checksum: String,
    /// When the tool applied it, as the tool recorded it.
    pub applied_at: String,
    /// How long it took to apply; 0 when the tool did not record it.
    pub execution_ms: i64,
    /// No row of the tool's stands for it (surrealdb-migrations' schemas and
    /// events): recorded as baseline.
    pub baseline: bool,
}

impl AdoptedRow {
    /// `version_name`.
    pub fn id(&self) -> String {
        format!("{}_{}", self.version, self.name)
    }
}

async fn rows(db: &Db, sql: &str) -> Result<Option<Vec<serde_json::Value>>, QueryError> {
    match run_query(db, sql, json!({})).await {
        Ok(results) => Ok(Some(
            results
                .into_iter()
                .last()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default(),
        )),
        Err(error) if error.kind() == QueryErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

fn parse<T: serde::de::DeserializeOwned>(rows: Vec<serde_json::Value>, tool: &str) -> Result<Vec<T>, QueryError> {
    serde_json::from_value(serde_json::Value::Array(rows))
        .map_err(|e| QueryError::unreadable(format!("unreadable {tool} history row: {e}")))
}

/// Another tool's history, oldest first; `None` when there is none to
/// adopt (surql's own, or no history at all).
pub async fn read_foreign(db: &Db) -> Result<Option<Foreign>, QueryError> {
    let history = rows(db, "SELECT * FROM _migration_history ORDER BY version;")
        .await?
        .unwrap_or_default();
    if let Some(first) = history.first() {
        let oneiriq = first.get("description").is_some() && first.get("name").is_none();
        return Ok(match oneiriq {
            true => Some(Foreign::Oneiriq(parse(history, "oneiriq-surql")?)),
            false => None,
        });
    }
    let scripts = rows(
        db,
        "SELECT script_name, <string> executed_at AS executed_at FROM script_migration ORDER BY executed_at;",
    )
    .await?
    .unwrap_or_default();
    Ok(match scripts.is_empty() {
        true => None,
        false => Some(Foreign::SurrealdbMigrations(parse(scripts, "surrealdb-migrations")?)),
    })
}

/// surql's rows for `foreign`, each matched to the imported file of its
/// version. Refused, naming them, when a version has no file.
pub fn adopt_plan(migrations: &[Migration], foreign: &Foreign) -> Result<Vec<AdoptedRow>, ApplyError> {
    // (the tool's key, surql's version, applied_at, execution_ms)
    let keyed: Vec<(String, Option<String>, String, i64)> = match foreign {
        Foreign::Oneiriq(rows) => rows
            .iter()
            .map(|r| {
                (
                    r.version.clone(),
                    surql_version(&r.version),
                    r.applied_at.clone(),
                    r.execution_time_ms.unwrap_or(0),
                )
            })
            .collect(),
        Foreign::SurrealdbMigrations(rows) => rows
            .iter()
            .map(|r| {
                (
                    r.script_name.clone(),
                    super::foreign::version_of(&r.script_name),
                    r.executed_at.clone(),
                    0,
                )
            })
            .collect(),
    };
    let mut unmatched = Vec::new();
    let mut adopted = Vec::new();
    for (key, version, applied_at, execution_ms) in keyed {
        match version.and_then(|v| migrations.iter().find(|m| m.version == v)) {
            Some(migration) => adopted.push(AdoptedRow {
                original_version: key,
                version: migration.version.clone(),
                name: migration.name.clone(),
                checksum: migration.checksum.clone(),
                applied_at,
                execution_ms,
                baseline: false,
            }),
            None => unmatched.push(key),
        }
    }
    let tool = foreign.tool();
    if !unmatched.is_empty() {
        let from = if tool == "oneiriq-surql" {
            "oneiriq DIR"
        } else {
            "surrealdb-migrations PROJECT"
        };
        return Err(ApplyError::Refused(format!(
            "no migration file for {tool} migration(s) {}: convert its files first (`surql migrate import --from {from} --out migrations`) and pass that directory with -m; nothing was changed",
            unmatched.join(", ")
        )));
    }
    // surrealdb-migrations re-applies its schemas and events without a row:
    // `import` made them version 0, in place already.
    if let (Foreign::SurrealdbMigrations(_), Some(schemas)) = (
        foreign,
        migrations
            .iter()
            .find(|m| m.version == "0" && m.name == "schemas_and_events"),
    ) {
        let first = adopted.first().map(|r| r.applied_at.clone()).unwrap_or_default();
        adopted.insert(
            0,
            AdoptedRow {
                original_version: "schemas/ and events/".into(),
                version: schemas.version.clone(),
                name: schemas.name.clone(),
                checksum: schemas.checksum.clone(),
                applied_at: first,
                execution_ms: 0,
                baseline: true,
            },
        );
    }
    Ok(adopted)
}

/// The transaction that keeps the old rows (oneiriq-surql's are moved
/// aside; surrealdb-migrations' table is not touched) and writes surql's.
pub fn adopt_script(foreign: &Foreign) -> String {
    let keep = match foreign {
        Foreign::Oneiriq(_) => format!(
            "DEFINE TABLE IF NOT EXISTS {KEPT_TABLE} SCHEMALESS COMMENT 'the history oneiriq-surql kept, as it was when surql adopted it';
FOR $row IN (SELECT * FROM _migration_history) {{ CREATE {KEPT_TABLE} SET original_id = $row.id, version = $row.version, description = $row.description, applied_at = $row.applied_at, checksum = $row.checksum, execution_time_ms = $row.execution_time_ms; }};
REMOVE TABLE _migration_history;
"
        ),
        Foreign::SurrealdbMigrations(_) => String::new(),
    };
    format!(
        "BEGIN TRANSACTION;
IF _migration_lock:current.owner != $surql_owner {{ THROW 'surql: the lock is no longer held by this run' }};
{keep}{DEFINE_HISTORY_TABLE}
FOR $row IN $surql_rows {{ CREATE type::record('_migration_history', $row.version) SET version = $row.version, name = $row.name, checksum = $row.checksum, applied_at = <datetime> $row.applied_at, execution_ms = $row.execution_ms, deployment_id = $surql_deployment_id, actor = $surql_actor, adopted_from = $surql_tool, original_version = $row.original_version, baseline = $row.baseline; }};
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
    // Only the lock table: a refused adoption must leave no surql history
    // behind (an empty one would hide the other tool's from the checks).
    crate::connection::run_idempotent(db, super::lock::DEFINE_LOCK_TABLE, json!({}))
        .await
        .map_err(|source| ApplyError::Setup {
            step: "cannot create _migration_lock",
            source,
        })?;
    with_lock(db, ctx, async |_| {
        let foreign = read_foreign(db)
            .await?
            .ok_or_else(|| ApplyError::Refused(NOTHING_TO_ADOPT.into()))?;
        let rows = adopt_plan(migrations, &foreign)?;
        let vars = json!({
            "surql_owner": ctx.lock_owner(),
            "surql_deployment_id": ctx.deployment_id,
            "surql_actor": ctx.actor,
            "surql_rows": rows,
            "surql_tool": foreign.tool(),
        });
        let collected = run_collecting_errors(db, &adopt_script(&foreign), vars, db.operation_timeout()).await?;
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
        let adopted = adopt_plan(
            std::slice::from_ref(&file),
            &Foreign::Oneiriq(vec![row("20260102_120000")]),
        )
        .unwrap();
        assert_eq!(adopted[0].id(), "20260102120000_create_user_table");
        assert_eq!(adopted[0].checksum, file.checksum);
        assert_eq!(
            (adopted[0].applied_at.as_str(), adopted[0].execution_ms),
            ("2026-01-02T12:00:00Z", 42)
        );
        let refused = adopt_plan(&[file], &Foreign::Oneiriq(vec![row("20260103_090000")]))
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("20260103_090000") && refused.contains("migrate import"),
            "{refused}"
        );
    }
}
