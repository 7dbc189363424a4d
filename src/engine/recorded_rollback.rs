//! Rolling back a recorded deployment on one environment
//! (`surql orchestrate rollback ID`): the migrations whose history rows carry
//! its deployment id, newest first, under the lock — refused where a later
//! deployment applied on top, unless forced.

use chrono::{DateTime, Utc};

use super::approval::approve;
use super::env_run::health_and_history;
use super::guard::guarded;
use super::stop::{Stop, failed, skipped};
use super::{DeploymentResult, DeploymentStatus, Engine, EnvironmentPlan, Event, UndoTarget, WaveOptions};
use crate::connection::{Db, ReadOnly, connect, select_for_write};
use crate::migration::file::version_order_key;
use crate::migration::lock::{leave_unsettled, with_heartbeat};
use crate::migration::{AppliedMigration, ApplyError, Migration, acquire_lock, release_lock, revert_migration};
use crate::registry::EnvironmentConfig;

/// Rolls back on `environment` what deployment `target` applied there.
/// SUCCESS when that deployment's migrations are gone (or there were none).
pub(super) async fn undo_deployment(
    engine: &Engine,
    environment: &EnvironmentConfig,
    wave: &WaveOptions,
    target: &UndoTarget,
) -> DeploymentResult {
    let started_at = Utc::now();
    let name = environment.name.as_str();
    engine.events.send(Event::Started {
        environment: name.to_string(),
    });
    match undo_steps(engine, environment, wave, target, started_at).await {
        Ok(result) => result,
        Err((stop, reverted)) => {
            let mut result = DeploymentResult::finished(name, stop.status, 0, Some(stop.error), started_at);
            result.outcome_unknown = stop.lock_left_to_expire;
            result.migrations_rolled_back = reverted;
            result
        }
    }
}

async fn undo_steps(
    engine: &Engine,
    environment: &EnvironmentConfig,
    wave: &WaveOptions,
    target: &UndoTarget,
    started_at: DateTime<Utc>,
) -> Result<DeploymentResult, (Stop, usize)> {
    let name = environment.name.as_str();
    let none_reverted = |stop| (stop, 0);
    if engine.is_cancelled() {
        return Err((skipped(engine.not_started_reason()), 0));
    }
    if environment.needs_approval() && !engine.options.dry_run {
        engine.events.phase(name, "awaiting approval");
        approve(engine, environment).map_err(none_reverted)?;
    }
    let (history, session) = health_and_history(engine, environment, wave)
        .await
        .map_err(none_reverted)?;
    let nothing = || DeploymentResult::finished(name, DeploymentStatus::Success, 0, None, started_at);
    let Some(history) = history else {
        return Ok(nothing());
    };
    let targets = undo_targets(&engine.migrations, &history, target).map_err(|e| (failed(e.to_string()), 0))?;
    if targets.is_empty() {
        return Ok(nothing());
    }
    if engine.options.dry_run {
        let mut result = nothing();
        result.plan = Some(Box::new(undo_plan(engine, &targets)));
        return Ok(result);
    }

    engine.events.phase(name, "acquiring lock");
    let db = match session {
        ReadOnly::Selected(db) => db,
        ReadOnly::Missing(Some(db)) => {
            select_for_write(&db, &environment.connection, engine.options.connect_timeout)
                .await
                .map_err(|e| (failed(e.to_string()), 0))?;
            db
        }
        ReadOnly::Missing(None) => connect(&engine.client, &environment.connection, engine.options.timeouts())
            .await
            .map_err(|e| (failed(e.to_string()), 0))?,
    }
    .with_operation_timeout(engine.options.operation_timeout);
    let owner = engine
        .context
        .lock_owner_for(&environment.name, &environment.connection);
    let lock = guarded(environment, acquire_lock(&db, &owner, engine.context.lock_ttl))
        .await
        .map_err(|e| (failed(format!("not rolled back: {e}")), 0))?;
    let outcome = with_heartbeat(&db, &lock, async |_| {
        revert_under_lock(engine, environment, &db, target, &owner).await
    })
    .await;
    let reverted = match outcome {
        Ok(reverted) => reverted,
        Err((stop, reverted)) if stop.lock_left_to_expire => {
            guarded(environment, async {
                leave_unsettled(&db, &lock).await;
                Ok::<(), crate::connection::QueryError>(())
            })
            .await
            .ok();
            return Err((stop, reverted));
        }
        Err(stop) => {
            let _ = guarded(environment, release_lock(&db, &lock)).await;
            return Err(stop);
        }
    };
    let released = guarded(environment, release_lock(&db, &lock)).await;
    if let Err(e) = released {
        return Err((
            failed(format!(
                "rolled back {reverted} migration(s) of deployment {} but could not release the lock: {e}",
                target.deployment_id
            )),
            reverted,
        ));
    }
    let mut result = nothing();
    result.migrations_rolled_back = reverted;
    Ok(result)
}

