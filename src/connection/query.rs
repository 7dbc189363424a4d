//! Running statements: every statement's result checked, timeouts, retries
//! of write conflicts, and which error explains a failed transaction.

use std::time::Duration;

use super::Db;

/// Attempts for idempotent operations that hit a retryable conflict.
pub(super) const CONFLICT_ATTEMPTS: u32 = 8;

pub(super) async fn conflict_backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt + 1))).await;
}

/// [`run_query`] for idempotent statements (`DEFINE … IF NOT EXISTS`, a
/// delete of one's own record), retried on write conflicts.
pub async fn run_idempotent(db: &Db, sql: &str, vars: serde_json::Value) -> Result<Vec<serde_json::Value>, QueryError> {
    let mut attempt = 0;
    loop {
        match run_query(db, sql, vars.clone()).await {
            Err(e) if e.is_retryable() && attempt + 1 < CONFLICT_ATTEMPTS => {
                conflict_backoff(attempt).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// What kind of failure a [`QueryError`] is. The line that matters most:
/// [`QueryErrorKind::Rejected`] and its neighbours mean the database answered
/// and nothing of the failed transaction committed, while
/// [`QueryError::outcome_unknown`] kinds mean nobody knows whether it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryErrorKind {
    /// The database refused the statement (parse error, failed assertion, a
    /// `THROW`, a server-side timeout): the transaction did not commit.
    Rejected,
    /// A write conflict with another transaction; retrying may succeed.
    Conflict,
    /// A namespace, database, table or record that does not exist.
    NotFound,
    /// A namespace, database, table or record that already exists.
    AlreadyExists,
    /// Authentication failed or the user may not do this.
    NotAllowed,
    /// Not run because another statement of its transaction failed.
    NotExecuted,
    /// The answer did not have the shape surql expects.
    Unreadable,
    /// No answer within the operation timeout: the server may still commit it.
    TimedOut,
    /// The answer shows a transaction ended early: part of it may have committed.
    Inconsistent,
    /// SurrealDB itself does not know whether the transaction's commit took effect.
    CommitUnknown,
    /// The connection failed while the request was on its way or running:
    /// the server may have committed it.
    ConnectionLost,
    /// surql's own guard stopped a migration before it began (the run was
    /// interrupted, or its lock is no longer its own): nothing of it ran.
    Stopped,
    /// surql's fleet lock: another running deployment holds some of the
    /// same environments ([`QueryError::thrown_detail`] names it).
    FleetBusy,
    /// Another runner claimed the same deployment or shard first
    /// ([`QueryError::thrown_detail`] names it).
    Claimed,
}

/// What surql's guard throws when a migration must not begin.
pub const GUARD_STOPPED: &str =
    "surql: stopped before this migration (interrupted, or the lock is no longer held by this run)";
/// How surql's fleet lock begins what it throws (the holder follows).
pub const FLEET_BUSY_THROWN: &str = "surql-fleet-lock ";
/// How surql's claim begins what it throws (the holder follows).
pub const CLAIMED_THROWN: &str = "surql-claimed ";

/// What surql's own statements threw, by its markers.
fn thrown_by_surql(message: &str) -> Option<QueryErrorKind> {
    if message.contains(GUARD_STOPPED) {
        Some(QueryErrorKind::Stopped)
    } else if message.contains(FLEET_BUSY_THROWN) {
        Some(QueryErrorKind::FleetBusy)
    } else if message.contains(CLAIMED_THROWN) {
        Some(QueryErrorKind::Claimed)
    } else {
        None
    }
}

/// A query that failed, as a whole or in one statement, classified once
/// here so no caller compares message texts.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{message}", statement.map(|index| format!("statement {} failed: ", index + 1)).unwrap_or_default())]
pub struct QueryError {
    kind: QueryErrorKind,
    /// Which statement failed, counting from 0, when one did.
    statement: Option<usize>,
    message: String,
}

impl QueryError {
    /// An error of `kind`, not tied to one statement.
    pub fn new(kind: QueryErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            statement: None,
            message: message.into(),
        }
    }

    /// The error SurrealDB returned for one statement, classified by its
    /// structured details and, for servers that send only text, by its message.
    pub fn from_sdk(error: &surrealdb::Error) -> Self {
        Self::new(classify(error), error.to_string())
    }

    /// The error of a request as a whole. Only what the server says it
    /// refused (a parse error, a permission, a conflict, …) is a rejection;
    /// anything else (a transport error over HTTP, a proxy's 502, an
    /// undecodable answer) may have come after the server ran the request.
    pub fn from_request(error: &surrealdb::Error) -> Self {
        use surrealdb::types::ErrorDetails;
        let kind = match error.details() {
            ErrorDetails::Validation(_) | ErrorDetails::Configuration(_) => QueryErrorKind::Rejected,
            ErrorDetails::Internal | ErrorDetails::Serialization(_) | ErrorDetails::Context => {
                QueryErrorKind::ConnectionLost
            }
            _ => classify(error),
        };
        Self::new(kind, error.to_string())
    }

    /// No answer within `after`.
    pub fn timed_out(after: Duration) -> Self {
        Self::new(
            QueryErrorKind::TimedOut,
            format!(
                "no answer within {}s (operation timeout; set it with --operation-timeout)",
                after.as_secs_f64()
            ),
        )
    }

    /// The answer had another shape than expected.
    pub fn unreadable(message: impl Into<String>) -> Self {
        Self::new(QueryErrorKind::Unreadable, message)
    }

    /// The same error, attributed to statement `index` (from 0).
    pub fn at_statement(mut self, index: usize) -> Self {
        self.statement = Some(index);
        self
    }

    /// The same error with `context` before its message.
    pub fn context(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// What kind of failure this is, as the classifier read it.
    pub fn kind(&self) -> QueryErrorKind {
        self.kind
    }

    /// Which statement failed, counting from 0.
    pub fn statement(&self) -> Option<usize> {
        self.statement
    }

    /// The database's message, without the statement number.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when the server may have committed what was sent: a write that
    /// ends so must not be treated as rolled back.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self.kind,
            QueryErrorKind::TimedOut
                | QueryErrorKind::ConnectionLost
                | QueryErrorKind::Inconsistent
                | QueryErrorKind::CommitUnknown
        )
    }

    /// What follows surql's marker in a [`QueryErrorKind::FleetBusy`] or
    /// [`QueryErrorKind::Claimed`] error: the holder, as thrown.
    pub fn thrown_detail(&self) -> Option<&str> {
        let marker = match self.kind {
            QueryErrorKind::FleetBusy => FLEET_BUSY_THROWN,
            QueryErrorKind::Claimed => CLAIMED_THROWN,
            _ => return None,
        };
        let (_, detail) = self.message.split_once(marker)?;
        Some(detail.trim_end_matches('\''))
    }

    /// True for errors SurrealDB says can be retried (a write conflict
    /// between two runners creating the same namespace, table or lock).
    pub fn is_retryable(&self) -> bool {
        self.kind == QueryErrorKind::Conflict
    }
}

/// The classifier: SurrealDB's structured details first, then its text.
fn classify(error: &surrealdb::Error) -> QueryErrorKind {
    use surrealdb::types::{ErrorDetails, QueryError as Query};
    if let Some(kind) = thrown_by_surql(error.message()) {
        return kind;
    }
    match error.details() {
        ErrorDetails::Query(Some(Query::TransactionConflict)) => QueryErrorKind::Conflict,
        ErrorDetails::Query(Some(Query::NotExecuted | Query::Cancelled)) => QueryErrorKind::NotExecuted,
        ErrorDetails::NotFound(_) => QueryErrorKind::NotFound,
        ErrorDetails::AlreadyExists(_) => QueryErrorKind::AlreadyExists,
        ErrorDetails::NotAllowed(_) => QueryErrorKind::NotAllowed,
        ErrorDetails::Connection(_) => QueryErrorKind::ConnectionLost,
        _ => classify_message(error.message()),
    }
}

/// SurrealDB marks every other statement of a failed transaction with this text;
/// the statement that really failed carries the useful message.
const NOT_EXECUTED: &str = "not executed due to a failed transaction";

fn classify_message(message: &str) -> QueryErrorKind {
    let lower = message.to_ascii_lowercase();
    if let Some(kind) = thrown_by_surql(message) {
        kind
    } else if lower.contains("commit outcome is unknown") {
        QueryErrorKind::CommitUnknown
    } else if message.contains("can be retried") || lower.contains("transaction conflict") {
        QueryErrorKind::Conflict
    } else if message.contains(NOT_EXECUTED)
        || message.contains("not executed due to a cancelled transaction")
        || message.contains("transaction was aborted due to a prior error")
    {
        QueryErrorKind::NotExecuted
    } else if lower.contains("already exists") {
        QueryErrorKind::AlreadyExists
    } else if lower.contains("does not exist") || lower.contains("not found") {
        QueryErrorKind::NotFound
    } else {
        QueryErrorKind::Rejected
    }
}

/// Runs `sql` with `vars` (a JSON object) and returns each statement's result
/// as JSON. Any statement error fails the whole call: a clean return of the
/// request proves nothing on its own.
pub async fn run_query(db: &Db, sql: &str, vars: serde_json::Value) -> Result<Vec<serde_json::Value>, QueryError> {
    let mut response = run_checked(db, sql, vars).await?;
    let count = response.num_statements();
    let mut results = Vec::with_capacity(count);
    for index in 0..count {
        let value: surrealdb::types::Value = response
            .take(index)
            .map_err(|e| QueryError::from_sdk(&e).at_statement(index))?;
        results.push(value.into_json_value());
    }
    Ok(results)
}

/// [`run_query`] for statements whose results nobody reads (a migration's
/// own statements): errors are checked, results are not converted.
pub async fn run_statements(db: &Db, sql: &str, vars: serde_json::Value) -> Result<(), QueryError> {
    run_checked(db, sql, vars).await.map(|_| ())
}

async fn run_checked(db: &Db, sql: &str, vars: serde_json::Value) -> Result<surrealdb::IndexedResults, QueryError> {
    let Collected { response, errors, .. } = run_collecting_errors(db, sql, vars, db.operation_timeout()).await?;
    if let Some(cause) = first_cause(&errors) {
        return Err(cause.clone());
    }
    Ok(response)
}

/// The error that explains the others (sorted by statement): the first one
/// that is not a follow-on of a failed transaction, else the first.
pub fn first_cause(errors: &[QueryError]) -> Option<&QueryError> {
    errors
        .iter()
        .find(|error| error.kind() != QueryErrorKind::NotExecuted)
        .or(errors.first())
}

/// A response with its statement errors taken out.
pub struct Collected {
    /// The results of the statements that did not fail.
    pub response: surrealdb::IndexedResults,
    /// Every failed statement's error (with its index), in statement order.
    pub errors: Vec<QueryError>,
    /// How many statements ran, failed ones included.
    pub statements: usize,
}

/// Runs `sql` within `timeout` and collects every statement's error; only a
/// request that did not complete is an `Err`.
pub async fn run_collecting_errors(
    db: &Db,
    sql: &str,
    vars: impl surrealdb::types::SurrealValue,
    timeout: Duration,
) -> Result<Collected, QueryError> {
    let mut response = match tokio::time::timeout(timeout, db.query(sql).bind(vars)).await {
        Ok(response) => response.map_err(|e| QueryError::from_request(&e))?,
        Err(_) => return Err(QueryError::timed_out(timeout)),
    };
    let statements = response.num_statements();
    let mut errors: Vec<QueryError> = response
        .take_errors()
        .into_iter()
        .map(|(index, error)| QueryError::from_sdk(&error).at_statement(index))
        .collect();
    errors.sort_by_key(|error| error.statement());
    Ok(Collected {
        response,
        errors,
        statements,
    })
}
