//! One `deploy` call — a wave — and its options: concurrency, failure budget,
//! rollback and health policy, the version to stop at, and its label; and the
//! record of the waves a run made, which a dry run and the simulator show.

use std::sync::Arc;

use serde::Serialize;
use tracing::Instrument;

use super::{DeploymentResult, DeploymentStatus, Engine, EngineError, Event, env_run};

/// How many environments of one wave may fail before it starts no more.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureBudget {
    /// The wave stops starting environments once this many failed (≥ 1).
    Count(usize),
    /// The same, as a percentage of the wave's environments (0 < p ≤ 100),
    /// rounded up, at least one.
    Percent(f64),
}

impl FailureBudget {
    /// `3` or `10%`, as `--max-failures` takes it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let budget = match text.strip_suffix('%') {
            Some(percent) => percent
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| *p > 0.0 && *p <= 100.0)
                .map(Self::Percent)
                .ok_or_else(|| format!("'{text}': a percentage must be above 0% and at most 100%, e.g. 10%"))?,
            None => text
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .map(Self::Count)
                .ok_or_else(|| {
                    format!("'{text}': expected a number of failures of at least 1 (e.g. 3) or a percentage (e.g. 10%)")
                })?,
        };
        Ok(budget)
    }

    /// The number of failures that spends the budget of a wave of `environments`.
    pub fn limit(self, environments: usize) -> usize {
        match self {
            Self::Count(n) => n.max(1),
            Self::Percent(p) => ((p / 100.0 * environments as f64).ceil() as usize).max(1),
        }
    }
}

impl std::fmt::Display for FailureBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// The options of one `deploy` call; unset ones come from the deployment's.
#[derive(Debug, Clone, PartialEq)]
pub struct WaveOptions {
    /// Shown in dry runs, simulations and logs (`canary`, `batch 2/5`, …).
    pub label: Option<String>,
    /// Environments of the wave deployed at once.
    pub max_concurrent: usize,
    /// Failures after which the wave starts no more environments; `None`: no limit.
    pub max_failures: Option<FailureBudget>,
    /// Roll back what this run applied to an environment when it fails.
    pub auto_rollback: bool,
    /// Check health before deploying each environment.
    pub verify_health: bool,
    /// Apply only migrations up to and including this version.
    pub to_version: Option<String>,
    /// At most this many at once against one database server.
    pub max_per_server: Option<usize>,
}

/// One wave as the run made it (or a dry run would).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wave {
    /// The label the strategy gave it, or `wave N`.
    pub label: String,
    /// Names of its environments, in the order given.
    pub environments: Vec<String>,
    /// Environments of the wave deployed at once.
    pub max_concurrent: usize,
    /// Failures that stop the wave (the budget resolved for its size).
    pub max_failures: Option<usize>,
    /// Migrations applied only up to and including this version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_version: Option<String>,
    /// Whether a failed environment gets what this run applied there rolled back.
    pub auto_rollback: bool,
    /// Whether health is checked before deploying each environment.
    pub verify_health: bool,
    /// Seconds the strategy paused after this wave, before the next.
    pub pause_seconds_after: f64,
}

impl Wave {
    pub(super) fn of(number: usize, environments: &[String], options: &WaveOptions) -> Self {
        Self {
            label: options.label.clone().unwrap_or_else(|| format!("wave {number}")),
            environments: environments.to_vec(),
            max_concurrent: options.max_concurrent,
            max_failures: options.max_failures.map(|b| b.limit(environments.len())),
            to_version: options.to_version.clone(),
            auto_rollback: options.auto_rollback,
            verify_health: options.verify_health,
            pause_seconds_after: 0.0,
        }
    }
}

/// The failures of one wave so far, to stop it exactly when its budget is spent.
#[derive(Debug, Default)]
pub(super) struct FailureCount {
    failed: std::sync::Mutex<Vec<String>>,
    /// The reason, fixed when the budget was spent: environments still
    /// running then may fail too, but they did not spend it.
    spent: std::sync::OnceLock<String>,
}

