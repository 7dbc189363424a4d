//! Which environment of a wave starts next, and when: at most the wave's
//! concurrency (an operator's throttle overriding it, also mid-wave), at
//! most `max_per_server` against one database server, nothing while the run
//! is held (paused, its state store away), and nothing once the failure
//! budget is spent. Results come back in the wave's order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::wave::FailureCount;
use super::{DeploymentResult, DeploymentStatus, Engine, WaveOptions};

impl Engine {
    /// Runs a wave's environments under its bounds; results in `names` order.
    pub(super) async fn run_wave(
        self: &Arc<Self>,
        names: &[String],
        wave: Arc<WaveOptions>,
        failure_limit: Option<usize>,
    ) -> Vec<DeploymentResult> {
        let failures = FailureCount::default();
        let servers: Vec<String> = names
            .iter()
            .map(|name| {
                self.environments
                    .get(name)
                    .map(|e| e.connection.host())
                    .unwrap_or_default()
            })
            .collect();
        let mut results: Vec<Option<DeploymentResult>> = vec![None; names.len()];
        let mut waiting: VecDeque<usize> = (0..names.len()).collect();
        let mut on_server: HashMap<&str, usize> = HashMap::new();
        let mut running = tokio::task::JoinSet::new();
        let mut throttle = self.throttle.subscribe();
        let mut held = self.held.subscribe();
        let mut cancelled = self.cancelled.subscribe();
        loop {
            // Held: start nothing (a stop ends the hold: the rest are skipped as they start).
            let startable = self.held.borrow().is_empty() || self.is_cancelled();
            while startable && running.len() < self.concurrency(wave.max_concurrent) {
                let room = |i: &usize| {
                    wave.max_per_server
                        .is_none_or(|cap| on_server.get(servers[*i].as_str()).copied().unwrap_or(0) < cap.max(1))
                };
                let Some(position) = waiting.iter().position(room) else {
                    break;
                };
                let Some(index) = waiting.remove(position) else {
                    break;
                };
                let name = names[index].clone();
                // Checked as each one starts: a slot frees only once the
                // environment before it recorded its failure.
                if let Some(reason) = failures.spent() {
                    results[index] = Some(
                        self.result_of(&name)
                            .unwrap_or_else(|| self.record(DeploymentResult::skipped(&name, reason))),
                    );
                    continue;
                }
                *on_server.entry(servers[index].as_str()).or_default() += 1;
                // Each environment is a task of its own, so the client-side work (and
                // on the embedded engine the database's) spreads over every core.
                let (engine, wave) = (self.clone(), wave.clone());
                running.spawn(async move {
                    let task = tokio::spawn({
                        let (engine, name) = (engine.clone(), name.clone());
                        async move { engine.deploy_one(&name, &wave).await }
                    });
                    let outcome = match task.await {
                        Ok(outcome) => outcome,
                        Err(error) => (
                            engine.record(DeploymentResult::finished(
                                &name,
                                DeploymentStatus::Failed,
                                engine.applied_count(&name),
                                Some(format!("internal error while deploying: {error}")),
                                chrono::Utc::now(),
                            )),
                            true,
                        ),
                    };
                    (index, outcome)
                });
            }
            if running.is_empty() && waiting.is_empty() {
                break;
            }
            tokio::select! {
                Some(joined) = running.join_next() => {
                    // The task itself never panics: the deployment runs in one of its own.
                    let Ok((index, (result, fresh))) = joined else {
                        continue;
                    };
                    if let Some(count) = on_server.get_mut(servers[index].as_str()) {
                        *count = count.saturating_sub(1);
                    }
                    if fresh && result.is_failure() {
                        failures.add(&names[index], failure_limit);
                    }
                    results[index] = Some(result);
                }
                _ = throttle.changed() => {}
                _ = held.changed() => {}
                _ = cancelled.changed() => {}
            }
        }
        results
            .into_iter()
            .zip(names)
            .map(|(result, name)| result.unwrap_or_else(|| DeploymentResult::skipped(name, self.not_started_reason())))
            .collect()
    }
}
