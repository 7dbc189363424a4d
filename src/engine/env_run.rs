//! The per-environment state machine, the same for every strategy:
//! approval gate → health → plan (drift) → destructive gate → lock → apply → unlock,
//! with auto-rollback of what this run applied when a migration fails.

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::approval::approve;
use super::guard::guarded;
use super::stop::{Stop, failed, failed_as, kind_of_lock, outcome_unknown, skipped};
use super::undo::undo_this_run;
use super::{DeploymentResult, DeploymentStatus, Engine, EnvironmentPlan, Event, FailureKind, WaveOptions};
use crate::connection::Db;
use crate::connection::{QueryError, QueryErrorKind, ReadOnly, connect, open_read_only, round_trip, select_for_write};
use crate::migration::apply::{BATCH_FROM_ROUND_TRIP, BatchStop, apply_batch, batch_requests};
use crate::migration::history;
use crate::migration::lock::{
    Heartbeat, HeldLock, LockError, initialise_lock_and_read_history, leave_unsettled, mark_interrupted, with_heartbeat,
};
use crate::migration::{AppliedMigration, Migration, plan, release_lock, script::StartClock};
use crate::registry::EnvironmentConfig;

/// Runs the whole deployment of one environment and returns its result.
pub(super) async fn run(engine: &Engine, environment: &EnvironmentConfig, wave: &WaveOptions) -> DeploymentResult {
    let started_at = Utc::now();
    let name = environment.name.as_str();
    engine.events.send(Event::Started {
        environment: name.to_string(),
    });
    let mut result = match run_steps(engine, environment, wave, started_at).await {
        Ok(result) => result,
        Err(stop) => {
            let applied = engine.applied_count(name);
            let mut result = DeploymentResult::finished(name, stop.status, applied, Some(stop.error), started_at);
            result.outcome_unknown = stop.lock_left_to_expire;
            if result.is_failure() {
                result.failure_kind = Some(stop.kind);
            }
            result
        }
    };
    result.server_version = crate::connection::known_server_version(&engine.client, &environment.connection);
    result
}

