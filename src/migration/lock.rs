//! The lease lock `_migration_lock:current`: one writer per database.
//!
//! Taking it is a single `CREATE` of a fixed record id, which SurrealDB refuses
//! when the record exists, so two runners can never both hold it. An expired
//! lease is deleted first, which is how a crashed runner's lock is taken over.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::history::{AppliedMigration, READ_HISTORY, history_from_read};
pub use super::tables::{DEFINE_HISTORY_TABLE, DEFINE_LOCK_TABLE};
use crate::connection::Db;
use crate::connection::{QueryError, QueryErrorKind, run_idempotent, run_query};

/// Default lease length; renewed every third of it while the runner works.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(300);

pub use super::holder::{holder_is_gone, owner_string};

/// The holder of a lock, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The runner holding it: its deployment and process (see `migration::holder`).
    pub owner: String,
    /// When it was taken (RFC 3339).
    pub acquired_at: String,
    /// When the lease lapses unless renewed (RFC 3339).
    pub expires_at: String,
    /// Left by a run whose last write has an unknown outcome: never taken
    /// over before it expires, whoever its holder was.
    #[serde(default, deserialize_with = "null_is_false")]
    pub unsettled: bool,
}

fn null_is_false<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(false))
}

/// Why the lock was not taken (or was lost).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    #[error(
        "locked by {} since {}, expires {}{}",
        .0.owner,
        .0.acquired_at,
        .0.expires_at,
        if .0.unsettled { " (left to expire: a migration's outcome was unknown; check `status` once it has)" } else { "" }
    )]
    /// Another runner holds it.
    Held(LockInfo),
    #[error("the migration lock was lost (expired and taken by another runner): {0}")]
    /// It expired under this run and another runner took it.
    Lost(String),
    #[error("the lock kept changing hands; try again ({0})")]
    /// Ten attempts in a row met a lock that changed hands.
    Busy(String),
    #[error("lock query failed: {0}")]
    /// The lock's own query failed.
    Query(QueryError),
}

impl From<QueryError> for LockError {
    fn from(error: QueryError) -> Self {
        Self::Query(error)
    }
}

/// The shortest lease the CLI and the coordinator accept: renewals come every
/// third of it, so a shorter one could lapse under a loaded machine.
pub const MIN_LOCK_TTL: Duration = Duration::from_secs(5);

/// A lock this process holds. Release it with [`release_lock`] on every path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    /// Who this run is, as written in the lock record.
    pub owner: String,
    /// The lease: renewed every third of it while the run lasts.
    pub ttl: Duration,
}

impl fmt::Display for HeldLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.owner)
    }
}

fn ttl_literal(ttl: Duration) -> String {
    format!("{}ms", ttl.as_millis().max(1))
}

/// Takes the lock for `owner`, first removing an expired lease.
pub async fn acquire_lock(db: &Db, owner: &str, ttl: Duration) -> Result<HeldLock, LockError> {
    acquire_lock_with(db, owner, ttl, "", "").await.map(|(lock, _)| lock)
}

/// [`acquire_lock`] in one round trip with `before` (idempotent set-up
/// statements) and `after` (a read under the lock); returns the result of
/// `after`'s last statement (`None` when `after` is empty).
pub async fn acquire_lock_with(
    db: &Db,
    owner: &str,
    ttl: Duration,
    before: &str,
    after: &str,
) -> Result<(HeldLock, Option<serde_json::Value>), LockError> {
    // Expired leases are cleared only when the CREATE finds one (see take_lock).
    // `SET` and a duration literal: cheaper than `CONTENT` and a cast.
    let take = format!(
        "CREATE _migration_lock:current SET owner = $owner, acquired_at = time::now(), expires_at = time::now() + {} RETURN NONE;",
        ttl_literal(ttl)
    );
    let sql = format!("{before}\n{take}\n{after}");
    let vars = json!({ "owner": owner });
    // Registered before the lock can exist, so this process never mistakes its
    // own fresh lock for a stale one (see [`holder_is_gone`]).
    super::holder::note_held(owner);
    let batch = Batch {
        sql: &sql,
        before,
        after,
    };
    // A takeover waits for a migration that relies on this process's note.
    let changing = super::lease::changing(db).await;
    let result = take_lock(db, owner, ttl, &batch, &vars).await;
    match &result {
        Ok(_) => changing.settle(Some(owner)),
        Err(_) => {
            changing.settle(None);
            super::holder::note_released(owner);
        }
    }
    result
}

