//! Which environment of a wave starts next, and when: at most the wave's
//! concurrency (an operator's throttle overriding it, also mid-wave), at
//! most `max_per_server` against one database server, nothing while the run
//! is held (paused, its state store away), and nothing once the failure
//! budget is spent. Results come back in the wave's order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tracing::Instrument;

use super::wave::FailureCount;
use super::{DeploymentResult, DeploymentStatus, Engine, WaveOptions};
use crate::connection::ConnectionConfig;

/// How often a watched server's round trip is measured.
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// How long environments wait for a slow server before they are SKIPPED.
pub const SLOW_SERVER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);

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
            .map(|name| self.environment(name).map(|e| e.connection.host()).unwrap_or_default())
            .collect();
        let mut results: Vec<Option<DeploymentResult>> = vec![None; names.len()];
        let mut waiting: VecDeque<usize> = (0..names.len()).collect();
        let mut on_server: HashMap<&str, usize> = HashMap::new();
        let mut running = tokio::task::JoinSet::new();
        let mut latency = self.watch_latency(names, &servers);
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
                let fast = |i: &usize| latency.as_ref().is_none_or(|watch| !watch.slow.contains(&servers[*i]));
                let Some(position) = waiting.iter().position(|i| room(i) && fast(i)) else {
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
                let span = tracing::info_span!(
                    "environment",
                    environment = %name,
                    status = tracing::field::Empty,
                    migrations_applied = tracing::field::Empty,
                    error = tracing::field::Empty,
                    otel.status_code = tracing::field::Empty,
                );
                running.spawn(async move {
                    let task = tokio::spawn({
                        let (engine, name) = (engine.clone(), name.clone());
                        async move {
                            let outcome = engine.deploy_one(&name, &wave).await;
                            super::trace::finished_environment(&outcome.0);
                            outcome
                        }
                        .instrument(span)
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
                _ = tokio::time::sleep(PROBE_EVERY / 2), if latency.is_some() => {
                    if let Some(watch) = latency.as_mut() {
                        for index in watch.update(self, &servers, &waiting) {
                            results[index] = Some(self.record(DeploymentResult::skipped(
                                &names[index],
                                watch.gave_up(&servers[index]),
                            )));
                        }
                        waiting.retain(|i| results[*i].is_none());
                    }
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

    /// Starts measuring every remote server of the wave when the deployment
    /// caps latency (`--max-server-latency-ms`).
    fn watch_latency(&self, names: &[String], servers: &[String]) -> Option<LatencyWatch> {
        let limit = self.options.max_server_latency?;
        let mut configs: HashMap<String, ConnectionConfig> = HashMap::new();
        for (name, server) in names.iter().zip(servers) {
            if let Ok(environment) = self.environment(name)
                && environment.connection.endpoint_kind().ok() == Some(crate::connection::EndpointKind::Remote)
            {
                configs
                    .entry(server.clone())
                    .or_insert_with(|| environment.connection.clone());
            }
        }
        if configs.is_empty() {
            return None;
        }
        let probes = configs
            .values()
            .cloned()
            .map(|config| {
                let client = self.client.clone();
                tokio::spawn(async move {
                    loop {
                        crate::connection::probe_round_trip(&client, &config, PROBE_EVERY * 4).await;
                        tokio::time::sleep(PROBE_EVERY).await;
                    }
                })
            })
            .collect();
        // Slow until measured: nothing starts on a server before its first
        // round trip, and the patience runs from now.
        let slow = configs.keys().cloned().collect();
        let since = configs
            .keys()
            .map(|server| (server.clone(), std::time::Instant::now()))
            .collect();
        Some(LatencyWatch {
            limit,
            client: self.client.clone(),
            configs,
            slow,
            since,
            announced: Default::default(),
            probes,
        })
    }
}

/// The servers a wave watches, which of them are too slow now, and since when.
struct LatencyWatch {
    limit: std::time::Duration,
    /// The deployment's client: its probes' round trips are noted there.
    client: crate::connection::Client,
    configs: HashMap<String, ConnectionConfig>,
    slow: std::collections::HashSet<String>,
    /// Since when each slow (or not yet measured) server has been held.
    since: HashMap<String, std::time::Instant>,
    /// Servers whose slowness the progress has told.
    announced: std::collections::HashSet<String>,
    probes: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for LatencyWatch {
    fn drop(&mut self) {
        for probe in &self.probes {
            probe.abort();
        }
    }
}

impl LatencyWatch {
    /// Re-reads every server's recent round trip, saying what changed; returns
    /// the waiting environments whose server stayed slow past the patience.
    fn update(&mut self, engine: &Engine, servers: &[String], waiting: &VecDeque<usize>) -> Vec<usize> {
        for (server, config) in &self.configs {
            match crate::connection::recent_round_trip(&self.client, config) {
                // Not measured yet: held, its patience counting from the start.
                None => {}
                Some(rtt) if rtt > self.limit => {
                    self.slow.insert(server.clone());
                    self.since.entry(server.clone()).or_insert_with(std::time::Instant::now);
                    if self.announced.insert(server.clone()) {
                        engine.log(format!(
                            "server {server}: recent round trip {} ms over --max-server-latency-ms {}: its new environments wait",
                            rtt.as_millis(),
                            self.limit.as_millis()
                        ));
                    }
                }
                Some(_) => {
                    self.slow.remove(server);
                    self.since.remove(server);
                    if self.announced.remove(server) {
                        engine.log(format!(
                            "server {server}: round trips back under {} ms: starting its environments",
                            self.limit.as_millis()
                        ));
                    }
                }
            }
        }
        let given_up: std::collections::HashSet<&String> = self
            .since
            .iter()
            .filter(|(_, since)| since.elapsed() >= SLOW_SERVER_PATIENCE)
            .map(|(server, _)| server)
            .collect();
        waiting
            .iter()
            .copied()
            .filter(|i| given_up.contains(&servers[*i]))
            .collect()
    }

    /// Why an environment on `server` was given up on.
    fn gave_up(&self, server: &str) -> String {
        let rtt = self
            .configs
            .get(server)
            .and_then(|config| crate::connection::recent_round_trip(&self.client, config))
            .map_or_else(|| "unmeasured".to_string(), |rtt| format!("{} ms", rtt.as_millis()));
        format!(
            "server {server} too slow: recent round trip {rtt} over --max-server-latency-ms {} for {} minutes",
            self.limit.as_millis(),
            SLOW_SERVER_PATIENCE.as_secs() / 60
        )
    }
}
