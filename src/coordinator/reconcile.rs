//! Completing a deployment's record from the databases themselves: a runner
//! that lost its state store went on finishing the environments it had
//! started, and each history row it wrote there carries the deployment id.

use std::time::Duration;

use super::MigrationCoordinator;
use crate::state::{EnvironmentRecord, EnvironmentState, PlannedMigration, StateError, StateStore};

impl MigrationCoordinator {
    /// Reads the history of each environment of deployment `id` recorded as
    /// pending, running or of unknown outcome. One that was started (or holds
    /// rows of this deployment) and has every migration of its `plan`
    /// applied (same checksum) finished while nobody could record it: it is recorded as SUCCESS,
    /// `reconciled`, with the migrations this deployment applied there.
    /// Environments no longer configured, or unreadable, are left as they
    /// are (a resume runs them). Returns how many were completed.
    pub async fn reconcile(
        &self,
        store: &StateStore,
        id: &str,
        environments: &mut [EnvironmentRecord],
        plan: &[PlannedMigration],
        timeout: Duration,
    ) -> Result<usize, StateError> {
        let open = |e: &EnvironmentRecord| {
            matches!(
                e.state,
                EnvironmentState::Pending | EnvironmentState::Running | EnvironmentState::OutcomeUnknown
            )
        };
        let configured: Vec<_> = environments
            .iter()
            .filter(|e| open(e))
            .filter_map(|e| self.registry.get(&e.environment).ok())
            .collect();
        if configured.is_empty() {
            return Ok(0);
        }
        let check = self.health_check(timeout);
        let mut readings = check.read_many(&configured).await;
        // Those that could not be read (a busy server) are asked once more:
        // each one missed would be deployed again instead of completed.
        let unread: Vec<_> = configured
            .iter()
            .copied()
            .filter(|e| {
                readings
                    .iter()
                    .any(|r| r.status.environment == e.name && !r.status.is_healthy)
            })
            .collect();
        if !unread.is_empty() {
            readings.retain(|r| r.status.is_healthy);
            readings.extend(check.read_many(&unread).await);
        }
        let histories: std::collections::HashMap<String, _> = readings
            .into_iter()
            .filter(|r| r.status.is_healthy)
            .filter_map(|r| Some((r.status.environment.clone(), r.history?)))
            .collect();
        let now = chrono::Utc::now().to_rfc3339();
        let mut completed = Vec::new();
        for record in environments.iter_mut().filter(|e| open(e)) {
            let Some(history) = histories.get(&record.environment) else {
                continue;
            };
            let ours: Vec<String> = history
                .iter()
                .filter(|row| row.deployment_id == id)
                .map(|row| format!("{}_{}", row.version, row.name))
                .collect();
            let started = record.state != EnvironmentState::Pending || !ours.is_empty();
            let applied = |p: &PlannedMigration| {
                history
                    .iter()
                    .any(|row| row.version == p.version && row.checksum == p.checksum)
            };
            if !started || !plan.iter().all(applied) {
                continue;
            }
            record.state = EnvironmentState::Success;
            record.migrations_applied = ours.len();
            record.versions = ours;
            record.error = None;
            record.updated_at = now.clone();
            record.reconciled = true;
            completed.push(record.clone());
        }
        store.write_environments(id, &completed).await?;
        Ok(completed.len())
    }
}