impl FailureCount {
    /// Counts a failure; the one that reaches `limit` spends the budget.
    pub(super) fn add(&self, environment: &str, limit: Option<usize>) {
        let mut failed = self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        failed.push(environment.to_string());
        let Some(limit) = limit.filter(|&limit| failed.len() == limit) else {
            return;
        };
        const NAMED: usize = 10;
        let mut names = failed.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ");
        if failed.len() > NAMED {
            names.push_str(&format!(", … {} more", failed.len() - NAMED));
        }
        let _ = self
            .spent
            .set(format!("failure budget spent: {limit} of {limit} failed ({names})"));
    }

    /// The reason to skip an environment, once the budget is spent.
    pub(super) fn spent(&self) -> Option<String> {
        self.spent.get().cloned()
    }
}

impl Engine {
    /// The options of a `deploy` call that sets none: the deployment's.
    pub fn wave_defaults(&self) -> WaveOptions {
        WaveOptions {
            label: None,
            max_concurrent: self.options.max_concurrent,
            max_failures: self.options.max_failures,
            auto_rollback: self.options.auto_rollback,
            verify_health: self.options.verify_health,
            to_version: None,
            max_per_server: self.options.max_per_server,
        }
    }

    /// The waves so far, in order.
    pub fn waves(&self) -> Vec<Wave> {
        self.waves
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A `pause` between waves: recorded after the last wave.
    pub fn note_pause(&self, seconds: f64) {
        if let Some(last) = self
            .waves
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .last_mut()
        {
            last.pause_seconds_after += seconds;
        }
    }

    /// `deploy(envs, options)`: the full per-environment deployment, at most
    /// `max_concurrent` at once; results in the order of `names`. Once
    /// `max_failures` of them failed, the rest are SKIPPED without being
    /// touched (those running finish). An environment that already has a
    /// result is not deployed again.
    pub async fn deploy(
        self: &Arc<Self>,
        names: &[String],
        wave: WaveOptions,
    ) -> Result<Vec<DeploymentResult>, EngineError> {
        for name in names {
            self.environment(name)?;
        }
        let names = &self.join_discovered(names).await[..];
        if let Some(version) = &wave.to_version
            && !self.migrations.iter().any(|m| &m.version == version)
        {
            let known: Vec<String> = self.migrations.iter().map(|m| m.version.clone()).collect();
            return Err(EngineError::UnknownVersion {
                version: version.clone(),
                known: crate::registry::some_of(&known),
            });
        }
        let limit = wave.max_failures.map(|budget| budget.limit(names.len()));
        let (number, label) = {
            let mut waves = self.waves.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let number = waves.len() + 1;
            waves.push(Wave::of(number, names, &wave));
            (number, waves[number - 1].label.clone())
        };
        let span = tracing::info_span!(
            parent: self.deployment_span(),
            "wave",
            wave = number,
            label = %label,
            environments = names.len(),
            otel.status_code = tracing::field::Empty,
        );
        self.deploy_wave(names, wave, number, label, limit)
            .instrument(span)
            .await
    }

    async fn deploy_wave(
        self: &Arc<Self>,
        names: &[String],
        wave: WaveOptions,
        number: usize,
        label: String,
        limit: Option<usize>,
    ) -> Result<Vec<DeploymentResult>, EngineError> {
        // Gates first: a halted wave asks nobody and touches nothing.
        if let (Some(_), results) = self.gate_wave(names, &label).await? {
            return Ok(results);
        }
        // Approval once for the wave, with its plan, before any of it starts.
        self.approve_group(names, &label, &wave).await?;
        if self.notifying() {
            let started = serde_json::json!({ "label": label, "environments": names.len() });
            self.notify("wave_started", started);
        }
        self.events.send(Event::WaveStarted {
            number,
            label: label.clone(),
            environments: names.to_vec(),
        });
        let results = self.run_wave(names, Arc::new(wave), limit).await;
        self.events.send(Event::WaveFinished {
            number,
            label: label.clone(),
        });
        if results.iter().any(DeploymentResult::is_failure) {
            tracing::Span::current().record("otel.status_code", "ERROR");
        }
        // Counting the whole deployment per wave is only for plugins (10,000 one-environment waves).
        if self.notifying() {
            self.notify("wave_finished", self.wave_summary(&label, &results));
        }
        Ok(results)
    }

    /// A wave's `wave_finished` notification: counts, its environments that
    /// failed or were rolled back (the first 200), and the deployment so far.
    fn wave_summary(&self, label: &str, results: &[DeploymentResult]) -> serde_json::Value {
        let count = |status: DeploymentStatus| results.iter().filter(|r| r.status == status).count();
        let failures: Vec<serde_json::Value> = results
            .iter()
            .filter(|r| r.is_failure())
            .take(200)
            .map(|r| serde_json::json!({ "environment": r.environment, "status": r.status.value(), "error": r.error }))
            .collect();
        let (finished, total) = self.progress();
        serde_json::json!({
            "label": label,
            "environments": results.len(),
            "success": count(DeploymentStatus::Success),
            "failed": count(DeploymentStatus::Failed),
            "rolled_back": count(DeploymentStatus::RolledBack),
            "skipped": count(DeploymentStatus::Skipped),
            "failures": failures,
            "finished": finished,
            "total": total,
        })
    }

    /// The result of `name`, and whether this call made it.
    pub(super) async fn deploy_one(&self, name: &str, wave: &WaveOptions) -> (DeploymentResult, bool) {
        {
            let mut ledger = self.ledger();
            let state = ledger.entry(name.to_string()).or_default();
            if let Some(result) = &state.result {
                if !state.partial {
                    return (result.clone(), false);
                }
                // Expand, then contract: this wave goes on from where the last stopped.
                state.result = None;
                state.partial = false;
            }
            if state.running {
                // The script asked for the same environment twice in one call.
                return (
                    DeploymentResult::skipped(name, "already being deployed by this run"),
                    false,
                );
            }
            state.running = true;
        }
        self.wait_while_held().await;
        if self.is_cancelled() {
            return (
                self.record(DeploymentResult::skipped(name, self.not_started_reason())),
                true,
            );
        }
        let environment = match self.environment(name) {
            Ok(environment) => environment,
            Err(error) => return (self.record(DeploymentResult::skipped(name, error.to_string())), true),
        };
        let result = match (&self.options.simulation, &self.options.undo) {
            (Some(simulation), _) => simulation.deploy(self, &environment, wave),
            (None, Some(target)) => super::recorded_rollback::undo_deployment(self, &environment, wave, target).await,
            (None, None) => env_run::run(self, &environment, wave).await,
        };
        let partial = wave.to_version.is_some() && result.status == DeploymentStatus::Success;
        let result = self.record(result);
        if partial {
            self.ledger().entry(name.to_string()).or_default().partial = true;
        }
        (result, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_and_resolve_for_the_wave() {
        assert_eq!(FailureBudget::parse("3"), Ok(FailureBudget::Count(3)));
        assert_eq!(FailureBudget::parse("10%"), Ok(FailureBudget::Percent(10.0)));
        for bad in ["0", "-1", "0%", "101%", "x", "3.5", ""] {
            assert!(FailureBudget::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(FailureBudget::Count(3).limit(100), 3);
        assert_eq!(FailureBudget::Percent(10.0).limit(100), 10);
        assert_eq!(FailureBudget::Percent(10.0).limit(5), 1);
        assert_eq!(FailureBudget::Percent(25.0).limit(10), 3);
    }

    #[test]
    fn the_reason_names_the_failures_that_spent_the_budget() {
        let count = FailureCount::default();
        count.add("a", Some(2));
        assert_eq!(count.spent(), None);
        count.add("b", Some(2));
        count.add("c", Some(2));
        assert_eq!(
            count.spent().unwrap(),
            "failure budget spent: 2 of 2 failed (a, b)",
            "fixed when spent"
        );
        let unlimited = FailureCount::default();
        unlimited.add("a", None);
        assert_eq!(unlimited.spent(), None);
    }
}
