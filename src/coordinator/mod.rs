//! `MigrationCoordinator`: the public entry to orchestration. Selects
//! environments, builds the engine, runs the strategy script, and returns one
//! result per selected environment.

mod baseline;
mod estimate;
mod promotion;
mod reconcile;
mod recording;
mod rediscover;
mod rerun;
mod status;

pub use baseline::BaselineOutcome;
pub use estimate::WaveEstimate;
pub use rerun::{Continued, RecordedDeployment, RecordedOverrides, Rerun, RetrySelection};
pub use status::EnvironmentStatus;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use serde_json::json;
use tracing::Instrument;

use crate::config::EnvironmentsFile;
use crate::discovery::Expansion;
use crate::engine::{Approver, DeployOptions, DeploymentResult, DeploymentStatus, Engine, EngineParts, EventSink};
use crate::migration::{ApplyContext, Migration};
use crate::plugin::{PluginError, PluginHost};
use crate::registry::{EnvironmentConfig, EnvironmentRegistry, RegistryError, Shard, deployment_order};
use crate::script::{ScriptError, Strategy, StrategyError, run_strategy};
use crate::state::StateStore;
pub use recording::PreparedDeployment;
use recording::Recording;

/// Loads an environments file and expands its `discover` templates, each
/// server asked within `timeout`.
pub async fn load_environments(
    path: &std::path::Path,
    timeout: Duration,
) -> Result<(EnvironmentsFile, Vec<Expansion>), crate::Error> {
    let mut file = crate::config::load_environments_file(path)?;
    let expansions = crate::discovery::expand_templates(&mut file, timeout)
        .await
        .map_err(|source| crate::Error::Discovery {
            config: path.to_path_buf(),
            source,
        })?;
    Ok((file, expansions))
}

/// What to deploy, where, and how.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// Selection items: names, `all`, `tag:x` (comma-separated or separate).
    pub environments: Vec<String>,
    /// The migrations (see [`crate::migration::discover_migrations`]).
    pub migrations: Vec<Migration>,
    /// A built-in name, a name under `./strategies/`, or a path to a `.rhai` file.
    pub strategy: String,
    /// Where `./strategies/` and relative strategy paths are looked up.
    pub strategy_dir: PathBuf,
    pub options: DeployOptions,
    /// Deployment id, actor and lock lease.
    pub context: ApplyContext,
    /// Results kept from an earlier run of this deployment (`resume`): those
    /// environments are not touched, and the strategy's `envs` leave them out.
    pub kept: Vec<DeploymentResult>,
    /// The deployment this one retries (`retry`), recorded with it.
    pub retry_of: Option<String>,
    /// When this run continues a recorded one (`resume`, a `--deployment-id`
    /// given again): the runner recorded for it. The claim succeeds only if
    /// no other runner took it over since.
    pub recorded_runner: Option<String>,
    /// Differences from the recorded plan accepted for this run (`resume
    /// --force`), recorded with it.
    pub plan_changes: Vec<crate::state::PlanChange>,
    /// This runner's part of the selection when it is split across runners
    /// (`--shard I/N`); every shard records under the same deployment id.
    pub shard: Option<Shard>,
}

impl DeployRequest {
    /// A request with default options and a fresh deployment id.
    pub fn new(environments: &[&str], migrations: Vec<Migration>, strategy: &str) -> Self {
        Self {
            environments: environments.iter().map(|s| s.to_string()).collect(),
            migrations,
            strategy: strategy.to_string(),
            strategy_dir: PathBuf::from("."),
            options: DeployOptions::default(),
            context: ApplyContext::new(),
            kept: Vec::new(),
            retry_of: None,
            shard: None,
            recorded_runner: None,
            plan_changes: Vec::new(),
        }
    }
}

/// A deployment that could not start. Nothing was touched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    #[error(transparent)]
    Selection(#[from] RegistryError),
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    #[error("invalid option: {0}")]
    Option(String),
    /// An environment pinned to a version no migration has.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// Two selected environments are one database: they would share one lock.
    #[error(
        "environments '{first}' and '{second}' are the same database ({database}): deploy it under one name (drop the alias, or narrow the discovery template)"
    )]
    DuplicateTarget {
        first: String,
        second: String,
        database: String,
    },
}