async fn run_steps(
    engine: &Engine,
    environment: &EnvironmentConfig,
    wave: &WaveOptions,
    started_at: DateTime<Utc>,
) -> Result<DeploymentResult, Stop> {
    let name = environment.name.as_str();
    let options = &engine.options;
    let approval_required = environment.needs_approval();

    if engine.is_cancelled() {
        return Err(skipped(engine.not_started_reason()));
    }
    // 0. Hold, freeze, maintenance window: before anything else, connecting included.
    super::policy::admit(engine, environment)?;
    // 1. Approval, before anything touches the environment.
    if approval_required && !options.dry_run {
        engine.events.phase(name, "awaiting approval");
        approve(engine, environment)?;
    }

    // 2. Health, and 3. the history, read together without creating anything.
    let (history, session) = health_and_history(engine, environment, wave).await?;
    let initialised = history.is_some();
    // A database that exists without surql's history may hold another
    // tool's: deploying as if it were empty would re-run what it applied.
    let empty = history.as_ref().is_none_or(Vec::is_empty);
    if let (true, ReadOnly::Selected(db)) = (empty, &session) {
        match crate::migration::adopt::foreign_tables(db).await {
            Ok(Some(foreign)) => return Err(failed_as(FailureKind::ForeignSchema, foreign)),
            Ok(None) => {}
            // A user who may not list tables deploys as before.
            Err(e) => tracing::debug!("{}: cannot list the database's tables: {e}", environment.name),
        }
    }
    let applied = history.unwrap_or_default();
    let migration_plan = plan(&engine.migrations, &applied);
    if let Some(refusal) = migration_plan.refusal(engine.context.order) {
        return Err(failed_as(FailureKind::Drift, refusal));
    }
    let pending = engine
        .promoted(name, pending_up_to(engine, environment, &migration_plan, wave), true)
        .map_err(|waiting| skipped(waiting.to_string()))?;
    let server = match crate::connection::known_server_version(&engine.client, &environment.connection) {
        None if super::server_fit::asks_server_version(engine, &pending) => {
            crate::connection::server_version(&engine.client, &environment.connection, options.health_timeout)
                .await
                .ok()
                .flatten()
        }
        known => known,
    };
    let fitted = super::server_fit::fit(engine, name, pending, server.as_ref())
        .map_err(|refusal| failed_as(FailureKind::ServerVersion, refusal))?;
    if let Some(reason) = fitted.nothing_fits(name, server.as_ref()) {
        let mut result = DeploymentResult::finished(name, DeploymentStatus::Skipped, 0, Some(reason), started_at);
        result.passed_over = fitted.passed_over;
        return Ok(result);
    }
    let (pending, passed_over) = (fitted.pending, fitted.passed_over);

    // 4. Destructive gate: the whole environment is blocked before anything runs.
    let destructive: Vec<_> = pending
        .iter()
        .flat_map(|&i| engine.destructive[i].iter().cloned())
        .collect();
    if !environment.allow_destructive
        && let Some(first) = destructive.first()
    {
        let more = match destructive.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Err(failed_as(
            FailureKind::Destructive,
            format!(
                "blocked: destructive statement in {}{more}; '{}' has allow_destructive: false",
                first, name
            ),
        ));
    }

    if options.dry_run {
        let mut plan = environment_plan(engine, environment, &pending, destructive);
        plan.passed_over = passed_over;
        let mut result = DeploymentResult::finished(name, DeploymentStatus::Success, 0, None, started_at);
        result.plan = Some(Box::new(plan));
        return Ok(result);
    }
    if pending.is_empty() {
        return Ok(DeploymentResult::finished(
            name,
            DeploymentStatus::Success,
            0,
            None,
            started_at,
        ));
    }

    // 5. Lock, apply, unlock. Set-up (namespace, database, tables), the lock
    // and the history read under it go in one round trip.
    engine.events.phase(name, "acquiring lock");
    let db = match session {
        ReadOnly::Selected(db) => db,
        // Signed in already: selecting creates the namespace and database.
        ReadOnly::Missing(Some(db)) => {
            select_for_write(&db, &environment.connection, options.connect_timeout)
                .await
                .map_err(|e| failed_as(FailureKind::Connection, e.to_string()))?;
            db
        }
        ReadOnly::Missing(None) => connect(&engine.client, &environment.connection, options.timeouts())
            .await
            .map_err(|e| failed_as(FailureKind::Connection, e.to_string()))?,
    }
    // The health check's session waited by its own rules; writes wait by the deployment's.
    .with_operation_timeout(options.operation_timeout);
    // Selecting created the namespace and database; an uninitialised
    // database only needs its tables defined.
    let (lock, applied_now) = guarded(
        environment,
        initialise_lock_and_read_history(
            &db,
            &engine
                .context
                .lock_owner_for(&environment.name, &environment.connection),
            engine.context.lock_ttl,
            initialised,
        ),
    )
    .await
    .map_err(|e| failed_as(kind_of_lock(&e), format!("not deployed: {e}")))?;
    let outcome = match applied_now {
        Ok(applied_now) => {
            let applied_now = applied_now.unwrap_or_default();
            with_heartbeat(&db, &lock, async |heartbeat| {
                apply_pending(engine, environment, wave, &db, &applied_now, &lock, heartbeat).await
            })
            .await
        }
        Err(e) => Err(failed(format!("cannot read _migration_history: {e}"))),
    };
    let released = match &outcome {
        Ok(LockReleased::ByTheLastBatch) => Ok(()),
        Err(stop) if stop.lock_left_to_expire => {
            guarded(environment, async {
                leave_unsettled(&db, &lock).await;
                Ok::<(), QueryError>(())
            })
            .await
            .ok();
            Ok(())
        }
        _ => guarded(environment, release_lock(&db, &lock)).await,
    };
    let applied_count = engine.applied_count(name);
    match (outcome, released) {
        (Ok(_), Ok(())) => {
            settle(engine, environment, &db).await?;
            let mut result =
                DeploymentResult::finished(name, DeploymentStatus::Success, applied_count, None, started_at);
            result.passed_over = passed_over;
            Ok(result)
        }
        (Ok(_), Err(e)) => Err(failed(format!(
            "applied {applied_count} migration(s) but could not release the lock: {e}"
        ))),
        (Err(stop), _) => Err(stop),
    }
}

