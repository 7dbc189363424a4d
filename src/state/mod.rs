//! Deployment records in a SurrealDB state store: embedded by default
//! (`surrealkv://.surql/state`), or any server a team shares. Each
//! deployment and each of its environments is written as its state changes,
//! so a crash loses at most the environments in flight. Knows nothing of Rhai.

mod recorder;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use recorder::Recorder;

use crate::connection::{ConnectionConfig, ConnectionError, Db, QueryError, connect, run_query};
use crate::engine::{DeploymentResult, DeploymentStatus};

/// Where deployment records go unless `--state` says otherwise.
pub const DEFAULT_STATE_URL: &str = "surrealkv://.surql/state";

/// The namespace and database of the records in a state store.
const NAMESPACE: &str = "surql";
const DATABASE: &str = "state";

const DEFINE_TABLES: &str = "DEFINE TABLE IF NOT EXISTS deployment SCHEMALESS COMMENT 'surql deployments';
DEFINE TABLE IF NOT EXISTS deployment_env SCHEMALESS COMMENT 'surql deployments: one row per environment';
DEFINE INDEX IF NOT EXISTS deployment_env_of ON deployment_env FIELDS deployment;";

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
    /// An embedded store is open in another process.
    #[error(
        "state store {url} is in use by another surql process (a deployment running from this folder?): an embedded store serves one process at a time; wait for it, give this run a store of its own (--state surrealkv://PATH), or share a SurrealDB server between runners (--state ws://HOST:PORT)"
    )]
    Busy { url: String },
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
            DeploymentStatus::Failed if result.error.as_deref().is_some_and(|e| e.contains("outcome unknown")) => {
                Self::OutcomeUnknown
            }
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
}

/// A connection to the state store.
pub struct StateStore {
    db: Db,
    url: String,
}

impl StateStore {
    /// Opens (and on first use creates) the store at `url`: `surrealkv://PATH`,
    /// `mem://`, or a server (`ws://…` with `username`/`password`).
    pub async fn open(mut config: ConnectionConfig, timeout: Duration) -> Result<Self, StateError> {
        config.db_ns = NAMESPACE.into();
        config.db = DATABASE.into();
        let url = config.display_url();
        let db = connect(&config, timeout).await.map_err(|source| {
            if source.to_string().contains("already locked") {
                StateError::Busy { url: url.clone() }
            } else {
                StateError::Connect {
                    url: url.clone(),
                    source,
                }
            }
        })?;
        run_query(&db, DEFINE_TABLES, json!({})).await?;
        Ok(Self { db, url })
    }

    /// The store, as shown in messages (no credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Records a deployment as running, every environment pending — or, when
    /// it resumes (`kept` names what an earlier run finished), as running
    /// again, its start and kept environments as they were.
    pub async fn begin(&self, record: &DeploymentRecord, kept: Vec<String>) -> Result<(), StateError> {
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
            })
            .collect();
        if kept.is_empty() {
            let content = crate::redact::redact_json(serde_json::to_value(record).unwrap_or_default());
            run_query(
                &self.db,
                "UPSERT type::record('deployment', $id) CONTENT $record;",
                json!({ "id": record.id, "record": content }),
            )
            .await?;
        } else {
            run_query(
                &self.db,
                "UPDATE type::record('deployment', $id) SET state = 'running', finished_at = NONE, runner = $runner, resumed_at = time::now();",
                json!({ "id": record.id, "runner": record.runner }),
            )
            .await?;
        }
        self.write_environments(&record.id, &rows).await
    }

    /// Writes the state of some environments of deployment `id`, in one request.
    pub async fn write_environments(&self, id: &str, rows: &[EnvironmentRecord]) -> Result<(), StateError> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = crate::redact::redact_json(serde_json::to_value(rows).unwrap_or_default());
        run_query(
            &self.db,
            "FOR $row IN $rows { UPSERT type::record('deployment_env', [$id, $row.environment]) MERGE object::extend($row, { deployment: $id }); };",
            json!({ "id": id, "rows": rows }),
        )
        .await?;
        Ok(())
    }

    /// Records the end: every environment's final result and the counts.
    pub async fn finish(&self, id: &str, results: &[&DeploymentResult], interrupted: bool) -> Result<(), StateError> {
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
            })
            .collect();
        self.write_environments(id, &rows).await?;
        let mut counts = std::collections::BTreeMap::new();
        for result in results {
            *counts.entry(result.status.value().to_string()).or_insert(0usize) += 1;
        }
        run_query(
            &self.db,
            "UPDATE type::record('deployment', $id) SET finished_at = $now, state = $state, counts = $counts;",
            json!({ "id": id, "now": now, "state": if interrupted { "interrupted" } else { "finished" }, "counts": counts }),
        )
        .await?;
        Ok(())
    }

    /// The newest `limit` deployments, newest first.
    pub async fn list(&self, limit: usize) -> Result<Vec<DeploymentRecord>, StateError> {
        let rows = run_query(
            &self.db,
            "SELECT * OMIT id FROM deployment ORDER BY started_at DESC LIMIT $limit;",
            json!({ "limit": limit }),
        )
        .await?;
        parse(rows.into_iter().next().unwrap_or_default())
    }

    /// One deployment and its environments, in the order they were selected.
    pub async fn show(&self, id: &str) -> Result<(DeploymentRecord, Vec<EnvironmentRecord>), StateError> {
        let answer = run_query(
            &self.db,
            "SELECT * OMIT id FROM ONLY type::record('deployment', $id); SELECT * OMIT id, deployment FROM deployment_env WHERE deployment = $id;",
            json!({ "id": id }),
        )
        .await?;
        let mut answer = answer.into_iter();
        let deployment = answer.next().unwrap_or_default();
        if deployment.is_null() {
            return Err(StateError::NotFound(id.to_string()));
        }
        let deployment: DeploymentRecord = parse(deployment)?;
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
}

fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, StateError> {
    serde_json::from_value(value)
        .map_err(|e| StateError::Query(QueryError::unreadable(format!("unreadable deployment record: {e}"))))
}
