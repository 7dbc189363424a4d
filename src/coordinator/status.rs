//! Reading environments without deploying: `status` (health, applied
//! version, pending, drift) and `verify`.

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use super::MigrationCoordinator;
use crate::engine::{DeployOptions, Engine, EventSink};
use crate::health::{HealthCheck, HealthStatus};
use crate::migration::file::version_order_key;
use crate::migration::{ApplyContext, Migration, MigrationState, plan};
use crate::registry::{EnvironmentConfig, RegistryError};

/// Per-environment status without deploying: health, applied version, pending, drift.
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentStatus {
    /// The environment's name.
    pub environment: String,
    /// The health check's result.
    pub health: HealthStatus,
    /// Newest applied version, if any.
    pub applied_version: Option<String>,
    /// Migrations its history records as applied.
    pub applied_count: usize,
    /// Of those, recorded by `baseline` (made another way).
    pub baseline_count: usize,
    /// Migration files not applied yet (up to `pinned`, when set).
    pub pending_count: usize,
    /// `version_name (drifted|missing)` entries.
    pub drift: Vec<String>,
    /// Its `pin_version`: deployed up to it and no further (pending stops there).
    pub pinned: Option<String>,
    /// The run-once row conversions its applied migrations ran
    /// (`MIGRATE EXISTING ROWS AS name`), as `table.name`, in version order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub row_migrations: Vec<String>,
    /// Pending migrations its server is too old for (`-- migrate:requires`),
    /// not counted in `pending_count`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<String>,
}

impl MigrationCoordinator {
    /// `verify` on demand: each selected environment healthy, every
    /// migration applied with its checksum, and every applied migration's
    /// `-- migrate:verify` section holding. Reads only.
    pub async fn verify_environments(
        &self,
        environments: &[String],
        migrations: Vec<Migration>,
        health_timeout: Duration,
    ) -> Result<Vec<crate::engine::VerifyResult>, RegistryError> {
        let selected = self.select(environments).await?;
        let names: Vec<String> = selected.iter().map(|e| e.name.clone()).collect();
        let options = DeployOptions {
            health_timeout,
            operation_timeout: health_timeout,
            ..DeployOptions::default()
        };
        let engine = Engine::new(crate::engine::EngineParts {
            input_order: names.clone(),
            environments: selected,
            migrations: Arc::new(migrations),
            options,
            context: ApplyContext::new(),
            client: self.client.clone(),
            events: EventSink::default(),
            approver: None,
        });
        // Every name was selected from this engine's own environments.
        Ok(engine.verify(&names).await.unwrap_or_default())
    }

    /// Health, applied version, pending count and drift of each environment.
    /// Reads only; creates nothing.
    pub async fn get_deployment_status(
        &self,
        environments: &[String],
        migrations: &[Migration],
        health_check: &HealthCheck,
    ) -> Result<IndexMap<String, EnvironmentStatus>, RegistryError> {
        let selected = self.select(environments).await?;
        let refs: Vec<&EnvironmentConfig> = selected.iter().collect();
        let mut readings = health_check.read_many(&refs).await;
        super::baseline::name_foreign_histories(health_check.client(), &refs, &mut readings, health_check.timeout)
            .await;
        Ok(readings
            .into_iter()
            .zip(&selected)
            .map(|(reading, environment)| {
                let applied = reading.history.unwrap_or_default();
                let migration_plan = plan(migrations, &applied);
                let pin = environment.pin_version.as_deref().map(version_order_key);
                // Passed over by the rule a deployment applies (an unknown
                // version is pending: the deployment says why it cannot go on).
                let version = reading.status.server_version.clone();
                let too_new = |m: &Migration| {
                    matches!(
                        m.fit(version.as_ref(), ""),
                        crate::migration::dialect::Fit::PassedOver(_)
                    )
                };
                let passed_over: Vec<String> = migration_plan
                    .pending
                    .iter()
                    .filter(|m| too_new(m))
                    .map(|m| m.id())
                    .collect();
                let row_migrations = (migrations.iter())
                    .filter(|m| !m.requires.row_migrations.is_empty())
                    .filter(|m| {
                        applied
                            .iter()
                            .any(|a| a.version == m.version && a.checksum == m.checksum)
                    })
                    .flat_map(|m| m.requires.row_migrations.iter())
                    .map(|row| format!("{}.{}", row.table, row.name))
                    .collect();
                let status = EnvironmentStatus {
                    environment: reading.status.environment.clone(),
                    health: reading.status,
                    applied_version: applied.last().map(|a| a.version.clone()),
                    applied_count: applied.len(),
                    baseline_count: applied.iter().filter(|a| a.baseline).count(),
                    pending_count: (migration_plan.pending.iter())
                        .filter(|m| pin.as_ref().is_none_or(|pin| version_order_key(&m.version) <= *pin))
                        .filter(|m| !too_new(m))
                        .count(),
                    drift: migration_plan
                        .drift
                        .iter()
                        .map(|r| {
                            let kind = if r.state == MigrationState::Drifted {
                                "drifted"
                            } else {
                                "missing"
                            };
                            format!("{}_{} ({kind})", r.version, r.name)
                        })
                        .collect(),
                    pinned: environment.pin_version.clone(),
                    row_migrations,
                    passed_over,
                };
                (status.environment.clone(), status)
            })
            .collect())
    }
}
