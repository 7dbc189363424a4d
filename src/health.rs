//! Health of environments: can we connect, sign in, and read the schema? Writes nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::Serialize;

use crate::connection::{self, Client, ConnectionConfig, ConnectionError, QueryError, ReadOnly, open_read_only};
use crate::migration::AppliedMigration;
use crate::migration::history::{read_histories, read_histories_if_all_exist, read_history};
use crate::registry::EnvironmentConfig;

/// Checks run at once: enough to hide latency, few enough that 1,000
/// environments on one server do not time each other out.
pub const CHECK_CONCURRENCY: usize = 32;

/// Default time allowed for one environment's whole check.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthStatus {
    /// The environment's name.
    pub environment: String,
    /// Reachable, signed in and the schema readable. A database without the
    /// history table is healthy (uninitialised).
    pub is_healthy: bool,
    /// The server answered and the session opened.
    pub can_connect: bool,
    /// The credentials were accepted.
    pub authenticated: bool,
    /// `_migration_history` exists in the database.
    pub migration_table_exists: bool,
    /// Why the check failed, secrets scrubbed; `None` when healthy.
    pub error: Option<String>,
    /// When the check ended.
    pub checked_at: DateTime<Utc>,
    /// The SurrealDB version of its server (`3.3.5`, `4.0.0-beta.1`): what
    /// `status` and plans name and scripts read as `env.server_version`;
    /// `None` when it could not be reached or denies the `version` request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<crate::connection::ServerVersion>,
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
            server_version: None,
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
    /// What the check found.
    pub status: HealthStatus,
    /// History rows; `None` when the table (or the database) does not exist.
    pub history: Option<Vec<AppliedMigration>>,
    /// The session the check used, for a deployment to carry on with
    /// (`ReadOnly::Missing(None)` when it left none).
    pub session: ReadOnly,
}

impl Inspection {
    fn healthy(name: &str, history: Option<Vec<AppliedMigration>>, session: ReadOnly) -> Self {
        Self {
            status: HealthStatus {
                environment: name.to_string(),
                is_healthy: true,
                can_connect: true,
                authenticated: true,
                migration_table_exists: history.is_some(),
                error: None,
                checked_at: Utc::now(),
                server_version: None,
            },
            history,
            session,
        }
    }
}

/// Checks environments, each within a timeout, all at once, connecting
/// through its [`Client`].
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// Time allowed for one environment's whole check.
    pub timeout: Duration,
    /// Whose pooled connections and listings the check uses.
    client: Client,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self::with_timeout(DEFAULT_HEALTH_TIMEOUT)
    }
}

