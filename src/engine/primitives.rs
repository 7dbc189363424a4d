//! The read and undo primitives a strategy calls: `health`, `rollback`,
//! `skip`, `verify`.

use std::sync::Arc;

use serde::Serialize;

use super::{DeploymentResult, DeploymentStatus, Engine, EngineError, undo, verify};
use crate::concurrent::bounded;
use crate::health::HealthStatus;
use crate::registry::EnvironmentConfig;

/// The outcome of `verify`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyResult {
    /// The environment's name.
    pub environment: String,
    /// Healthy, every migration applied with a matching checksum, and every
    /// verify section holding.
    pub ok: bool,
    /// Why not: unhealthy, drift, migrations not applied, or a failed check;
    /// `None` when `ok`.
    pub error: Option<String>,
    /// The verify statement that did not hold, with its file and line.
    pub failure: Option<crate::migration::verify::VerifyFailure>,
}

impl Engine {
    /// `health(envs)`: concurrent health checks.
    pub async fn health(&self, names: &[String]) -> Result<Vec<HealthStatus>, EngineError> {
        let environments = names
            .iter()
            .map(|n| self.environment(n))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(simulation) = &self.options.simulation {
            return Ok(environments.iter().map(|e| simulation.health(e)).collect());
        }
        let check = self.health_check();
        let refs: Vec<&EnvironmentConfig> = environments.iter().map(|e| &**e).collect();
        Ok(check.check_environments(&refs).await.into_values().collect())
    }

    /// The SurrealDB version of `name`'s server (asked once per server and
    /// client); `None` when it cannot be reached, denies the request, or in
    /// a simulation.
    pub async fn server_version(&self, name: &str) -> Result<Option<crate::connection::ServerVersion>, EngineError> {
        let environment = self.environment(name)?;
        if self.options.simulation.is_some() {
            return Ok(None);
        }
        let url = environment.connection.db_url.clone();
        let asked_versions = || {
            self.asked_versions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(asked) = asked_versions().get(&url) {
            return Ok(asked.clone());
        }
        let asked =
            crate::connection::server_version(&self.client, &environment.connection, self.options.health_timeout)
                .await
                .unwrap_or(None);
        asked_versions().insert(url, asked.clone());
        Ok(asked)
    }

    /// Marks `name` as holding a write of unknown outcome: the `rollback`
    /// primitive leaves it alone. Returns how many migrations this run applied there.
    pub(super) fn mark_outcome_unknown(&self, name: &str) -> usize {
        let mut ledger = self.ledger();
        let state = ledger.entry(name.to_string()).or_default();
        state.outcome_unknown = true;
        state.applied_this_run.len()
    }

    pub(super) fn note_applied(&self, name: &str, migration_index: usize) {
        self.ledger()
            .entry(name.to_string())
            .or_default()
            .applied_this_run
            .push(migration_index);
    }

    /// `rollback(envs)`: rolls back what THIS run applied on each environment,
    /// newest first. Environments where this run applied nothing keep their result.
    pub async fn rollback(&self, names: &[String], reason: &str) -> Result<Vec<DeploymentResult>, EngineError> {
        for name in names {
            self.environment(name)?;
        }
        let runs = names.iter().map(|name| async move {
            if self.options.simulation.is_some() {
                return self.simulated_rollback(name, reason);
            }
            let (applied, outcome_unknown) = {
                let mut ledger = self.ledger();
                let state = ledger.entry(name.clone()).or_default();
                if state.outcome_unknown {
                    (Vec::new(), true)
                } else {
                    (std::mem::take(&mut state.applied_this_run), false)
                }
            };
            if applied.is_empty() || outcome_unknown || self.options.dry_run {
                return self
                    .result_of(name)
                    .unwrap_or_else(|| self.record(DeploymentResult::skipped(name, reason)));
            }
            let Ok(environment) = self.environment(name) else {
                return self
                    .result_of(name)
                    .unwrap_or_else(|| self.record(DeploymentResult::skipped(name, reason)));
            };
            let started = self
                .result_of(name)
                .map(|r| r.started_at)
                .unwrap_or_else(chrono::Utc::now);
            let result = undo::roll_back_run(self, &environment, &applied, reason, started).await;
            // Replace the earlier (successful) result with the rollback's.
            let mut ledger = self.ledger();
            let state = ledger.entry(name.clone()).or_default();
            state.result = Some(result.clone());
            drop(ledger);
            self.announce(&result);
            result
        });
        // Bounded like `deploy`: rolling back a wave of thousands must not open thousands of sessions at once.
        Ok(bounded(runs, self.options.max_concurrent).await)
    }

    /// A simulated `rollback`: what succeeded is ROLLED_BACK.
    pub(super) fn simulated_rollback(&self, name: &str, reason: &str) -> DeploymentResult {
        match self.result_of(name) {
            Some(result) if result.status == DeploymentStatus::Success => {
                let rolled_back = DeploymentResult::finished(
                    name,
                    DeploymentStatus::RolledBack,
                    0,
                    Some(format!("{reason} (simulated)")),
                    result.started_at,
                );
                self.ledger().entry(name.to_string()).or_default().result = Some(rolled_back.clone());
                self.announce(&rolled_back);
                rolled_back
            }
            Some(result) => result,
            None => self.record(DeploymentResult::skipped(name, reason)),
        }
    }

    /// `skip(envs, reason)`: SKIPPED for each environment that has no result yet.
    pub fn skip(&self, names: &[String], reason: &str) -> Result<Vec<DeploymentResult>, EngineError> {
        names
            .iter()
            .map(|name| {
                self.environment(name)?;
                Ok(self
                    .result_of(name)
                    .unwrap_or_else(|| self.record(DeploymentResult::skipped(name, reason))))
            })
            .collect()
    }

    /// Health and history of `names` (see [`HealthCheck::read_many`]), in order.
    pub(super) async fn read(
        &self,
        names: &[String],
    ) -> Result<(Vec<Arc<EnvironmentConfig>>, Vec<crate::health::Reading>), EngineError> {
        let environments = names
            .iter()
            .map(|n| self.environment(n))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&EnvironmentConfig> = environments.iter().map(|e| &**e).collect();
        let readings = self.health_check().read_many(&refs).await;
        Ok((environments, readings))
    }

    /// `verify(envs)`: healthy, and the history holds every migration file with
    /// a matching checksum.
    pub async fn verify(&self, names: &[String]) -> Result<Vec<VerifyResult>, EngineError> {
        if let Some(simulation) = &self.options.simulation {
            return names
                .iter()
                .map(|n| Ok(simulation.verify(self, &*self.environment(n)?)))
                .collect();
        }
        let (environments, readings) = self.read(names).await?;
        let checks = readings
            .into_iter()
            .zip(environments)
            .map(|(reading, environment)| async move { verify::verify(self, &environment, reading).await });
        Ok(bounded(checks, crate::health::CHECK_CONCURRENCY).await)
    }
}
