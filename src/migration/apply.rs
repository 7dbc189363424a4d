//! Applying and rolling back migrations on ONE database: each migration and its
//! history row in one transaction, under the lease lock, refusing on drift.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use surrealdb::Surreal;
use surrealdb::engine::any::Any;

use super::file::Migration;
use super::history::{AppliedMigration, applied_migrations, ensure_history_table};
use super::lock::{
    DEFAULT_LOCK_TTL, Heartbeat, HeldLock, LockError, acquire_lock, forget_released, release_lock, with_heartbeat,
};
use crate::connection::{
    Collected, ConnectionConfig, EndpointKind, QueryError, ensure_namespace_and_database, first_cause,
    operation_timeout, run_collecting_errors, run_statements,
};

/// Who applies and under which deployment.
#[derive(Debug, Clone)]
pub struct ApplyContext {
    /// Stored in every history row this run writes.
    pub deployment_id: String,
    /// Stored in every history row this run writes.
    pub actor: String,
    /// Lease length of the lock; renewed between migrations.
    pub lock_ttl: Duration,
}

impl ApplyContext {
    /// A context with a fresh deployment id and the OS user as actor.
    pub fn new() -> Self {
        Self {
            deployment_id: new_deployment_id(),
            actor: default_actor(),
            lock_ttl: DEFAULT_LOCK_TTL,
        }
    }

    /// The lock owner string: actor, host, process and deployment.
    pub fn lock_owner(&self) -> String {
        super::lock::owner_string(&self.actor, &self.deployment_id)
    }
}

impl Default for ApplyContext {
    fn default() -> Self {
        Self::new()
    }
}

/// A new deployment id: UTC time plus random bits, sortable and unique.
pub fn new_deployment_id() -> String {
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), &uuid[..8])
}

/// The OS user: from the environment, else (Linux, where containers and
/// cron often set no `USER`) the name of this process's user id, else "unknown".
pub fn default_actor() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(user_of_this_process)
        .unwrap_or_else(|| "unknown".into())
}

/// The name of this process's real user id from /etc/passwd (`uid N` when
/// it has none); `None` off Linux.
fn user_of_this_process() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid: u32 = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Some(user_name_in_passwd(&passwd, uid).unwrap_or_else(|| format!("uid {uid}")))
}

fn user_name_in_passwd(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// State of one migration on one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationState {
    /// Applied, and the file still matches.
    Applied,
    /// In the files, not applied.
    Pending,
    /// Applied, but the file's up section changed since.
    Drifted,
    /// Applied, but its file is gone.
    Missing,
}

impl MigrationState {
    /// Lowercase label used in tables and JSON.
    pub fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Pending => "pending",
            Self::Drifted => "drifted",
            Self::Missing => "missing",
        }
    }
}

/// One line of `migrate status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationStatusRow {
    pub version: String,
    pub name: String,
    pub applied_at: Option<String>,
    pub state: MigrationState,
}

/// The files compared with a database's history.
#[derive(Debug, Clone)]
pub struct MigrationPlan<'a> {
    /// Every migration and applied row, in version order.
    pub rows: Vec<MigrationStatusRow>,
    /// Files not yet applied, in version order.
    pub pending: Vec<&'a Migration>,
    /// What is drifted or missing; `up` refuses while this is not empty.
    pub drift: Vec<MigrationStatusRow>,
}

/// Compares files with history.
pub fn plan<'a>(migrations: &'a [Migration], applied: &[AppliedMigration]) -> MigrationPlan<'a> {
    let mut rows = Vec::new();
    let mut pending = Vec::new();
    for migration in migrations {
        let row = applied.iter().find(|a| a.version == migration.version);
        let state = match row {
            None => {
                pending.push(migration);
                MigrationState::Pending
            }
            Some(a) if a.checksum != migration.checksum => MigrationState::Drifted,
            Some(_) => MigrationState::Applied,
        };
        rows.push(MigrationStatusRow {
            version: migration.version.clone(),
            name: migration.name.clone(),
            applied_at: row.map(|a| a.applied_at.clone()),
            state,
        });
    }
    for a in applied {
        if !migrations.iter().any(|m| m.version == a.version) {
            rows.push(MigrationStatusRow {
                version: a.version.clone(),
                name: a.name.clone(),
                applied_at: Some(a.applied_at.clone()),
                state: MigrationState::Missing,
            });
        }
    }
    rows.sort_by_key(|r| super::file::version_order_key(&r.version));
    let drift = rows
        .iter()
        .filter(|r| matches!(r.state, MigrationState::Drifted | MigrationState::Missing))
        .cloned()
        .collect();
    MigrationPlan { rows, pending, drift }
}

