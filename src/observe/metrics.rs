//! A deployment's Prometheus metrics, counted from its event stream.
//!
//! Every series carries `deployment_id` and `strategy`; none is per tenant
//! (10,000 tenants would be 10,000 series), only per server.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::engine::{Engine, Event, FailureKind};
use crate::state::EnvironmentState;

/// Upper bounds (seconds) of the per-environment duration histogram.
const ENVIRONMENT_BUCKETS: [f64; 13] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Upper bounds (seconds) of the per-migration duration histogram.
const MIGRATION_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// Environment states in the order the metrics list them.
const STATES: [EnvironmentState; 7] = [
    EnvironmentState::Pending,
    EnvironmentState::Running,
    EnvironmentState::Success,
    EnvironmentState::Failed,
    EnvironmentState::RolledBack,
    EnvironmentState::Skipped,
    EnvironmentState::OutcomeUnknown,
];

/// Where a deployment is: what `surql_deployment_phase` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Deploying: new environments may start.
    Running,
    /// No new environment starts (an operator's pause, or the state store away).
    Paused,
    /// The deployment ended.
    Finished,
}

impl Phase {
    const ALL: [Phase; 3] = [Phase::Running, Phase::Paused, Phase::Finished];

    fn value(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Finished => "finished",
        }
    }
}

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|bound| value <= *bound) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

#[derive(Debug)]
struct Counted {
    selected: usize,
    states: HashMap<String, EnvironmentState>,
    waves_started: u64,
    waves_finished: u64,
    migrations_applied: u64,
    environment_seconds: Histogram,
    migration_seconds: Histogram,
    failures: BTreeMap<&'static str, u64>,
    finished: bool,
    /// The server (`host:port`) of each environment seen running.
    server_of: HashMap<String, String>,
    running_on: BTreeMap<String, i64>,
    /// One connection per server, to measure its round trip.
    probes: BTreeMap<String, crate::connection::ConnectionConfig>,
}

/// The metrics of one deployment, fed by its events; render with [`Metrics::render`].
pub struct Metrics {
    labels: String,
    counted: Mutex<Counted>,
    engine: Option<Arc<Engine>>,
    /// The deployment's client (a fresh one without an engine): the round
    /// trips its servers are probed with are noted there.
    client: crate::connection::Client,
}

