//! The engine behind every strategy primitive: one per-environment state
//! machine (gates, lock, apply, rollback), concurrency bounds, and the ledger
//! that gives every selected environment exactly one result. Knows nothing of Rhai.

mod approval;
mod control;
mod env_run;
pub mod event;
mod gate;
mod guard;
mod join;
mod ledger;
mod plan;
mod policy;
mod promotion;
mod recorded_rollback;
pub mod result;
mod schedule;
pub mod simulate;
mod stop;
mod trace;
mod undo;
mod verify;
pub mod wave;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use crate::health::{HealthCheck, HealthStatus};
use crate::migration::{ApplyContext, Migration};
use crate::plugin::{Notifier, PluginHost};
use crate::registry::EnvironmentConfig;
use crate::safety::{ApprovalDecision, ApprovalPolicy, DestructiveStatement, destructive_statements};
pub use approval::{ApprovalRequest, ApprovalTarget, Approver, PendingMigration};
pub use event::{Event, EventSink};
pub use gate::GateHalt;
pub use join::Discoverer;
pub use plan::PlanReport;
pub use policy::check_pins;
pub use promotion::Promotions;
pub use result::{DeploymentResult, DeploymentStatus, EnvironmentPlan, FailureKind};
pub use wave::{FailureBudget, Wave, WaveOptions};

/// Options of one deployment, as the guide names them.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Rolling: environments per batch.
    pub batch_size: usize,
    /// Canary: percentage deployed first (0 < p ≤ 100).
    pub canary_percent: f64,
    /// Parallel: environments deployed at once.
    pub max_concurrent: usize,
    /// Check health before deploying each environment.
    pub verify_health: bool,
    /// Roll back what this run applied when an environment fails.
    pub auto_rollback: bool,
    /// Plan only; write nothing anywhere.
    pub dry_run: bool,
    /// Time allowed for one health check.
    pub health_timeout: Duration,
    /// Time allowed to connect and sign in.
    pub connect_timeout: Duration,
    /// Time allowed for any one query, one migration's transaction included.
    pub operation_timeout: Duration,
    /// Approvals given up front (`--approve`, `--yes`) and whether to prompt.
    pub approvals: ApprovalPolicy,
    /// Custom values for scripts (`--set key=value`).
    pub extra: IndexMap<String, serde_json::Value>,
    /// Total time a strategy may spend in `pause` (`--max-pause`).
    pub max_pause: Duration,
    /// Failures after which a `deploy` call starts no more environments
    /// (`--max-failures`); a script's `deploy` may set its own.
    pub max_failures: Option<FailureBudget>,
    /// Answer every primitive from scripted outcomes and touch no database
    /// (`surql strategy simulate`).
    pub simulation: Option<Arc<simulate::Simulation>>,
    /// Instead of deploying, roll back what one recorded deployment applied
    /// (`surql orchestrate rollback ID`): each `deploy` call undoes it.
    pub undo: Option<UndoTarget>,
    /// At most this many environments at once against one database server
    /// (`--max-per-server`); a script's `deploy` may set its own.
    pub max_per_server: Option<usize>,
    /// New environments on a server whose recent round trips pass this wait
    /// until it recovers (`--max-server-latency-ms`).
    pub max_server_latency: Option<Duration>,
    /// Expand the discovery templates again before each wave: tenants
    /// created meanwhile join (`--refresh-discovery`).
    pub refresh_discovery: bool,
    /// Deploy frozen environments anyway, for this reason (`--override-freeze
    /// REASON`): recorded with who gave it, logged for each one deployed.
    pub override_freeze: Option<String>,
}

/// The deployment a rollback undoes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoTarget {
    pub deployment_id: String,
    /// Roll back although a later deployment applied on top there.
    pub force: bool,
}

impl DeployOptions {
    /// The timeouts of every session this deployment opens.
    pub fn timeouts(&self) -> crate::connection::Timeouts {
        crate::connection::Timeouts {
            connect: self.connect_timeout,
            operation: self.operation_timeout,
        }
    }
}

