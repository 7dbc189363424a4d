//! The engine: the shared state of one deployment (its environments,
//! migrations, options, ledger and controls), and how results are recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;

use super::{
    Approver, DeployOptions, DeploymentResult, DeploymentStatus, Discoverer, Event, EventSink, Wave, promotion,
};
use crate::connection::Client;
use crate::migration::{ApplyContext, Migration};
use crate::plugin::{Notifier, PluginHost};
use crate::registry::EnvironmentConfig;
use crate::safety::{ApprovalDecision, DestructiveStatement, destructive_statements};

/// Why a strategy primitive refused its arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A name that is not one of this deployment's environments.
    #[error("environment '{name}' is not part of this deployment")]
    UnknownEnvironment {
        /// The name given.
        name: String,
    },
    /// `to_version` names no migration of this deployment.
    #[error("to_version '{version}' is not the version of any migration of this deployment ({known})")]
    UnknownVersion {
        /// The `to_version` given.
        version: String,
        /// The deployment's migration versions, comma-separated (a long list cut short).
        known: String,
    },
    /// An environment's `pin_version` names no migration of this deployment.
    #[error(
        "environment '{environment}': pin_version '{version}' is not the version of any migration of this deployment ({known}); fix \"pin_version\" in its environments.json entry"
    )]
    UnknownPin {
        /// The environment pinned.
        environment: String,
        /// Its `pin_version`.
        version: String,
        /// The deployment's migration versions, comma-separated (a long list cut short).
        known: String,
    },
}

#[derive(Debug, Default)]
pub(super) struct EnvState {
    pub(super) result: Option<DeploymentResult>,
    /// Migrations (indexes into `migrations`) this run applied, in order.
    pub(super) applied_this_run: Vec<usize>,
    pub(super) running: bool,
    /// A write whose outcome is unknown: nothing may be rolled back on a guess.
    pub(super) outcome_unknown: bool,
    /// SUCCESS up to a wave's `to_version` only: a later wave may go on.
    pub(super) partial: bool,
    /// The result came from an earlier run of this deployment (`resume`).
    pub(super) kept: bool,
    /// What its approvers (or the person) decided, asked once for its group.
    pub(super) approval: Option<ApprovalDecision>,
}

/// Shared state of one deployment. Primitives are `async` methods; the script
/// layer calls them through `Handle::block_on`.
pub struct Engine {
    /// Names in the order the user selected them (the order of results).
    pub(super) input_order: std::sync::RwLock<Vec<String>>,
    /// Environments in deployment order (the order of `envs`).
    /// (Behind a lock: tenants discovered mid-run join, `--refresh-discovery`.)
    pub(super) environments: std::sync::RwLock<IndexMap<String, Arc<EnvironmentConfig>>>,
    pub(super) migrations: Arc<Vec<Migration>>,
    pub(super) destructive: Vec<Vec<DestructiveStatement>>,
    pub(super) options: DeployOptions,
    pub(super) context: ApplyContext,
    /// Every connection of the deployment is made through it.
    pub(super) client: Client,
    pub(super) events: EventSink,
    pub(super) approver: Option<Arc<dyn Approver>>,
    pub(super) plugins: Option<Arc<PluginHost>>,
    pub(super) notifier: Mutex<Option<Notifier>>,
    pub(super) ledger: Mutex<HashMap<String, EnvState>>,
    /// The SurrealQL of each migration as a dry run shows it, rendered once.
    pub(super) scripts: Mutex<HashMap<(usize, crate::migration::script::StartClock), Arc<str>>>,
    /// Set once by Ctrl-C; a watch so a running batch can be told at once.
    pub(super) cancelled: tokio::sync::watch::Sender<bool>,
    /// Why the run stopped when it was not Ctrl-C (the state store lost).
    pub(super) stop_reason: std::sync::OnceLock<String>,
    /// While set, no new environment starts (the state store unreachable);
    /// running ones go on.
    pub(super) held: tokio::sync::watch::Sender<std::collections::BTreeMap<String, String>>,
    /// Promotion rules and what they were promoted by (see `promotion.rs`).
    pub(super) promotions: std::sync::OnceLock<promotion::Promotions>,
    /// Finds tenants created since the deployment started (`--refresh-discovery`).
    pub(super) discoverer: std::sync::OnceLock<Arc<dyn Discoverer>>,
    /// An operator's throttle, overriding every wave's concurrency.
    pub(super) throttle: tokio::sync::watch::Sender<Option<usize>>,
    /// The waves (`deploy` calls) so far, with the pauses between them.
    pub(super) waves: Mutex<Vec<Wave>>,
    /// The strategy's name, for approvers and gates.
    pub(super) strategy: std::sync::OnceLock<String>,
    /// The deployment's tracing span, parent of its waves (see `trace.rs`).
    pub(super) span: std::sync::OnceLock<tracing::Span>,
    /// Servers asked their version for scripts, by URL, unanswered ones
    /// too: a script reads `env.server_version` often, and asks once.
    pub(super) asked_versions: Mutex<HashMap<String, Option<crate::connection::ServerVersion>>>,
}