/// Every selected environment's result, and the script error if the strategy failed.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentReport {
    pub deployment_id: String,
    pub strategy: String,
    /// Who ran it (recorded in every history row).
    pub actor: String,
    /// In the order the environments were selected.
    pub results: IndexMap<String, DeploymentResult>,
    /// The waves (`deploy` calls) the strategy made, in order, with their
    /// options and the pauses after them: in a dry run, the rollout as it
    /// would run.
    pub waves: Vec<crate::engine::Wave>,
    /// Set when the strategy failed to compile or run; the environments it did
    /// not reach are SKIPPED with this reason.
    #[serde(skip)]
    pub script_error: Option<ScriptError>,
    /// The run was stopped (Ctrl-C, `Engine::cancel`): environments it did
    /// not start are SKIPPED.
    #[serde(skip)]
    pub interrupted: bool,
    /// The state store could not keep the record (it went away and stayed
    /// away past [`crate::state::STORE_OUTAGE_LIMIT`], or the end could not
    /// be written): why. Environments not started are SKIPPED; `resume`
    /// completes the record from the databases.
    #[serde(skip)]
    pub record_lost: Option<String>,
    /// Why the run was stopped when not by Ctrl-C: an operator's abort
    /// (`aborted by ACTOR: REASON`), or the state store lost.
    #[serde(skip)]
    pub stopped: Option<String>,
    /// A dry run's estimated duration of each wave, from the state store's
    /// past durations (none without a store or a recorded duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimates: Option<Vec<WaveEstimate>>,
}

impl DeploymentReport {
    /// The documented exit code: 5 the record lost, 130 interrupted, 1
    /// aborted, 3 script error, 0 every environment SUCCESS, else 1.
    pub fn exit_code(&self) -> i32 {
        use crate::exit::{EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_RECORD_LOST, EXIT_SCRIPT, EXIT_SUCCESS};
        if self.record_lost.is_some() {
            EXIT_RECORD_LOST
        } else if self.interrupted {
            EXIT_INTERRUPTED
        } else if self.stopped.is_some() {
            EXIT_FAILURE
        } else if self.script_error.is_some() {
            EXIT_SCRIPT
        } else if self.all_succeeded() {
            EXIT_SUCCESS
        } else {
            EXIT_FAILURE
        }
    }

    /// True when every environment is SUCCESS and the script ran to the end.
    pub fn all_succeeded(&self) -> bool {
        self.script_error.is_none() && self.results.values().all(|r| r.status == DeploymentStatus::Success)
    }
}

/// Deploys migrations to the environments of a registry.
pub struct MigrationCoordinator {
    registry: EnvironmentRegistry,
    events: EventSink,
    approver: Option<Arc<dyn Approver>>,
    plugins: Option<Arc<PluginHost>>,
    stop_on_ctrl_c: bool,
    state: Option<Arc<StateStore>>,
    /// The environments file's `max_per_server`, for requests that set none.
    max_per_server: Option<usize>,
    /// The environments file with its templates, when it has some (`--refresh-discovery`).
    discovery: Option<EnvironmentsFile>,
}

impl MigrationCoordinator {
    /// A coordinator over `registry`.
    pub fn new(registry: EnvironmentRegistry) -> Self {
        Self {
            registry,
            events: EventSink::default(),
            approver: None,
            plugins: None,
            stop_on_ctrl_c: false,
            state: None,
            max_per_server: None,
            discovery: None,
        }
    }

    /// Records every deployment (not dry runs or simulations) in `store`:
    /// the deployment, and each environment as its state changes.
    pub fn with_state(mut self, store: Arc<StateStore>) -> Self {
        self.state = Some(store);
        self
    }

    /// A coordinator over an environments file (templates already expanded,
    /// see `load_environments`) with its plugins loaded;
    /// bare plugin paths are relative to `config_dir`.
    pub fn from_file(file: &EnvironmentsFile, config_dir: &Path) -> Result<Self, PluginError> {
        let plugins = PluginHost::load(&file.plugins, config_dir)?;
        let mut coordinator = Self::new(file.registry()).with_plugins(Arc::new(plugins));
        coordinator.max_per_server = file.max_per_server.map(std::num::NonZeroUsize::get);
        coordinator.discovery = (!file.expanded_templates.is_empty()).then(|| file.clone());
        Ok(coordinator)
    }

