//! One `deploy` call — a wave — and its options: concurrency, failure budget,
//! rollback and health policy, the version to stop at, and its label; and the
//! record of the waves a run made, which a dry run and the simulator show.

use serde::Serialize;

/// How many environments of one wave may fail before it starts no more.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
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
    pub max_concurrent: usize,
    pub max_failures: Option<FailureBudget>,
    pub auto_rollback: bool,
    pub verify_health: bool,
    /// Apply only migrations up to and including this version.
    pub to_version: Option<String>,
}

/// One wave as the run made it (or a dry run would).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wave {
    pub label: String,
    pub environments: Vec<String>,
    pub max_concurrent: usize,
    /// Failures that stop the wave (the budget resolved for its size).
    pub max_failures: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_version: Option<String>,
    pub auto_rollback: bool,
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
