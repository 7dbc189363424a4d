//! Deployment records in a SurrealDB state store: embedded by default
//! (`surrealkv://.surql/state`), or any server a team shares. Each
//! deployment and each of its environments is written as its state changes,
//! so a crash loses at most the environments in flight. Knows nothing of Rhai.

mod recorder;
mod served;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use recorder::{Recorder, RecorderTarget};

use crate::connection::{ConnectionConfig, ConnectionError, Db, QueryError, connect, run_query};
use crate::engine::{DeploymentResult, DeploymentStatus};

/// Where deployment records go unless `--state` says otherwise.
pub const DEFAULT_STATE_URL: &str = "surrealkv://.surql/state";

/// How often a running deployment tells the store it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A running deployment silent this long is taken for dead: it no longer
/// holds its environments against another deployment.
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(30);

/// The longest any one request to the state store may take: a store that
/// went away must not hang a runner.
pub const STORE_DEADLINE: Duration = Duration::from_secs(10);

/// How long an embedded store held by another process is tried again
/// before it is reported busy.
pub const BUSY_PATIENCE: Duration = Duration::from_secs(2);

/// How long a runner that cannot write its record retries the store (starting
/// nothing new meanwhile) before it stops the deployment.
pub const STORE_OUTAGE_LIMIT: Duration = Duration::from_secs(30);

/// The namespace and database of the records in a state store.
const NAMESPACE: &str = "surql";
const DATABASE: &str = "state";

const DEFINE_TABLES: &str = "DEFINE TABLE IF NOT EXISTS deployment SCHEMALESS COMMENT 'surql deployments';
DEFINE TABLE IF NOT EXISTS deployment_env SCHEMALESS COMMENT 'surql deployments: one row per environment';
DEFINE INDEX IF NOT EXISTS deployment_env_of ON deployment_env FIELDS deployment;
DEFINE INDEX IF NOT EXISTS deployment_by_id ON deployment FIELDS deployment_id;";

/// Why the state store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: ConnectionError,
    },
    #[error("state store: {0}")]
    Query(#[from] QueryError),
    #[error("state store: no deployment '{0}' (see `surql orchestrate deployments`)")]
    NotFound(String),
    /// A running deployment holds some of the same environments.
    #[error(
        "another deployment is running on the same environments: {0}; wait for it (--wait), or resume it if its runner died"
    )]
    Overlap(String),
    /// An embedded store is open in another process.
    #[error(
        "state store {url} is in use by another surql process (a deployment running from this folder?): an embedded store serves one process at a time; wait for it, give this run a store of its own (--state surrealkv://PATH), or share a SurrealDB server between runners (--state ws://HOST:PORT)"
    )]
    Busy { url: String },
    /// An embedded store another process holds, and that process did not answer.
    #[error(
        "state store {url} is in use by another surql process, which did not answer on {socket} ({why}): try again, or wait for it to finish"
    )]
    Served { url: String, socket: String, why: String },
    /// Another runner claimed the same deployment (or shard) first.
    #[error(
        "{what} is claimed by another runner: {holder}; this runner starts nothing (--wait waits for it and continues what it leaves undone)"
    )]
    Claimed { what: String, holder: String },
}

/// The state of one environment in a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvironmentState {
    Pending,
    Running,
    Success,
    Failed,
    RolledBack,
    Skipped,
    /// A write whose outcome nobody knows (timeout, lost connection).
    OutcomeUnknown,
}

impl EnvironmentState {
    /// The state a final result records.
    pub fn of(result: &DeploymentResult) -> Self {
        match result.status {
            DeploymentStatus::Success => Self::Success,
            DeploymentStatus::RolledBack => Self::RolledBack,
            DeploymentStatus::Skipped => Self::Skipped,
            DeploymentStatus::Failed if result.outcome_unknown => Self::OutcomeUnknown,
            DeploymentStatus::Failed => Self::Failed,
        }
    }
}

