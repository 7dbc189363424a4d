//! Scripted outcomes for `surql strategy simulate`: every primitive answers
//! from the script's list of failing, unhealthy and denied environments
//! instead of a database, so a strategy can be tried, and the built-ins
//! tested, without one. Nothing is connected to.

use std::collections::HashSet;

use chrono::Utc;

use super::{
    DeploymentResult, DeploymentStatus, Engine, EnvironmentPlan, Event, PlanReport, VerifyResult, WaveOptions,
};
use crate::health::HealthStatus;
use crate::registry::EnvironmentConfig;

/// What each named environment would do; every other one succeeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Simulation {
    /// A migration fails there (rolled back when the wave rolls back).
    pub fail: HashSet<String>,
    /// Its health check fails.
    pub unhealthy: HashSet<String>,
    /// Its approval is denied.
    pub deny: HashSet<String>,
    /// A gate halts every wave (and script `gate()` call) that includes it.
    pub halt: HashSet<String>,
}

impl Simulation {
    /// What the simulated gate answers for the wave `label` of `names`.
    pub(super) fn gate(&self, names: &[String], label: &str) -> Option<super::gate::GateHalt> {
        let halted = names.iter().find(|name| self.halt.contains(*name))?;
        Some(super::gate::GateHalt {
            gate: "simulated".into(),
            label: label.to_string(),
            reason: format!("--halt {halted}"),
        })
    }

    /// The simulated deployment of one environment.
    pub(super) fn deploy(
        &self,
        engine: &Engine,
        environment: &EnvironmentConfig,
        wave: &WaveOptions,
    ) -> DeploymentResult {
        let name = environment.name.as_str();
        let started = Utc::now();
        engine.events.send(Event::Started {
            environment: name.to_string(),
        });
        // Held, frozen, outside its window: as a real run decides it.
        if let Err(stop) = super::policy::admit(engine, environment) {
            return DeploymentResult::finished(name, stop.status, 0, Some(stop.error), started);
        }
        let last = super::policy::last_version(wave, environment);
        let applicable = (engine.migrations.iter())
            .filter(|m| super::policy::within(last.as_ref(), &m.version))
            .count();
        let (status, applied, error) = if self.deny.contains(name) {
            (
                DeploymentStatus::Skipped,
                0,
                Some("approval denied (simulated)".to_string()),
            )
        } else if wave.verify_health && self.unhealthy.contains(name) {
            (DeploymentStatus::Failed, 0, Some("unhealthy (simulated)".to_string()))
        } else if self.fail.contains(name) && wave.auto_rollback {
            let error = "a migration failed (simulated); rolled back what this run applied there";
            (DeploymentStatus::RolledBack, 0, Some(error.to_string()))
        } else if self.fail.contains(name) {
            let error = "a migration failed (simulated); what this run applied was kept (auto-rollback off)";
            (DeploymentStatus::Failed, 0, Some(error.to_string()))
        } else {
            (DeploymentStatus::Success, applicable, None)
        };
        DeploymentResult::finished(name, status, applied, error, started)
    }

    pub(super) fn health(&self, environment: &EnvironmentConfig) -> HealthStatus {
        let healthy = !self.unhealthy.contains(&environment.name);
        HealthStatus {
            environment: environment.name.clone(),
            is_healthy: healthy,
            can_connect: healthy,
            authenticated: healthy,
            migration_table_exists: healthy,
            error: (!healthy).then(|| "unhealthy (simulated)".to_string()),
            checked_at: Utc::now(),
            server_version: None,
        }
    }

    pub(super) fn verify(&self, engine: &Engine, environment: &EnvironmentConfig) -> VerifyResult {
        let name = &environment.name;
        let error = if self.unhealthy.contains(name) {
            Some("unhealthy (simulated)".to_string())
        } else if self.fail.contains(name) {
            Some("verification failed (simulated)".to_string())
        } else {
            engine
                .result_of(name)
                .filter(|r| r.status != DeploymentStatus::Success)
                .map(|r| format!("not applied: it ended {}", r.status.label()))
        };
        VerifyResult {
            environment: name.clone(),
            ok: error.is_none(),
            error,
            failure: None,
        }
    }

    /// Every migration pending (up to the wave's `to_version` and the
    /// environment's pin), as on a fresh database.
    pub(super) fn plan(&self, engine: &Engine, environment: &EnvironmentConfig, wave: &WaveOptions) -> PlanReport {
        let last = super::policy::last_version(wave, environment);
        let pending: Vec<usize> = (0..engine.migrations.len())
            .filter(|&i| super::policy::within(last.as_ref(), &engine.migrations[i].version))
            .collect();
        let destructive: Vec<_> = pending
            .iter()
            .flat_map(|&i| engine.destructive[i].iter().cloned())
            .collect();
        let plan: EnvironmentPlan = super::env_run::environment_plan(engine, environment, &pending, destructive);
        PlanReport {
            environment: environment.name.clone(),
            blocked: None,
            error: self
                .unhealthy
                .contains(&environment.name)
                .then(|| "unhealthy (simulated)".to_string()),
            plan: Some(plan),
            skipped: engine.policy_skip(environment),
            server_version: None,
        }
    }
}