impl HealthCheck {
    /// A check with the default timeout (10 s), on a client of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// A check with another timeout, on a client of its own.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            client: Client::new(),
        }
    }

    /// The same check on `client`'s pooled connections and caches (a
    /// coordinator's, see [`MigrationCoordinator::health_check`](crate::MigrationCoordinator::health_check)).
    pub fn with_client(self, client: Client) -> Self {
        Self { client, ..self }
    }

    /// The client the check connects through.
    pub fn client(&self) -> &Client {
        &self.client
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
            session: ReadOnly::Missing(None),
        };
        let check = async {
            let db = match open_read_only(&self.client, &environment.connection, self.timeout).await {
                Ok(ReadOnly::Selected(db)) => db,
                // Reachable and signed in, but nothing was ever applied here.
                Ok(ReadOnly::Missing(session)) => {
                    return Inspection::healthy(name, None, ReadOnly::Missing(session));
                }
                Err(e @ ConnectionError::SignIn { .. }) => {
                    return failed(HealthStatus::unhealthy(name, true, false, e.to_string()));
                }
                Err(e) => return failed(HealthStatus::unhealthy(name, false, false, e.to_string())),
            };
            match read_history(&db).await {
                Ok(history) => Inspection::healthy(name, history, ReadOnly::Selected(db)),
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
            Ok(mut inspection) => {
                inspection.status.server_version = self.known_version(environment, &inspection.status);
                inspection
            }
            Err(_) => failed(HealthStatus::unhealthy(
                name,
                false,
                false,
                self.timed_out(&environment.connection).to_string(),
            )),
        }
    }

    /// The version of `environment`'s server as this check's client learned
    /// it when it connected (no request of its own).
    fn known_version(
        &self,
        environment: &EnvironmentConfig,
        status: &HealthStatus,
    ) -> Option<crate::connection::ServerVersion> {
        status
            .can_connect
            .then(|| connection::known_server_version(&self.client, &environment.connection))
            .flatten()
    }

    fn timed_out(&self, connection: &ConnectionConfig) -> Unanswered {
        Unanswered::TimedOut {
            url: connection.display_url(),
            seconds: self.timeout.as_secs_f64(),
        }
    }

    /// Checks all at once; results keep the input order.
    pub async fn check_environments(&self, environments: &[&EnvironmentConfig]) -> IndexMap<String, HealthStatus> {
        self.read_many(environments)
            .await
            .into_iter()
            .map(|reading| (reading.status.environment.clone(), reading.status))
            .collect()
    }

    /// Health and history of many environments, in input order. Environments
    /// of one server read by a root user are read together, a few hundred
    /// per request (see [`crate::connection::run_in_each_scope`]): 10,000
    /// tenants cost a few dozen round trips, not 50,000. The others are
    /// checked one by one, [`CHECK_CONCURRENCY`] at a time. Writes nothing.
    pub async fn read_many(&self, environments: &[&EnvironmentConfig]) -> Vec<Reading> {
        let mut groups: IndexMap<_, Vec<usize>> = IndexMap::new();
        let mut alone = Vec::new();
        for (index, environment) in environments.iter().enumerate() {
            if connection::reads_many_scopes(&environment.connection) {
                groups
                    .entry(connection::shared_session_key(&environment.connection))
                    .or_default()
                    .push(index);
            } else {
                alone.push(index);
            }
        }
        let mut readings: Vec<Option<Reading>> = (0..environments.len()).map(|_| None).collect();
        let singles = alone.iter().map(|&index| async move {
            let inspection = self.inspect(environments[index]).await;
            (
                index,
                Reading {
                    status: inspection.status,
                    history: inspection.history,
                },
            )
        });
        let grouped = groups.values().map(|indexes| async move {
            let members: Vec<&EnvironmentConfig> = indexes.iter().map(|&i| environments[i]).collect();
            indexes
                .iter()
                .copied()
                .zip(self.read_group(&members).await)
                .collect::<Vec<_>>()
        });
        let (singles, grouped) = tokio::join!(
            crate::concurrent::bounded(singles, CHECK_CONCURRENCY),
            futures::future::join_all(grouped)
        );
        for (index, mut reading) in singles.into_iter().chain(grouped.into_iter().flatten()) {
            reading.status.server_version = self.known_version(environments[index], &reading.status);
            readings[index] = Some(reading);
        }
        filled(readings, environments)
    }

    /// Environments of one server and one root user, read through sessions
    /// that switch scope with `USE` (see [`HealthCheck::read_many`]). First
    /// without asking which databases exist: a request in which every
    /// database exists and has its history answers in one pass (and creates
    /// no namespace or database, see [`connection::run_in_every_scope_or_none`]); the
    /// environments of any other request are read as [`Self::read_listed`] does.
    async fn read_group(&self, environments: &[&EnvironmentConfig]) -> Vec<Reading> {
        let config = &environments[0].connection;
        let indexes: Vec<usize> = (0..environments.len()).collect();
        // Once a sign-in failed, the others are not tried: the listing path
        // below signs in once and reports the error for every tenant.
        let sign_in_failed = &std::sync::atomic::AtomicBool::new(false);
        let requests = indexes.chunks(connection::SCOPES_PER_REQUEST).map(|chunk| async move {
            let read = async {
                if sign_in_failed.load(std::sync::atomic::Ordering::Relaxed) {
                    return None;
                }
                let session = match connection::connect_unscoped(&self.client, config, self.timeout, false).await {
                    Ok(session) => session,
                    Err(_) => {
                        sign_in_failed.store(true, std::sync::atomic::Ordering::Relaxed);
                        return None;
                    }
                };
                let databases = scopes_of(environments, chunk);
                read_histories_if_all_exist(&session, &databases).await.ok().flatten()
            };
            (chunk, tokio::time::timeout(self.timeout, read).await)
        });
        let answered = crate::concurrent::bounded(requests, connection::SCOPE_REQUESTS_AT_ONCE).await;
        let mut readings: Vec<Option<Reading>> = (0..environments.len()).map(|_| None).collect();
        let mut unread = Vec::new();
        for (chunk, answer) in answered {
            match answer {
                Ok(Some(histories)) => {
                    for (&index, history) in chunk.iter().zip(histories) {
                        readings[index] = Some(reading_of(environments[index], Ok(history)));
                    }
                }
                Ok(None) => unread.extend_from_slice(chunk),
                // Not asked again: that would double the time to fail.
                Err(_) => {
                    for &index in chunk {
                        readings[index] = Some(reading_of(environments[index], Err(self.timed_out(config))));
                    }
                }
            }
        }
        if !unread.is_empty() {
            let rest: Vec<&EnvironmentConfig> = unread.iter().map(|&index| environments[index]).collect();
            for (index, reading) in unread.into_iter().zip(self.read_listed(&rest).await) {
                readings[index] = Some(reading);
            }
        }
        filled(readings, environments)
    }

    /// Environments of one server and one root user: which databases exist
    /// first, then the histories of those that do.
    async fn read_listed(&self, environments: &[&EnvironmentConfig]) -> Vec<Reading> {
        let config = &environments[0].connection;
        let all_failed = |can_connect: bool, authenticated: bool, error: String| {
            environments
                .iter()
                .map(|e| Reading::unhealthy(&e.name, can_connect, authenticated, error.clone()))
                .collect::<Vec<_>>()
        };
        let timed_out = self.timed_out(config);
        let configs: Vec<&ConnectionConfig> = environments.iter().map(|e| &e.connection).collect();
        // Each of its requests has its own timeout; one that fails fails only its namespaces.
        let existing = match connection::existing_scopes(&self.client, &configs, self.timeout).await {
            Ok(existing) => existing,
            Err(e @ ConnectionError::SignIn { .. }) => return all_failed(true, false, e.to_string()),
            Err(e) => return all_failed(false, false, e.to_string()),
        };

        let mut readings: Vec<Option<Reading>> = Vec::with_capacity(environments.len());
        let mut initialised = Vec::new();
        for (index, (environment, exists)) in environments.iter().zip(existing).enumerate() {
            readings.push(match exists {
                Ok(true) => {
                    initialised.push(index);
                    None
                }
                // Reachable and signed in, but nothing was ever applied here.
                Ok(false) => Some(Reading::healthy(&environment.name, None)),
                Err(e) => {
                    let error = ConnectionError::Connect {
                        url: config.display_url(),
                        reason: connection::scrub(&e.to_string(), config),
                    };
                    Some(Reading::unhealthy(&environment.name, false, false, error.to_string()))
                }
            });
        }
        // Each request on a session of its own: `USE` changes the session.
        let timed_out = &timed_out;
        let requests = initialised
            .chunks(connection::SCOPES_PER_REQUEST)
            .map(|chunk| async move {
                let read = async {
                    let session = connection::connect_unscoped(&self.client, config, self.timeout, false).await?;
                    let databases = scopes_of(environments, chunk);
                    read_histories(&session, &databases)
                        .await
                        .map_err(|e| ConnectionError::Connect {
                            url: config.display_url(),
                            reason: connection::scrub(&e.to_string(), config),
                        })
                };
                let answers = match tokio::time::timeout(self.timeout, read).await {
                    Ok(Ok(answers)) => answers.into_iter().map(Ok).collect(),
                    Ok(Err(error)) => vec![Err(Unanswered::Failed(Arc::new(error))); chunk.len()],
                    Err(_) => vec![Err(timed_out.clone()); chunk.len()],
                };
                chunk.iter().copied().zip(answers).collect::<Vec<_>>()
            });
        let answered = crate::concurrent::bounded(requests, connection::SCOPE_REQUESTS_AT_ONCE).await;
        for (index, answer) in answered.into_iter().flatten() {
            readings[index] = Some(reading_of(environments[index], answer));
        }
        filled(readings, environments)
    }
}