/// One environment of a recorded deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentRecord {
    pub environment: String,
    pub state: EnvironmentState,
    pub migrations_applied: usize,
    /// `version_name` of each migration this deployment applied there, in order
    /// (kept when a later write leaves it out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    pub error: Option<String>,
    pub updated_at: String,
    /// Read back from the database's history by `resume`/`retry` (the
    /// runner could not record it: the state store was away).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconciled: bool,
}

/// One migration a deployment set out to apply, as its file was then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMigration {
    pub version: String,
    pub name: String,
    pub checksum: String,
}

impl PlannedMigration {
    /// The plan of a run over `migrations`.
    pub fn plan_of(migrations: &[crate::migration::Migration]) -> Vec<Self> {
        migrations
            .iter()
            .map(|m| Self {
                version: m.version.clone(),
                name: m.name.clone(),
                checksum: m.checksum.clone(),
            })
            .collect()
    }
}

/// How the migration files differ from a recorded plan (`version_name` each).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChange {
    /// When and by whom a `resume --force` accepted it.
    #[serde(default)]
    pub at: String,
    #[serde(default)]
    pub actor: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl PlanChange {
    /// What differs between `plan` and the files `migrations` (empty: the same).
    pub fn between(plan: &[PlannedMigration], migrations: &[crate::migration::Migration]) -> Self {
        let id = |version: &str, name: &str| format!("{version}_{name}");
        let recorded: std::collections::HashMap<&str, &PlannedMigration> =
            plan.iter().map(|p| (p.version.as_str(), p)).collect();
        let mut change = Self::default();
        for migration in migrations {
            match recorded.get(migration.version.as_str()) {
                None => change.added.push(migration.id()),
                Some(planned) if planned.checksum != migration.checksum || planned.name != migration.name => {
                    change.changed.push(migration.id())
                }
                Some(_) => {}
            }
        }
        let now: std::collections::HashSet<&str> = migrations.iter().map(|m| m.version.as_str()).collect();
        change.removed = plan
            .iter()
            .filter(|p| !now.contains(p.version.as_str()))
            .map(|p| id(&p.version, &p.name))
            .collect();
        change
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl std::fmt::Display for PlanChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [
            ("added", &self.added),
            ("changed", &self.changed),
            ("removed", &self.removed),
        ]
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(what, names)| format!("{what} {}", names.join(", ")))
        .collect();
        f.write_str(&parts.join("; "))
    }
}

/// A recorded deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// The deployment id (stored as `deployment_id`: `id` is the record's).
    #[serde(rename = "deployment_id")]
    pub id: String,
    pub actor: String,
    pub strategy: String,
    /// The options it ran with, secrets redacted.
    pub options: serde_json::Value,
    /// The environments selected, in order.
    pub selection: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `running`, `finished` or `interrupted`.
    pub state: String,
    /// Who ran it: `user@host pid N …`, as a lock holder names itself
    /// (so a later run can tell whether it is still alive).
    pub runner: String,
    /// Results so far: success, failed, rolled_back, skipped.
    pub counts: std::collections::BTreeMap<String, usize>,
    /// The deployment this one retried.
    #[serde(default)]
    pub retry_of: Option<String>,
    /// The deployment this one rolled back.
    #[serde(default)]
    pub rollback_of: Option<String>,
    /// When its runner last said it was alive (see [`HEARTBEAT_STALE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<String>,
    /// `I/N` when this record is one shard of a deployment split across
    /// runners (`deploy --shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// A sharded deployment as a whole: the shards recorded so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardPart>,
    /// The migrations it set out to apply: a resume replays exactly these
    /// (empty in records written before surql recorded plans).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<PlannedMigration>,
    /// Differences from the plan that a `resume --force` accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan_changes: Vec<PlanChange>,
}

/// One shard of a deployment split across runners, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardPart {
    pub shard: String,
    pub state: String,
    pub runner: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub counts: std::collections::BTreeMap<String, usize>,
    pub heartbeat_at: Option<String>,
    /// Its environments (kept for `resume --shard`, not shown).
    #[serde(skip)]
    pub selection: Vec<String>,
    /// Its own options (kept for `resume --shard`: shards may have run with
    /// different timeouts; the whole shows the first shard's).
    #[serde(skip)]
    pub options: serde_json::Value,
}

