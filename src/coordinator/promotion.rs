//! The promotion rules of a deployment's environments, and what the state
//! store recorded as succeeded on the environments they name.

use super::{CoordinatorError, MigrationCoordinator};
use crate::engine::Engine;
use crate::registry::EnvironmentConfig;

impl MigrationCoordinator {
    /// The environments `environment`'s promotion rule names (itself left out).
    pub(super) fn promotion_sources(&self, environment: &EnvironmentConfig) -> Result<Vec<String>, CoordinatorError> {
        if environment.promote_from.is_empty() {
            return Ok(Vec::new());
        }
        let sources = self
            .registry
            .select(&environment.promote_from)
            .map_err(|e| CoordinatorError::Option(format!("environment '{}': promote_from: {e}", environment.name)))?;
        Ok(sources
            .into_iter()
            .map(|e| e.name.clone())
            .filter(|name| name != &environment.name)
            .collect())
    }

    /// Gives the engine its promotion rules and what the state store
    /// recorded as succeeded on their sources (none without a store: every
    /// version then waits for this run's own results).
    pub(super) async fn load_promotions(&self, engine: &Engine) {
        let mut promotions = crate::engine::Promotions::default();
        for environment in engine.environments() {
            if let Ok(sources) = self.promotion_sources(&environment)
                && !sources.is_empty()
            {
                promotions.sources.insert(environment.name.clone(), sources);
            }
        }
        if promotions.sources.is_empty() {
            return;
        }
        let mut all: Vec<String> = promotions.sources.values().flatten().cloned().collect();
        all.sort();
        all.dedup();
        if let Some(store) = &self.state {
            match store.succeeded_versions(&all).await {
                Ok(succeeded) => promotions.succeeded = succeeded,
                Err(error) => engine.log(format!(
                    "promotion rules: cannot read what succeeded on {} from the state store ({error}): only this run's results count",
                    all.join(", ")
                )),
            }
        }
        engine.set_promotions(promotions);
    }
}