/// Waits for what this run's migrations left the server doing (indexes
/// built `CONCURRENTLY`, a raised compatibility level's verification), so a
/// later wave never starts before it is done. The migrations are committed:
/// a failure here is reported, not rolled back.
async fn settle(engine: &Engine, environment: &EnvironmentConfig, db: &Db) -> Result<(), Stop> {
    let name = environment.name.as_str();
    let applied: Vec<usize> = (engine.ledger().get(name))
        .map(|state| state.applied_this_run.clone())
        .unwrap_or_default();
    let waiting: Vec<&Migration> = (applied.iter().map(|&i| &engine.migrations[i]))
        .filter(|m| m.requires.awaits_server())
        .collect();
    if waiting.is_empty() {
        return Ok(());
    }
    engine.events.phase(name, "waiting for the server's background work");
    crate::migration::settle::await_background_work(db, &waiting, engine.options.operation_timeout)
        .await
        .map_err(|error| {
            failed_as(
                FailureKind::BackgroundWork,
                format!("applied {} migration(s), but {error}", applied.len()),
            )
        })
}

/// What deploying `pending` (indexes) on `environment` would do.
pub(super) fn environment_plan(
    engine: &Engine,
    environment: &EnvironmentConfig,
    pending: &[usize],
    destructive: Vec<crate::safety::DestructiveStatement>,
) -> EnvironmentPlan {
    EnvironmentPlan {
        pending: pending.iter().map(|&i| engine.migrations[i].id()).collect(),
        statements: pending
            .iter()
            .map(|&i| engine.up_script(i, StartClock::of(&environment.connection)))
            .collect(),
        destructive,
        approval_required: environment.needs_approval(),
        irreversible: pending
            .iter()
            .filter(|&&i| engine.migrations[i].down.is_none())
            .map(|&i| engine.migrations[i].id())
            .collect(),
        row_migrations: (pending.iter().map(|&i| &engine.migrations[i]))
            .flat_map(|m| {
                (m.requires.row_migrations.iter()).map(move |row| format!("{}.{} ({})", row.table, row.name, m.id()))
            })
            .collect(),
        passed_over: Vec::new(),
        rollback: false,
    }
}

/// The pending migrations (indexes) this wave applies on `environment`: all,
/// or those up to and including its `to_version` and the environment's `pin_version`.
pub(super) fn pending_up_to(
    engine: &Engine,
    environment: &EnvironmentConfig,
    migration_plan: &crate::migration::MigrationPlan,
    wave: &WaveOptions,
) -> Vec<usize> {
    let last = super::policy::last_version(wave, environment);
    migration_plan
        .pending
        .iter()
        .filter(|m| super::policy::within(last.as_ref(), &m.version))
        .map(|m| index_of(&engine.migrations, m))
        .collect()
}

/// Invariant: `plan` returns migrations taken from `migrations` itself.
#[allow(clippy::expect_used)]
fn index_of(migrations: &[Migration], migration: &Migration) -> usize {
    migrations
        .iter()
        .position(|m| m.version == migration.version)
        .expect("plan returns migrations from the list")
}

/// Health (unless the wave skips it) and history (`None` when
/// uninitialised), read together without creating anything, and the session.
pub(super) async fn health_and_history(
    engine: &Engine,
    environment: &EnvironmentConfig,
    wave: &WaveOptions,
) -> Result<(Option<Vec<AppliedMigration>>, ReadOnly), Stop> {
    let name = environment.name.as_str();
    if !wave.verify_health {
        engine.events.phase(name, "reading history");
        return read_history(engine, environment).await;
    }
    engine.events.phase(name, "checking health");
    let inspection = engine.health_check().inspect(environment).await;
    if !inspection.status.is_healthy {
        return Err(failed_as(
            FailureKind::Unhealthy,
            format!(
                "unhealthy: {}",
                inspection.status.error.unwrap_or_else(|| "health check failed".into())
            ),
        ));
    }
    Ok((inspection.history, inspection.session))
}

/// History (`None` when uninitialised) and the read-only session.
async fn read_history(
    engine: &Engine,
    environment: &EnvironmentConfig,
) -> Result<(Option<Vec<AppliedMigration>>, ReadOnly), Stop> {
    match open_read_only(&engine.client, &environment.connection, engine.options.timeouts()).await {
        Ok(ReadOnly::Selected(db)) => {
            let history = history::read_history(&db)
                .await
                .map_err(|e| failed(format!("cannot read _migration_history: {e}")))?;
            Ok((history, ReadOnly::Selected(db)))
        }
        Ok(ReadOnly::Missing(session)) => Ok((None, ReadOnly::Missing(session))),
        Err(e) => Err(failed_as(FailureKind::Connection, e.to_string())),
    }
}

