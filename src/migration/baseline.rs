//! `baseline VERSION`: recording that every migration up to VERSION is
//! already applied to a database whose schema was made another way (by
//! hand, or by another tool) — history rows marked `baseline`, nothing of
//! the migrations run.

use serde_json::json;

use super::apply::ApplyError;
use super::context::ApplyContext;
use super::file::{Migration, version_order_key};
use super::history::AppliedMigration;
use super::script::{history_record, quote};
use super::updown::{create_scope, create_tables, history_under_lock, with_lock};
use crate::connection::{ConnectionConfig, Db, first_cause, run_collecting_errors};

/// The migrations `baseline version` would record given `applied`: those up
/// to and including `version` not in the history yet, in version order.
/// Refused when `version` is no migration's, or the history already holds a
/// migration beyond it (a baseline goes below what was applied, never past it).
pub fn baseline_plan<'a>(
    migrations: &'a [Migration],
    applied: &[AppliedMigration],
    version: &str,
) -> Result<Vec<&'a Migration>, ApplyError> {
    let Some(target) = migrations.iter().find(|m| m.version == version) else {
        let known: Vec<String> = migrations.iter().take(10).map(Migration::id).collect();
        let more = migrations.len().saturating_sub(known.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return Err(ApplyError::Refused(format!(
            "no migration has version '{version}' (the migrations: {}{more})",
            known.join(", ")
        )));
    };
    let last = version_order_key(&target.version);
    let newest = applied.iter().max_by_key(|row| version_order_key(&row.version));
    if let Some(beyond) = newest.filter(|row| version_order_key(&row.version) > last) {
        return Err(ApplyError::Refused(format!(
            "history already goes beyond {version}: {}_{} was applied {}; a baseline only records what came before the history",
            beyond.version, beyond.name, beyond.applied_at
        )));
    }
    Ok(migrations
        .iter()
        .filter(|m| version_order_key(&m.version) <= last)
        .filter(|m| !applied.iter().any(|row| row.version == m.version))
        .collect())
}

/// The SurrealQL that records `recorded` as baseline rows, in one
/// transaction that first proves the lock is still this run's.
pub fn baseline_script(recorded: &[&Migration]) -> String {
    let mut sql = String::from(
        "BEGIN TRANSACTION;\nIF _migration_lock:current.owner != $surql_owner { THROW 'surql: the lock is no longer held by this run' };\n",
    );
    for migration in recorded {
        sql.push_str(&format!(
            "CREATE {} SET version = {}, name = {}, checksum = {}, applied_at = time::now(), execution_ms = 0, deployment_id = $surql_deployment_id, actor = $surql_actor, baseline = true RETURN NONE;\n",
            history_record(&migration.version),
            quote(&migration.version),
            quote(&migration.name),
            quote(&migration.checksum)
        ));
    }
    sql.push_str("COMMIT TRANSACTION;\n");
    sql
}

/// `migrate baseline VERSION`: records, under the lock, each migration up to
/// `version` not in the history yet as applied, with today's checksums; no
/// statement of theirs runs. Returns what it recorded (`version_name`).
pub async fn baseline(
    db: &Db,
    connection: &ConnectionConfig,
    migrations: &[Migration],
    version: &str,
    ctx: &ApplyContext,
) -> Result<Vec<String>, ApplyError> {
    // Refuse an unknown version before creating anything.
    baseline_plan(migrations, &[], version)?;
    create_scope(db, connection).await?;
    create_tables(db).await?;
    with_lock(db, ctx, async |_| {
        let applied = history_under_lock(db).await?;
        let recorded = baseline_plan(migrations, &applied, version)?;
        if recorded.is_empty() {
            return Ok(Vec::new());
        }
        let vars = json!({
            "surql_owner": ctx.lock_owner(),
            "surql_deployment_id": ctx.deployment_id,
            "surql_actor": ctx.actor,
        });
        let collected = run_collecting_errors(db, &baseline_script(&recorded), vars, db.operation_timeout()).await?;
        if let Some(error) = first_cause(&collected.errors) {
            return Err(ApplyError::Query(error.clone()));
        }
        Ok(recorded.iter().map(|m| m.id()).collect())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(version: &str) -> Migration {
        super::super::file::parse_migration(
            std::path::Path::new(&format!("{version}_m{version}.surql")),
            &format!("-- migrate:up\nDEFINE TABLE t{version};\n"),
        )
        .unwrap()
    }

    fn row(version: &str) -> AppliedMigration {
        AppliedMigration {
            version: version.into(),
            name: format!("m{version}"),
            checksum: "c".into(),
            applied_at: "2026-12-01T00:00:00Z".into(),
            execution_ms: 1,
            deployment_id: "d".into(),
            actor: "a".into(),
            baseline: false,
        }
    }

    #[test]
    fn records_what_is_missing_up_to_the_version_and_never_past_the_history() {
        let m: Vec<_> = ["1", "2", "3", "10"].into_iter().map(migration).collect();
        let ids = |v: Vec<&Migration>| v.into_iter().map(Migration::id).collect::<Vec<_>>();
        assert_eq!(ids(baseline_plan(&m, &[], "3").unwrap()), ["1_m1", "2_m2", "3_m3"]);
        assert_eq!(ids(baseline_plan(&m, &[row("2")], "3").unwrap()), ["1_m1", "3_m3"]);
        let refused = baseline_plan(&m, &[row("10")], "3").unwrap_err().to_string();
        assert!(refused.contains("history already goes beyond 3: 10_m10"), "{refused}");
        let refused = baseline_plan(&m, &[], "4").unwrap_err().to_string();
        assert!(refused.contains("no migration has version '4'"), "{refused}");
        let script = baseline_script(&[&m[0]]);
        assert!(
            script.contains("baseline = true") && script.contains("execution_ms = 0"),
            "{script}"
        );
        assert!(
            !script.contains("DEFINE TABLE t1"),
            "nothing of the migration runs: {script}"
        );
    }
}
