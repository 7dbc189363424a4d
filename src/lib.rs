//! surql deploys SurrealDB schema migrations: to one database (`migrate`) and,
//! with rollout strategies written in Rhai, to many environments at once.
//!
//! The layers follow DESIGN.md: [`connection`] reaches any SurrealDB endpoint,
//! [`migration`] applies and rolls back on one database, [`config`] and
//! [`registry`] describe the environments.

pub mod cli;
pub mod config;
pub mod connection;
pub mod error;
pub mod migration;
pub mod registry;

pub use config::{configure_environments, load_environments_file};
pub use connection::{AuthLevel, ConnectionConfig};
pub use migration::{Migration, discover_migrations};
pub use registry::{EnvironmentConfig, EnvironmentRegistry};
