//! Health of environments: can we connect, sign in, and read the schema? Writes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::Serialize;

use surrealdb::Surreal;
use surrealdb::engine::any::Any;

use crate::connection::{ConnectionError, ReadOnly, open_read_only};
use crate::migration::AppliedMigration;
use crate::migration::history::read_history;
use crate::registry::EnvironmentConfig;

/// Checks run at once: enough to hide latency, few enough that 1,000
/// environments on one server do not time each other out.
pub const CHECK_CONCURRENCY: usize = 32;

/// Default time allowed for one environment's whole check.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthStatus {
    pub environment: String,
    /// Reachable, signed in and the schema readable. A database without the
    /// history table is healthy (uninitialised).
    pub is_healthy: bool,
    pub can_connect: bool,
    pub authenticated: bool,
    pub migration_table_exists: bool,
    pub error: Option<String>,
    pub checked_at: DateTime<Utc>,
}

impl HealthStatus {
    fn unhealthy(environment: &str, can_connect: bool, authenticated: bool, error: String) -> Self {
        Self {
            environment: environment.to_string(),
            is_healthy: false,
            can_connect,
            authenticated,
            migration_table_exists: false,
            error: Some(crate::redact::redact(&error)),
            checked_at: Utc::now(),
        }
    }

    /// `Healthy`, `Healthy (uninitialised)` or `Unhealthy`.
    pub fn label(&self) -> &'static str {
        match (self.is_healthy, self.migration_table_exists) {
            (true, true) => "Healthy",
            (true, false) => "Healthy (uninitialised)",
            (false, _) => "Unhealthy",
        }
    }
}

/// A health check with what it read along the way.
pub struct Inspection {
    pub status: HealthStatus,
    /// History rows; `None` when the table (or the database) does not exist.
    pub history: Option<Vec<AppliedMigration>>,
    /// The session the check used, for a deployment to carry on with.
    pub session: Option<Session>,
}

/// A session left by a health check.
pub enum Session {
    /// Namespace and database exist and are selected.
    Selected(Surreal<Any>),
    /// Signed in; namespace or database do not exist yet.
    Unselected(Surreal<Any>),
}

impl Inspection {
    fn healthy(name: &str, history: Option<Vec<AppliedMigration>>, session: Option<Session>) -> Self {
        Self {
            status: HealthStatus {
                environment: name.to_string(),
                is_healthy: true,
                can_connect: true,
                authenticated: true,
                migration_table_exists: history.is_some(),
                error: None,
                checked_at: Utc::now(),
            },
            history,
            session,
        }
    }
}

/// Checks environments, each within a timeout, all at once.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// Time allowed for one environment's whole check.
    pub timeout: Duration,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_HEALTH_TIMEOUT,
        }
    }
}

impl HealthCheck {
    /// A check with the default timeout (10 s).
    pub fn new() -> Self {
        Self::default()
    }

    /// A check with another timeout.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// Checks one environment.
    pub async fn check_environment(&self, environment: &EnvironmentConfig) -> HealthStatus {
        self.inspect(environment).await.status
    }

    /// The health check, keeping what it read: the history (`None` when the
    /// database is uninitialised) and the open session, so a deployment does
    /// not connect and read twice.
    pub async fn inspect(&self, environment: &EnvironmentConfig) -> Inspection {
        let name = &environment.name;
        let failed = |status: HealthStatus| Inspection {
            status,
            history: None,
            session: None,
        };
        let check = async {
            let db = match open_read_only(&environment.connection, self.timeout).await {
                Ok(ReadOnly::Selected(db)) => db,
                // Reachable and signed in, but nothing was ever applied here.
                Ok(ReadOnly::Missing(session)) => {
                    return Inspection::healthy(name, None, session.map(Session::Unselected));
                }
                Err(e @ ConnectionError::SignIn { .. }) => {
                    return failed(HealthStatus::unhealthy(name, true, false, e.to_string()));
                }
                Err(e) => return failed(HealthStatus::unhealthy(name, false, false, e.to_string())),
            };
            match read_history(&db).await {
                Ok(history) => Inspection::healthy(name, history, Some(Session::Selected(db))),
                Err(e) => failed(HealthStatus::unhealthy(
                    name,
                    true,
                    true,
                    format!(
                        "schema not readable: {}",
                        crate::connection::scrub(&e.to_string(), &environment.connection)
                    ),
                )),
            }
        };
        match tokio::time::timeout(self.timeout, check).await {
            Ok(inspection) => inspection,
            Err(_) => failed(HealthStatus::unhealthy(
                name,
                false,
                false,
                format!(
                    "health check of {} timed out after {}s",
                    environment.connection.display_url(),
                    self.timeout.as_secs_f64()
                ),
            )),
        }
    }

    /// Checks all at once; results keep the input order.
    pub async fn check_environments(&self, environments: &[&EnvironmentConfig]) -> IndexMap<String, HealthStatus> {
        let checks = environments.iter().map(|e| self.check_environment(e));
        crate::engine::bounded(checks, CHECK_CONCURRENCY)
            .await
            .into_iter()
            .map(|status| (status.environment.clone(), status))
            .collect()
    }
}