/// A heartbeat within [`HEARTBEAT_STALE`] (or none recorded: it may be alive).
fn heartbeat_is_fresh(at: Option<&str>) -> bool {
    match at.map(chrono::DateTime::parse_from_rfc3339) {
        Some(Ok(at)) => {
            chrono::Utc::now()
                .signed_duration_since(at)
                .to_std()
                .unwrap_or_default()
                < HEARTBEAT_STALE
        }
        _ => true,
    }
}

/// The key of a deployment's record: its id, and its shard when split.
pub fn record_key(id: &str, shard: Option<&str>) -> String {
    match shard {
        Some(shard) => format!("{id}~shard-{}", shard.replace('/', "-of-")),
        None => id.to_string(),
    }
}

/// One record per deployment: a sharded one's parts as a whole (selection
/// and counts summed, running while any shard runs).
fn aggregate(mut parts: Vec<DeploymentRecord>) -> Option<DeploymentRecord> {
    if parts.len() == 1 && parts[0].shard.is_none() {
        return parts.pop();
    }
    parts.sort_by_key(|p| {
        p.shard
            .as_deref()
            .and_then(|s| s.split_once('/'))
            .and_then(|(i, _)| i.parse::<usize>().ok())
    });
    let mut whole = parts.first()?.clone();
    whole.shard = None;
    whole.selection = parts.iter().flat_map(|p| p.selection.iter().cloned()).collect();
    whole.counts = Default::default();
    for part in &parts {
        for (key, n) in &part.counts {
            *whole.counts.entry(key.clone()).or_insert(0) += n;
        }
    }
    let any = |state: &str| parts.iter().any(|p| p.state == state);
    whole.state = if any("running") {
        "running"
    } else if any("interrupted") {
        "interrupted"
    } else {
        "finished"
    }
    .into();
    whole.started_at = parts.iter().map(|p| p.started_at.clone()).min().unwrap_or_default();
    whole.finished_at = match whole.state.as_str() {
        "finished" => parts.iter().filter_map(|p| p.finished_at.clone()).max(),
        _ => None,
    };
    whole.runner = parts.iter().map(|p| p.runner.as_str()).collect::<Vec<_>>().join("; ");
    whole.shards = parts
        .into_iter()
        .map(|p| ShardPart {
            shard: p.shard.unwrap_or_default(),
            state: p.state,
            runner: p.runner,
            started_at: p.started_at,
            finished_at: p.finished_at,
            counts: p.counts,
            heartbeat_at: p.heartbeat_at,
            selection: p.selection,
            options: p.options,
        })
        .collect();
    Some(whole)
}

impl DeploymentRecord {
    /// Recorded as running, its runner not provably gone (it may be on
    /// another machine) and its heartbeat not stale; for a sharded
    /// deployment, any shard.
    pub fn may_be_running(&self) -> bool {
        let alive = |state: &str, runner: &str, started_at: &str, heartbeat_at: Option<&str>| {
            state == "running"
                && !crate::migration::holder::holder_is_gone(runner, started_at)
                && heartbeat_is_fresh(heartbeat_at)
        };
        match self.shards.is_empty() {
            true => alive(
                &self.state,
                &self.runner,
                &self.started_at,
                self.heartbeat_at.as_deref(),
            ),
            false => self
                .shards
                .iter()
                .any(|p| alive(&p.state, &p.runner, &p.started_at, p.heartbeat_at.as_deref())),
        }
    }

    /// One shard (`I/N`) of a deployment split across runners, as a record of its own.
    pub fn part(&self, shard: &str) -> Option<DeploymentRecord> {
        let part = self.shards.iter().find(|p| p.shard == shard)?.clone();
        Some(DeploymentRecord {
            selection: part.selection,
            started_at: part.started_at,
            finished_at: part.finished_at,
            state: part.state,
            runner: part.runner,
            counts: part.counts,
            heartbeat_at: part.heartbeat_at,
            shard: Some(part.shard),
            shards: Vec::new(),
            options: part.options,
            ..self.clone()
        })
    }

