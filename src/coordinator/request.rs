//! What a deployment is asked to do, the checks of its options, and why one
//! could not start.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::EnvironmentsFile;
use crate::discovery::Expansion;
use crate::engine::{DeployOptions, DeploymentResult};
use crate::migration::{ApplyContext, Migration};
use crate::registry::{RegistryError, Shard};
use crate::script::StrategyError;

/// Loads an environments file and expands its `discover` templates, each
/// server asked within `timeout` through `client` (give the coordinator made
/// from the file the same one, [`MigrationCoordinator::with_client`](super::MigrationCoordinator::with_client),
/// and it signs in to them no more).
pub async fn load_environments(
    client: &crate::connection::Client,
    path: &std::path::Path,
    timeout: Duration,
) -> Result<(EnvironmentsFile, Vec<Expansion>), crate::Error> {
    let mut file = crate::config::load_environments_file(path)?;
    let expansions = crate::discovery::expand_templates(client, &mut file, timeout)
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
    /// How to deploy: strategy settings, timeouts, approvals, dry run.
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
    /// The selection names an unknown environment or tag, or selects nothing.
    #[error(transparent)]
    Selection(#[from] RegistryError),
    /// The strategy could not be found or read.
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    /// An option out of range (batch size, concurrency, canary percentage,
    /// lock lease): what is wrong with it.
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
        /// The environment selected first.
        first: String,
        /// The later one reaching the same database.
        second: String,
        /// The database both reach: server, namespace and database, secrets masked.
        database: String,
    },
}

/// The options a deployment cannot start with.
pub(super) fn validate(options: &DeployOptions, context: &ApplyContext) -> Result<(), CoordinatorError> {
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
