//! Applying and rolling back migrations on ONE database: each migration and its
//! history row in one transaction, under the lease lock, refusing on drift.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::context::ApplyContext;
use super::file::Migration;
use super::lock::{HeldLock, LockError, forget_released};
use super::plan::{MigrationStatusRow, describe_drift};
use super::script::{
    StartClock, batch_script, down_script, lone_script, release_after, statements_before_up, transaction_statements,
};
use crate::connection::{Collected, QueryError, QueryErrorKind, first_cause, run_collecting_errors};
use crate::connection::{ConnectionError, Db};

/// A migration that ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedStep {
    /// Its version.
    pub version: String,
    /// Its name.
    pub name: String,
    /// How long its transaction took, in milliseconds.
    pub duration_ms: u64,
}

/// Why `up`/`down` stopped. `completed` lists what was committed before it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// Preparing the database failed before anything was applied.
    #[error("{step}")]
    Setup {
        /// The preparation that failed (for example "defining the history table").
        step: &'static str,
        #[source]
        /// The server's answer.
        source: QueryError,
    },
    #[error("drift: {}; restore the files or resolve the history before applying", describe_drift(.0))]
    /// Applied migrations whose files changed or vanished: the rows that drifted.
    Drift(Vec<MigrationStatusRow>),
    /// The plan cannot be applied as it is (drift, a missing file, an
    /// out-of-order version), with what to do.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    /// The lock was held, lost or could not be read.
    Lock(#[from] LockError),
    #[error("migration {version}_{name} failed and was not applied ({}): {error}", completed_note(.completed))]
    /// A migration failed; its transaction rolled back.
    Failed {
        /// The failed migration's version.
        version: String,
        /// The failed migration's name.
        name: String,
        /// Why it failed, with the statement where the server says.
        error: QueryError,
        /// What this run committed before it.
        completed: Vec<AppliedStep>,
    },
    #[error(transparent)]
    /// A query outside any migration failed (reading the history).
    Query(#[from] QueryError),
    #[error("cannot roll back {0}: it has no '-- migrate:down' section")]
    /// A rollback asked of a migration without a down section (its `version_name`).
    NoDownSection(String),
    #[error("cannot roll back {version}_{name}: its migration file is missing")]
    /// A rollback asked of an applied migration whose file is gone.
    MissingFile {
        /// Its version.
        version: String,
        /// Its name.
        name: String,
    },
}

/// No session on the database, or the work there failed: for callers that
/// connect first and report either as it is.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DatabaseError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

fn completed_note(completed: &[AppliedStep]) -> String {
    if completed.is_empty() {
        "nothing else was applied".into()
    } else {
        let ids: Vec<String> = completed.iter().map(|s| format!("{}_{}", s.version, s.name)).collect();
        format!("already committed before it: {}", ids.join(", "))
    }
}

/// How a batch ended.
#[derive(Debug)]
pub struct BatchOutcome {
    /// Execution times (ms) of the migrations that committed: always the
    /// first ones of the batch, in order.
    pub applied: Vec<u64>,
    /// Why the next migration (`batch[applied.len()]`) did not commit.
    pub stop: Option<BatchStop>,
    /// The batch released the lock (all committed and it was asked to).
    pub released_lock: bool,
}

/// Why a batch stopped before its end.
#[derive(Debug)]
#[non_exhaustive]
pub enum BatchStop {
    /// It failed; nothing of it remains. The statement index counts the
    /// migration's own statements from 0.
    Failed(QueryError),
    /// The guard kept it from beginning: the run was interrupted, or the lock
    /// is no longer this run's.
    Stopped,
}

/// Applies `batch` in ONE request and reports which migrations committed.
/// Each migration is still its own transaction; a guard stops the rest once
/// one fails, the run is interrupted ([`super::lock::mark_interrupted`]) or
/// the lock changes hands. With `release_when_done` the same request
/// releases the lock once the last one committed. On a network this saves a
/// round trip per migration. The timeout is the operation timeout per
/// migration.
pub async fn apply_batch(
    db: &Db,
    batch: &[&Migration],
    clock: StartClock,
    ctx: &ApplyContext,
    lock: &HeldLock,
    release_when_done: bool,
) -> Result<BatchOutcome, QueryError> {
    if let [migration] = batch {
        return Ok(
            match apply_lone(
                db,
                migration,
                clock,
                ctx,
                &lock.owner,
                release_when_done.then_some(lock),
            )
            .await
            {
                Ok((ms, released_lock)) => BatchOutcome {
                    applied: vec![ms],
                    stop: None,
                    released_lock,
                },
                Err(error) if error.outcome_unknown() => return Err(error),
                Err(error) if error.statement().is_some() && error.kind() == QueryErrorKind::Stopped => BatchOutcome {
                    applied: vec![],
                    stop: Some(BatchStop::Stopped),
                    released_lock: false,
                },
                Err(error) if error.statement().is_some() => BatchOutcome {
                    applied: vec![],
                    stop: Some(BatchStop::Failed(error)),
                    released_lock: false,
                },
                Err(request_failed) => return Err(request_failed),
            },
        );
    }
    let mut vars = serde_json::Map::new();
    let versions: Vec<&str> = batch.iter().map(|m| m.version.as_str()).collect();
    vars.insert("surql_versions".into(), json!(versions));
    vars.insert("surql_deployment_id".into(), json!(ctx.deployment_id));
    vars.insert("surql_actor".into(), json!(ctx.actor));
    vars.insert("surql_owner".into(), json!(lock.owner));
    let timeout = db.operation_timeout().saturating_mul(batch.len() as u32);
    let Collected {
        mut response,
        errors,
        statements,
    } = run_collecting_errors(
        db,
        &batch_script(batch, release_when_done),
        serde_json::Value::Object(vars),
        timeout,
    )
    .await?;

    // Every statement answers unless something ended a transaction early.
    let expected: usize = batch
        .iter()
        .map(|m| transaction_statements(m, StartClock::Server, false))
        .sum::<usize>()
        + usize::from(release_when_done)
        + 1;
    if statements != expected {
        let ids = format!("{} … {}", batch[0].id(), batch[batch.len() - 1].id());
        return Err(inconsistent(&ids, statements, expected));
    }
    // Which committed: the read at the end is the truth; the guard makes it
    // a prefix of the batch.
    let last = statements.saturating_sub(1);
    let committed: serde_json::Value = match errors.iter().find(|error| error.statement() == Some(last)) {
        Some(error) => return Err(error.clone().context("could not read which migrations committed")),
        None => response
            .take::<surrealdb::types::Value>(last)
            .map_err(|e| QueryError::from_sdk(&e).context("could not read which migrations committed"))?
            .into_json_value(),
    };
    let execution_ms = |version: &str| {
        committed.as_array()?.iter().find_map(|row| {
            (row["version"].as_str() == Some(version)).then(|| row["execution_ms"].as_u64().unwrap_or(0))
        })
    };
    let applied: Vec<u64> = batch.iter().map_while(|m| execution_ms(&m.version)).collect();
    if applied.len() == batch.len() {
        // A conflict with a renewal can fail the release: then the caller releases.
        let released_lock = release_when_done && deleted_the_lock(&mut response, last - 1);
        if released_lock {
            forget_released(lock);
            super::lease::forget(db, &lock.owner).await;
        }
        return Ok(BatchOutcome {
            applied,
            stop: None,
            released_lock,
        });
    }

    // The first error of the migration that did not commit is why. Each
    // transaction: its preamble, its own statements, the history row and
    // COMMIT.
    let before_up = statements_before_up(StartClock::Server, false);
    let begins_at: usize = batch[..applied.len()]
        .iter()
        .map(|m| transaction_statements(m, StartClock::Server, false))
        .sum();
    let up_at = begins_at + before_up;
    if let Some(unknown) = errors.iter().find(|error| error.outcome_unknown()) {
        return Err(unknown.clone());
    }
    // Only the errors of the migration that did not commit explain it.
    let from_it = errors.partition_point(|error| error.statement() < Some(begins_at));
    let ends_at = begins_at + transaction_statements(batch[applied.len()], StartClock::Server, false);
    let to_it = errors.partition_point(|error| error.statement() < Some(ends_at));
    let stop = match first_cause(&errors[from_it..to_it]) {
        Some(error) if error.kind() == QueryErrorKind::Stopped => BatchStop::Stopped,
        Some(error) => BatchStop::Failed(
            error
                .clone()
                .at_statement(error.statement().unwrap_or_default().saturating_sub(up_at)),
        ),
        None => BatchStop::Failed(
            QueryError::new(QueryErrorKind::Rejected, "the transaction did not commit").at_statement(0),
        ),
    };
    Ok(BatchOutcome {
        applied,
        stop: Some(stop),
        released_lock: false,
    })
}

/// The error for an answer that shows a transaction ended early.
fn inconsistent(migrations: &str, answered: usize, sent: usize) -> QueryError {
    QueryError::new(
        QueryErrorKind::Inconsistent,
        format!(
            "outcome inconsistent: {migrations}: SurrealDB answered {answered} of {sent} statements, so part of it may have committed without its history row; nothing was rolled back — compare the schema with `surql migrate status` before running again"
        ),
    )
}

/// Applies one migration in one transaction. Returns its duration.
pub async fn apply_migration(
    db: &Db,
    migration: &Migration,
    clock: StartClock,
    ctx: &ApplyContext,
) -> Result<u64, QueryError> {
    apply_lone(db, migration, clock, ctx, &ctx.lock_owner(), None)
        .await
        .map(|(ms, _)| ms)
}

/// True when the release statement's result shows the lock record deleted.
fn deleted_the_lock(response: &mut surrealdb::IndexedResults, index: usize) -> bool {
    response.take::<surrealdb::types::Value>(index).is_ok_and(|deleted| {
        deleted
            .into_json_value()
            .as_array()
            .is_some_and(|rows| !rows.is_empty())
    })
}

/// One migration in one request; with `release`, the same request releases
/// the lock once it committed. Returns its duration and whether the lock was
/// released.
async fn apply_lone(
    db: &Db,
    migration: &Migration,
    clock: StartClock,
    ctx: &ApplyContext,
    owner: &str,
    release: Option<&HeldLock>,
) -> Result<(u64, bool), QueryError> {
    let started = std::time::Instant::now();
    // Held until the transaction is answered: an in-process takeover waits.
    let proof = super::lease::proof(db, owner).await;
    let proven = proof.is_some();
    let mut sql = lone_script(migration, clock, proven);
    if release.is_some() {
        sql.push_str(&release_after(&migration.version));
    }
    let vars = json!({
        "surql_version": migration.version,
        "surql_name": migration.name,
        "surql_checksum": migration.checksum,
        "surql_deployment_id": ctx.deployment_id,
        "surql_actor": ctx.actor,
        "surql_owner": owner,
    });
    let mut vars = surrealdb::types::SurrealValue::into_value(vars);
    if let (StartClock::Shared, surrealdb::types::Value::Object(vars)) = (clock, &mut vars) {
        // A datetime, not text: casting text cost about 10 µs per migration.
        vars.insert(
            "surql_started",
            surrealdb::types::Value::Datetime(chrono::Utc::now().into()),
        );
    }
    let Collected {
        mut response,
        errors,
        statements,
    } = run_collecting_errors(db, &sql, vars, db.operation_timeout()).await?;
    // The release statement, if any, is the last; an error there (a conflict
    // with a renewal) leaves the lock to the caller.
    let migration_statements = if release.is_some() {
        statements.saturating_sub(1)
    } else {
        statements
    };
    let its_own = errors.partition_point(|error| error.statement() < Some(migration_statements));
    if let Some(error) = first_cause(&errors[..its_own]) {
        let index = error.statement().unwrap_or_default();
        return Err(error
            .clone()
            .at_statement(index.saturating_sub(statements_before_up(clock, proven))));
    }
    // Defence in depth (the parser refuses what ends a transaction early): an
    // answer with fewer statements means part of it may have committed
    // without its history row. Never guess: report it, roll nothing back.
    let expected = transaction_statements(migration, clock, proven);
    if migration_statements != expected {
        return Err(inconsistent(&migration.id(), migration_statements, expected));
    }
    drop(proof);
    let released = match release {
        Some(lock) if deleted_the_lock(&mut response, statements - 1) => {
            forget_released(lock);
            super::lease::forget(db, owner).await;
            true
        }
        _ => false,
    };
    Ok((started.elapsed().as_millis() as u64, released))
}

/// Rolls one migration back in one transaction. Returns its duration.
pub async fn revert_migration(db: &Db, migration: &Migration, owner: &str) -> Result<u64, ApplyError> {
    let script = down_script(migration).ok_or_else(|| ApplyError::NoDownSection(migration.id()))?;
    let started = std::time::Instant::now();
    let failed = |error| ApplyError::Failed {
        version: migration.version.clone(),
        name: migration.name.clone(),
        error,
        completed: Vec::new(),
    };
    let vars = json!({ "surql_version": migration.version, "surql_owner": owner });
    let Collected { errors, statements, .. } = run_collecting_errors(db, &script, vars, db.operation_timeout())
        .await
        .map_err(failed)?;
    if let Some(error) = first_cause(&errors) {
        return Err(failed(error.clone()));
    }
    // BEGIN, the lock check, the down section, the history row's deletion,
    // COMMIT: fewer answers mean it ended early (see `transaction_statements`).
    let expected = 2 + migration.down_statements + 2;
    if statements != expected {
        return Err(failed(inconsistent(&migration.id(), statements, expected)));
    }
    Ok(started.elapsed().as_millis() as u64)
}

/// A round trip from which sending all pending migrations in one request
/// pays: each migration's guard costs the server about 0.05 ms, a request
/// saved costs a round trip (BENCHMARKS.md).
pub const BATCH_FROM_ROUND_TRIP: Duration = Duration::from_millis(1);

/// At most this many migrations, and this much SurrealQL, go in one request
/// (a new tenant may have hundreds pending; a server limits message sizes).
const MAX_BATCH_MIGRATIONS: usize = 50;
const MAX_BATCH_BYTES: usize = 1 << 20;

/// How `pending` (indexes into `migrations`) is split into requests: one
/// migration each, unless the server is `far` (a round trip away); then as
/// many as fit the limits, and always at least one.
pub fn batch_requests<'a>(pending: &'a [usize], migrations: &[Migration], far: bool) -> Vec<&'a [usize]> {
    if !far {
        return pending.chunks(1).collect();
    }
    let mut requests = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &index) in pending.iter().enumerate() {
        let size = migrations[index].up.len();
        if i > start && (i - start == MAX_BATCH_MIGRATIONS || bytes + size > MAX_BATCH_BYTES) {
            requests.push(&pending[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < pending.len() {
        requests.push(&pending[start..]);
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrations(sizes: &[usize]) -> Vec<Migration> {
        let dir = tempfile::tempdir().unwrap();
        for (i, size) in sizes.iter().enumerate() {
            // `size` bytes of SurrealQL: a comment padded out, then a statement.
            let up = format!("-- {}\nDEFINE TABLE t{i};", "x".repeat(size.saturating_sub(20)));
            std::fs::write(
                dir.path().join(format!("{}_m.surql", i + 1)),
                format!("-- migrate:up\n{up}\n"),
            )
            .unwrap();
        }
        crate::migration::discover_migrations(dir.path()).unwrap()
    }

    #[test]
    fn a_server_a_round_trip_away_gets_pending_migrations_together_within_limits() {
        let small = migrations(&[100; 120]);
        let pending: Vec<usize> = (0..small.len()).collect();
        let lengths = |requests: Vec<&[usize]>| requests.iter().map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(lengths(batch_requests(&pending, &small, true)), [50, 50, 20]);
        assert_eq!(lengths(batch_requests(&pending[..10], &small, true)), [10]);
        // On this host, or embedded: one at a time.
        assert_eq!(lengths(batch_requests(&pending[..3], &small, false)), [1, 1, 1]);
        assert!(batch_requests(&[], &small, true).is_empty());
        // Large migrations: up to 1 MiB per request, and one even when larger.
        let large = migrations(&[400 << 10, 400 << 10, 400 << 10, 2 << 20]);
        assert_eq!(lengths(batch_requests(&[0, 1, 2, 3], &large, true)), [2, 1, 1]);
    }
}