    /// The key of its record in the store.
    pub fn key(&self) -> String {
        record_key(&self.id, self.shard.as_deref())
    }
}

/// A connection to the state store.
pub struct StateStore {
    backend: Backend,
    url: String,
    /// While this process holds an embedded store, it serves its records
    /// to readers in other processes.
    _serving: Option<served::Serving>,
}

enum Backend {
    /// The store itself.
    Direct(Db),
    /// An embedded store another process holds, read through its socket.
    Served(std::path::PathBuf),
}

impl StateStore {
    /// Opens (and on first use creates) the store at `url`: `surrealkv://PATH`,
    /// `mem://`, or a server (`ws://…` with `username`/`password`). An
    /// embedded store another process holds is tried again for up to
    /// [`BUSY_PATIENCE`]: a reader holds it for milliseconds.
    pub async fn open(config: ConnectionConfig, timeout: Duration) -> Result<Self, StateError> {
        let started = std::time::Instant::now();
        loop {
            match Self::open_once(config.clone(), timeout).await {
                Err(StateError::Busy { .. }) if started.elapsed() < BUSY_PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                opened => return opened,
            }
        }
    }

    async fn open_once(mut config: ConnectionConfig, timeout: Duration) -> Result<Self, StateError> {
        config.db_ns = NAMESPACE.into();
        config.db = DATABASE.into();
        let url = config.display_url();
        let timeouts = crate::connection::Timeouts {
            connect: timeout,
            operation: STORE_DEADLINE,
        };
        let db = connect(&config, timeouts).await.map_err(|source| {
            if source.to_string().contains("already locked") {
                StateError::Busy { url: url.clone() }
            } else {
                StateError::Connect {
                    url: url.clone(),
                    source,
                }
            }
        })?;
        // Another runner may be writing meanwhile: defining conflicts too.
        run_retrying(&db, DEFINE_TABLES, json!({})).await?;
        let serving = served::socket_of(&config).and_then(|socket| served::serve(socket, db.clone()));
        Ok(Self {
            backend: Backend::Direct(db),
            url,
            _serving: serving,
        })
    }

    /// Like [`StateStore::open`], for reading only: an embedded store that
    /// another surql process holds (a deployment running from this folder)
    /// is read through that process, which serves it while it runs.
    pub async fn open_to_read(config: ConnectionConfig, timeout: Duration) -> Result<Self, StateError> {
        let socket = served::socket_of(&config);
        let started = std::time::Instant::now();
        loop {
            match Self::open_once(config.clone(), timeout).await {
                Err(StateError::Busy { url }) => match socket.as_ref().filter(|s| s.exists()) {
                    Some(socket) => {
                        return Ok(Self {
                            backend: Backend::Served(socket.clone()),
                            url,
                            _serving: None,
                        });
                    }
                    // The holder may be about to serve it (it binds once open).
                    None if started.elapsed() < BUSY_PATIENCE => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    None => return Err(StateError::Busy { url }),
                },
                opened => return opened,
            }
        }
    }

    /// The store itself; an embedded store held by another process is busy.
    fn db(&self) -> Result<&Db, StateError> {
        match &self.backend {
            Backend::Direct(db) => Ok(db),
            Backend::Served(_) => Err(StateError::Busy { url: self.url.clone() }),
        }
    }

    async fn run(&self, sql: &str, vars: serde_json::Value) -> Result<Vec<serde_json::Value>, StateError> {
        Ok(run_retrying(self.db()?, sql, vars).await?)
    }