/// Describes drift for an error message.
pub fn describe_drift(drift: &[MigrationStatusRow]) -> String {
    drift
        .iter()
        .map(|r| match r.state {
            MigrationState::Drifted => format!(
                "{}_{} was changed after it was applied (checksum differs)",
                r.version, r.name
            ),
            _ => format!("{}_{} is applied but its file is missing", r.version, r.name),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A migration that ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedStep {
    pub version: String,
    pub name: String,
    pub duration_ms: u64,
}

/// Why `up`/`down` stopped. `completed` lists what was committed before it.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Setup(String),
    #[error("drift: {}; restore the files or resolve the history before applying", describe_drift(.0))]
    Drift(Vec<MigrationStatusRow>),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("migration {version}_{name} failed and was not applied ({}): {error}", completed_note(.completed))]
    Failed {
        version: String,
        name: String,
        error: QueryError,
        completed: Vec<AppliedStep>,
    },
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("cannot roll back {0}: it has no '-- migrate:down' section")]
    NoDownSection(String),
    #[error("cannot roll back {version}_{name}: its migration file is missing")]
    MissingFile { version: String, name: String },
}

fn completed_note(completed: &[AppliedStep]) -> String {
    if completed.is_empty() {
        "nothing else was applied".into()
    } else {
        let ids: Vec<String> = completed.iter().map(|s| format!("{}_{}", s.version, s.name)).collect();
        format!("already committed before it: {}", ids.join(", "))
    }
}

/// Where a migration's `execution_ms` is timed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartClock {
    /// A remote server: the transaction notes its own start with a `LET`, as
    /// this machine's clock may differ from the server's.
    Server,
    /// The embedded engine runs on this process's clock: the start is bound as
    /// a parameter, sparing the `LET` (about 7 % of a deployment there).
    Shared,
}

impl StartClock {
    pub fn of(connection: &ConnectionConfig) -> Self {
        match connection.endpoint_kind() {
            Ok(EndpointKind::Embedded) => Self::Shared,
            _ => Self::Server,
        }
    }
}

/// The exact SurrealQL that applies one migration with its history row.
pub fn up_script(migration: &Migration, clock: StartClock) -> String {
    transaction_script(migration, clock, Guard::None)
}

/// What a batch's guard throws when a migration must not begin.
const STOPPED: &str = "surql: stopped before this migration (interrupted, or the lock is no longer held by this run)";

/// Whether a migration's transaction checks, before its own statements, that
/// it may begin.
#[derive(Clone, Copy)]
enum Guard<'a> {
    /// A lone migration: the caller checked.
    None,
    /// The first of a batch: the lock is still this run's and not marked
    /// interrupted.
    Lock,
    /// A later one: the same, and the migration before it (its version)
    /// committed.
    LockAndCommitted(&'a str),
}

