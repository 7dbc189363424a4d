//! The deployment record: what a deployment set out to do, and each
//! environment's state, as the store keeps them and every reader sees them.

use serde::{Deserialize, Serialize};

use super::HEARTBEAT_STALE;
use crate::engine::{DeploymentResult, DeploymentStatus};

/// Where a recorded deployment is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeploymentState {
    /// Its runner is at work (or died without saying: see [`DeploymentRecord::may_be_running`]).
    #[default]
    Running,
    /// Every environment has its result.
    Finished,
    /// Stopped part-way (Ctrl-C, the state store away): `resume` completes it.
    Interrupted,
}

impl DeploymentState {
    /// `running`, `finished`, `interrupted` (as stored and in JSON).
    pub fn value(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.value())
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A deployment's environments by result; while it runs (the view's live
/// counts) also those pending, running, or whose outcome nobody knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Environments that succeeded.
    #[serde(default)]
    pub success: usize,
    /// Environments that failed without a rollback.
    #[serde(default)]
    pub failed: usize,
    /// Environments that failed and were rolled back.
    #[serde(default)]
    pub rolled_back: usize,
    /// Environments deliberately not deployed.
    #[serde(default)]
    pub skipped: usize,
    /// Environments not started yet (live counts only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending: usize,
    /// Environments being deployed now (live counts only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub running: usize,
    /// Environments whose outcome nobody knows (live counts only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub outcome_unknown: usize,
}

impl Counts {
    /// Counts one final result.
    pub fn add_status(&mut self, status: DeploymentStatus) {
        match status {
            DeploymentStatus::Success => self.success += 1,
            DeploymentStatus::Failed => self.failed += 1,
            DeploymentStatus::RolledBack => self.rolled_back += 1,
            DeploymentStatus::Skipped => self.skipped += 1,
        }
    }

    /// Counts one environment as it is now.
    pub fn add_state(&mut self, state: EnvironmentState) {
        match state {
            EnvironmentState::Pending => self.pending += 1,
            EnvironmentState::Running => self.running += 1,
            EnvironmentState::Success => self.success += 1,
            EnvironmentState::Failed => self.failed += 1,
            EnvironmentState::RolledBack => self.rolled_back += 1,
            EnvironmentState::Skipped => self.skipped += 1,
            EnvironmentState::OutcomeUnknown => self.outcome_unknown += 1,
        }
    }

    /// Both together (a sharded deployment's parts).
    pub fn plus(self, other: Counts) -> Counts {
        Counts {
            success: self.success + other.success,
            failed: self.failed + other.failed,
            rolled_back: self.rolled_back + other.rolled_back,
            skipped: self.skipped + other.skipped,
            pending: self.pending + other.pending,
            running: self.running + other.running,
            outcome_unknown: self.outcome_unknown + other.outcome_unknown,
        }
    }

    /// Any environment failed or was rolled back (or its outcome is unknown).
    pub fn any_failed(&self) -> bool {
        self.failed + self.rolled_back + self.outcome_unknown > 0
    }
}

impl std::fmt::Display for Counts {
    /// `3 success, 1 failed, 0 rolled back, 2 skipped`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} success, {} failed, {} rolled back, {} skipped",
            self.success, self.failed, self.rolled_back, self.skipped
        )
    }
}

/// The state of one environment in a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EnvironmentState {
    /// Not started yet.
    Pending,
    /// Being deployed now.
    Running,
    /// Every pending migration applied (or none were pending).
    Success,
    /// Not deployed, or stopped part-way without a rollback.
    Failed,
    /// Failed, and what this deployment applied there was rolled back.
    RolledBack,
    /// Deliberately not deployed: approval, strategy stop, abort, interruption.
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
    /// The environment's name.
    pub environment: String,
    /// Where it is in the deployment.
    pub state: EnvironmentState,
    /// How many migrations this deployment applied there.
    pub migrations_applied: usize,
    /// `version_name` of each migration this deployment applied there, in order
    /// (kept when a later write leaves it out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    /// Why it did not succeed; `None` when nothing went wrong.
    pub error: Option<String>,
    /// When this row was last written (RFC 3339).
    pub updated_at: String,
    /// Read back from the database's history by `resume`/`retry` (the
    /// runner could not record it: the state store was away).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconciled: bool,
    /// Seconds its deployment took there, once finished (estimates of later runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Discovered after the deployment started (`--refresh-discovery`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub joined_late: bool,
    /// The wave (its number, from 1) it was deployed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<usize>,
    /// Why it failed, beside the error (FAILED, ROLLED_BACK, outcome unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_kind: Option<crate::engine::FailureKind>,
    /// The SurrealDB version of its server when it got its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<crate::connection::ServerVersion>,
}

