//! surql deploys SurrealDB schema migrations: to one database and, with
//! rollout strategies written in Rhai, to many environments at once.
//!
//! # The API
//!
//! Everything a program needs to deploy is at the crate root, as the user
//! guide's "Programmatic API" describes it: load `environments.json`
//! ([`configure_environments`], which expands `discover` templates and loads
//! plugins) or build an [`EnvironmentRegistry`] by hand, find the migrations
//! ([`discover_migrations`]), deploy with a [`DeployRequest`] through a
//! [`MigrationCoordinator`], watch [`Event`]s, and read each environment's
//! [`DeploymentResult`] or [`EnvironmentStatus`].
//!
//! ```no_run
//! use surql::{DeployRequest, DeploymentStatus, configure_environments, discover_migrations};
//!
//! # async fn deploy() -> Result<(), surql::Error> {
//! let coordinator = configure_environments("environments.json").await?;
//! let migrations = discover_migrations("migrations")?;
//! let mut request = DeployRequest::new(&["staging", "production"], migrations, "sequential");
//! request.options.auto_rollback = true;
//! let report = coordinator.deploy_to_environments(request).await?;
//! for (name, result) in &report.results {
//!     println!("{name}: {} ({} applied)", result.status.label(), result.migrations_applied);
//! }
//! assert!(report.results.values().all(|r| r.status == DeploymentStatus::Success));
//! # Ok(())
//! # }
//! ```
//!
//! Two layers are public for work on ONE database: [`connection`] (connect,
//! run statements, classified [`connection::QueryError`]s) and [`migration`]
//! (parse files, plan, apply and roll back under the lock, read the history),
//! with [`health`] reading a database without creating anything. Everything
//! else (the engine, the Rhai runtime, plugins, discovery) is reached through
//! the coordinator. Errors are one [`Error`] with the CLI's exit code.

mod concurrent;
mod config;
pub mod connection;
mod coordinator;
mod discovery;
mod engine;
pub mod error;
mod exit;
pub mod health;
pub mod migration;
pub mod observe;
mod plugin;
mod policy;
pub mod redact;
mod registry;
mod safety;
mod script;
pub mod state;

#[cfg(test)]
mod fuzz;

pub use config::{
    ConfigError, Discover, DiscoverConnection, EnvironmentTemplate, EnvironmentsFile, StateConnection, json_schema,
    load_environments_file,
};
pub use connection::{AuthLevel, Client, ConnectionConfig, ServerVersion};
pub use coordinator::{
    BaselineOutcome, ClaimOptions, ClaimOutcome, Continued, CoordinatorError, DeployRequest, DeploymentReport,
    EnvironmentStatus, MigrationCoordinator, PreparedDeployment, RecordedDeployment, RecordedOverrides, Rerun,
    RetrySelection, WaveEstimate, load_environments,
};
pub use discovery::{DiscoveryError, Expansion};
pub use engine::{
    ApprovalRequest, ApprovalTarget, Approver, DeployOptions, DeploymentResult, DeploymentStatus, DiscoverFailed,
    Discoverer, Engine, EngineError, EngineParts, EnvironmentPlan, Event, EventSink, FailureBudget, FailureKind,
    GateHalt, PendingMigration, PlanReport, Promotions, UndoTarget, VerifyResult, Wave, WaveOptions,
    simulate::Simulation,
};
pub use error::Error;
pub use health::{HealthCheck, HealthStatus};
pub use migration::{Migration, discover_migrations};
pub use plugin::{GateDecision, LoadedPlugin, Plugin, PluginConfig, PluginError, PluginHost};
pub use policy::{Freeze, FreezeSpec, PolicyError, Verdict, Window, WindowSpec};
pub use registry::{EnvironmentConfig, EnvironmentRegistry, RegistryError, Shard, ShardError, some_of};
pub use safety::{ApprovalDecision, ApprovalPolicy, DestructiveStatement};
pub use script::{ScriptError, Strategy, StrategyError, parse_script_option};

/// Loads an environments file the way `surql orchestrate` does: `${VAR}`s
/// expanded, `discover` templates expanded into environments (each server
/// asked within the default health timeout), plugins loaded from paths
/// relative to the file. The guide's `configure_environments` +
/// `get_registry()`: the registry is [`MigrationCoordinator::registry`].
/// The coordinator owns the client discovery connected through.
pub async fn configure_environments(path: impl AsRef<std::path::Path>) -> Result<MigrationCoordinator, Error> {
    let path = path.as_ref();
    let client = connection::Client::new();
    let file = coordinator::load_environments(&client, path, health::DEFAULT_HEALTH_TIMEOUT)
        .await?
        .0;
    let config_dir = path.parent().unwrap_or(std::path::Path::new("."));
    Ok(MigrationCoordinator::from_file(&file, config_dir)?.with_client(client))
}
