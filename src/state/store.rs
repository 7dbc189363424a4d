//! The state store: opening it (or reading it through the process that
//! holds an embedded one), claiming a deployment, and writing and reading records.

use std::time::Duration;

use serde_json::json;

use super::files::{self, FILES_SCHEME, FileStore};
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
    pub(super) backend: Backend,
    pub(super) url: String,
    /// While this process holds an embedded store, it serves its records
    /// to readers in other processes.
    _serving: Option<served::Serving>,
    /// What opening it did that the operator should hear (records of an
    /// older surql converted).
    notice: Option<String>,
}

pub(super) enum Backend {
    /// The store itself.
    Direct(Db),
    /// An embedded store another process holds, read through its socket.
    Served(std::path::PathBuf),
    /// A folder of record files (the default).
    Files(FileStore),
}

impl StateStore {
    /// Opens (and on first use creates) the store at `url`: `surrealkv://PATH`,
    /// `mem://`, or a server (`ws://…` with `username`/`password`, connected
    /// to through `client`, a coordinator's to share its connections). An
    /// embedded store another process holds is tried again for up to
    /// [`BUSY_PATIENCE`]: a reader holds it for milliseconds.
    pub async fn open(client: &Client, config: ConnectionConfig, timeout: Duration) -> Result<Self, StateError> {
        if config.db_url.starts_with(FILES_SCHEME) {
            return Self::open_files(client, &config, timeout, true).await;
        }
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
            notice: None,
        })
    }

    /// A folder of record files (`files://PATH`); the old default store
    /// beside the default folder converted first (see [`super::convert`]).
    async fn open_files(
        client: &Client,
        config: &ConnectionConfig,
        timeout: Duration,
        create: bool,
    ) -> Result<Self, StateError> {
        let url = config.db_url.clone();
        let dir = std::path::Path::new(&url[FILES_SCHEME.len()..]);
        let notice = match url == super::DEFAULT_STATE_URL {
            true => super::convert::convert_old_default(client, dir, &url, timeout).await?,
            false => None,
        };
        Ok(Self {
            backend: Backend::Files(FileStore::open(dir, &url, create || notice.is_some())?),
            url,
            _serving: None,
            notice,
        })
    }

    /// What opening the store did that the operator should hear: records
    /// of an older surql moved into the default folder.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// Like [`StateStore::open`], for reading only: an embedded store that
    /// another surql process holds (a deployment running from this folder)
    /// is read through that process, which serves it while it runs.
    pub async fn open_to_read(
        client: &Client,
        config: ConnectionConfig,
        timeout: Duration,
    ) -> Result<Self, StateError> {
        if config.db_url.starts_with(FILES_SCHEME) {
            return match Self::open_files(client, &config, timeout, true).await {
                // An older surql still running holds the store it records
                // in (not converted yet): read that through its process.
                Err(StateError::Busy { .. }) if config.db_url == super::DEFAULT_STATE_URL => {
                    Box::pin(Self::open_to_read(client, old_default(&config), timeout)).await
                }
                opened => opened,
            };
        }
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
                            notice: None,
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
        if let Some(path) = config.db_url.strip_prefix(FILES_SCHEME) {
            // An older surql's store, not converted yet: read where it is.
            if config.db_url == super::DEFAULT_STATE_URL && super::convert::needs_conversion(std::path::Path::new(path))
            {
                return Self::open_to_read(client, old_default(&config), timeout).await.ok();
            }
            return Self::open_files(client, &config, timeout, false).await.ok();
        }
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
            notice: None,
        }
    }

    /// The socket of the process serving this store, when another one holds it.
    pub(super) fn served_socket(&self) -> Option<&std::path::Path> {
        match &self.backend {
            Backend::Served(socket) => Some(socket),
            Backend::Direct(_) | Backend::Files(_) => None,
        }
    }

    /// The store itself; an embedded store held by another process is busy.
    fn db(&self) -> Result<&Db, StateError> {
        match &self.backend {
            Backend::Direct(db) => Ok(db),
            Backend::Served(_) | Backend::Files(_) => Err(StateError::Busy { url: self.url.clone() }),
        }
    }

    /// The folder of record files, when the store is one.
    pub(super) fn files(&self) -> Option<&FileStore> {
        match &self.backend {
            Backend::Files(files) => Some(files),
            _ => None,
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
                server_version: None,
            })
            .collect();
        let content = crate::redact::redact_json(serde_json::to_value(record).unwrap_or_default());
        if let Some(store) = self.files() {
            let claim = files::Claim {
                content,
                record: record.clone(),
                continues: !kept.is_empty(),
                expected: recorded_runner.map(str::to_string),
            };
            store.locked(true, move |store| files::claim(store, claim)).await?;
            return self.write_environments(&record.id, &rows).await;
        }
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
            "SELECT deployment_id, shard, runner, started_at, resumed_at FROM deployment WHERE state = 'running' AND deployment_id != $id AND selection ANYINSIDE $selection;",
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
                crate::migration::holder::holder_is_gone(field("runner"), files::taken_at(d))
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
        if let Some(store) = self.files() {
            let (key, joined) = (key.to_string(), joined.to_vec());
            return store
                .locked(true, move |store| {
                    files::update(store, &key, |part| {
                        let mut selection: Vec<serde_json::Value> =
                            part["selection"].as_array().cloned().unwrap_or_default();
                        for name in joined {
                            let name = serde_json::Value::String(name);
                            if !selection.contains(&name) {
                                selection.push(name);
                            }
                        }
                        part["selection"] = serde_json::Value::Array(selection);
                    })
                })
                .await;
        }
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
        if let Some(store) = self.files() {
            let (id, key, waves, members) = (id.to_string(), key.to_string(), waves.to_vec(), members.to_vec());
            return store
                .locked(true, move |store| files::add_waves(store, &id, &key, &waves, &members))
                .await;
        }
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
        if let Some(store) = self.files() {
            let key = key.to_string();
            return store
                .locked(true, move |store| {
                    files::update(store, &key, |part| {
                        if part["state"] == "running" {
                            part["heartbeat_at"] = json!(files::now());
                        }
                    })
                })
                .await;
        }
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
        if let Some(store) = self.files() {
            let id = id.to_string();
            let rows: Vec<serde_json::Value> = rows
                .as_array()
                .into_iter()
                .flatten()
                .map(|row| {
                    let mut row = row.clone();
                    row["deployment"] = json!(id);
                    row
                })
                .collect();
            return store
                .locked(true, move |store| store.append_environments(&id, &rows))
                .await;
        }
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
                server_version: r.server_version.clone(),
            })
            .collect();
        self.write_environments(id, &rows).await?;
        let mut counts = super::Counts::default();
        for result in results {
            counts.add_status(result.status);
        }
        let state = match interrupted {
            true => super::DeploymentState::Interrupted,
            false => super::DeploymentState::Finished,
        };
        if let Some(store) = self.files() {
            let (id, key) = (id.to_string(), key.to_string());
            return store
                .locked(true, move |store| {
                    files::update(store, &key, |part| {
                        part["finished_at"] = json!(now);
                        part["state"] = json!(state);
                        part["counts"] = json!(counts);
                    })?;
                    // Its environments' log, one line each from now on.
                    store.compact_environments(&id)
                })
                .await;
        }
        self.run(
            "UPDATE type::record('deployment', $key) SET finished_at = $now, state = $state, counts = $counts;",
            json!({ "key": key, "now": now, "state": state, "counts": counts }),
        )
        .await?;
        Ok(())
    }
}

/// Runs `sql`, again on a write conflict: every statement here is
/// idempotent, and the fleet lock's check reads every running deployment, so
/// any write to one meanwhile (a heartbeat) conflicts with it; so do the
/// definitions a starting runner makes while another writes.
pub(super) async fn run_retrying(
    db: &Db,
    sql: &str,
    vars: serde_json::Value,
) -> Result<Vec<serde_json::Value>, QueryError> {
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

/// The store an older surql kept beside the default folder of `config`.
fn old_default(config: &ConnectionConfig) -> ConnectionConfig {
    let dir = std::path::Path::new(&config.db_url[FILES_SCHEME.len()..]);
    let old = super::convert::old_default_of(dir);
    ConnectionConfig::new(format!("surrealkv://{}", old.display()), "surql", "state")
}
