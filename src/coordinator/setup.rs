//! The coordinator and what it is given: the registry, plugins, the
//! approver, events, the state store; and the client it connects through.

use std::path::Path;
use std::sync::Arc;

use crate::config::EnvironmentsFile;
use crate::connection::Client;
use crate::engine::{Approver, EventSink};
use crate::plugin::{PluginError, PluginHost};
use crate::registry::{EnvironmentConfig, EnvironmentRegistry, RegistryError};
use crate::state::StateStore;

/// Deploys migrations to the environments of a registry.
///
/// It owns one [`Client`] and hands it to everything it drives (the engine,
/// health checks, status and verify reads, discovery again, the strategy's
/// view of round trips): within one coordinator every server and
/// credentials is signed in to once (per pooled connection). Two
/// coordinators share nothing unless given one client ([`Self::with_client`]).
pub struct MigrationCoordinator {
    pub(super) registry: EnvironmentRegistry,
    /// Every connection the coordinator makes goes through it.
    pub(super) client: Client,
    pub(super) events: EventSink,
    pub(super) approver: Option<Arc<dyn Approver>>,
    pub(super) plugins: Option<Arc<PluginHost>>,
    pub(super) stop_on_ctrl_c: bool,
    pub(super) state: Option<Arc<StateStore>>,
    /// The environments file's `max_per_server`, for requests that set none.
    pub(super) max_per_server: Option<usize>,
    /// The environments file with its templates, when it has some (`--refresh-discovery`).
    pub(super) discovery: Option<EnvironmentsFile>,
}

impl MigrationCoordinator {
    /// A coordinator over `registry`.
    pub fn new(registry: EnvironmentRegistry) -> Self {
        Self {
            registry,
            client: Client::new(),
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

    /// Ctrl-C during [`PreparedDeployment::run`](super::PreparedDeployment::run) starts no new environment and
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

    /// Connects through `client` instead of a client of its own: shares its
    /// pooled connections and caches (those of the discovery that loaded the
    /// registry, of the state store, of another coordinator).
    pub fn with_client(mut self, client: Client) -> Self {
        self.client = client;
        self
    }

    /// The client every connection of this coordinator goes through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A health check within `timeout` on this coordinator's client.
    pub fn health_check(&self, timeout: std::time::Duration) -> crate::health::HealthCheck {
        crate::health::HealthCheck::with_timeout(timeout).with_client(self.client.clone())
    }

    /// The registry.
    pub fn registry(&self) -> &EnvironmentRegistry {
        &self.registry
    }

    /// Selected environments, in the order given: names, `all`, `tag:X`, and
    /// `surrealdb:N` (the environments whose server is on major version N,
    /// each server asked once).
    pub async fn select(&self, items: &[String]) -> Result<Vec<EnvironmentConfig>, RegistryError> {
        super::selection::select_environments(
            &self.registry,
            &self.client,
            items,
            crate::health::DEFAULT_HEALTH_TIMEOUT,
        )
        .await
    }
}
