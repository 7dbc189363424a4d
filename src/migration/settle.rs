//! What a committed migration leaves the server doing in the background,
//! waited for before the environment counts as deployed: indexes defined
//! `CONCURRENTLY` being built, and the row verification SurrealDB 4 queues
//! when a database's compatibility level is raised. Polled with a deadline.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Migration;
use crate::connection::{Db, QueryError, escape_ident, run_query};

/// How often the server is asked again.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// Why the background work did not end well.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettleError {
    /// An index build ended in `aborted` or `error`.
    #[error("index {index} on {table} was not built ({status}){}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    IndexFailed {
        /// The index.
        index: String,
        /// Its table.
        table: String,
        /// `aborted` or `error`.
        status: String,
        /// The server's error, if it gave one.
        detail: Option<String>,
    },
    /// The verification of a raised compatibility level found rows that do
    /// not fit their table's definition.
    #[error(
        "the verification of compatibility level {level} found rows that do not fit: {found}; fix those rows (the level stays raised)"
    )]
    VerificationFailed {
        /// The level raised to.
        level: u64,
        /// `table.field: N rows`, for each.
        found: String,
    },
    /// Still running at the deadline.
    #[error("{what} still running after {}s: the migration is committed; see `INFO FOR {info}`", deadline.as_secs())]
    Deadline {
        /// What was waited for.
        what: String,
        /// Where to look.
        info: String,
        /// How long it was waited for.
        deadline: Duration,
    },
    /// A read failed.
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// Waits until the background work of `migrations` (just committed on
/// `db`) is done, within `deadline`.
pub async fn await_background_work(db: &Db, migrations: &[&Migration], deadline: Duration) -> Result<(), SettleError> {
    let until = Instant::now() + deadline;
    let all = async {
        for migration in migrations {
            for index in &migration.requires.concurrent_indexes {
                await_index(db, &index.index, &index.table, until, deadline).await?;
            }
            if let Some(level) = migration.requires.compatibility {
                await_verification(db, level, until, deadline).await?;
            }
        }
        Ok(())
    };
    // Each poll checks the deadline; one query that hangs past it is cut here.
    match tokio::time::timeout(deadline, all).await {
        Ok(done) => done,
        Err(_) => Err(SettleError::Deadline {
            what: "the server's background work".into(),
            info: "TABLE t / INDEX i ON t".into(),
            deadline,
        }),
    }
}

/// Asks `done` every [`POLL_EVERY`] until it answers true; past `until`, the
/// deadline error names `what` and where to look (`info`).
async fn poll_until<Fut>(
    until: Instant,
    deadline: Duration,
    (what, info): (String, String),
    mut done: impl FnMut() -> Fut,
) -> Result<(), SettleError>
where
    Fut: Future<Output = Result<bool, SettleError>>,
{
    while !done().await? {
        if Instant::now() >= until {
            return Err(SettleError::Deadline { what, info, deadline });
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    Ok(())
}

async fn await_index(db: &Db, index: &str, table: &str, until: Instant, deadline: Duration) -> Result<(), SettleError> {
    let sql = format!("INFO FOR INDEX {} ON {}", escape_ident(index), escape_ident(table));
    let waited = (
        format!("the build of index {index} on {table}"),
        format!("INDEX {index} ON {table}"),
    );
    let sql = sql.as_str();
    poll_until(until, deadline, waited, move || async move {
        let info = run_query(db, sql, serde_json::json!({})).await?;
        let building = info.first().and_then(|i| i.get("building"));
        match building.and_then(|b| b.get("status")).and_then(Value::as_str) {
            // No build state: built when it was defined.
            None | Some("ready") => Ok(true),
            Some(status @ ("aborted" | "error")) => Err(SettleError::IndexFailed {
                index: index.to_string(),
                table: table.to_string(),
                status: status.to_string(),
                detail: building
                    .and_then(|b| b.get("error"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }),
            Some(_) => Ok(false),
        }
    })
    .await
}

/// SurrealDB 4 verifies the stored rows of every SCHEMAFULL table in the
/// background after `ALTER DATABASE COMPATIBILITY 4`; each table's
/// `INFO FOR TABLE … .migrations` shows it (`progress` while it runs,
/// `verification[*]` and `undeclared` with `finished` and `failures`).
async fn await_verification(db: &Db, level: u64, until: Instant, deadline: Duration) -> Result<(), SettleError> {
    let tables = run_query(db, "RETURN object::keys((INFO FOR DB).tables)", serde_json::json!({})).await?;
    let tables: Vec<String> = tables
        .first()
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    for table in tables {
        let sql = format!("RETURN (INFO FOR TABLE {}).migrations", escape_ident(&table));
        let waited = (
            format!("the verification of table {table} at compatibility level {level}"),
            format!("TABLE {table}"),
        );
        let (sql, table) = (sql.as_str(), table.as_str());
        poll_until(until, deadline, waited, move || async move {
            let answer = run_query(db, sql, serde_json::json!({})).await?;
            match verification_state(table, &answer.into_iter().next().unwrap_or(Value::Null)) {
                Verification::Done => Ok(true),
                Verification::Running => Ok(false),
                Verification::Failed(found) => Err(SettleError::VerificationFailed { level, found }),
            }
        })
        .await?;
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Verification {
    Done,
    Running,
    Failed(String),
}

fn verification_state(table: &str, migrations: &Value) -> Verification {
    if !migrations.is_object() {
        // No such key (3.x, or nothing queued for this table).
        return Verification::Done;
    }
    let finished = |entry: &Value| entry.get("finished").and_then(Value::as_bool).unwrap_or(true);
    let failures = |entry: &Value| entry.get("failures").and_then(Value::as_u64).unwrap_or(0);
    let fields: Vec<&Value> = migrations
        .get("verification")
        .and_then(Value::as_array)
        .map(|all| all.iter().collect())
        .unwrap_or_default();
    let undeclared = migrations.get("undeclared").filter(|u| u.is_object());
    let running = migrations.get("progress").is_some_and(|p| !p.is_null())
        || fields.iter().any(|f| !finished(f))
        || undeclared.is_some_and(|u| !finished(u));
    if running {
        return Verification::Running;
    }
    let mut found: Vec<String> = fields
        .iter()
        .filter(|f| failures(f) > 0)
        .map(|f| {
            let field = f.get("field").and_then(Value::as_str).unwrap_or("?");
            format!("{table}.{field}: {} rows", failures(f))
        })
        .collect();
    if let Some(undeclared) = undeclared.filter(|u| failures(u) > 0) {
        found.push(format!("{table}: {} rows with undeclared fields", failures(undeclared)));
    }
    match found.is_empty() {
        true => Verification::Done,
        false => Verification::Failed(found.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_verification_is_read_as_running_done_or_failed() {
        let state = |v: Value| verification_state("account", &v);
        assert_eq!(state(Value::Null), Verification::Done);
        assert_eq!(
            state(json!({ "generation": 2, "guaranteed": [], "migrations": [] })),
            Verification::Done
        );
        assert_eq!(
            state(json!({ "progress": { "lap": 1, "scanned": 10 }, "migrations": [] })),
            Verification::Running
        );
        assert_eq!(
            state(json!({ "verification": [{ "field": "age", "failures": 0, "finished": false }] })),
            Verification::Running
        );
        assert_eq!(
            state(
                json!({ "verification": [{ "field": "age", "failures": 2, "finished": true }],
                          "undeclared": { "failures": 1, "finished": true } })
            ),
            Verification::Failed("account.age: 2 rows, account: 1 rows with undeclared fields".into())
        );
    }
}
