//! One deployment as `show --output json` and the dashboard's API give it:
//! the record, each environment, and the time left.

use serde::Serialize;

use crate::state::{Counts, DeploymentRecord, DeploymentState, EnvironmentRecord, EnvironmentState};

/// A deployment, its environments in selection order, and an estimate of
/// the time left while it runs.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentView {
    /// The deployment's record; while it runs, its counts are taken from the
    /// environments.
    pub deployment: DeploymentRecord,
    /// Each environment's record, in selection order.
    pub environments: Vec<EnvironmentRecord>,
    /// Seconds left at the pace so far; `null` once it ended or before any
    /// environment was deployed.
    pub time_left_s: Option<f64>,
}

impl DeploymentView {
    /// The view of `deployment` with `environments`, as of now.
    pub fn of(mut deployment: DeploymentRecord, environments: Vec<EnvironmentRecord>) -> Self {
        let time_left_s = time_left(&deployment, &environments, chrono::Utc::now());
        // The record counts at the end; until then, count what each environment shows.
        if deployment.state != DeploymentState::Finished && !environments.is_empty() {
            deployment.counts = Counts::default();
            for environment in &environments {
                deployment.counts.add_state(environment.state);
            }
        }
        Self {
            deployment,
            environments,
            time_left_s,
        }
    }
}

/// The environments still to finish times the pace so far (elapsed seconds
/// per deployed environment), as the progress line estimates it.
fn time_left(
    deployment: &DeploymentRecord,
    environments: &[EnvironmentRecord],
    now: chrono::DateTime<chrono::Utc>,
) -> Option<f64> {
    if deployment.state != DeploymentState::Running {
        return None;
    }
    let started = chrono::DateTime::parse_from_rfc3339(&deployment.started_at).ok()?;
    let elapsed = (now - started.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0;
    let left = environments
        .iter()
        .filter(|e| matches!(e.state, EnvironmentState::Pending | EnvironmentState::Running))
        .count();
    let deployed = environments
        .iter()
        .filter(|e| {
            !matches!(
                e.state,
                EnvironmentState::Pending | EnvironmentState::Running | EnvironmentState::Skipped
            )
        })
        .count();
    match (left, deployed) {
        (0, _) => Some(0.0),
        (_, 0) => None,
        _ => Some((elapsed.max(0.0) / deployed as f64 * left as f64 * 10.0).round() / 10.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(name: &str, state: EnvironmentState) -> EnvironmentRecord {
        EnvironmentRecord {
            environment: name.into(),
            state,
            migrations_applied: 0,
            versions: Vec::new(),
            error: None,
            updated_at: String::new(),
            reconciled: false,
            duration_s: None,
            joined_late: false,
            wave: None,
            failure_kind: None,
            server_version: None,
        }
    }

    /// Two of four deployed in 10 s: two more take about 10 s.
    #[test]
    fn the_time_left_follows_the_pace() {
        let deployment: DeploymentRecord = serde_json::from_value(serde_json::json!({
            "deployment_id": "d", "actor": "a", "strategy": "parallel", "options": {},
            "selection": ["a", "b", "c", "d"], "started_at": "2026-12-06T10:00:00Z",
            "finished_at": null, "state": "running", "runner": "r", "counts": {},
        }))
        .unwrap();
        let environments = vec![
            environment("a", EnvironmentState::Success),
            environment("b", EnvironmentState::Failed),
            environment("c", EnvironmentState::Running),
            environment("d", EnvironmentState::Pending),
        ];
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-06T10:00:10Z")
            .unwrap()
            .to_utc();
        assert_eq!(time_left(&deployment, &environments, now), Some(10.0));
        let finished = DeploymentRecord {
            state: DeploymentState::Finished,
            ..deployment
        };
        assert_eq!(time_left(&finished, &environments, now), None);
    }
}