impl Default for DeployOptions {
    fn default() -> Self {
        Self {
            batch_size: 1,
            canary_percent: 10.0,
            max_concurrent: 5,
            verify_health: true,
            auto_rollback: true,
            dry_run: false,
            health_timeout: crate::health::DEFAULT_HEALTH_TIMEOUT,
            connect_timeout: crate::connection::DEFAULT_CONNECT_TIMEOUT,
            operation_timeout: crate::connection::DEFAULT_OPERATION_TIMEOUT,
            approvals: ApprovalPolicy::default(),
            extra: IndexMap::new(),
            max_pause: Duration::from_secs(86_400),
            max_failures: None,
            simulation: None,
            undo: None,
            max_per_server: None,
            max_server_latency: None,
            refresh_discovery: false,
            override_freeze: None,
        }
    }
}

use crate::concurrent::bounded;

/// Why a strategy primitive refused its arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A name that is not one of this deployment's environments.
    #[error("environment '{name}' is not part of this deployment")]
    UnknownEnvironment { name: String },
    /// `to_version` names no migration of this deployment.
    #[error("to_version '{version}' is not the version of any migration of this deployment ({known})")]
    UnknownVersion { version: String, known: String },
    /// An environment's `pin_version` names no migration of this deployment.
    #[error(
        "environment '{environment}': pin_version '{version}' is not the version of any migration of this deployment ({known}); fix \"pin_version\" in its environments.json entry"
    )]
    UnknownPin {
        environment: String,
        version: String,
        known: String,
    },
}

/// The outcome of `verify`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyResult {
    pub environment: String,
    pub ok: bool,
    pub error: Option<String>,
    /// The verify statement that did not hold, with its file and line.
    pub failure: Option<crate::migration::verify::VerifyFailure>,
}

#[derive(Debug, Default)]
struct EnvState {
    result: Option<DeploymentResult>,
    /// Migrations (indexes into `migrations`) this run applied, in order.
    applied_this_run: Vec<usize>,
    running: bool,
    /// A write whose outcome is unknown: nothing may be rolled back on a guess.
    outcome_unknown: bool,
    /// SUCCESS up to a wave's `to_version` only: a later wave may go on.
    partial: bool,
    /// The result came from an earlier run of this deployment (`resume`).
    kept: bool,
    /// What its approvers (or the person) decided, asked once for its group.
    approval: Option<ApprovalDecision>,
}

/// Shared state of one deployment. Primitives are `async` methods; the script
/// layer calls them through `Handle::block_on`.
pub struct Engine {
    /// Names in the order the user selected them (the order of results).
    input_order: std::sync::RwLock<Vec<String>>,
    /// Environments in deployment order (the order of `envs`).
    /// (Behind a lock: tenants discovered mid-run join, `--refresh-discovery`.)
    environments: std::sync::RwLock<IndexMap<String, Arc<EnvironmentConfig>>>,
    migrations: Arc<Vec<Migration>>,
    destructive: Vec<Vec<DestructiveStatement>>,
    options: DeployOptions,
    context: ApplyContext,
    events: EventSink,
    approver: Option<Arc<dyn Approver>>,
    plugins: Option<Arc<PluginHost>>,
    notifier: Mutex<Option<Notifier>>,
    ledger: Mutex<HashMap<String, EnvState>>,
    /// The SurrealQL of each migration as a dry run shows it, rendered once.
    scripts: Mutex<HashMap<(usize, crate::migration::script::StartClock), Arc<str>>>,
    /// Set once by Ctrl-C; a watch so a running batch can be told at once.
    cancelled: tokio::sync::watch::Sender<bool>,
    /// Why the run stopped when it was not Ctrl-C (the state store lost).
    stop_reason: std::sync::OnceLock<String>,
    /// While set, no new environment starts (the state store unreachable);
    /// running ones go on.
    held: tokio::sync::watch::Sender<std::collections::BTreeMap<String, String>>,
    /// Promotion rules and what they were promoted by (see `promotion.rs`).
    promotions: std::sync::OnceLock<promotion::Promotions>,
    /// Finds tenants created since the deployment started (`--refresh-discovery`).
    discoverer: std::sync::OnceLock<Arc<dyn Discoverer>>,
    /// An operator's throttle, overriding every wave's concurrency.
    throttle: tokio::sync::watch::Sender<Option<usize>>,
    /// The waves (`deploy` calls) so far, with the pauses between them.
    waves: Mutex<Vec<Wave>>,
    /// The strategy's name, for approvers and gates.
    strategy: std::sync::OnceLock<String>,
    /// The deployment's tracing span, parent of its waves (see `trace.rs`).
    span: std::sync::OnceLock<tracing::Span>,
}

