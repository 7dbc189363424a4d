//! Undoing what this run applied on one environment, newest first: after a
//! failure or Ctrl-C, and for the `rollback` primitive.

use chrono::{DateTime, Utc};

use super::guard::guarded;
use super::stop::{Stop, failed_as};
use super::{DeploymentResult, DeploymentStatus, Engine, FailureKind};
use crate::connection::Db;
use crate::connection::connect;
use crate::migration::lock::with_heartbeat;
use crate::migration::{ApplyError, DatabaseError, acquire_lock, release_lock, revert_migration};
use crate::registry::EnvironmentConfig;

/// After stopping part-way (`what` says why): roll back what this run applied
/// on the environment, newest first, unless `--no-rollback`. `untouched` makes
/// the result when this run had applied nothing there.
pub(super) async fn undo_this_run(
    engine: &Engine,
    environment: &EnvironmentConfig,
    auto_rollback: bool,
    db: &Db,
    what: String,
    kind: FailureKind,
    untouched: fn(String) -> Stop,
) -> Stop {
    let applied = engine
        .ledger()
        .get(environment.name.as_str())
        .map(|s| s.applied_this_run.clone())
        .unwrap_or_default();
    if applied.is_empty() {
        return untouched(format!("{what}; nothing was applied"));
    }
    if !auto_rollback {
        return failed_as(
            kind,
            format!(
                "{what}; {} migration(s) applied by this run were kept (--no-rollback)",
                applied.len()
            ),
        );
    }
    match revert(engine, environment, db, &applied).await {
        Ok(count) => Stop {
            status: DeploymentStatus::RolledBack,
            error: format!("{what}; rolled back {count} migration(s) applied by this run"),
            lock_left_to_expire: false,
            kind,
        },
        Err(error) => failed_as(kind, format!("{what}; rollback failed: {error}")),
    }
}

/// Reverts `applied` (indexes, in apply order) newest first. Checks every down
/// section exists before reverting anything.
async fn revert(
    engine: &Engine,
    environment: &EnvironmentConfig,
    db: &Db,
    applied: &[usize],
) -> Result<usize, ApplyError> {
    let name = environment.name.as_str();
    if let Some(&i) = applied.iter().find(|&&i| engine.migrations[i].down.is_none()) {
        return Err(ApplyError::NoDownSection(engine.migrations[i].id()));
    }
    let mut count = 0;
    for &index in applied.iter().rev() {
        let migration = &engine.migrations[index];
        engine.events.phase(name, format!("rolling back {}", migration.id()));
        guarded(
            environment,
            revert_migration(
                db,
                migration,
                &engine
                    .context
                    .lock_owner_for(&environment.name, &environment.connection),
            ),
        )
        .await?;
        count += 1;
        let mut ledger = engine.ledger();
        if let Some(state) = ledger.get_mut(name) {
            state.applied_this_run.retain(|&i| i != index);
        }
    }
    Ok(count)
}

/// The `rollback()` primitive for one environment: reverts this run's migrations
/// under the lock.
pub(super) async fn roll_back_run(
    engine: &Engine,
    environment: &EnvironmentConfig,
    applied: &[usize],
    reason: &str,
    started_at: DateTime<Utc>,
) -> DeploymentResult {
    let name = environment.name.as_str();
    let outcome: Result<usize, DatabaseError> = async {
        let db = connect(&engine.client, &environment.connection, engine.options.timeouts()).await?;
        let lock = acquire_lock(
            &db,
            &engine
                .context
                .lock_owner_for(&environment.name, &environment.connection),
            engine.context.lock_ttl,
        )
        .await
        .map_err(ApplyError::from)?;
        let reverted = with_heartbeat(&db, &lock, async |_| revert(engine, environment, &db, applied).await).await;
        let _ = guarded(environment, release_lock(&db, &lock)).await;
        Ok(reverted?)
    }
    .await;
    match outcome {
        Ok(count) => DeploymentResult::finished(
            name,
            DeploymentStatus::RolledBack,
            0,
            Some(format!(
                "{reason}; rolled back {count} migration(s) applied by this run"
            )),
            started_at,
        ),
        Err(error) => {
            let kept = engine.applied_count(name);
            DeploymentResult::finished(
                name,
                DeploymentStatus::Failed,
                kept,
                Some(format!("{reason}; rollback failed: {error}")),
                started_at,
            )
        }
    }
}
