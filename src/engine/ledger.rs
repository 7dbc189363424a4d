//! Results kept from an earlier run, and every selected environment's one
//! final result at the end.

use indexmap::IndexMap;

use super::{DeploymentResult, Engine};

impl Engine {
    /// Results kept from an earlier run of this deployment: recorded as they
    /// are, never announced, and those environments are never touched.
    pub fn keep(&self, results: Vec<DeploymentResult>) {
        let mut ledger = self.ledger();
        for result in results {
            if self.has_environment(&result.environment) {
                let state = ledger.entry(result.environment.clone()).or_default();
                state.result = Some(result);
                state.kept = true;
            }
        }
    }

    /// The environments whose results were kept from an earlier run.
    pub fn kept(&self) -> Vec<String> {
        let ledger = self.ledger();
        self.environment_map()
            .keys()
            .filter(|name| ledger.get(*name).is_some_and(|s| s.kept))
            .cloned()
            .collect()
    }

    /// Gives every environment without a result a SKIPPED one and returns all
    /// results in input order.
    pub fn finish(&self, reason: &str) -> IndexMap<String, DeploymentResult> {
        let order = self
            .input_order
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        order
            .iter()
            .map(|name| {
                let result = self
                    .result_of(name)
                    .unwrap_or_else(|| self.record(DeploymentResult::skipped(name, reason)));
                (name.clone(), result)
            })
            .collect()
    }
}