/// One migration's transaction. The history row's version, name and
/// checksum are parameters (`$surql_version`, …) for a lone migration, and
/// literals in a batch, where each migration has its own.
/// `SET` rather than `CONTENT { … }`: SurrealDB 3.3.5 evaluates an object
/// of expressions far more slowly (about 90 µs per migration, BENCHMARKS.md).
fn transaction_script(migration: &Migration, clock: StartClock, guard: Guard) -> String {
    const LOCK: &str = "_migration_lock:current.owner != $surql_owner OR _migration_lock:current.interrupted = true";
    let lone = matches!(guard, Guard::None);
    let guard = match guard {
        Guard::None => String::new(),
        Guard::Lock => format!("IF {LOCK} {{ THROW '{STOPPED}' }};\n"),
        Guard::LockAndCommitted(previous) => format!(
            "IF !record::exists({}) OR {LOCK} {{ THROW '{STOPPED}' }};\n",
            history_record(previous)
        ),
    };
    let (version, name, checksum) = if lone {
        (
            "$surql_version".to_string(),
            "$surql_name".to_string(),
            "$surql_checksum".to_string(),
        )
    } else {
        (
            quote(&migration.version),
            quote(&migration.name),
            quote(&migration.checksum),
        )
    };
    let (note_start, started) = match clock {
        StartClock::Server => ("LET $surql_started = time::now();\n", "$surql_started"),
        StartClock::Shared => ("", "$surql_started"),
    };
    format!(
        "BEGIN TRANSACTION;\n{guard}{note_start}{up}\n;\nCREATE {record} SET version = {version}, name = {name}, checksum = {checksum}, applied_at = time::now(), execution_ms = duration::millis(time::now() - {started}), deployment_id = $surql_deployment_id, actor = $surql_actor RETURN NONE;\nCOMMIT TRANSACTION;\n",
        up = migration.up,
        record = history_record(&migration.version)
    )
}

/// The history row's record id, `_migration_history:⟨VERSION⟩` (a string
/// key, the same as `type::record('_migration_history', $v)`): SurrealDB
/// 3.3.5 creates a literal id about 25 µs faster than a computed one.
/// Versions from files are digits; any other text is computed, quoted.
fn history_record(version: &str) -> String {
    if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) {
        format!("_migration_history:⟨{version}⟩")
    } else {
        format!("type::record('_migration_history', {})", quote(version))
    }
}

/// A SurrealQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Statements of a migration's transaction before its own: BEGIN, the
/// batch guard, the `LET` of the start time.
fn statements_before_up(clock: StartClock, guarded: bool) -> usize {
    1 + usize::from(guarded) + usize::from(clock == StartClock::Server)
}

/// The SurrealQL of a batch: every migration in its own transaction, each
/// guarded by the lock and (after the first) by its predecessor; with
/// `release`, the release of the lock once the last one committed; then the
/// read of which of them committed.
/// Each transaction times itself (`StartClock::Server`): a bound start time
/// would be the batch's.
pub fn batch_script(batch: &[&Migration], release: bool) -> String {
    let mut sql = String::new();
    for (i, migration) in batch.iter().enumerate() {
        let guard = match i {
            0 => Guard::Lock,
            _ => Guard::LockAndCommitted(&batch[i - 1].version),
        };
        sql.push_str(&transaction_script(migration, StartClock::Server, guard));
    }
    if let (true, Some(last)) = (release, batch.last()) {
        sql.push_str(&release_after(&last.version));
    }
    sql.push_str("SELECT version, execution_ms FROM _migration_history:.. WHERE version IN $surql_versions AND deployment_id = $surql_deployment_id;");
    sql
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

#[derive(Debug)]
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
    db: &Surreal<Any>,
    batch: &[&Migration],
    clock: StartClock,
    ctx: &ApplyContext,
    lock: &HeldLock,
    release_when_done: bool,
) -> Result<BatchOutcome, QueryError> {
    if let [migration] = batch {
        return Ok(
            match apply_lone(db, migration, clock, ctx, release_when_done.then_some(lock)).await {
                Ok((ms, released_lock)) => BatchOutcome {
                    applied: vec![ms],
                    stop: None,
                    released_lock,
                },
                Err(error @ QueryError::Statement { .. }) => BatchOutcome {
                    applied: vec![],
                    stop: Some(BatchStop::Failed(error)),
                    released_lock: false,
                },
                Err(transport) => return Err(transport),
            },
        );
    }
    let mut vars = serde_json::Map::new();
    let versions: Vec<&str> = batch.iter().map(|m| m.version.as_str()).collect();
    vars.insert("surql_versions".into(), json!(versions));
    vars.insert("surql_deployment_id".into(), json!(ctx.deployment_id));
    vars.insert("surql_actor".into(), json!(ctx.actor));
    vars.insert("surql_owner".into(), json!(lock.owner));
    let timeout = operation_timeout().saturating_mul(batch.len() as u32);
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

    // Which committed: the read at the end is the truth; the guard makes it
    // a prefix of the batch.
    let last = statements.saturating_sub(1);
    let committed: serde_json::Value = match errors.iter().find(|(index, _)| *index == last) {
        Some((index, message)) => {
            return Err(QueryError::Statement {
                index: *index,
                message: format!("could not read which migrations committed: {message}"),
            });
        }
        None => response
            .take::<surrealdb::types::Value>(last)
            .map_err(|e| QueryError::Transport(e.to_string()))?
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
        }
        return Ok(BatchOutcome {
            applied,
            stop: None,
            released_lock,
        });
    }

    // The first error of the migration that did not commit is why. Each
    // transaction: its preamble, its own statements, CREATE and COMMIT.
    let before_up = statements_before_up(StartClock::Server, true);
    let begins_at: usize = batch[..applied.len()]
        .iter()
        .map(|m| before_up + m.up_ast.expressions.len() + 2)
        .sum();
    let up_at = begins_at + before_up;
    let from_it = errors.partition_point(|(index, _)| *index < begins_at);
    let stop = match first_cause(&errors[from_it..]) {
        Some((_, message)) if message.contains(STOPPED) => BatchStop::Stopped,
        Some((index, message)) => BatchStop::Failed(QueryError::Statement {
            index: index.saturating_sub(up_at),
            message: message.clone(),
        }),
        None => BatchStop::Failed(QueryError::Statement {
            index: 0,
            message: "the transaction did not commit".into(),
        }),
    };
    Ok(BatchOutcome {
        applied,
        stop: Some(stop),
        released_lock: false,
    })
}