/// One wave of a recorded deployment, in the order the strategy made them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveRecord {
    /// Its number, from 1.
    pub number: usize,
    /// What the strategy called it (`canary`, `batch 2/5`, …).
    pub label: String,
    /// How many environments it was given.
    pub environments: usize,
}

/// One migration a deployment set out to apply, as its file was then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMigration {
    /// The digits before the first `_` of the file name.
    pub version: String,
    /// The rest of the file name, without `.surql`.
    pub name: String,
    /// Hex SHA-256 of its up section.
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
    /// Who ran that `resume --force`; empty until one accepted it.
    #[serde(default)]
    pub actor: String,
    /// Migrations in the files but not in the plan.
    pub added: Vec<String>,
    /// Migrations in the plan whose files are gone.
    pub removed: Vec<String>,
    /// Migrations whose file's name or checksum differs from the plan's.
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

    /// No migration was added, removed or changed.
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
    /// Who started it (`--actor`, else the OS user).
    pub actor: String,
    /// The strategy's name.
    pub strategy: String,
    /// The options it ran with, secrets redacted.
    #[serde(default)]
    pub options: super::RecordedOptions,
    /// The environments selected, in order.
    pub selection: Vec<String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it finished or was interrupted; `None` while it runs.
    pub finished_at: Option<String>,
    /// Where it is: running, finished or interrupted.
    pub state: DeploymentState,
    /// Who ran it: `user@host pid N …`, as a lock holder names itself
    /// (so a later run can tell whether it is still alive).
    pub runner: String,
    /// Results, recorded when it ends (see the view for live counts).
    #[serde(default)]
    pub counts: Counts,
    /// The deployment this one retried.
    #[serde(default)]
    pub retry_of: Option<String>,
    /// The deployment this one rolled back.
    #[serde(default)]
    pub rollback_of: Option<String>,
    /// When its runner last said it was alive (see [`HEARTBEAT_STALE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<String>,
    /// When a runner last took it over (`resume`, a `--deployment-id` given
    /// again): that runner's process started after [`Self::started_at`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<String>,
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
    /// What its runners obey: paused, aborted, throttled (see `orchestrate pause`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<super::Control>,
    /// Every command given to it, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<super::CommandRecord>,
    /// Its waves so far (a sharded deployment's: each number once, sizes summed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<WaveRecord>,
}

/// One shard of a deployment split across runners, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardPart {
    /// Which shard, as `I/N`.
    pub shard: String,
    /// Where this shard is.
    pub state: DeploymentState,
    /// Who runs it, as in [`DeploymentRecord::runner`].
    pub runner: String,
    /// When this shard started.
    pub started_at: String,
    /// When it ended; `None` while it runs.
    pub finished_at: Option<String>,
    /// Its results, recorded when it ends.
    pub counts: Counts,
    /// When its runner last said it was alive; `None` if never recorded.
    pub heartbeat_at: Option<String>,
    /// When a runner last took it over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<String>,
    /// Its environments (kept for `resume --shard`, not shown).
    #[serde(skip)]
    pub selection: Vec<String>,
    /// Its own options (kept for `resume --shard`: shards may have run with
    /// different timeouts; the whole shows the first shard's).
    #[serde(skip)]
    pub options: super::RecordedOptions,
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

/// Sorts a deployment's environments in the order they were selected.
pub(super) fn in_selection_order(deployment: &DeploymentRecord, environments: &mut [EnvironmentRecord]) {
    let order: std::collections::HashMap<&str, usize> = deployment
        .selection
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    environments.sort_by_key(|e| order.get(e.environment.as_str()).copied().unwrap_or(usize::MAX));
}

