//! Health of environments: can we connect, sign in, and read the schema? Writes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::json;

use crate::connection::{ConnectionError, connect_read_only, run_query};
use crate::migration::history_table_exists;
use crate::registry::EnvironmentConfig;

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
        let name = &environment.name;
        let check = async {
            let db = match connect_read_only(&environment.connection, self.timeout).await {
                Ok(Some(db)) => db,
                Ok(None) => {
                    // Reachable and signed in, but nothing was ever applied here.
                    return HealthStatus {
                        environment: name.clone(),
                        is_healthy: true,
                        can_connect: true,
                        authenticated: true,
                        migration_table_exists: false,
                        error: None,
                        checked_at: Utc::now(),
                    };
                }
                Err(e @ ConnectionError::SignIn { .. }) => {
                    return HealthStatus::unhealthy(name, true, false, e.to_string());
                }
                Err(e) => return HealthStatus::unhealthy(name, false, false, e.to_string()),
            };
            let readable = run_query(&db, "INFO FOR DB;", json!({})).await;
            match (readable, history_table_exists(&db).await) {
                (Ok(_), Ok(exists)) => HealthStatus {
                    environment: name.clone(),
                    is_healthy: true,
                    can_connect: true,
                    authenticated: true,
                    migration_table_exists: exists,
                    error: None,
                    checked_at: Utc::now(),
                },
                (Err(e), _) | (_, Err(e)) => HealthStatus::unhealthy(
                    name,
                    true,
                    true,
                    format!(
                        "schema not readable: {}",
                        crate::connection::scrub(&e.to_string(), &environment.connection)
                    ),
                ),
            }
        };
        match tokio::time::timeout(self.timeout, check).await {
            Ok(status) => status,
            Err(_) => HealthStatus::unhealthy(
                name,
                false,
                false,
                format!(
                    "health check of {} timed out after {}s",
                    environment.connection.display_url(),
                    self.timeout.as_secs_f64()
                ),
            ),
        }
    }

    /// Checks all at once; results keep the input order.
    pub async fn check_environments(&self, environments: &[&EnvironmentConfig]) -> IndexMap<String, HealthStatus> {
        let checks = environments.iter().map(|e| self.check_environment(e));
        futures::future::join_all(checks)
            .await
            .into_iter()
            .map(|status| (status.environment.clone(), status))
            .collect()
    }
}