/// The exact SurrealQL that rolls one migration back and removes its history row.
pub fn down_script(migration: &Migration) -> Option<String> {
    migration.down.as_ref().map(|down| {
        format!(
            "BEGIN TRANSACTION;\n{down}\n;\nDELETE type::record('_migration_history', $surql_version);\nCOMMIT TRANSACTION;"
        )
    })
}

/// Applies one migration in one transaction. Returns its duration.
pub async fn apply_migration(
    db: &Surreal<Any>,
    migration: &Migration,
    clock: StartClock,
    ctx: &ApplyContext,
) -> Result<u64, QueryError> {
    apply_lone(db, migration, clock, ctx, None).await.map(|(ms, _)| ms)
}

/// Releases the lock, in the request of the last migration, once it committed.
fn release_after(version: &str) -> String {
    format!(
        "IF record::exists({}) {{ DELETE _migration_lock:current WHERE owner = $surql_owner RETURN BEFORE }};\n",
        history_record(version)
    )
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
    db: &Surreal<Any>,
    migration: &Migration,
    clock: StartClock,
    ctx: &ApplyContext,
    release: Option<&HeldLock>,
) -> Result<(u64, bool), QueryError> {
    let started = std::time::Instant::now();
    let mut sql = up_script(migration, clock);
    if release.is_some() {
        sql.push_str(&release_after(&migration.version));
    }
    let vars = json!({
        "surql_version": migration.version,
        "surql_name": migration.name,
        "surql_checksum": migration.checksum,
        "surql_deployment_id": ctx.deployment_id,
        "surql_actor": ctx.actor,
        "surql_owner": release.map(|lock| lock.owner.as_str()),
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
    } = run_collecting_errors(db, &sql, vars, operation_timeout()).await?;
    // The release statement, if any, is the last; an error there (a conflict
    // with a renewal) leaves the lock to the caller.
    let migration_statements = if release.is_some() { statements - 1 } else { statements };
    let its_own = errors.partition_point(|(index, _)| *index < migration_statements);
    if let Some((index, message)) = first_cause(&errors[..its_own]) {
        return Err(QueryError::Statement {
            index: index.saturating_sub(statements_before_up(clock, false)),
            message: message.clone(),
        });
    }
    let released = match release {
        Some(lock) if deleted_the_lock(&mut response, statements - 1) => {
            forget_released(lock);
            true
        }
        _ => false,
    };
    Ok((started.elapsed().as_millis() as u64, released))
}

/// Rolls one migration back in one transaction. Returns its duration.
pub async fn revert_migration(db: &Surreal<Any>, migration: &Migration) -> Result<u64, ApplyError> {
    let script = down_script(migration).ok_or_else(|| ApplyError::NoDownSection(migration.id()))?;
    let started = std::time::Instant::now();
    run_statements(db, &script, json!({ "surql_version": migration.version }))
        .await
        .map_err(|error| ApplyError::Failed {
            version: migration.version.clone(),
            name: migration.name.clone(),
            error,
            completed: Vec::new(),
        })?;
    Ok(started.elapsed().as_millis() as u64)
}

/// Runs `work` under the lock and releases it on every path.
async fn with_lock<T>(
    db: &Surreal<Any>,
    ctx: &ApplyContext,
    work: impl AsyncFnOnce(&Heartbeat) -> Result<T, ApplyError>,
) -> Result<T, ApplyError> {
    let lock = acquire_lock(db, &ctx.lock_owner(), ctx.lock_ttl).await?;
    let result = with_heartbeat(db, &lock, work).await;
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
    db: &Surreal<Any>,
    connection: &ConnectionConfig,
    migrations: &[Migration],
    steps: Option<usize>,
    ctx: &ApplyContext,
) -> Result<Vec<AppliedStep>, ApplyError> {
    ensure_namespace_and_database(db, connection)
        .await
        .map_err(|e| ApplyError::Setup(format!("cannot create namespace/database: {e}")))?;
    if steps == Some(0) {
        // Only the history table: nothing is applied, so no lock is needed.
        crate::connection::run_idempotent(db, super::history::DEFINE_HISTORY_TABLE, json!({}))
            .await
            .map_err(|e| ApplyError::Setup(format!("cannot create _migration_history: {e}")))?;
        return Ok(Vec::new());
    }
    ensure_history_table(db)
        .await
        .map_err(|e| ApplyError::Setup(format!("cannot create _migration_history: {e}")))?;
    with_lock(db, ctx, async |heartbeat| {
        // Read history under the lock so a concurrent runner's work is seen.
        let applied = applied_migrations(db)
            .await
            .map_err(|e| ApplyError::Setup(format!("cannot read _migration_history: {e}")))?;
        let plan = plan(migrations, &applied);
        if !plan.drift.is_empty() {
            return Err(ApplyError::Drift(plan.drift));
        }
        let take = steps.unwrap_or(usize::MAX);
        let clock = StartClock::of(connection);
        let mut completed = Vec::new();
        for migration in plan.pending.into_iter().take(take) {
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

/// `migrate down`: rolls back the newest `steps` applied migrations.
pub async fn migrate_down(
    db: &Surreal<Any>,
    migrations: &[Migration],
    steps: usize,
    ctx: &ApplyContext,
) -> Result<Vec<AppliedStep>, ApplyError> {
    let applied = applied_migrations(db)
        .await
        .map_err(|e| ApplyError::Setup(format!("cannot read _migration_history: {e}")))?;
    if applied.is_empty() {
        return Ok(Vec::new());
    }
    with_lock(db, ctx, async |heartbeat| {
        let applied = applied_migrations(db)
            .await
            .map_err(|e| ApplyError::Setup(format!("cannot read _migration_history: {e}")))?;
        let targets = rollback_plan(migrations, &applied, steps)?;
        let mut completed = Vec::new();
        for migration in targets {
            heartbeat.check()?;
            match revert_migration(db, migration).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_record_ids_are_literal_strings_that_cannot_break_out() {
        assert_eq!(history_record("0001"), "_migration_history:⟨0001⟩");
        let hostile = history_record("1⟩; REMOVE TABLE x; SELECT * FROM ⟨y");
        let parsed = surrealdb_core::syn::parse(&format!("CREATE {hostile};")).unwrap();
        assert_eq!(parsed.expressions.len(), 1, "{hostile}");
    }

    #[test]
    fn user_names_come_from_passwd_by_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\ndeploy:x:1001:1001::/home/deploy:/bin/sh\n";
        assert_eq!(user_name_in_passwd(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name_in_passwd(passwd, 1001).as_deref(), Some("deploy"));
        assert_eq!(user_name_in_passwd(passwd, 7), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_a_user_even_without_user_variables() {
        let name = user_of_this_process().unwrap();
        assert!(!name.is_empty() && name != "unknown", "{name}");
    }
}