/// What an engine is made of.
pub struct EngineParts {
    /// The selection as the user gave it: results come back in this order.
    pub input_order: Vec<String>,
    /// The environments, in deployment order.
    pub environments: Vec<EnvironmentConfig>,
    pub migrations: Arc<Vec<Migration>>,
    pub options: DeployOptions,
    pub context: ApplyContext,
    pub events: EventSink,
    pub approver: Option<Arc<dyn Approver>>,
}

impl Engine {
    /// An engine for `parts.environments` (in deployment order); results
    /// come back in `parts.input_order`.
    pub fn new(parts: EngineParts) -> Self {
        let EngineParts {
            input_order,
            environments,
            migrations,
            options,
            context,
            events,
            approver,
        } = parts;
        let destructive = migrations.iter().map(destructive_statements).collect();
        let ledger = environments
            .iter()
            .map(|e| (e.name.clone(), EnvState::default()))
            .collect();
        Self {
            input_order: std::sync::RwLock::new(input_order),
            environments: std::sync::RwLock::new(
                environments
                    .into_iter()
                    .map(|e| (e.name.clone(), Arc::new(e)))
                    .collect(),
            ),
            migrations,
            destructive,
            options,
            context,
            events,
            approver,
            plugins: None,
            notifier: Mutex::new(None),
            ledger: Mutex::new(ledger),
            scripts: Mutex::default(),
            cancelled: tokio::sync::watch::Sender::new(false),
            stop_reason: std::sync::OnceLock::new(),
            held: tokio::sync::watch::Sender::new(Default::default()),
            throttle: tokio::sync::watch::Sender::new(None),
            discoverer: std::sync::OnceLock::new(),
            promotions: std::sync::OnceLock::new(),
            waves: Mutex::default(),
            strategy: std::sync::OnceLock::new(),
            span: std::sync::OnceLock::new(),
        }
    }

    /// Plugins answer `approvers` and receive notifications (not in a dry run).
    pub fn with_plugins(mut self, plugins: Arc<PluginHost>) -> Self {
        if !self.options.dry_run && !plugins.is_empty() {
            let events = self.events.clone();
            let notifier = Notifier::start(
                plugins.clone(),
                Arc::new(move |message: String| events.send(Event::Log { message })),
            );
            self.notifier = Mutex::new(Some(notifier));
        }
        self.plugins = Some(plugins);
        self
    }

