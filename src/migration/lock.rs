//! The lease lock `_migration_lock:current`: one writer per database.
//!
//! Taking it is a single `CREATE` of a fixed record id, which SurrealDB refuses
//! when the record exists, so two runners can never both hold it. An expired
//! lease is deleted first, which is how a crashed runner's lock is taken over.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use surrealdb::Surreal;
use surrealdb::engine::any::Any;

use crate::connection::{QueryError, run_query};

/// Default lease length; renewed between migrations.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(300);

/// The holder of a lock, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub owner: String,
    pub acquired_at: String,
    pub expires_at: String,
}

/// Why the lock was not taken (or was lost).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LockError {
    #[error("locked by {} since {}, expires {}", .0.owner, .0.acquired_at, .0.expires_at)]
    Held(LockInfo),
    #[error("the migration lock was lost (expired and taken by another runner): {0}")]
    Lost(String),
    #[error("the lock kept changing hands; try again ({0})")]
    Busy(String),
    #[error("lock query failed: {0}")]
    Query(QueryError),
}

impl From<QueryError> for LockError {
    fn from(error: QueryError) -> Self {
        Self::Query(error)
    }
}

/// Defines the lock table (idempotent); SurrealDB 3 refuses queries on undefined tables.
pub const DEFINE_LOCK_TABLE: &str = "DEFINE TABLE IF NOT EXISTS _migration_lock SCHEMALESS;";

/// A lock this process holds. Release it with [`release_lock`] on every path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    pub owner: String,
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
pub async fn acquire_lock(db: &Surreal<Any>, owner: &str, ttl: Duration) -> Result<HeldLock, LockError> {
    let sql = format!(
        "DELETE _migration_lock:current WHERE expires_at < time::now();
         CREATE _migration_lock:current CONTENT {{ owner: $owner, acquired_at: time::now(), expires_at: time::now() + {} }};",
        ttl_literal(ttl)
    );
    let mut last_error = String::new();
    // A lock released (or a transaction conflict) between our CREATE and the
    // read of the holder is retried a few times rather than reported as held.
    for _attempt in 0..5 {
        match run_query(db, &sql, json!({ "owner": owner })).await {
            Ok(_) => {
                return Ok(HeldLock {
                    owner: owner.to_string(),
                    ttl,
                });
            }
            Err(QueryError::Statement { message, .. })
                if message.contains("already exists") || message.to_ascii_lowercase().contains("conflict") =>
            {
                if let Some(info) = current_lock(db).await? {
                    return Err(LockError::Held(info));
                }
                last_error = message;
            }
            Err(other) => return Err(other.into()),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(LockError::Busy(last_error))
}

/// Pushes the lease's expiry forward; fails when the lock is no longer ours.
pub async fn renew_lock(db: &Surreal<Any>, lock: &HeldLock) -> Result<(), LockError> {
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
        let holder = current_lock(db)
            .await?
            .map(|info| format!("now held by {}", info.owner))
            .unwrap_or_else(|| "no lock record".into());
        Err(LockError::Lost(holder))
    }
}

/// Releases the lock if this owner still holds it.
pub async fn release_lock(db: &Surreal<Any>, lock: &HeldLock) -> Result<(), LockError> {
    run_query(
        db,
        "DELETE _migration_lock:current WHERE owner = $owner;",
        json!({ "owner": lock.owner }),
    )
    .await?;
    Ok(())
}

/// The current lock record, if any (expired or not).
pub async fn current_lock(db: &Surreal<Any>) -> Result<Option<LockInfo>, QueryError> {
    let results = run_query(
        db,
        "SELECT owner, acquired_at, expires_at FROM ONLY _migration_lock:current;",
        json!({}),
    )
    .await?;
    match results.into_iter().next() {
        Some(serde_json::Value::Null) | None => Ok(None),
        Some(value) => serde_json::from_value(value)
            .map(Some)
            .map_err(|e| QueryError::Transport(format!("unreadable _migration_lock record: {e}"))),
    }
}
