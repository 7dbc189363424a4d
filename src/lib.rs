//! surql deploys SurrealDB schema migrations: to one database (`migrate`) and,
//! with rollout strategies written in Rhai, to many environments at once.
//!
//! The layers follow DESIGN.md: [`connection`] reaches any SurrealDB endpoint,
//! [`migration`] applies and rolls back on one database, [`config`] and
//! [`registry`] describe the environments, [`engine`] runs the per-environment
//! state machine, [`script`] runs Rhai strategies on it, and [`coordinator`]
//! is the entry point tying them together.

pub mod cli;
mod concurrent;
pub mod config;
pub mod connection;
pub mod coordinator;
pub mod discovery;
pub mod engine;
pub mod error;
pub mod health;
pub mod migration;
pub mod plugin;
pub mod redact;
pub mod registry;
pub mod safety;
pub mod script;

pub use config::{configure_environments, load_environments_file};
pub use connection::{AuthLevel, ConnectionConfig};
pub use coordinator::{DeployRequest, DeploymentReport, EnvironmentStatus, MigrationCoordinator};
pub use engine::{DeployOptions, DeploymentResult, DeploymentStatus};
pub use error::Error;
pub use health::{HealthCheck, HealthStatus};
pub use migration::{Migration, discover_migrations};
pub use registry::{EnvironmentConfig, EnvironmentRegistry};
