//! The state store: opening it (or reading it through the process that
//! holds an embedded one), claiming a deployment, and writing and reading records.

use std::time::Duration;

use serde_json::json;

use super::record::{aggregate, parse};
use super::{
    BUSY_PATIENCE, DATABASE, DEFINE_TABLES, DeploymentRecord, EnvironmentRecord, EnvironmentState, HEARTBEAT_STALE,
    NAMESPACE, STORE_DEADLINE, StateError, record_key, served,
};
use crate::connection::{
    CLAIMED_THROWN, Client, ConnectionConfig, Db, FLEET_BUSY_THROWN, QueryError, QueryErrorKind, connect, run_query,
};
use crate::engine::DeploymentResult;

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
    /// `mem://`, or a server (`ws://…` with `username`/`password`, connected
    /// to through `client`, a coordinator's to share its connections). An
    /// embedded store another process holds is tried again for up to
    /// [`BUSY_PATIENCE`]: a reader holds it for milliseconds.
    pub async fn open(client: &Client, config: ConnectionConfig, timeout: Duration) -> Result<Self, StateError> {
        let started = std::time::Instant::now();
        loop {
            match Self::open_once(client, config.clone(), timeout).await {
                Err(StateError::Busy { .. }) if started.elapsed() < BUSY_PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                opened => return opened,
            }
        }
    }

    async fn open_once(client: &Client, mut config: ConnectionConfig, timeout: Duration) -> Result<Self, StateError> {
        config.db_ns = NAMESPACE.into();
        config.db = DATABASE.into();
        let url = config.display_url();
        let timeouts = crate::connection::Timeouts {
            connect: timeout,
            operation: STORE_DEADLINE,
        };
        let db = connect(client, &config, timeouts).await.map_err(|source| {
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
        let serving = served::socket_of(&config).and_then(|socket| served::serve(socket, db.clone(), url.clone()));
        Ok(Self {
            backend: Backend::Direct(db),
            url,
            _serving: serving,
        })
    }

    /// Like [`StateStore::open`], for reading only: an embedded store that
    /// another surql process holds (a deployment running from this folder)
    /// is read through that process, which serves it while it runs.
    pub async fn open_to_read(
        client: &Client,
        config: ConnectionConfig,
        timeout: Duration,
    ) -> Result<Self, StateError> {
        let socket = served::socket_of(&config);
        let started = std::time::Instant::now();
        loop {
            match Self::open_once(client, config.clone(), timeout).await {
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

    /// The store for reading only, when it exists: `None` for a store never
    /// created (an embedded folder that is not there, a server without its
    /// namespace), a `mem://` one, or one that cannot be reached. Creates and
    /// defines nothing (a dry run writes nothing anywhere).
    pub async fn open_existing(client: &Client, config: ConnectionConfig, timeout: Duration) -> Option<Self> {
        if let Some(path) = config.db_url.strip_prefix("surrealkv://") {
            if !std::path::Path::new(path).exists() {
                return None;
            }
            return Self::open_to_read(client, config, timeout).await.ok();
        }
        if config.endpoint_kind().ok() != Some(crate::connection::EndpointKind::Remote) {
            return None;
        }
        let mut config = config;
        config.db_ns = NAMESPACE.into();
        config.db = DATABASE.into();
        let url = config.display_url();
        let timeouts = crate::connection::Timeouts {
            connect: timeout,
            operation: STORE_DEADLINE,
        };
        let db = crate::connection::connect_read_only(client, &config, timeouts)
            .await
            .ok()??;
        Some(Self::direct(db, url))
    }

    /// The store on `db`, as the process holding it serves it.
    pub(super) fn direct(db: Db, url: String) -> Self {
        Self {
            backend: Backend::Direct(db),
            url,
            _serving: None,
        }
    }

    /// The socket of the process serving this store, when another one holds it.
    pub(super) fn served_socket(&self) -> Option<&std::path::Path> {
        match &self.backend {
            Backend::Served(socket) => Some(socket),
            Backend::Direct(_) => None,
        }
    }

    /// The store itself; an embedded store held by another process is busy.
    fn db(&self) -> Result<&Db, StateError> {
        match &self.backend {
            Backend::Direct(db) => Ok(db),
            Backend::Served(_) => Err(StateError::Busy { url: self.url.clone() }),
        }
    }

    pub(super) async fn run(&self, sql: &str, vars: serde_json::Value) -> Result<Vec<serde_json::Value>, StateError> {
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
                duration_s: None,
                joined_late: false,
                wave: None,
                failure_kind: None,
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
IF $mine != NONE AND $mine.runner != $expected {{ THROW '{CLAIMED_THROWN}' + <string> $mine.runner + ' (' + <string> $mine.state + ')' }};
LET $busy = (SELECT deployment_id, runner, selection FROM deployment WHERE state = 'running' AND deployment_id != $id AND heartbeat_at > time::now() - {stale}s AND selection ANYINSIDE $selection);
IF array::len($busy) > 0 {{ THROW '{FLEET_BUSY_THROWN}' + <string> $busy[0].deployment_id + ' (' + <string> $busy[0].runner + ') is running on ' + array::join(array::intersect($busy[0].selection, $selection), ', ') }};
{write};
COMMIT TRANSACTION;",
            stale = HEARTBEAT_STALE.as_secs(),
            write = if kept.is_empty() {
                "UPSERT type::record('deployment', $key) CONTENT object::extend($record, { heartbeat_at: time::now() })"
            } else {
                "UPDATE type::record('deployment', $key) SET state = 'running', finished_at = NONE, runner = $record.runner, options = $record.options, plan = $record.plan, plan_changes = $record.plan_changes, control = NONE, resumed_at = time::now(), heartbeat_at = time::now()"
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
            let holder = error.thrown_detail().unwrap_or_default().to_string();
            return Err(match error.kind() {
                QueryErrorKind::Claimed => StateError::Claimed {
                    what: match &record.shard {
                        Some(shard) => format!("deployment {} shard {shard}", record.id),
                        None => format!("deployment {}", record.id),
                    },
                    holder,
                },
                QueryErrorKind::FleetBusy => StateError::Overlap(holder),
                _ => error.into(),
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

    /// Adds environments that joined the deployment recorded under `key`
    /// late to its selection (what `show`, `resume` and the fleet lock see).
    pub async fn extend_selection(&self, key: &str, joined: &[String]) -> Result<(), StateError> {
        self.run(
            "UPDATE type::record('deployment', $key) SET selection = array::union(selection, $joined);",
            json!({ "key": key, "joined": joined }),
        )
        .await?;
        Ok(())
    }

    /// Adds the waves a runner started to the record under `key`, and
    /// marks each wave's environments of deployment `id` with its number
    /// (only those not in a wave yet: nothing else of theirs changes).
    pub async fn add_waves(
        &self,
        id: &str,
        key: &str,
        waves: &[super::WaveRecord],
        members: &[(usize, Vec<String>)],
    ) -> Result<(), StateError> {
        self.run(
            "UPDATE type::record('deployment', $key) SET waves = array::concat((waves ?? [])[WHERE number NOTINSIDE $numbers], $waves);
             FOR $wave IN $members { FOR $name IN $wave[1] {
                 UPDATE type::record('deployment_env', [$id, $name]) SET wave = $wave[0] WHERE wave = NONE;
             }; };",
            json!({ "id": id, "key": key, "waves": waves, "members": members,
                "numbers": waves.iter().map(|w| w.number).collect::<Vec<_>>() }),
        )
        .await?;
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
                duration_s: r.duration_seconds,
                joined_late: false,
                wave: None,
                failure_kind: r.failure_kind.filter(|_| r.is_failure()),
            })
            .collect();
        self.write_environments(id, &rows).await?;
        let mut counts = super::Counts::default();
        for result in results {
            counts.add_status(result.status);
        }
        self.run(
            "UPDATE type::record('deployment', $key) SET finished_at = $now, state = $state, counts = $counts;",
            json!({ "key": key, "now": now, "state": if interrupted { super::DeploymentState::Interrupted } else { super::DeploymentState::Finished }, "counts": counts }),
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

pub(super) async fn list_in(db: &Db, limit: usize) -> Result<Vec<DeploymentRecord>, StateError> {
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

impl StateStore {
    /// Per environment of `environments`, the migration versions that ended
    /// SUCCESS there in any recorded deployment (promotion rules).
    pub async fn succeeded_versions(
        &self,
        environments: &[String],
    ) -> Result<std::collections::HashMap<String, std::collections::HashSet<String>>, StateError> {
        let mut succeeded: std::collections::HashMap<String, std::collections::HashSet<String>> =
            environments.iter().map(|e| (e.clone(), Default::default())).collect();
        if environments.is_empty() {
            return Ok(succeeded);
        }
        if let Some(socket) = self.served_socket() {
            let rows: Vec<(String, Vec<String>)> = super::served::ask(
                socket,
                self.url(),
                &super::served::Request::Succeeded {
                    environments: environments.to_vec(),
                },
            )
            .await?;
            for (environment, versions) in rows {
                succeeded.entry(environment).or_default().extend(versions);
            }
            return Ok(succeeded);
        }
        let answer = self
            .run(
                "SELECT environment, versions FROM deployment_env WHERE environment IN $environments AND state = 'success' AND versions != NONE;",
                json!({ "environments": environments }),
            )
            .await?;
        for row in answer
            .first()
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(environment) = row["environment"].as_str() else {
                continue;
            };
            let versions = row["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str);
            // Recorded as `version_name`: the version is what comes before the first `_`.
            succeeded
                .entry(environment.to_string())
                .or_default()
                .extend(versions.map(|v| v.split('_').next().unwrap_or(v).to_string()));
        }
        Ok(succeeded)
    }
}

impl StateStore {
    /// Per environment of `environments`, how long its deployments took
    /// there (seconds; deployments that succeeded and applied something).
    pub async fn past_durations(
        &self,
        environments: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<f64>>, StateError> {
        if let Some(socket) = self.served_socket() {
            let rows: Vec<(String, Vec<f64>)> = super::served::ask(
                socket,
                self.url(),
                &super::served::Request::Durations {
                    environments: environments.to_vec(),
                },
            )
            .await?;
            return Ok(rows.into_iter().collect());
        }
        let answer = self
            .run(
                "SELECT environment, duration_s FROM deployment_env WHERE environment IN $environments AND state = 'success' AND migrations_applied > 0 AND duration_s != NONE;",
                json!({ "environments": environments }),
            )
            .await?;
        let mut durations: std::collections::HashMap<String, Vec<f64>> = Default::default();
        for row in answer
            .first()
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(environment), Some(seconds)) = (row["environment"].as_str(), row["duration_s"].as_f64()) {
                durations.entry(environment.to_string()).or_default().push(seconds);
            }
        }
        Ok(durations)
    }
}

/// One deployment and its environments, in the order they were selected.
pub(super) async fn show_in(db: &Db, id: &str) -> Result<(DeploymentRecord, Vec<EnvironmentRecord>), StateError> {
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