/// A label value as the text format writes it.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// Metrics of deployment `deployment_id` by `strategy` over `selected`
    /// environments; `engine` tells the phase and each environment's server.
    pub fn new(deployment_id: &str, strategy: &str, selected: usize, engine: Option<Arc<Engine>>) -> Arc<Self> {
        Arc::new(Self {
            labels: format!(
                "deployment_id=\"{}\",strategy=\"{}\"",
                escape(deployment_id),
                escape(strategy)
            ),
            counted: Mutex::new(Counted {
                selected,
                states: HashMap::new(),
                waves_started: 0,
                waves_finished: 0,
                migrations_applied: 0,
                environment_seconds: Histogram::new(&ENVIRONMENT_BUCKETS),
                migration_seconds: Histogram::new(&MIGRATION_BUCKETS),
                failures: BTreeMap::new(),
                finished: false,
                server_of: HashMap::new(),
                running_on: BTreeMap::new(),
                probes: BTreeMap::new(),
            }),
            client: engine.as_ref().map(|e| e.client().clone()).unwrap_or_default(),
            engine,
        })
    }

    /// The client the servers' round trips are probed through and read from.
    pub(super) fn client(&self) -> &crate::connection::Client {
        &self.client
    }

    /// Counts one event.
    pub fn observe(&self, event: &Event) {
        let mut counted = self.counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            Event::Started { environment } => {
                counted.states.insert(environment.clone(), EnvironmentState::Running);
                if let Some(config) = self.connection_of(environment) {
                    let server = config.host();
                    *counted.running_on.entry(server.clone()).or_default() += 1;
                    counted.server_of.insert(environment.clone(), server.clone());
                    counted.probes.entry(server).or_insert(config);
                }
            }
            Event::MigrationApplied { duration_ms, .. } => {
                counted.migrations_applied += 1;
                counted.migration_seconds.observe(*duration_ms as f64 / 1000.0);
            }
            Event::Finished { result } => {
                let was_running = counted
                    .states
                    .insert(result.environment.clone(), EnvironmentState::of(result))
                    == Some(EnvironmentState::Running);
                if was_running && let Some(server) = counted.server_of.get(&result.environment).cloned() {
                    *counted.running_on.entry(server).or_default() -= 1;
                }
                if let (true, Some(seconds)) = (was_running, result.duration_seconds) {
                    counted.environment_seconds.observe(seconds);
                }
                if result.is_failure() {
                    let kind = result.failure_kind.unwrap_or(FailureKind::Other).value();
                    *counted.failures.entry(kind).or_default() += 1;
                }
            }
            Event::WaveStarted { .. } => counted.waves_started += 1,
            Event::WaveFinished { .. } => counted.waves_finished += 1,
            Event::Joined { .. } => counted.selected += 1,
            Event::Phase { .. } | Event::Log { .. } => {}
        }
    }

    /// The deployment ended: the phase is `finished` from now on.
    pub fn finish(&self) {
        self.counted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .finished = true;
    }

    fn connection_of(&self, environment: &str) -> Option<crate::connection::ConnectionConfig> {
        let engine = self.engine.as_ref()?;
        let config = engine.environment(environment).ok()?;
        (config.connection.endpoint_kind().ok()? == crate::connection::EndpointKind::Remote)
            .then(|| config.connection.clone())
    }

    /// Forwards `events` to the returned receiver, counting each on the way.
    pub fn tap(self: &Arc<Self>, mut events: UnboundedReceiver<Event>) -> UnboundedReceiver<Event> {
        let (sender, receiver) = unbounded_channel();
        let metrics = self.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                metrics.observe(&event);
                let _ = sender.send(event);
            }
        });
        receiver
    }

    /// A connection to each server this deployment has used so far.
    pub fn servers(&self) -> Vec<crate::connection::ConnectionConfig> {
        let counted = self.counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counted.probes.values().cloned().collect()
    }

    /// The metrics in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let counted = self.counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let labels = &self.labels;
        let mut out = String::with_capacity(4096);
        let mut by_state: HashMap<EnvironmentState, usize> = HashMap::new();
        for state in counted.states.values() {
            *by_state.entry(*state).or_default() += 1;
        }
        let seen: usize = by_state.values().sum();
        by_state.insert(EnvironmentState::Pending, counted.selected.saturating_sub(seen));

        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut out,
            "surql_environments_selected",
            "gauge",
            "Environments the deployment selected (and joined since).",
        );
        let _ = writeln!(out, "surql_environments_selected{{{labels}}} {}", counted.selected);
        head(&mut out, "surql_environments", "gauge", "Environments by state.");
        for state in STATES {
            let value = serde_json::to_value(state).ok();
            let name = value.as_ref().and_then(|v| v.as_str()).unwrap_or("unknown");
            let n = by_state.get(&state).copied().unwrap_or(0);
            let _ = writeln!(out, "surql_environments{{{labels},state=\"{name}\"}} {n}");
        }
        head(
            &mut out,
            "surql_waves_started_total",
            "counter",
            "Waves (deploy calls) started.",
        );
        let _ = writeln!(out, "surql_waves_started_total{{{labels}}} {}", counted.waves_started);
        head(&mut out, "surql_waves_finished_total", "counter", "Waves finished.");
        let _ = writeln!(out, "surql_waves_finished_total{{{labels}}} {}", counted.waves_finished);
        head(
            &mut out,
            "surql_migrations_applied_total",
            "counter",
            "Migrations committed, over every environment.",
        );
        let _ = writeln!(
            out,
            "surql_migrations_applied_total{{{labels}}} {}",
            counted.migrations_applied
        );
        head(
            &mut out,
            "surql_failures_total",
            "counter",
            "Environments FAILED or ROLLED_BACK, by kind.",
        );
        for kind in FailureKind::ALL {
            let n = counted.failures.get(kind.value()).copied().unwrap_or(0);
            let _ = writeln!(out, "surql_failures_total{{{labels},kind=\"{}\"}} {n}", kind.value());
        }
        let phase = self.phase(counted.finished);
        head(
            &mut out,
            "surql_deployment_phase",
            "gauge",
            "1 for the deployment's phase, 0 for the others.",
        );
        for candidate in Phase::ALL {
            let _ = writeln!(
                out,
                "surql_deployment_phase{{{labels},phase=\"{}\"}} {}",
                candidate.value(),
                u8::from(candidate == phase)
            );
        }
        histogram(
            &mut out,
            "surql_environment_duration_seconds",
            "Seconds each environment's deployment took.",
            labels,
            &counted.environment_seconds,
        );
        histogram(
            &mut out,
            "surql_migration_duration_seconds",
            "Seconds each migration took on its database.",
            labels,
            &counted.migration_seconds,
        );
        head(
            &mut out,
            "surql_server_environments_running",
            "gauge",
            "Environments deploying now, per server.",
        );
        for (server, running) in &counted.running_on {
            let _ = writeln!(
                out,
                "surql_server_environments_running{{{labels},server=\"{}\"}} {}",
                escape(server),
                running.max(&0)
            );
        }
        head(
            &mut out,
            "surql_server_round_trip_seconds",
            "gauge",
            "Recent round trip to each server (median of the last probes).",
        );
        for server in counted.running_on.keys() {
            if let Some(rtt) = crate::connection::recent_round_trip_to(&self.client, server) {
                let _ = writeln!(
                    out,
                    "surql_server_round_trip_seconds{{{labels},server=\"{}\"}} {}",
                    escape(server),
                    rtt.as_secs_f64()
                );
            }
        }
        out
    }

    fn phase(&self, finished: bool) -> Phase {
        match (finished, &self.engine) {
            (true, _) => Phase::Finished,
            (false, Some(engine)) if !engine.held().is_empty() => Phase::Paused,
            _ => Phase::Running,
        }
    }
}