    /// The store, as shown in messages (no credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Records a deployment as running, every environment pending — or, when
    /// it resumes (`kept` names what an earlier run finished), as running
    /// again, its start and kept environments as they were (its options and
    /// plan as this run's: a timeout given to `resume` is recorded either way).
    ///
    /// Claiming is one transaction: it succeeds only while the record under
    /// this key is as the caller last saw it — absent (`recorded_runner`
    /// `None`) or held by `recorded_runner`, whose run it continues. Of two
    /// runners claiming the same deployment or shard at once, one wins and
    /// the other gets [`StateError::Claimed`].
    pub async fn begin(
        &self,
        record: &DeploymentRecord,
        kept: Vec<String>,
        recorded_runner: Option<&str>,
    ) -> Result<(), StateError> {
        let rows: Vec<EnvironmentRecord> = record
            .selection
            .iter()
            .filter(|name| !kept.contains(name))
            .map(|name| EnvironmentRecord {
                environment: name.clone(),
                state: EnvironmentState::Pending,
                migrations_applied: 0,
                versions: Vec::new(),
                error: None,
                updated_at: record.started_at.clone(),
                reconciled: false,
            })
            .collect();
        let content = crate::redact::redact_json(serde_json::to_value(record).unwrap_or_default());
        // One transaction that also writes the shared `fleet:lock` record: two
        // deployments starting at once conflict there, and the second one,
        // retried, sees the first.
        let sql = format!(
            "BEGIN TRANSACTION;
UPSERT fleet:lock SET touched = time::now();
LET $mine = (SELECT runner, state FROM type::record('deployment', $key))[0];
IF $mine != NONE AND $mine.runner != $expected {{ THROW 'surql-claimed ' + <string> $mine.runner + ' (' + <string> $mine.state + ')' }};
LET $busy = (SELECT deployment_id, runner, selection FROM deployment WHERE state = 'running' AND deployment_id != $id AND heartbeat_at > time::now() - {stale}s AND selection ANYINSIDE $selection);
IF array::len($busy) > 0 {{ THROW 'surql-fleet-lock ' + <string> $busy[0].deployment_id + ' (' + <string> $busy[0].runner + ') is running on ' + array::join(array::intersect($busy[0].selection, $selection), ', ') }};
{write};
COMMIT TRANSACTION;",
            stale = HEARTBEAT_STALE.as_secs(),
            write = if kept.is_empty() {
                "UPSERT type::record('deployment', $key) CONTENT object::extend($record, { heartbeat_at: time::now() })"
            } else {
                "UPDATE type::record('deployment', $key) SET state = 'running', finished_at = NONE, runner = $record.runner, options = $record.options, plan = $record.plan, plan_changes = $record.plan_changes, resumed_at = time::now(), heartbeat_at = time::now()"
            }
        );
        let vars = json!({
            "id": record.id,
            "key": record.key(),
            "record": content,
            "selection": record.selection,
            "expected": recorded_runner,
        });
        self.settle_the_dead(&vars).await?;
        if let Err(error) = run_retrying(self.db()?, &sql, vars).await {
            let message = error.message();
            if let Some((_, holder)) = message.split_once("surql-claimed ") {
                let what = match &record.shard {
                    Some(shard) => format!("deployment {} shard {shard}", record.id),
                    None => format!("deployment {}", record.id),
                };
                return Err(StateError::Claimed {
                    what,
                    holder: holder.trim_end_matches('\'').to_string(),
                });
            }
            return Err(match message.split_once("surql-fleet-lock ") {
                Some((_, busy)) => StateError::Overlap(busy.trim_end_matches('\'').to_string()),
                None => error.into(),
            });
        }
        self.write_environments(&record.id, &rows).await
    }