    /// Sends a notification to every notifier plugin (queued, in order).
    pub fn notify(&self, name: &str, fields: serde_json::Value) {
        let mut fields = fields;
        if let Some(map) = fields.as_object_mut() {
            map.insert("deployment_id".into(), self.context.deployment_id.clone().into());
        }
        if let Some(notifier) = self
            .notifier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            notifier.send(crate::plugin::event(name, crate::redact::redact_json(fields)));
        }
    }

    /// Whether any plugin receives notifications: building one costs nothing otherwise.
    fn notifying(&self) -> bool {
        self.notifier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    /// Delivers the queued notifications and stops the notifier.
    pub fn finish_notifications(&self) {
        if let Some(mut notifier) = self
            .notifier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            notifier.finish();
        }
    }

    fn announce(&self, result: &DeploymentResult) {
        self.events.send(Event::Finished { result: result.clone() });
        let fields = serde_json::json!({ "environment": result.environment, "result": result });
        self.notify("environment_finished", fields.clone());
        if result.status == DeploymentStatus::RolledBack {
            self.notify("rollback", fields);
        }
    }

    /// Names the strategy running this deployment (what approvers and gates are told).
    pub fn set_strategy_name(&self, name: &str) {
        let _ = self.strategy.set(name.to_string());
    }

    fn strategy_name(&self) -> String {
        self.strategy.get().cloned().unwrap_or_default()
    }

    /// The deployment's options.
    pub fn options(&self) -> &DeployOptions {
        &self.options
    }

    /// The deployment id and actor.
    pub fn context(&self) -> &ApplyContext {
        &self.context
    }

    /// The migrations this deployment applies.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// Selected environments, in deployment order (those that joined late last).
    pub fn environments(&self) -> Vec<Arc<EnvironmentConfig>> {
        self.environment_map().values().cloned().collect()
    }

    fn environment_map(&self) -> std::sync::RwLockReadGuard<'_, IndexMap<String, Arc<EnvironmentConfig>>> {
        self.environments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `name` is one of this deployment's environments.
    fn has_environment(&self, name: &str) -> bool {
        self.environment_map().contains_key(name)
    }

    /// Sends a log line to the event stream.
    pub fn log(&self, message: impl Into<String>) {
        self.events.send(Event::Log {
            message: crate::redact::redact(&message.into()),
        });
    }

    pub(crate) fn environment(&self, name: &str) -> Result<Arc<EnvironmentConfig>, EngineError> {
        self.environment_map()
            .get(name)
            .cloned()
            .ok_or_else(|| EngineError::UnknownEnvironment { name: name.to_string() })
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, HashMap<String, EnvState>> {
        self.ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The exact SurrealQL of migration `index`, shared by every plan that shows it.
    fn up_script(&self, index: usize, clock: crate::migration::script::StartClock) -> Arc<str> {
        let mut scripts = self.scripts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        scripts
            .entry((index, clock))
            .or_insert_with(|| crate::migration::script::up_script(&self.migrations[index], clock).into())
            .clone()
    }

    /// How many migrations this run has applied on `name` (and not rolled back).
    fn applied_count(&self, name: &str) -> usize {
        self.ledger().get(name).map_or(0, |s| s.applied_this_run.len())
    }

    /// SUCCESS up to a wave's `to_version` only: a later wave goes on.
    fn is_partial(&self, name: &str) -> bool {
        self.ledger().get(name).is_some_and(|s| s.partial)
    }

    /// Environments with a final result so far, and how many there are.
    fn progress(&self) -> (usize, usize) {
        let ledger = self.ledger();
        (ledger.values().filter(|s| s.result.is_some()).count(), ledger.len())
    }

    /// The final result of `name`, if it has one.
    pub fn result_of(&self, name: &str) -> Option<DeploymentResult> {
        self.ledger().get(name).and_then(|s| s.result.clone())
    }

    /// Records a final result (first one wins) and announces it.
    fn record(&self, result: DeploymentResult) -> DeploymentResult {
        let mut ledger = self.ledger();
        let state = ledger.entry(result.environment.clone()).or_default();
        state.running = false;
        if let Some(existing) = &state.result {
            return existing.clone();
        }
        state.result = Some(result.clone());
        drop(ledger);
        self.announce(&result);
        result
    }

    /// `health(envs)`: concurrent health checks.
    pub async fn health(&self, names: &[String]) -> Result<Vec<HealthStatus>, EngineError> {
        let environments = names
            .iter()
            .map(|n| self.environment(n))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(simulation) = &self.options.simulation {
            return Ok(environments.iter().map(|e| simulation.health(e)).collect());
        }
        let check = HealthCheck::with_timeout(self.options.health_timeout);
        let refs: Vec<&EnvironmentConfig> = environments.iter().map(|e| &**e).collect();
        Ok(check.check_environments(&refs).await.into_values().collect())
    }

    /// Marks `name` as holding a write of unknown outcome: the `rollback`
    /// primitive leaves it alone. Returns how many migrations this run applied there.
    fn mark_outcome_unknown(&self, name: &str) -> usize {
        let mut ledger = self.ledger();
        let state = ledger.entry(name.to_string()).or_default();
        state.outcome_unknown = true;
        state.applied_this_run.len()
    }

    fn note_applied(&self, name: &str, migration_index: usize) {
        self.ledger()
            .entry(name.to_string())
            .or_default()
            .applied_this_run
            .push(migration_index);
    }

    /// `rollback(envs)`: rolls back what THIS run applied on each environment,
    /// newest first. Environments where this run applied nothing keep their result.
    pub async fn rollback(&self, names: &[String], reason: &str) -> Result<Vec<DeploymentResult>, EngineError> {
        for name in names {
            self.environment(name)?;
        }
        let runs = names.iter().map(|name| async move {
            if self.options.simulation.is_some() {
                return self.simulated_rollback(name, reason);
            }
            let (applied, outcome_unknown) = {
                let mut ledger = self.ledger();
                let state = ledger.entry(name.clone()).or_default();
                if state.outcome_unknown {
                    (Vec::new(), true)
                } else {
                    (std::mem::take(&mut state.applied_this_run), false)
                }
            };
            if applied.is_empty() || outcome_unknown || self.options.dry_run {
                return self
                    .result_of(name)
                    .unwrap_or_else(|| self.record(DeploymentResult::skipped(name, reason)));
            }
            let Ok(environment) = self.environment(name) else {
                return self
                    .result_of(name)
                    .unwrap_or_else(|| self.record(DeploymentResult::skipped(name, reason)));
            };
            let started = self
                .result_of(name)
                .map(|r| r.started_at)
                .unwrap_or_else(chrono::Utc::now);
            let result = undo::roll_back_run(self, &environment, &applied, reason, started).await;
            // Replace the earlier (successful) result with the rollback's.
            let mut ledger = self.ledger();
            let state = ledger.entry(name.clone()).or_default();
            state.result = Some(result.clone());
            drop(ledger);
            self.announce(&result);
            result
        });
        // Bounded like `deploy`: rolling back a wave of thousands must not open thousands of sessions at once.
        Ok(bounded(runs, self.options.max_concurrent).await)
    }

    /// A simulated `rollback`: what succeeded is ROLLED_BACK.
    fn simulated_rollback(&self, name: &str, reason: &str) -> DeploymentResult {
        match self.result_of(name) {
            Some(result) if result.status == DeploymentStatus::Success => {
                let rolled_back = DeploymentResult::finished(
                    name,
                    DeploymentStatus::RolledBack,
                    0,
                    Some(format!("{reason} (simulated)")),
                    result.started_at,
                );
                self.ledger().entry(name.to_string()).or_default().result = Some(rolled_back.clone());
                self.announce(&rolled_back);
                rolled_back
            }
            Some(result) => result,
            None => self.record(DeploymentResult::skipped(name, reason)),
        }
    }

    /// `skip(envs, reason)`: SKIPPED for each environment that has no result yet.
    pub fn skip(&self, names: &[String], reason: &str) -> Result<Vec<DeploymentResult>, EngineError> {
        names
            .iter()
            .map(|name| {
                self.environment(name)?;
                Ok(self
                    .result_of(name)
                    .unwrap_or_else(|| self.record(DeploymentResult::skipped(name, reason))))
            })
            .collect()
    }

    /// Health and history of `names` (see [`HealthCheck::read_many`]), in order.
    async fn read(
        &self,
        names: &[String],
    ) -> Result<(Vec<Arc<EnvironmentConfig>>, Vec<crate::health::Reading>), EngineError> {
        let environments = names
            .iter()
            .map(|n| self.environment(n))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&EnvironmentConfig> = environments.iter().map(|e| &**e).collect();
        let readings = HealthCheck::with_timeout(self.options.health_timeout)
            .read_many(&refs)
            .await;
        Ok((environments, readings))
    }

    /// `verify(envs)`: healthy, and the history holds every migration file with
    /// a matching checksum.
    pub async fn verify(&self, names: &[String]) -> Result<Vec<VerifyResult>, EngineError> {
        if let Some(simulation) = &self.options.simulation {
            return names
                .iter()
                .map(|n| Ok(simulation.verify(self, &*self.environment(n)?)))
                .collect();
        }
        let (environments, readings) = self.read(names).await?;
        let checks = readings
            .into_iter()
            .zip(environments)
            .map(|(reading, environment)| async move { verify::verify(self, &environment, reading).await });
        Ok(bounded(checks, crate::health::CHECK_CONCURRENCY).await)
    }
}