/// Reads the history again under the lock (another run may have written
/// since) and reverts the deployment's migrations newest first. Returns how
/// many; on failure, how many were reverted before it.
async fn revert_under_lock(
    engine: &Engine,
    environment: &EnvironmentConfig,
    db: &Db,
    target: &UndoTarget,
    owner: &str,
) -> Result<usize, (Stop, usize)> {
    let name = environment.name.as_str();
    let history = guarded(environment, crate::migration::history::read_history(db))
        .await
        .map_err(|e| (failed(format!("cannot read _migration_history: {e}")), 0))?
        .unwrap_or_default();
    let targets = undo_targets(&engine.migrations, &history, target).map_err(|e| (failed(e.to_string()), 0))?;
    let mut reverted = 0;
    for &index in targets.iter().rev() {
        let migration = &engine.migrations[index];
        engine.events.phase(name, format!("rolling back {}", migration.id()));
        if let Err(error) = guarded(environment, revert_migration(db, migration, owner)).await {
            let kept: Vec<String> = targets[..targets.len() - reverted]
                .iter()
                .map(|&i| engine.migrations[i].id())
                .collect();
            if let ApplyError::Failed { error, .. } = &error
                && error.outcome_unknown()
            {
                // The down section may still commit: nothing else may write until it settles.
                return Err((
                    Stop {
                        status: DeploymentStatus::Failed,
                        error: format!(
                            "outcome unknown: rolling back {} may still be running on the server ({error}); {reverted} migration(s) of deployment {} were rolled back before it; the lock is left to expire (--lock-ttl {}s): then `surql orchestrate status` shows what committed, and running the rollback again finishes it",
                            migration.id(),
                            target.deployment_id,
                            engine.context.lock_ttl.as_secs_f64()
                        ),
                        lock_left_to_expire: true,
                        kind: crate::engine::FailureKind::OutcomeUnknown,
                    },
                    reverted,
                ));
            }
            return Err((
                failed(format!(
                    "rolling back {} failed: {error}; {reverted} migration(s) of deployment {} were rolled back, {} still applied: run the rollback again once it is fixed",
                    migration.id(),
                    target.deployment_id,
                    kept.join(", ")
                )),
                reverted,
            ));
        }
        reverted += 1;
    }
    Ok(reverted)
}

/// Why a deployment's migrations are not rolled back on an environment,
/// found before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UndoRefusal {
    #[error(
        "refused: deployment {later} applied {version}_{name} here on top of deployment {id} (at {at}); roll that back first (`surql orchestrate rollback {later}`), or pass --force"
    )]
    AppliedOnTop {
        id: String,
        /// The later deployment, and one migration it applied.
        later: String,
        version: String,
        name: String,
        at: String,
    },
    #[error("cannot roll back {version}_{name}: its file is not among the migrations given (-m)")]
    NoFile { version: String, name: String },
    #[error(
        "cannot roll back {migration}: its file changed since deployment {id} applied it (checksum {then} then, {now} now), so its down section may not undo what ran; restore the file"
    )]
    FileChanged {
        migration: String,
        id: String,
        then: String,
        now: String,
    },
    #[error("cannot roll back {0}: it has no '-- migrate:down' section")]
    NoDownSection(String),
}

/// The migrations (indexes into `migrations`, in apply order) that deployment
/// `target` applied according to `history`, or why they cannot be rolled
/// back. Every file, checksum and down section is checked before anything runs.
pub(crate) fn undo_targets(
    migrations: &[Migration],
    history: &[AppliedMigration],
    target: &UndoTarget,
) -> Result<Vec<usize>, UndoRefusal> {
    let id = target.deployment_id.as_str();
    let mut mine: Vec<&AppliedMigration> = history.iter().filter(|row| row.deployment_id == id).collect();
    mine.sort_by_key(|row| version_order_key(&row.version));
    let Some(first) = mine.first() else {
        return Ok(Vec::new());
    };
    let first_key = version_order_key(&first.version);
    let first_at = DateTime::parse_from_rfc3339(&first.applied_at).ok();
    let later = history.iter().filter(|row| row.deployment_id != id).find(|row| {
        let applied_after = match (first_at, DateTime::parse_from_rfc3339(&row.applied_at).ok()) {
            (Some(first), Some(at)) => at > first,
            _ => false,
        };
        version_order_key(&row.version) > first_key || applied_after
    });
    if let Some(row) = later
        && !target.force
    {
        return Err(UndoRefusal::AppliedOnTop {
            id: id.into(),
            later: row.deployment_id.clone(),
            version: row.version.clone(),
            name: row.name.clone(),
            at: row.applied_at.clone(),
        });
    }
    mine.iter()
        .map(|row| {
            let index = migrations
                .iter()
                .position(|m| m.version == row.version)
                .ok_or_else(|| UndoRefusal::NoFile {
                    version: row.version.clone(),
                    name: row.name.clone(),
                })?;
            let migration = &migrations[index];
            if migration.checksum != row.checksum {
                return Err(UndoRefusal::FileChanged {
                    migration: migration.id(),
                    id: id.into(),
                    then: row.checksum.clone(),
                    now: migration.checksum.clone(),
                });
            }
            if migration.down.is_none() {
                return Err(UndoRefusal::NoDownSection(migration.id()));
            }
            Ok(index)
        })
        .collect()
}