    /// Ctrl-C during [`PreparedDeployment::run`] starts no new environment and
    /// lets running ones finish or roll back; a second Ctrl-C exits at once
    /// with code 130. For programs that own the process (the CLI).
    pub fn stop_on_ctrl_c(mut self) -> Self {
        self.stop_on_ctrl_c = true;
        self
    }

    /// Approval and notifier plugins (see [`PluginHost::load`]).
    pub fn with_plugins(mut self, plugins: Arc<PluginHost>) -> Self {
        self.plugins = Some(plugins);
        self
    }

    /// Progress events go to `events`.
    pub fn with_events(mut self, events: EventSink) -> Self {
        self.events = events;
        self
    }

    /// Asks `approver` for environments that need approval (after `--approve`/`--yes`).
    pub fn with_approver(mut self, approver: Arc<dyn Approver>) -> Self {
        self.approver = Some(approver);
        self
    }

    /// The registry.
    pub fn registry(&self) -> &EnvironmentRegistry {
        &self.registry
    }

    /// Selected environments, in the order given.
    pub fn select(&self, items: &[String]) -> Result<Vec<EnvironmentConfig>, RegistryError> {
        Ok(self.registry.select(items)?.into_iter().cloned().collect())
    }

    fn validate(options: &DeployOptions, context: &ApplyContext) -> Result<(), CoordinatorError> {
        if context.lock_ttl < crate::migration::lock::MIN_LOCK_TTL {
            return Err(CoordinatorError::Option(format!(
                "the lock lease ({}s) is below the floor of {}s",
                context.lock_ttl.as_secs_f64(),
                crate::migration::lock::MIN_LOCK_TTL.as_secs()
            )));
        }
        if options.batch_size < 1 {
            return Err(CoordinatorError::Option("--batch-size must be at least 1".into()));
        }
        if options.max_concurrent < 1 {
            return Err(CoordinatorError::Option("--max-concurrent must be at least 1".into()));
        }
        if options.max_per_server == Some(0) {
            return Err(CoordinatorError::Option("--max-per-server must be at least 1".into()));
        }
        crate::script::helpers::canary_count(1, options.canary_percent)
            .map_err(|e| CoordinatorError::Option(format!("--canary-percent: {e}")))?;
        Ok(())
    }

