//! Running statements: every statement's result checked, timeouts, retries
//! of write conflicts, and which error explains a failed transaction.

use std::time::Duration;

use surrealdb::Surreal;
use surrealdb::engine::any::Any;

/// True for errors SurrealDB says can be retried (a write conflict between
/// two runners creating the same namespace, table or lock at once).
pub fn is_retryable(message: &str) -> bool {
    message.contains("can be retried") || message.contains("Transaction conflict")
}

/// Attempts for idempotent operations that hit a retryable conflict.
pub(super) const CONFLICT_ATTEMPTS: u32 = 8;

pub(super) async fn conflict_backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt + 1))).await;
}

/// [`run_query`] for idempotent statements (`DEFINE … IF NOT EXISTS`, a
/// delete of one's own record), retried on write conflicts.
pub async fn run_idempotent(
    db: &Surreal<Any>,
    sql: &str,
    vars: serde_json::Value,
) -> Result<Vec<serde_json::Value>, QueryError> {
    let mut attempt = 0;
    loop {
        match run_query(db, sql, vars.clone()).await {
            Err(e) if is_retryable(&e.to_string()) && attempt + 1 < CONFLICT_ATTEMPTS => {
                conflict_backoff(attempt).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Default time one query (one migration's transaction included) may take.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(300);

static OPERATION_TIMEOUT_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(DEFAULT_OPERATION_TIMEOUT.as_millis() as u64);

/// Sets how long any one query may take before it fails (process-wide): a
/// server that accepts connections but never answers must not hang a run.
pub fn set_operation_timeout(timeout: Duration) {
    OPERATION_TIMEOUT_MS.store(timeout.as_millis().max(1) as u64, std::sync::atomic::Ordering::Relaxed);
}

/// The current per-query timeout.
pub fn operation_timeout() -> Duration {
    Duration::from_millis(OPERATION_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed))
}

/// A query that failed, as a whole or in one statement.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    /// The request did not complete (connection lost, timeout, protocol error).
    #[error("{0}")]
    Transport(String),
    /// A statement returned an error; `index` counts statements from 0.
    #[error("statement {} failed: {message}", index + 1)]
    Statement { index: usize, message: String },
}

/// SurrealDB marks every other statement of a failed transaction with this text;
/// the statement that really failed carries the useful message.
const NOT_EXECUTED: &str = "not executed due to a failed transaction";

/// Runs `sql` with `vars` (a JSON object) and returns each statement's result
/// as JSON. Any statement error fails the whole call: a clean return of the
/// request proves nothing on its own.
pub async fn run_query(
    db: &Surreal<Any>,
    sql: &str,
    vars: serde_json::Value,
) -> Result<Vec<serde_json::Value>, QueryError> {
    let mut response = run_checked(db, sql, vars).await?;
    let count = response.num_statements();
    let mut results = Vec::with_capacity(count);
    for index in 0..count {
        let value: surrealdb::types::Value = response.take(index).map_err(|e| QueryError::Statement {
            index,
            message: e.to_string(),
        })?;
        results.push(value.into_json_value());
    }
    Ok(results)
}

/// [`run_query`] for statements whose results nobody reads (a migration's
/// own statements): errors are checked, results are not converted.
pub async fn run_statements(db: &Surreal<Any>, sql: &str, vars: serde_json::Value) -> Result<(), QueryError> {
    run_checked(db, sql, vars).await.map(|_| ())
}

async fn run_checked(
    db: &Surreal<Any>,
    sql: &str,
    vars: serde_json::Value,
) -> Result<surrealdb::IndexedResults, QueryError> {
    let Collected { response, errors, .. } = run_collecting_errors(db, sql, vars, operation_timeout()).await?;
    if let Some((index, message)) = first_cause(&errors) {
        return Err(QueryError::Statement {
            index: *index,
            message: message.clone(),
        });
    }
    Ok(response)
}

/// The error that explains the others (sorted by index): the first one that
/// is not a follow-on of a failed transaction, else the first.
pub fn first_cause(errors: &[(usize, String)]) -> Option<&(usize, String)> {
    errors
        .iter()
        .find(|(_, message)| !is_follow_on_error(message))
        .or(errors.first())
}

/// A response with its statement errors taken out.
pub struct Collected {
    /// The results of the statements that did not fail.
    pub response: surrealdb::IndexedResults,
    /// (index, message) of every failed statement, in statement order.
    pub errors: Vec<(usize, String)>,
    /// How many statements ran, failed ones included.
    pub statements: usize,
}

/// Runs `sql` within `timeout` and collects every statement's error; only a
/// request that did not complete is an `Err`.
pub async fn run_collecting_errors(
    db: &Surreal<Any>,
    sql: &str,
    vars: impl surrealdb::types::SurrealValue,
    timeout: Duration,
) -> Result<Collected, QueryError> {
    let mut response = match tokio::time::timeout(timeout, db.query(sql).bind(vars)).await {
        Ok(response) => response.map_err(|e| QueryError::Transport(e.to_string()))?,
        Err(_) => {
            return Err(QueryError::Transport(format!(
                "no answer within {}s (operation timeout; set it with --operation-timeout)",
                timeout.as_secs_f64()
            )));
        }
    };
    let statements = response.num_statements();
    let mut errors: Vec<(usize, String)> = response
        .take_errors()
        .into_iter()
        .map(|(index, error)| (index, error.to_string()))
        .collect();
    errors.sort_by_key(|(index, _)| *index);
    Ok(Collected {
        response,
        errors,
        statements,
    })
}

/// True for the error SurrealDB gives the statements of a transaction that
/// did not fail themselves but were not executed (or committed) because
/// another statement of it failed.
pub fn is_follow_on_error(message: &str) -> bool {
    message.contains(NOT_EXECUTED)
        || message.contains("not executed due to a cancelled transaction")
        || message.contains("transaction was aborted due to a prior error")
}