/// Each environment's reading; one never filled in (a bug) is reported as
/// not read, not a panic.
fn filled(readings: Vec<Option<Reading>>, environments: &[&EnvironmentConfig]) -> Vec<Reading> {
    readings
        .into_iter()
        .zip(environments)
        .map(|(reading, environment)| reading.unwrap_or_else(|| Reading::not_read(&environment.name)))
        .collect()
}

/// (namespace, database) of each of `environments` at `indexes`.
fn scopes_of<'a>(environments: &[&'a EnvironmentConfig], indexes: &[usize]) -> Vec<(&'a str, &'a str)> {
    indexes
        .iter()
        .map(|&i| {
            let connection = &environments[i].connection;
            (connection.db_ns.as_str(), connection.db.as_str())
        })
        .collect()
}

/// Why a request reading many environments' histories gave no answer: each
/// of its environments is unhealthy with it.
#[derive(Debug, Clone, thiserror::Error)]
enum Unanswered {
    /// Shared by the request's environments (it is not `Clone`).
    #[error(transparent)]
    Failed(Arc<ConnectionError>),
    #[error("health check of {url} timed out after {seconds}s")]
    TimedOut { url: String, seconds: f64 },
}

/// The reading of a history read together with others: `Err` when the
/// request did not complete (a connection error), `Ok(Err)` when only this
/// database's read failed.
fn reading_of(
    environment: &EnvironmentConfig,
    answer: Result<Result<Option<Vec<AppliedMigration>>, QueryError>, Unanswered>,
) -> Reading {
    match answer {
        Ok(Ok(history)) => Reading::healthy(&environment.name, history),
        Ok(Err(e)) => Reading::unhealthy(
            &environment.name,
            true,
            true,
            format!(
                "schema not readable: {}",
                connection::scrub(&e.to_string(), &environment.connection)
            ),
        ),
        Err(error) => Reading::unhealthy(&environment.name, false, false, error.to_string()),
    }
}

/// What a check read: the status, and the history (`None` when the database
/// is uninitialised or could not be read).
#[derive(Debug, Clone)]
pub struct Reading {
    /// What the check found.
    pub status: HealthStatus,
    /// History rows; `None` when the database is uninitialised or unreadable.
    pub history: Option<Vec<AppliedMigration>>,
}

impl Reading {
    fn healthy(name: &str, history: Option<Vec<AppliedMigration>>) -> Self {
        let inspection = Inspection::healthy(name, history, ReadOnly::Missing(None));
        Self {
            status: inspection.status,
            history: inspection.history,
        }
    }

    fn unhealthy(name: &str, can_connect: bool, authenticated: bool, error: String) -> Self {
        Self {
            status: HealthStatus::unhealthy(name, can_connect, authenticated, error),
            history: None,
        }
    }

    fn not_read(name: &str) -> Self {
        Self::unhealthy(
            name,
            false,
            false,
            "internal error: this environment was not read".into(),
        )
    }
}
