//! How long a planned rollout will take: each wave of a dry run, from the
//! durations the state store recorded for past deployments — per
//! environment where known, else the fleet's median — laid out over the
//! wave's concurrency as the scheduler would start them.

use serde::Serialize;

use super::MigrationCoordinator;
use crate::engine::Wave;

/// One wave's estimated duration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaveEstimate {
    /// The wave's label.
    pub label: String,
    /// Estimated seconds from its first environment starting to its last
    /// finishing, at the wave's concurrency.
    pub seconds: f64,
    /// Environments with a recorded duration of their own.
    pub known: usize,
    /// Environments given the fleet's median.
    pub assumed: usize,
}

impl MigrationCoordinator {
    /// Estimates `waves` from the store's past durations; `None` without a
    /// store or without a single recorded duration.
    pub async fn estimate_waves(&self, waves: &[Wave]) -> Option<Vec<WaveEstimate>> {
        let store = self.state.as_ref()?;
        let mut names: Vec<String> = waves.iter().flat_map(|w| w.environments.iter().cloned()).collect();
        names.sort();
        names.dedup();
        let past = store.past_durations(&names).await.ok()?;
        let per_environment: std::collections::HashMap<&String, f64> = past
            .iter()
            .filter_map(|(name, seconds)| Some((name, median(seconds)?)))
            .collect();
        let fleet = median(&per_environment.values().copied().collect::<Vec<_>>())?;
        Some(
            waves
                .iter()
                .map(|wave| {
                    let durations: Vec<f64> = wave
                        .environments
                        .iter()
                        .map(|name| per_environment.get(name).copied().unwrap_or(fleet))
                        .collect();
                    let known = wave
                        .environments
                        .iter()
                        .filter(|name| per_environment.contains_key(name))
                        .count();
                    WaveEstimate {
                        label: wave.label.clone(),
                        seconds: makespan(&durations, wave.max_concurrent),
                        known,
                        assumed: wave.environments.len() - known,
                    }
                })
                .collect(),
        )
    }
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(match sorted.len() % 2 {
        0 => (sorted[middle - 1] + sorted[middle]) / 2.0,
        _ => sorted[middle],
    })
}

/// When the last of `durations` ends, started in order on `slots` at once,
/// each on the slot that frees first.
fn makespan(durations: &[f64], slots: usize) -> f64 {
    let mut free_at = vec![0.0_f64; slots.max(1).min(durations.len().max(1))];
    for duration in durations {
        if let Some(earliest) = free_at.iter_mut().min_by(|a, b| a.total_cmp(b)) {
            *earliest += duration;
        }
    }
    free_at.into_iter().fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_are_laid_out_over_their_concurrency() {
        assert_eq!(makespan(&[2.0, 2.0, 2.0, 2.0], 2), 4.0);
        assert_eq!(makespan(&[5.0, 1.0, 1.0, 1.0], 2), 5.0);
        assert_eq!(makespan(&[1.0, 1.0], 8), 1.0);
        assert_eq!(makespan(&[], 3), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