    /// Running deployments on these environments whose runner is provably
    /// gone (this machine, its process ended) become `interrupted` at once,
    /// rather than holding their environments until their heartbeat is stale.
    async fn settle_the_dead(&self, vars: &serde_json::Value) -> Result<(), StateError> {
        let running = self.run(
            "SELECT deployment_id, shard, runner, started_at FROM deployment WHERE state = 'running' AND deployment_id != $id AND selection ANYINSIDE $selection;",
            vars.clone(),
        )
        .await?;
        let dead: Vec<String> = running
            .first()
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter(|d| {
                let field = |key: &str| d.get(key).and_then(serde_json::Value::as_str).unwrap_or_default();
                crate::migration::holder::holder_is_gone(field("runner"), field("started_at"))
            })
            // Its own record only: other shards of that deployment may live on.
            .filter_map(|d| {
                let id = d.get("deployment_id").and_then(serde_json::Value::as_str)?;
                Some(record_key(id, d.get("shard").and_then(serde_json::Value::as_str)))
            })
            .collect();
        if !dead.is_empty() {
            self.run(
                "FOR $key IN $dead { UPDATE type::record('deployment', $key) SET state = 'interrupted', finished_at = time::now() WHERE state = 'running'; };",
                json!({ "dead": dead }),
            )
            .await?;
        }
        Ok(())
    }

    /// Tells other runners the deployment recorded under `key` is alive
    /// (see [`HEARTBEAT_STALE`]).
    pub async fn heartbeat(&self, key: &str) -> Result<(), StateError> {
        self.run(
            "UPDATE type::record('deployment', $key) SET heartbeat_at = time::now() WHERE state = 'running';",
            json!({ "key": key }),
        )
        .await?;
        Ok(())
    }

    /// Writes the state of some environments of deployment `id`, in one request.
    pub async fn write_environments(&self, id: &str, rows: &[EnvironmentRecord]) -> Result<(), StateError> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = crate::redact::redact_json(serde_json::to_value(rows).unwrap_or_default());
        self.run(
            "FOR $row IN $rows { UPSERT type::record('deployment_env', [$id, $row.environment]) MERGE object::extend($row, { deployment: $id }); };",
            json!({ "id": id, "rows": rows }),
        )
        .await?;
        Ok(())
    }

    /// Records the end of deployment `id` (its record under `key`): every
    /// environment's final result and the counts.
    pub async fn finish(
        &self,
        id: &str,
        key: &str,
        results: &[&DeploymentResult],
        interrupted: bool,
    ) -> Result<(), StateError> {
        let now = chrono::Utc::now().to_rfc3339();
        let rows: Vec<EnvironmentRecord> = results
            .iter()
            .map(|r| EnvironmentRecord {
                environment: r.environment.clone(),
                state: EnvironmentState::of(r),
                migrations_applied: r.migrations_applied,
                versions: Vec::new(),
                error: r.error.clone(),
                updated_at: now.clone(),
                reconciled: false,
            })
            .collect();
        self.write_environments(id, &rows).await?;
        let mut counts = std::collections::BTreeMap::new();
        for result in results {
            *counts.entry(result.status.value().to_string()).or_insert(0usize) += 1;
        }
        self.run(
            "UPDATE type::record('deployment', $key) SET finished_at = $now, state = $state, counts = $counts;",
            json!({ "key": key, "now": now, "state": if interrupted { "interrupted" } else { "finished" }, "counts": counts }),
        )
        .await?;
        Ok(())
    }

    /// The newest `limit` deployments, newest first (a sharded one as a whole).
    pub async fn list(&self, limit: usize) -> Result<Vec<DeploymentRecord>, StateError> {
        match &self.backend {
            Backend::Direct(db) => list_in(db, limit).await,
            Backend::Served(socket) => served::ask(socket, &self.url, &served::Request::List { limit }).await,
        }
    }

    /// One deployment and its environments, in the order they were selected.
    pub async fn show(&self, id: &str) -> Result<(DeploymentRecord, Vec<EnvironmentRecord>), StateError> {
        match &self.backend {
            Backend::Direct(db) => show_in(db, id).await,
            Backend::Served(socket) => served::ask(socket, &self.url, &served::Request::Show { id: id.into() }).await,
        }
    }
}