/// One record per deployment: a sharded one's parts as a whole (selection
/// and counts summed, running while any shard runs).
pub(super) fn aggregate(mut parts: Vec<DeploymentRecord>) -> Option<DeploymentRecord> {
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
    whole.counts = parts.iter().fold(Counts::default(), |sum, part| sum.plus(part.counts));
    let any = |state: DeploymentState| parts.iter().any(|p| p.state == state);
    whole.state = if any(DeploymentState::Running) {
        DeploymentState::Running
    } else if any(DeploymentState::Interrupted) {
        DeploymentState::Interrupted
    } else {
        DeploymentState::Finished
    };
    whole.started_at = parts.iter().map(|p| p.started_at.clone()).min().unwrap_or_default();
    whole.finished_at = match whole.state {
        DeploymentState::Finished => parts.iter().filter_map(|p| p.finished_at.clone()).max(),
        _ => None,
    };
    whole.runner = parts.iter().map(|p| p.runner.as_str()).collect::<Vec<_>>().join("; ");
    let mut waves: std::collections::BTreeMap<usize, WaveRecord> = Default::default();
    for wave in parts.iter().flat_map(|p| &p.waves) {
        waves
            .entry(wave.number)
            .and_modify(|w| w.environments += wave.environments)
            .or_insert_with(|| wave.clone());
    }
    whole.waves = waves.into_values().collect();
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
            resumed_at: p.resumed_at,
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
        // Its runner took it over when it was resumed, if it was.
        let alive = |state: DeploymentState, runner: &str, taken: &str, heartbeat_at: Option<&str>| {
            state == DeploymentState::Running
                && !crate::migration::holder::holder_is_gone(runner, taken)
                && heartbeat_is_fresh(heartbeat_at)
        };
        let taken = |started: &str, resumed: &Option<String>| resumed.clone().unwrap_or_else(|| started.to_string());
        match self.shards.is_empty() {
            true => alive(
                self.state,
                &self.runner,
                &taken(&self.started_at, &self.resumed_at),
                self.heartbeat_at.as_deref(),
            ),
            false => self.shards.iter().any(|p| {
                alive(
                    p.state,
                    &p.runner,
                    &taken(&p.started_at, &p.resumed_at),
                    p.heartbeat_at.as_deref(),
                )
            }),
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
            resumed_at: part.resumed_at,
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

/// A record as the store returned it.
pub(super) fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, super::StateError> {
    serde_json::from_value(value).map_err(|e| {
        super::StateError::Query(crate::connection::QueryError::unreadable(format!(
            "unreadable deployment record: {e}"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(shard: &str, lock_ttl_s: u64) -> DeploymentRecord {
        DeploymentRecord {
            id: "release-42".into(),
            actor: "ci".into(),
            strategy: "parallel".into(),
            options: super::super::RecordedOptions {
                lock_ttl_s: Some(lock_ttl_s as f64),
                ..Default::default()
            },
            selection: vec![format!("tenant-{shard}")],
            started_at: "2026-12-02T00:00:00Z".into(),
            finished_at: None,
            state: DeploymentState::Interrupted,
            runner: format!("ci@host pid {lock_ttl_s}"),
            counts: Default::default(),
            retry_of: None,
            rollback_of: None,
            heartbeat_at: None,
            resumed_at: None,
            shard: Some(shard.into()),
            shards: Vec::new(),
            plan: Vec::new(),
            plan_changes: Vec::new(),
            control: None,
            commands: Vec::new(),
            waves: Vec::new(),
        }
    }

    /// `resume --shard` runs a shard with the options it ran with, not the first shard's.
    #[test]
    fn a_shard_keeps_its_own_options() {
        let whole = aggregate(vec![shard("1/2", 9), shard("0/2", 7)]).unwrap();
        assert_eq!(whole.options.lock_ttl_s, Some(7.0));
        let second = whole.part("1/2").unwrap();
        assert_eq!(
            (second.options.lock_ttl_s, second.selection),
            (Some(9.0), vec!["tenant-1/2".to_string()])
        );
    }
}