/// Whether applying also released the lock.
#[derive(Clone, Copy)]
enum LockReleased {
    No,
    /// The last batch committed everything and released it in the same request.
    ByTheLastBatch,
}

/// Applies pending migrations under the lock; rolls back this run's work on
/// failure. `applied` was read under the lock: another runner may have
/// applied some since the plan was made.
async fn apply_pending(
    engine: &Engine,
    environment: &EnvironmentConfig,
    wave: &WaveOptions,
    db: &Db,
    applied: &[AppliedMigration],
    lock: &HeldLock,
    heartbeat: &Heartbeat,
) -> Result<LockReleased, Stop> {
    let name = environment.name.as_str();
    let migration_plan = plan(&engine.migrations, applied);
    if let Some(refusal) = migration_plan.refusal(engine.context.order) {
        return Err(failed_as(FailureKind::Drift, refusal));
    }
    // The same promotion cap as planned (what this run did meanwhile only adds to it).
    let pending = engine
        .promoted(name, pending_up_to(engine, environment, &migration_plan, wave), false)
        .map_err(|waiting| skipped(waiting.to_string()))?;
    // As planned: the client noted what the plan asked (the session may
    // predate it).
    let server = crate::connection::known_server_version(&engine.client, &environment.connection)
        .or_else(|| db.server_version().cloned());
    let pending = super::server_fit::fit(engine, name, pending, server.as_ref())
        .map_err(|refusal| failed_as(FailureKind::ServerVersion, refusal))?
        .pending;
    let total = pending.len();
    let clock = StartClock::of(&environment.connection);
    let far = round_trip(&engine.client, &environment.connection).is_some_and(|rtt| rtt >= BATCH_FROM_ROUND_TRIP);
    let requests = batch_requests(&pending, &engine.migrations, far);
    let batches = requests.len();
    for (number, batch) in requests.into_iter().enumerate() {
        let next = &engine.migrations[batch[0]];
        // The last request also releases the lock once everything committed.
        let last_request = number + 1 == batches;
        if engine.is_interrupted() {
            return Err(interrupted(engine, environment, wave, db, next).await);
        }
        // Another runner may now hold the lock: stop, and leave the database
        // to it rather than rolling back under its feet.
        if let Err(lost) = heartbeat.check() {
            return Err(lease_lost(engine, name, lost, next));
        }
        let migrations: Vec<&Migration> = batch.iter().map(|&i| &engine.migrations[i]).collect();
        let done = engine.applied_count(name);
        let phase = match migrations.as_slice() {
            [one] => format!("applying {}/{total}: {}", done + 1, one.id()),
            [first, .., last] => format!(
                "applying {}-{}/{total}: {} … {}",
                done + 1,
                done + batch.len(),
                first.id(),
                last.id()
            ),
            [] => unreachable!("requests are never empty"),
        };
        engine.events.phase(name, phase);
        let ids: Vec<String> = migrations.iter().map(|m| m.id()).collect();
        let span = super::trace::migration_span(&ids.join(","), migrations.len());
        let outcome = guarded(
            environment,
            interruptible(
                engine,
                db,
                lock,
                migrations.len(),
                apply_batch(db, &migrations, clock, &engine.context, lock, last_request),
            ),
        )
        .instrument(span.clone())
        .await;
        match &outcome {
            Err(error) => super::trace::failed(&span, &error.to_string()),
            Ok(outcome) => {
                if let Some(BatchStop::Failed(error)) = &outcome.stop {
                    super::trace::failed(&span, &error.to_string());
                }
            }
        }
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) if error.outcome_unknown() => {
                return Err(outcome_unknown(engine, name, next, &error));
            }
            Err(error) => {
                // The request was refused as a whole: what committed is
                // what the history says (a batch commits a prefix).
                let committed = committed_by_this_run(engine, environment, db, &migrations).await;
                note_batch(engine, name, batch, &committed);
                let failed = migrations.get(committed.len()).unwrap_or(&next);
                return Err(after_failure(engine, environment, wave, db, failed, error).await);
            }
        };
        note_batch(engine, name, batch, &outcome.applied);
        match outcome.stop {
            None if outcome.released_lock => return Ok(LockReleased::ByTheLastBatch),
            None => {}
            Some(BatchStop::Failed(error)) => {
                let failed = migrations[outcome.applied.len()];
                return Err(after_failure(engine, environment, wave, db, failed, error).await);
            }
            Some(BatchStop::Stopped) => {
                let stopped = migrations[outcome.applied.len()];
                if engine.is_interrupted() {
                    return Err(interrupted(engine, environment, wave, db, stopped).await);
                }
                let lost = heartbeat
                    .check()
                    .err()
                    .unwrap_or_else(|| LockError::Lost("the lock is no longer this run's".into()));
                return Err(lease_lost(engine, name, lost, stopped));
            }
        }
    }
    Ok(LockReleased::No)
}