async fn list_in(db: &Db, limit: usize) -> Result<Vec<DeploymentRecord>, StateError> {
    let newest = run_retrying(
        db,
        "SELECT deployment_id, started_at FROM deployment ORDER BY started_at DESC;",
        json!({}),
    )
    .await?;
    let mut ids: Vec<String> = Vec::new();
    for row in newest
        .first()
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(id) = row.get("deployment_id").and_then(serde_json::Value::as_str)
            && !ids.iter().any(|seen| seen == id)
        {
            ids.push(id.to_string());
        }
        if ids.len() == limit {
            break;
        }
    }
    let rows = run_retrying(
        db,
        "SELECT * OMIT id FROM deployment WHERE deployment_id IN $ids;",
        json!({ "ids": ids }),
    )
    .await?;
    let records: Vec<DeploymentRecord> = parse(rows.into_iter().next().unwrap_or_default())?;
    Ok(ids
        .iter()
        .filter_map(|id| aggregate(records.iter().filter(|r| &r.id == id).cloned().collect()))
        .collect())
}

/// One deployment and its environments, in the order they were selected.
async fn show_in(db: &Db, id: &str) -> Result<(DeploymentRecord, Vec<EnvironmentRecord>), StateError> {
    let answer = run_retrying(db,
            "SELECT * OMIT id FROM deployment WHERE deployment_id = $id; SELECT * OMIT id, deployment FROM deployment_env WHERE deployment = $id;",
            json!({ "id": id }),
        )
        .await?;
    let mut answer = answer.into_iter();
    let parts: Vec<DeploymentRecord> = parse(answer.next().unwrap_or_default())?;
    let deployment = aggregate(parts).ok_or_else(|| StateError::NotFound(id.to_string()))?;
    let mut environments: Vec<EnvironmentRecord> = parse(answer.next().unwrap_or_default())?;
    let order: std::collections::HashMap<&str, usize> = deployment
        .selection
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    environments.sort_by_key(|e| order.get(e.environment.as_str()).copied().unwrap_or(usize::MAX));
    Ok((deployment, environments))
}

/// Runs `sql`, again on a write conflict: every statement here is
/// idempotent, and the fleet lock's check reads every running deployment, so
/// any write to one meanwhile (a heartbeat) conflicts with it; so do the
/// definitions a starting runner makes while another writes.
async fn run_retrying(db: &Db, sql: &str, vars: serde_json::Value) -> Result<Vec<serde_json::Value>, QueryError> {
    let mut attempt: u64 = 0;
    loop {
        match run_query(db, sql, vars.clone()).await {
            Err(error) if error.is_retryable() && attempt < 30 => {
                attempt += 1;
                let jitter = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .subsec_nanos() as u64
                    % 50;
                tokio::time::sleep(Duration::from_millis((25 * attempt).min(300) + jitter)).await;
            }
            answer => return answer,
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, StateError> {
    serde_json::from_value(value)
        .map_err(|e| StateError::Query(QueryError::unreadable(format!("unreadable deployment record: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(shard: &str, lock_ttl_s: u64) -> DeploymentRecord {
        DeploymentRecord {
            id: "release-42".into(),
            actor: "ci".into(),
            strategy: "parallel".into(),
            options: serde_json::json!({ "lock_ttl_s": lock_ttl_s }),
            selection: vec![format!("tenant-{shard}")],
            started_at: "2026-12-02T00:00:00Z".into(),
            finished_at: None,
            state: "interrupted".into(),
            runner: format!("ci@host pid {lock_ttl_s}"),
            counts: Default::default(),
            retry_of: None,
            rollback_of: None,
            heartbeat_at: None,
            shard: Some(shard.into()),
            shards: Vec::new(),
            plan: Vec::new(),
            plan_changes: Vec::new(),
        }
    }

    /// `resume --shard` runs a shard with the options it ran with, not the first shard's.
    #[test]
    fn a_shard_keeps_its_own_options() {
        let whole = aggregate(vec![shard("1/2", 9), shard("0/2", 7)]).unwrap();
        assert_eq!(whole.options["lock_ttl_s"], 7);
        let second = whole.part("1/2").unwrap();
        assert_eq!(
            (second.options["lock_ttl_s"].as_u64(), second.selection),
            (Some(9), vec!["tenant-1/2".to_string()])
        );
    }
}