/// One round trip before applying: defines the history and lock tables
/// unless `initialised`, takes the lock, and reads the history under it
/// (`Ok(None)` in the history: the table is missing).
pub async fn initialise_lock_and_read_history(
    db: &Db,
    owner: &str,
    ttl: Duration,
    initialised: bool,
) -> Result<(HeldLock, Result<Option<Vec<AppliedMigration>>, QueryError>), LockError> {
    let setup = if initialised {
        String::new()
    } else {
        format!("{DEFINE_HISTORY_TABLE}{DEFINE_LOCK_TABLE}")
    };
    let (lock, under_lock) = acquire_lock_with(db, owner, ttl, &setup, READ_HISTORY).await?;
    Ok((lock, history_from_read(under_lock)))
}

/// The one-round-trip query of [`acquire_lock_with`] and its parts.
struct Batch<'a> {
    sql: &'a str,
    before: &'a str,
    after: &'a str,
}

async fn take_lock(
    db: &Db,
    owner: &str,
    ttl: Duration,
    batch: &Batch<'_>,
    vars: &serde_json::Value,
) -> Result<(HeldLock, Option<serde_json::Value>), LockError> {
    let mut last_error = String::new();
    let held = HeldLock {
        owner: owner.to_string(),
        ttl,
    };
    let read_of = |results: Vec<serde_json::Value>| {
        if batch.after.trim().is_empty() {
            None
        } else {
            results.into_iter().last()
        }
    };
    // A lock released (or a transaction conflict) between our CREATE and the
    // read of the holder is retried a few times rather than reported as held.
    for _attempt in 0..10 {
        match run_query(db, batch.sql, vars.clone()).await {
            Ok(results) => return Ok((held, read_of(results))),
            Err(refused) if matches!(refused.kind(), QueryErrorKind::AlreadyExists | QueryErrorKind::Conflict) => {
                match after_refusal(db, &held, batch).await {
                    Ok(Refusal::Ours(results)) => return Ok((held, read_of(results))),
                    Ok(Refusal::Held(info)) => return Err(LockError::Held(info)),
                    Ok(Refusal::TryAgain) => {}
                    // Looking at the lock conflicted with the other runner's
                    // own attempt: look again.
                    Err(error) if error.is_retryable() => {}
                    Err(error) => return Err(error.into()),
                }
                last_error = refused.message().to_string();
            }
            Err(error) => {
                // Another statement of the batch failed: if our CREATE
                // committed, the lock must not outlive this error.
                if error.statement().is_some()
                    && let Ok(Some(info)) = current_lock(db).await
                    && info.owner == owner
                {
                    let _ = release_record(db, &held).await;
                }
                return Err(error.into());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(LockError::Busy(last_error))
}

/// What a refused or conflicted lock batch left behind.
enum Refusal {
    /// Our CREATE committed after all; the rest of the batch was redone.
    Ours(Vec<serde_json::Value>),
    Held(LockInfo),
    /// Nobody holds it now (released, expired, or left by a dead process).
    TryAgain,
}

async fn after_refusal(db: &Db, held: &HeldLock, batch: &Batch<'_>) -> Result<Refusal, QueryError> {
    // Each statement of the batch is its own transaction: our CREATE may have
    // committed while a set-up DEFINE racing another runner's conflicted.
    // Then the lock is ours; redo the rest of the batch without the CREATE.
    if current_lock(db).await?.is_some_and(|info| info.owner == held.owner) {
        return match finish_batch(db, batch).await {
            Ok(results) => Ok(Refusal::Ours(results)),
            Err(error) => {
                let _ = release_record(db, held).await;
                Err(error)
            }
        };
    }
    let expired = run_query(
        db,
        "DELETE _migration_lock:current WHERE expires_at < time::now() RETURN BEFORE;",
        json!({}),
    )
    .await?;
    if expired
        .first()
        .and_then(|v| v.as_array())
        .is_some_and(|rows| !rows.is_empty())
    {
        tracing::warn!("took over an expired migration lock");
        return Ok(Refusal::TryAgain);
    }
    match current_lock(db).await? {
        Some(info) if !info.unsettled && holder_is_gone(&info.owner, &info.acquired_at) => {
            tracing::warn!(owner = %info.owner, "taking over a lock left by a process that is gone");
            run_query(
                db,
                "DELETE _migration_lock:current WHERE owner = $owner;",
                json!({ "owner": info.owner }),
            )
            .await?;
            Ok(Refusal::TryAgain)
        }
        Some(info) => Ok(Refusal::Held(info)),
        None => Ok(Refusal::TryAgain),
    }
}

/// The set-up and the read of a batch whose CREATE already committed.
async fn finish_batch(db: &Db, batch: &Batch<'_>) -> Result<Vec<serde_json::Value>, QueryError> {
    if !batch.before.trim().is_empty() {
        run_idempotent(db, batch.before, json!({})).await?;
    }
    if batch.after.trim().is_empty() {
        return Ok(Vec::new());
    }
    run_query(db, batch.after, json!({})).await
}

/// Pushes the lease's expiry forward; fails when the lock is no longer ours.
pub async fn renew_lock(db: &Db, lock: &HeldLock) -> Result<(), LockError> {
    let sql = format!(
        "UPDATE _migration_lock:current SET expires_at = time::now() + {} WHERE owner = $owner RETURN AFTER;",
        ttl_literal(lock.ttl)
    );
    let results = run_query(db, &sql, json!({ "owner": lock.owner })).await?;
    let renewed = results
        .first()
        .and_then(|v| v.as_array())
        .is_some_and(|rows| !rows.is_empty());
    if renewed {
        Ok(())
    } else {
        super::lease::forget(db, &lock.owner).await;
        let holder = current_lock(db)
            .await?
            .map(|info| format!("now held by {}", info.owner))
            .unwrap_or_else(|| "no lock record".into());
        Err(LockError::Lost(holder))
    }
}

/// Whether the lease kept by [`with_heartbeat`] was lost.
#[derive(Debug, Default)]
pub struct Heartbeat {
    lost: std::sync::Mutex<Option<String>>,
}

impl Heartbeat {
    /// An error once the lease was lost (expired and taken by another runner).
    pub fn check(&self) -> Result<(), LockError> {
        match self
            .lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            Some(holder) => Err(LockError::Lost(holder)),
            None => Ok(()),
        }
    }
}

/// Runs `work` while renewing the held lease every third of its length, so a
/// long deployment — or one migration longer than the lease — never outlives
/// its lock; fast work never renews. The renewals share `work`'s session: a
/// second session would make the server replay the sign-in and the selection
/// for every database (about 9 % of the server's work in the benchmark).
pub async fn with_heartbeat<T>(db: &Db, lock: &HeldLock, work: impl AsyncFnOnce(&Heartbeat) -> T) -> T {
    let heartbeat = Heartbeat::default();
    let period = (lock.ttl / 3).max(Duration::from_millis(100));
    let renewals = async {
        loop {
            tokio::time::sleep(period).await;
            match renew_lock(db, lock).await {
                Ok(()) => {}
                Err(LockError::Lost(holder)) => {
                    *heartbeat.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(holder);
                    break;
                }
                // The lease has two more periods to be renewed, and the
                // migration itself reports an outage.
                Err(error) => tracing::warn!("could not renew the migration lock: {error}"),
            }
        }
        std::future::pending::<std::convert::Infallible>().await
    };
    tokio::select! {
        result = work(&heartbeat) => result,
        never = renewals => match never {},
    }
}

/// Marks the held lock interrupted: the guard of a batch's next migration
/// sees it and stops there (`apply::apply_batch`).
pub async fn mark_interrupted(db: &Db, lock: &HeldLock) -> Result<(), LockError> {
    as_owner(
        db,
        lock,
        "UPDATE _migration_lock:current SET interrupted = true WHERE owner = $owner RETURN NONE;",
    )
    .await
}

/// Runs `sql` on the lock record with `$owner` bound, retried on conflicts
/// with other runners reading it: it touches only this owner's record.
async fn as_owner(db: &Db, lock: &HeldLock, sql: &str) -> Result<(), LockError> {
    run_idempotent(db, sql, json!({ "owner": lock.owner })).await?;
    Ok(())
}

/// Forgets a lock this process no longer holds (released here or by a batch).
pub fn forget_released(lock: &HeldLock) {
    super::holder::note_released(&lock.owner);
}

/// Removes the lock held by `owner` (an operator's `unlock`, after seeing
/// who holds it). True when it was removed; false when it had changed hands
/// or gone meanwhile.
pub async fn remove_lock_of(db: &Db, owner: &str) -> Result<bool, QueryError> {
    let changing = super::lease::changing(db).await;
    let removed = run_idempotent(
        db,
        "DELETE _migration_lock:current WHERE owner = $owner RETURN BEFORE;",
        json!({ "owner": owner }),
    )
    .await;
    changing.settle(None);
    let removed = removed?;
    Ok(removed
        .first()
        .and_then(|rows| rows.as_array())
        .is_some_and(|rows| !rows.is_empty()))
}

/// Leaves the lock to expire after a write of unknown outcome: marked so that
/// no run takes it over early (even one that can see this process is gone),
/// and no longer counted as held here. Best effort: the server may be gone.
pub async fn leave_unsettled(db: &Db, lock: &HeldLock) {
    let marked = run_idempotent(
        db,
        "UPDATE _migration_lock:current SET unsettled = true WHERE owner = $owner RETURN NONE;",
        json!({ "owner": lock.owner }),
    )
    .await;
    if let Err(error) = marked {
        tracing::warn!("could not mark the lock as left to expire: {error}");
    }
    forget_released(lock);
    super::lease::forget(db, &lock.owner).await;
}

/// Releases the lock if this owner still holds it.
pub async fn release_lock(db: &Db, lock: &HeldLock) -> Result<(), LockError> {
    let changing = super::lease::changing(db).await;
    let released = release_record(db, lock).await;
    changing.settle(None);
    released
}

/// Deletes the lock record if this owner still holds it, leaving the
/// in-process note to the caller.
async fn release_record(db: &Db, lock: &HeldLock) -> Result<(), LockError> {
    forget_released(lock);
    as_owner(
        db,
        lock,
        "DELETE _migration_lock:current WHERE owner = $owner RETURN NONE;",
    )
    .await
}

/// The current lock record, if any (expired or not).
pub async fn current_lock(db: &Db) -> Result<Option<LockInfo>, QueryError> {
    let results = match run_query(
        db,
        "SELECT owner, acquired_at, expires_at, unsettled FROM ONLY _migration_lock:current;",
        json!({}),
    )
    .await
    {
        // Never initialised: no lock table, so no lock.
        Err(error) if error.kind() == QueryErrorKind::NotFound => return Ok(None),
        other => other?,
    };
    match results.into_iter().next() {
        Some(serde_json::Value::Null) | None => Ok(None),
        Some(value) => serde_json::from_value(value)
            .map(Some)
            .map_err(|e| QueryError::unreadable(format!("unreadable _migration_lock record: {e}"))),
    }
}