/// What a dry run of the rollback shows: the migrations it would revert,
/// newest first, and their down sections.
fn undo_plan(engine: &Engine, targets: &[usize]) -> EnvironmentPlan {
    EnvironmentPlan {
        pending: targets.iter().rev().map(|&i| engine.migrations[i].id()).collect(),
        statements: targets
            .iter()
            .rev()
            .map(|&i| std::sync::Arc::from(engine.migrations[i].down.clone().unwrap_or_default()))
            .collect(),
        destructive: Vec::new(),
        approval_required: false,
        irreversible: Vec::new(),
        passed_over: Vec::new(),
        row_migrations: Vec::new(),
        rollback: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(version: &str, down: bool) -> Migration {
        let text = if down {
            format!("-- migrate:up\nDEFINE TABLE t{version};\n-- migrate:down\nREMOVE TABLE t{version};\n")
        } else {
            format!("-- migrate:up\nDEFINE TABLE t{version};\n")
        };
        crate::migration::file::parse_migration(std::path::Path::new(&format!("{version}_m{version}.surql")), &text)
            .unwrap()
    }

    fn row(m: &Migration, deployment: &str, at: &str) -> AppliedMigration {
        AppliedMigration {
            version: m.version.clone(),
            name: m.name.clone(),
            checksum: m.checksum.clone(),
            applied_at: at.into(),
            execution_ms: 1,
            deployment_id: deployment.into(),
            actor: "a".into(),
            baseline: false,
        }
    }

    fn target(force: bool) -> UndoTarget {
        UndoTarget {
            deployment_id: "d2".into(),
            force,
        }
    }

    #[test]
    fn only_the_deployments_own_migrations_in_apply_order() {
        let m: Vec<_> = (1..=3).map(|v| migration(&v.to_string(), true)).collect();
        let history = [
            row(&m[0], "d1", "2026-12-01T10:00:00Z"),
            row(&m[1], "d2", "2026-12-01T11:00:00Z"),
            row(&m[2], "d2", "2026-12-01T11:00:01Z"),
        ];
        assert_eq!(undo_targets(&m, &history, &target(false)), Ok(vec![1, 2]));
        assert_eq!(undo_targets(&m, &history[..1], &target(false)), Ok(vec![]));
    }

    #[test]
    fn a_later_deployment_on_top_is_refused_unless_forced() {
        let m: Vec<_> = (1..=3).map(|v| migration(&v.to_string(), true)).collect();
        let history = [
            row(&m[0], "d2", "2026-12-01T11:00:00Z"),
            row(&m[1], "d2", "2026-12-01T11:00:01Z"),
            row(&m[2], "d3", "2026-12-01T12:00:00Z"),
        ];
        let refused = undo_targets(&m, &history, &target(false)).unwrap_err().to_string();
        assert!(refused.contains("deployment d3 applied 3_m3"), "{refused}");
        assert!(refused.contains("--force"), "{refused}");
        assert_eq!(undo_targets(&m, &history, &target(true)), Ok(vec![0, 1]));
    }

    #[test]
    fn missing_files_changed_files_and_missing_down_sections_are_refused_first() {
        let m = vec![migration("1", true), migration("2", false)];
        let history = [row(&m[0], "d2", "x"), row(&m[1], "d2", "x")];
        let refused = undo_targets(&m, &history, &target(false)).unwrap_err().to_string();
        assert!(
            refused.contains("2_m2") && refused.contains("no '-- migrate:down'"),
            "{refused}"
        );
        let refused = undo_targets(&m[..1], &history, &target(false)).unwrap_err().to_string();
        assert!(refused.contains("file is not among"), "{refused}");
        let mut changed = history[0].clone();
        changed.checksum = "other".into();
        let refused = undo_targets(&m, &[changed], &target(false)).unwrap_err().to_string();
        assert!(refused.contains("changed since deployment d2"), "{refused}");
    }
}