fn histogram(out: &mut String, name: &str, help: &str, labels: &str, histogram: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (bound, n) in histogram.bounds.iter().zip(&histogram.counts) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", histogram.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", histogram.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", histogram.count);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{DeploymentResult, DeploymentStatus};

    fn finished(name: &str, status: DeploymentStatus) -> Event {
        Event::Finished {
            result: DeploymentResult::finished(name, status, 1, None, chrono::Utc::now()),
        }
    }

    /// States move from pending to running to final; failures count by kind.
    #[test]
    fn environments_move_between_states() {
        let metrics = Metrics::new("d-1", "rolling", 3, None);
        metrics.observe(&Event::Started {
            environment: "a".into(),
        });
        metrics.observe(&Event::Started {
            environment: "b".into(),
        });
        metrics.observe(&finished("a", DeploymentStatus::Success));
        metrics.observe(&finished("b", DeploymentStatus::Failed));
        let text = metrics.render();
        let labels = "deployment_id=\"d-1\",strategy=\"rolling\"";
        for line in [
            format!("surql_environments{{{labels},state=\"pending\"}} 1"),
            format!("surql_environments{{{labels},state=\"running\"}} 0"),
            format!("surql_environments{{{labels},state=\"success\"}} 1"),
            format!("surql_environments{{{labels},state=\"failed\"}} 1"),
            format!("surql_failures_total{{{labels},kind=\"other\"}} 1"),
            format!("surql_environment_duration_seconds_count{{{labels}}} 2"),
            format!("surql_deployment_phase{{{labels},phase=\"running\"}} 1"),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        metrics.finish();
        assert!(
            metrics
                .render()
                .contains(&format!("surql_deployment_phase{{{labels},phase=\"finished\"}} 1"))
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