    /// Builds the engine for a request: validated options, selected environments.
    /// Use it with [`PreparedDeployment::run`] to keep a handle (for Ctrl-C).
    pub fn prepare(&self, mut request: DeployRequest) -> Result<PreparedDeployment<'_>, CoordinatorError> {
        Self::validate(&request.options, &request.context)?;
        request.options.max_per_server = request.options.max_per_server.or(self.max_per_server);
        let strategy = Strategy::resolve(&request.strategy, &request.strategy_dir)?;
        let mut selected = self.select(&request.environments)?;
        if let Some(shard) = request.shard {
            selected.retain(|e| shard.contains(&e.name));
        }
        let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
        for environment in &selected {
            let identity = crate::connection::database_identity(&environment.connection);
            if let Some(first) = seen.insert(identity.clone(), &environment.name) {
                return Err(CoordinatorError::DuplicateTarget {
                    first: first.to_string(),
                    second: environment.name.clone(),
                    database: crate::redact::redact(&identity),
                });
            }
        }
        let mut approved: Vec<&String> = request.options.approvals.approved.iter().collect();
        approved.sort();
        if let Some(name) = approved.into_iter().find(|name| self.registry.get(name).is_err()) {
            return Err(CoordinatorError::Option(format!(
                "--approve: environment '{name}' is not configured (known: {})",
                crate::registry::some_of(&self.registry.names())
            )));
        }
        // A simulation asks no plugin: approvals are scripted.
        for environment in selected.iter().filter(|_| request.options.simulation.is_none()) {
            for approver in &environment.approvers {
                let loaded = self.plugins.as_ref().is_some_and(|p| p.get(approver).is_some());
                if !loaded {
                    return Err(CoordinatorError::Option(format!(
                        "environment '{}' lists approver '{approver}', which is not a loaded plugin (add it to \"plugins\")",
                        environment.name
                    )));
                }
            }
        }
        for environment in &selected {
            self.promotion_sources(environment)?;
        }
        crate::engine::check_pins(&selected, &request.migrations)?;
        let mut environments = selected.clone();
        deployment_order(&mut environments);
        let recorded = !request.options.dry_run && request.options.simulation.is_none();
        let (events, recording) = match self.state.as_ref().filter(|_| recorded) {
            Some(_) => {
                let id = request.context.deployment_id.clone();
                let shard = request.shard.map(|s| s.to_string());
                let key = crate::state::record_key(&id, shard.as_deref());
                let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
                let recording = Recording {
                    events: Some(receiver),
                    recorder: None,
                    retry_of: request.retry_of.clone(),
                    shard,
                    key,
                    recorded_runner: request.recorded_runner.clone(),
                    plan_changes: request.plan_changes.clone(),
                };
                (EventSink::new(sender), Some(recording))
            }
            None => (self.events.clone(), None),
        };
        let rediscovery = match (request.options.refresh_discovery, &self.discovery) {
            (false, _) => None,
            (true, None) => {
                return Err(CoordinatorError::Option(
                    "--refresh-discovery: the environments file has no discover template to expand again".into(),
                ));
            }
            (true, Some(file)) => Some(rediscover::Rediscovery {
                file: file.clone(),
                selection: request.environments.clone(),
                shard: request.shard,
                timeout: request.options.health_timeout,
            }),
        };
        let engine = Engine::new(EngineParts {
            input_order: selected.iter().map(|e| e.name.clone()).collect(),
            environments,
            migrations: Arc::new(request.migrations),
            options: request.options,
            context: request.context,
            events,
            approver: self.approver.clone(),
        });
        let engine = match &self.plugins {
            Some(plugins) => engine.with_plugins(plugins.clone()),
            None => engine,
        };
        let engine = match rediscovery {
            Some(rediscovery) => engine.with_discoverer(Arc::new(rediscovery)),
            None => engine,
        };
        engine.keep(request.kept);
        engine.set_strategy_name(&strategy.name);
        Ok(PreparedDeployment {
            coordinator: self,
            engine: Arc::new(engine),
            strategy,
            recording,
            claimed: false,
        })
    }

    /// Runs the strategy on its own blocking thread and collects every result.
    async fn run(
        &self,
        engine: Arc<Engine>,
        strategy: Strategy,
        recording: Option<Recording>,
        claimed: bool,
    ) -> DeploymentReport {
        let interrupt = self.stop_on_ctrl_c.then(|| {
            let watched = engine.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    watched.log(
                        "interrupted: finishing running migrations, starting nothing new (Ctrl-C again to quit now)",
                    );
                    watched.cancel();
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(crate::exit::EXIT_INTERRUPTED);
                    }
                }
            })
        });
        let report = self.run_strategy(&engine, strategy, recording, claimed).await;
        if let Some(interrupt) = interrupt {
            interrupt.abort();
            let _ = interrupt.await;
        }
        report
    }

    async fn run_strategy(
        &self,
        engine: &Arc<Engine>,
        strategy: Strategy,
        mut recording: Option<Recording>,
        claimed: bool,
    ) -> DeploymentReport {
        let id = engine.context().deployment_id.clone();
        let claim = match (&mut recording, claimed) {
            (Some(recording), false) => self.claim(engine, &strategy, recording).await,
            _ => Ok(()),
        };
        if let Err(refused) = claim {
            // Another runner holds this deployment or some of these
            // environments: nothing is recorded for this one.
            drop(recording);
            let results = engine.finish(&format!("not deployed: {refused}"));
            return DeploymentReport {
                deployment_id: id,
                actor: engine.context().actor.clone(),
                strategy: strategy.name,
                results,
                waves: Vec::new(),
                script_error: None,
                interrupted: false,
                record_lost: None,
                stopped: None,
                estimates: None,
            };
        }
        self.load_promotions(engine).await;
        let span = tracing::info_span!(
            "deployment",
            deployment_id = %id,
            strategy = %strategy.name,
            actor = %engine.context().actor,
            environments = engine.environments().len(),
            success = tracing::field::Empty,
            failed = tracing::field::Empty,
            rolled_back = tracing::field::Empty,
            skipped = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        engine.set_deployment_span(span.clone());
        let mut report = self.run_recorded(engine, strategy).instrument(span.clone()).await;
        record_outcome(&span, &report);
        if engine.options().dry_run || engine.options().simulation.is_some() {
            report.estimates = self.estimate_waves(&report.waves).await;
        }
        let Some(recording) = recording else {
            return report;
        };
        let mut lost = match recording.recorder {
            Some(recorder) => recorder.stop().await,
            None => None,
        };
        // A store given up on is not waited for again: `resume` completes the record.
        if let Some(store) = self.state.as_ref().filter(|_| lost.is_none()) {
            let results: Vec<&DeploymentResult> = report.results.values().collect();
            let interrupted = report.interrupted || lost.is_some();
            if let Err(error) = store.finish(&id, &recording.key, &results, interrupted).await {
                tracing::warn!(
                    "could not record the end of deployment {id} in {}: {error}",
                    store.url()
                );
                lost.get_or_insert_with(|| format!("could not record the end of the deployment: {error}"));
            }
        }
        report.record_lost = lost;
        crate::migration::holder::note_released(&crate::migration::holder::owner_string(
            &engine.context().actor,
            &id,
            None,
        ));
        report
    }

    async fn run_recorded(&self, engine: &Arc<Engine>, strategy: Strategy) -> DeploymentReport {
        let handle = tokio::runtime::Handle::current();
        engine.notify(
            "deployment_started",
            json!({
                "strategy": strategy.name,
                "environments": engine.environments().iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
                "actor": engine.context().actor,
            }),
        );
        let script_engine = engine.clone();
        let script = strategy.clone();
        let outcome = tokio::task::spawn_blocking(move || run_strategy(&script, script_engine, handle)).await;
        let script_error = match outcome {
            Ok(Ok(())) => None,
            // Ctrl-C stops the script on purpose; that is not a script error.
            Ok(Err(error)) if error.interrupted => None,
            Ok(Err(error)) => Some(error),
            Err(join_error) => Some(ScriptError {
                origin: strategy.origin.clone(),
                line: 0,
                column: 0,
                message: format!("the strategy thread failed: {join_error}"),
                source_line: None,
                interrupted: false,
            }),
        };
        let reason = match (&script_error, engine.is_cancelled()) {
            (_, true) => engine.not_started_reason(),
            (Some(error), _) => format!("not deployed: {error}"),
            (None, _) => format!("not deployed: strategy '{}' did not reach it", strategy.name),
        };
        let results = engine.finish(&reason);
        let count = |status: DeploymentStatus| results.values().filter(|r| r.status == status).count();
        engine.notify(
            "deployment_finished",
            json!({
                "strategy": strategy.name,
                "results": results.values().collect::<Vec<_>>(),
                "success": count(DeploymentStatus::Success),
                "failed": count(DeploymentStatus::Failed),
                "rolled_back": count(DeploymentStatus::RolledBack),
                "skipped": count(DeploymentStatus::Skipped),
                "script_error": script_error.as_ref().map(|e| e.to_string()),
            }),
        );
        engine.finish_notifications();
        DeploymentReport {
            deployment_id: engine.context().deployment_id.clone(),
            actor: engine.context().actor.clone(),
            strategy: strategy.name,
            results,
            waves: engine.waves(),
            script_error,
            interrupted: engine.is_cancelled() && engine.stop_reason().is_none(),
            record_lost: None,
            stopped: engine.stop_reason().map(str::to_string),
            estimates: None,
        }
    }

    /// Deploys `request.migrations` to the selected environments with the
    /// strategy; results keep the input order.
    pub async fn deploy_to_environments(&self, request: DeployRequest) -> Result<DeploymentReport, CoordinatorError> {
        Ok(self.prepare(request)?.run().await)
    }
}

/// The deployment span's counts and status: an error when any environment failed.
fn record_outcome(span: &tracing::Span, report: &DeploymentReport) {
    let count = |status: DeploymentStatus| report.results.values().filter(|r| r.status == status).count();
    span.record("success", count(DeploymentStatus::Success));
    span.record("failed", count(DeploymentStatus::Failed));
    span.record("rolled_back", count(DeploymentStatus::RolledBack));
    span.record("skipped", count(DeploymentStatus::Skipped));
    let failed = report.results.values().any(DeploymentResult::is_failure) || report.script_error.is_some();
    span.record("otel.status_code", if failed { "ERROR" } else { "OK" });
}
