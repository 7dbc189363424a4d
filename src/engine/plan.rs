//! `plan(envs)`: what deploying would do on each environment, read without
//! writing anything — for a script that decides its waves from it.

use serde::Serialize;

use super::env_run::{environment_plan, pending_up_to};
use super::{Engine, EngineError, EnvironmentPlan, WaveOptions};
use crate::migration::plan;

/// One environment's plan, or why it has none.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// The environment's name.
    pub environment: String,
    /// `None` when the environment could not be read (see `error`).
    pub plan: Option<EnvironmentPlan>,
    /// Why deploying would be refused before anything runs: drift, order,
    /// or a destructive statement the environment does not allow.
    pub blocked: Option<String>,
    /// Why it could not be read (unhealthy, say); `plan` is then `None`.
    pub error: Option<String>,
    /// Why deploying now would skip it untouched: held, frozen, outside
    /// its maintenance window, or every pending migration needing a newer
    /// server. A held one is not read (`plan` is `None`).
    pub skipped: Option<String>,
    /// The SurrealDB version of its server, when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<crate::connection::ServerVersion>,
}

impl Engine {
    /// `plan(envs)`: per environment the pending migrations, their
    /// destructive statements (file, line), those without a down section,
    /// and whether approval is needed. Reads only.
    pub async fn plan(&self, names: &[String]) -> Result<Vec<PlanReport>, EngineError> {
        self.plan_for(names, &self.wave_defaults()).await
    }

    /// [`Engine::plan`] for a wave: its pending migrations stop at its `to_version`.
    pub(super) async fn plan_for(&self, names: &[String], wave: &WaveOptions) -> Result<Vec<PlanReport>, EngineError> {
        if let Some(simulation) = &self.options.simulation {
            return names
                .iter()
                .map(|n| Ok(simulation.plan(self, &*self.environment(n)?, wave)))
                .collect();
        }
        // A held environment is never connected to, not even to plan.
        let (held, readable): (Vec<String>, Vec<String>) = names
            .iter()
            .cloned()
            .partition(|n| self.environment(n).is_ok_and(|e| e.hold.is_some()));
        let (environments, readings) = self.read(&readable).await?;
        let mut reports: std::collections::HashMap<String, PlanReport> = readings
            .into_iter()
            .zip(environments)
            .map(|(reading, environment)| {
                let environment = &*environment;
                let name = environment.name.clone();
                let skipped = self.policy_skip(environment);
                if !reading.status.is_healthy {
                    return PlanReport {
                        environment: name,
                        plan: None,
                        blocked: None,
                        error: Some(format!("unhealthy: {}", reading.status.error.unwrap_or_default())),
                        skipped,
                        server_version: None,
                    };
                }
                let server_version = reading.status.server_version.clone();
                let migration_plan = plan(&self.migrations, &reading.history.unwrap_or_default());
                let pending = match self.promoted(&name, pending_up_to(self, environment, &migration_plan, wave), false)
                {
                    Ok(pending) => pending,
                    Err(waiting) => {
                        return PlanReport {
                            environment: name,
                            plan: None,
                            blocked: None,
                            skipped: Some(waiting.to_string()),
                            error: None,
                            server_version,
                        };
                    }
                };
                let (pending, passed_over, unfit) =
                    match super::server_fit::fit(self, &name, pending.clone(), server_version.as_ref()) {
                        Ok(fitted) => {
                            let skip = fitted.nothing_fits(&name, server_version.as_ref());
                            (fitted.pending, fitted.passed_over, skip.map(Err))
                        }
                        Err(refusal) => (pending, Vec::new(), Some(Ok(refusal))),
                    };
                let skipped = skipped.or_else(|| unfit.clone().and_then(Result::err));
                let destructive: Vec<_> = pending
                    .iter()
                    .flat_map(|&i| self.destructive[i].iter().cloned())
                    .collect();
                let blocked = unfit
                    .and_then(Result::ok)
                    .or_else(|| migration_plan.refusal(self.context.order))
                    .or_else(|| {
                        (!environment.allow_destructive && !destructive.is_empty()).then(|| {
                            format!(
                                "destructive statement in {}; '{name}' has allow_destructive: false",
                                destructive[0]
                            )
                        })
                    });
                let mut environment_plan = environment_plan(self, environment, &pending, destructive);
                environment_plan.passed_over = passed_over;
                PlanReport {
                    plan: Some(environment_plan),
                    environment: name,
                    blocked,
                    error: None,
                    skipped,
                    server_version,
                }
            })
            .map(|report| (report.environment.clone(), report))
            .collect();
        for name in held {
            let skipped = self.environment(&name).ok().and_then(|e| self.policy_skip(&e));
            let report = PlanReport {
                environment: name.clone(),
                plan: None,
                blocked: None,
                error: None,
                skipped,
                server_version: None,
            };
            reports.insert(name, report);
        }
        Ok(names.iter().filter_map(|n| reports.get(n).cloned()).collect())
    }
}
