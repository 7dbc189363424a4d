//! `migrate up` and `migrate down` on ONE database: the namespace and
//! tables made, the lock taken, the plan checked (drift, order, missing
//! files, down sections), then each migration applied or reverted in turn.

use super::apply::{AppliedStep, ApplyError, apply_migration, revert_migration};
use super::context::ApplyContext;
use super::file::Migration;
use super::history::{AppliedMigration, applied_migrations, ensure_history_table};
use super::lock::{Heartbeat, acquire_lock, release_lock, with_heartbeat};
use super::plan::plan;
use super::script::StartClock;
use serde_json::json;

use crate::connection::{ConnectionConfig, Db, ensure_namespace_and_database};

/// The migrations `down` would roll back, newest first; checked before anything runs.
pub fn rollback_plan<'a>(
    migrations: &'a [Migration],
    applied: &[AppliedMigration],
    steps: usize,
) -> Result<Vec<&'a Migration>, ApplyError> {
    applied
        .iter()
        .rev()
        .take(steps)
        .map(|row| {
            let migration =
                migrations
                    .iter()
                    .find(|m| m.version == row.version)
                    .ok_or_else(|| ApplyError::MissingFile {
                        version: row.version.clone(),
                        name: row.name.clone(),
                    })?;
            if migration.down.is_none() {
                return Err(ApplyError::NoDownSection(migration.id()));
            }
            Ok(migration)
        })
        .collect()
}

/// Runs `work` under the lock and releases it on every path.
/// Creates the namespace and database of `connection` if they are missing.
pub(super) async fn create_scope(db: &Db, connection: &ConnectionConfig) -> Result<(), ApplyError> {
    ensure_namespace_and_database(db, connection)
        .await
        .map_err(|source| ApplyError::Setup {
            step: "cannot create namespace/database",
            source,
        })?;
    Ok(())
}

/// Creates the history and lock tables if they are missing.
pub(super) async fn create_tables(db: &Db) -> Result<(), ApplyError> {
    ensure_history_table(db).await.map_err(|source| ApplyError::Setup {
        step: "cannot create _migration_history",
        source,
    })?;
    Ok(())
}

/// The history, read under the lock.
pub(super) async fn history_under_lock(db: &Db) -> Result<Vec<super::AppliedMigration>, ApplyError> {
    applied_migrations(db).await.map_err(|source| ApplyError::Setup {
        step: "cannot read _migration_history",
        source,
    })
}

pub(super) async fn with_lock<T>(
    db: &Db,
    ctx: &ApplyContext,
    work: impl AsyncFnOnce(&Heartbeat) -> Result<T, ApplyError>,
) -> Result<T, ApplyError> {
    let lock = acquire_lock(db, &ctx.lock_owner(), ctx.lock_ttl).await?;
    let result = with_heartbeat(db, &lock, work).await;
    if let Err(ApplyError::Failed { error, .. }) = &result
        && error.outcome_unknown()
    {
        // The server may still commit it: the lock is left to expire.
        super::lock::leave_unsettled(db, &lock).await;
        return result;
    }
    let released = release_lock(db, &lock).await;
    match (result, released) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), _) => Err(e),
    }
}

/// `migrate up`: applies pending migrations (at most `steps`; `Some(0)` only
/// creates the history table), creating the namespace and database if needed.
pub async fn migrate_up(
    db: &Db,
    connection: &ConnectionConfig,
    migrations: &[Migration],
    steps: Option<usize>,
    ctx: &ApplyContext,
) -> Result<Vec<AppliedStep>, ApplyError> {
    create_scope(db, connection).await?;
    if steps == Some(0) {
        // Only the history table: nothing is applied, so no lock is needed.
        crate::connection::run_idempotent(db, super::history::DEFINE_HISTORY_TABLE, json!({}))
            .await
            .map_err(|source| ApplyError::Setup {
                step: "cannot create _migration_history",
                source,
            })?;
        return Ok(Vec::new());
    }
    create_tables(db).await?;
    with_lock(db, ctx, async |heartbeat| {
        // Read history under the lock so a concurrent runner's work is seen.
        let applied = history_under_lock(db).await?;
        let plan = plan(migrations, &applied);
        let drift = plan.blocking_drift(ctx.order);
        if !drift.is_empty() {
            return Err(ApplyError::Drift(drift));
        }
        if let Some(refusal) = plan.refusal(ctx.order) {
            return Err(ApplyError::Refused(refusal));
        }
        let take = steps.unwrap_or(usize::MAX);
        let clock = StartClock::of(connection);
        let mut completed = Vec::new();
        let mut pending = Vec::with_capacity(plan.pending.len());
        for migration in plan.pending {
            if pending.len() == take {
                break;
            }
            match migration.fit(db.server_version(), "this database") {
                super::dialect::Fit::Applies => pending.push(migration),
                super::dialect::Fit::PassedOver(reason) => tracing::warn!("passed over: {reason}"),
                super::dialect::Fit::Refused(refusal) => return Err(ApplyError::Refused(refusal)),
            }
        }
        for migration in pending {
            heartbeat.check()?;
            match apply_migration(db, migration, clock, ctx).await {
                Ok(duration_ms) => completed.push(AppliedStep {
                    version: migration.version.clone(),
                    name: migration.name.clone(),
                    duration_ms,
                }),
                Err(error) => {
                    return Err(ApplyError::Failed {
                        version: migration.version.clone(),
                        name: migration.name.clone(),
                        error,
                        completed,
                    });
                }
            }
        }
        Ok(completed)
    })
    .await
}

/// `migrate down`: rolls back the newest `steps` applied migrations.
pub async fn migrate_down(
    db: &Db,
    migrations: &[Migration],
    steps: usize,
    ctx: &ApplyContext,
) -> Result<Vec<AppliedStep>, ApplyError> {
    let applied = applied_migrations(db).await.map_err(|source| ApplyError::Setup {
        step: "cannot read _migration_history",
        source,
    })?;
    if applied.is_empty() {
        return Ok(Vec::new());
    }
    with_lock(db, ctx, async |heartbeat| {
        let applied = applied_migrations(db).await.map_err(|source| ApplyError::Setup {
            step: "cannot read _migration_history",
            source,
        })?;
        let targets = rollback_plan(migrations, &applied, steps)?;
        let mut completed = Vec::new();
        for migration in targets {
            heartbeat.check()?;
            match revert_migration(db, migration, &ctx.lock_owner()).await {
                Ok(duration_ms) => completed.push(AppliedStep {
                    version: migration.version.clone(),
                    name: migration.name.clone(),
                    duration_ms,
                }),
                Err(ApplyError::Failed {
                    version, name, error, ..
                }) => {
                    return Err(ApplyError::Failed {
                        version,
                        name,
                        error,
                        completed,
                    });
                }
                Err(other) => return Err(other),
            }
        }
        Ok(completed)
    })
    .await
}