/// Records the first `durations.len()` migrations of `batch` as applied.
fn note_batch(engine: &Engine, name: &str, batch: &[usize], durations: &[u64]) {
    for (&index, &duration_ms) in batch.iter().zip(durations) {
        engine.note_applied(name, index);
        engine.events.send(Event::MigrationApplied {
            environment: name.to_string(),
            migration: engine.migrations[index].id(),
            duration_ms,
        });
    }
}

/// The execution times of the migrations of `batch` (a prefix) that this run
/// committed, by the history; none when it cannot be read.
async fn committed_by_this_run(
    engine: &Engine,
    environment: &EnvironmentConfig,
    db: &Db,
    batch: &[&Migration],
) -> Vec<u64> {
    let Ok(Some(history)) = guarded(environment, history::read_history(db)).await else {
        return Vec::new();
    };
    batch
        .iter()
        .map_while(|m| {
            history
                .iter()
                .find(|row| row.version == m.version && row.deployment_id == engine.context.deployment_id)
                .map(|row| row.execution_ms.max(0) as u64)
        })
        .collect()
}

/// Runs a request; on Ctrl-C meanwhile (not an abort or a lost store: those let it finish), when it holds more than one
/// migration, marks the lock interrupted so the guards stop it after the
/// migration running now. Either way it waits for the request.
async fn interruptible<T>(
    engine: &Engine,
    db: &Db,
    lock: &HeldLock,
    migrations: usize,
    batch: impl std::future::Future<Output = T>,
) -> T {
    if migrations < 2 {
        // A lone migration has no guard; the loop checks before the next.
        return batch.await;
    }
    tokio::pin!(batch);
    tokio::select! {
        result = &mut batch => return result,
        () = engine.interruption() => {}
    }
    let (result, marked) = tokio::join!(batch, mark_interrupted(db, lock));
    if let Err(error) = marked {
        tracing::warn!("could not tell the running batch to stop: {error}");
    }
    result
}

fn lease_lost(engine: &Engine, name: &str, lost: LockError, next: &Migration) -> Stop {
    let kept = engine.applied_count(name);
    failed_as(
        kind_of_lock(&lost),
        format!(
            "{lost}; stopped before {} ({kept} migration(s) applied by this run were kept)",
            next.id()
        ),
    )
}

/// Ctrl-C between two migrations: nothing more is applied, and this run's
/// work there is rolled back (or kept with `--no-rollback`).
async fn interrupted(
    engine: &Engine,
    environment: &EnvironmentConfig,
    wave: &WaveOptions,
    db: &Db,
    next: &Migration,
) -> Stop {
    let what = format!("interrupted before {}", next.id());
    undo_this_run(
        engine,
        environment,
        wave.auto_rollback,
        db,
        what,
        FailureKind::Interrupted,
        skipped,
    )
    .await
}

async fn after_failure(
    engine: &Engine,
    environment: &EnvironmentConfig,
    wave: &WaveOptions,
    db: &Db,
    migration: &Migration,
    error: QueryError,
) -> Stop {
    let what = format!("migration {} failed: {error}", migration.id());
    let kind = match error.kind() {
        QueryErrorKind::ConnectionLost | QueryErrorKind::NotAllowed => FailureKind::Connection,
        _ => FailureKind::Rejected,
    };
    let failed_there = match kind {
        FailureKind::Connection => |what: String| failed_as(FailureKind::Connection, what),
        _ => |what: String| failed_as(FailureKind::Rejected, what),
    };
    undo_this_run(engine, environment, wave.auto_rollback, db, what, kind, failed_there).await
}