/// What an engine is made of.
pub struct EngineParts {
    /// The selection as the user gave it: results come back in this order.
    pub input_order: Vec<String>,
    /// The environments, in deployment order.
    pub environments: Vec<EnvironmentConfig>,
    /// The migration files, in version order.
    pub migrations: Arc<Vec<Migration>>,
    /// How the deployment runs.
    pub options: DeployOptions,
    /// Its deployment id and actor, lock lease and order policy.
    pub context: ApplyContext,
    /// Whose pooled connections and caches the deployment uses (its
    /// coordinator's): health checks, deploying and probing share them.
    pub client: Client,
    /// Where progress events go.
    pub events: EventSink,
    /// The person's prompt, for environments needing approval that have no
    /// plugin `approvers` and no `--approve`/`--yes` answer; `None` denies them.
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
            client,
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
            client,
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
            asked_versions: Mutex::default(),
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
    pub(super) fn notifying(&self) -> bool {
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

    pub(super) fn announce(&self, result: &DeploymentResult) {
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

    pub(super) fn strategy_name(&self) -> String {
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

    /// The client every connection of the deployment is made through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A health check within the deployment's health timeout, on its client.
    pub(super) fn health_check(&self) -> crate::health::HealthCheck {
        crate::health::HealthCheck::with_timeout(self.options.health_timeout).with_client(self.client.clone())
    }

    /// The migrations this deployment applies.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// Selected environments, in deployment order (those that joined late last).
    pub fn environments(&self) -> Vec<Arc<EnvironmentConfig>> {
        self.environment_map().values().cloned().collect()
    }

    pub(super) fn environment_map(&self) -> std::sync::RwLockReadGuard<'_, IndexMap<String, Arc<EnvironmentConfig>>> {
        self.environments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `name` is one of this deployment's environments.
    pub(super) fn has_environment(&self, name: &str) -> bool {
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

    pub(super) fn ledger(&self) -> std::sync::MutexGuard<'_, HashMap<String, EnvState>> {
        self.ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The exact SurrealQL of migration `index`, shared by every plan that shows it.
    pub(super) fn up_script(&self, index: usize, clock: crate::migration::script::StartClock) -> Arc<str> {
        let mut scripts = self.scripts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        scripts
            .entry((index, clock))
            .or_insert_with(|| crate::migration::script::up_script(&self.migrations[index], clock).into())
            .clone()
    }

    /// How many migrations this run has applied on `name` (and not rolled back).
    pub(super) fn applied_count(&self, name: &str) -> usize {
        self.ledger().get(name).map_or(0, |s| s.applied_this_run.len())
    }

    /// SUCCESS up to a wave's `to_version` only: a later wave goes on.
    pub(super) fn is_partial(&self, name: &str) -> bool {
        self.ledger().get(name).is_some_and(|s| s.partial)
    }

    /// Environments with a final result so far, and how many there are.
    pub(super) fn progress(&self) -> (usize, usize) {
        let ledger = self.ledger();
        (ledger.values().filter(|s| s.result.is_some()).count(), ledger.len())
    }

    /// The final result of `name`, if it has one.
    pub fn result_of(&self, name: &str) -> Option<DeploymentResult> {
        self.ledger().get(name).and_then(|s| s.result.clone())
    }

    /// Records a final result (first one wins) and announces it.
    pub(super) fn record(&self, result: DeploymentResult) -> DeploymentResult {
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
}
