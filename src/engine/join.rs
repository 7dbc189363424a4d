//! Tenants that appear during a rollout (`--refresh-discovery`): before each
//! wave the discovery templates are expanded again, and environments found
//! that the deployment does not have yet — and that its selection takes —
//! join that wave and every one after it.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Engine, Event};
use crate::registry::EnvironmentConfig;

/// Why a [`Discoverer`] found nothing: any error of the implementation.
pub type DiscoverFailed = Box<dyn std::error::Error + Send + Sync>;

/// Finds the environments a deployment's selection takes now (the
/// coordinator expands the environments file's templates again).
pub trait Discoverer: Send + Sync {
    /// Every environment the selection takes now, known ones included; an
    /// error when discovery fails (the wave goes on with those known, and
    /// the error is logged).
    fn discover(&self) -> BoxFuture<'_, Result<Vec<EnvironmentConfig>, DiscoverFailed>>;
}

impl Engine {
    /// Re-expands discovery before each wave (see the module docs).
    pub fn with_discoverer(self, discoverer: Arc<dyn Discoverer>) -> Self {
        let _ = self.discoverer.set(discoverer);
        self
    }

    /// `names` and the environments discovered since the deployment began,
    /// which join it here (recorded and announced as joined late).
    pub(super) async fn join_discovered(&self, names: &[String]) -> Vec<String> {
        let mut names = names.to_vec();
        let Some(discoverer) = self.discoverer.get() else {
            return names;
        };
        if self.is_cancelled() {
            return names;
        }
        let found = match tokio::time::timeout(self.options.health_timeout, discoverer.discover()).await {
            Ok(Ok(found)) => found,
            Ok(Err(error)) => {
                self.log(format!(
                    "--refresh-discovery: {error}; this wave goes on with the tenants known"
                ));
                return names;
            }
            Err(_) => {
                self.log("--refresh-discovery: no answer in time; this wave goes on with the tenants known");
                return names;
            }
        };
        let mut joined = Vec::new();
        {
            let mut environments = self
                .environments
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for environment in found {
                if environments.contains_key(&environment.name) {
                    continue;
                }
                joined.push(environment.name.clone());
                environments.insert(environment.name.clone(), Arc::new(environment));
            }
        }
        if joined.is_empty() {
            return names;
        }
        self.input_order
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(joined.iter().cloned());
        {
            let mut ledger = self.ledger();
            for name in &joined {
                ledger.entry(name.clone()).or_default();
            }
        }
        self.log(format!(
            "--refresh-discovery: {} tenant(s) found since the deployment started join this wave: {}",
            joined.len(),
            crate::registry::some_of(&joined)
        ));
        for name in &joined {
            self.events.send(Event::Joined {
                environment: name.clone(),
            });
        }
        names.extend(joined);
        names
    }
}
