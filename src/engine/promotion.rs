//! Promotion rules: `"promote_from": ["staging"]` on an environment deploys
//! a migration version there only once it has ended SUCCESS on every
//! environment the rule names — by the state store's records of earlier
//! deployments, and by this run's own results. What is not promoted yet
//! waits: the environment is deployed up to the last promoted version, or
//! SKIPPED naming the version and the environment it waits for.

use std::collections::{HashMap, HashSet};

use super::{DeploymentStatus, Engine};

/// The rules of a run: per environment with `promote_from`, its sources and
/// the versions the state store recorded as succeeded on each.
#[derive(Debug, Clone, Default)]
pub struct Promotions {
    /// Environment → the environments it is promoted from.
    pub sources: HashMap<String, Vec<String>>,
    /// Source environment → versions that ended SUCCESS there (recorded).
    pub succeeded: HashMap<String, HashSet<String>>,
}

/// Not even the first pending migration is promoted yet: the environment is
/// SKIPPED with this.
#[derive(Debug, thiserror::Error)]
#[error("waiting for promotion: {version} has not ended SUCCESS on {environment} yet (promote_from)")]
pub(super) struct AwaitingPromotion {
    version: String,
    /// The source environment it waits for.
    environment: String,
}

impl Engine {
    /// The rules this run checks (set once, before the strategy runs).
    pub fn set_promotions(&self, promotions: Promotions) {
        let _ = self.promotions.set(promotions);
    }

    /// Whether `version` ended SUCCESS on `source`: recorded before, or in this run.
    fn promoted_on(&self, source: &str, version: &str) -> bool {
        if let Some(recorded) = self.promotions.get().and_then(|p| p.succeeded.get(source))
            && recorded.contains(version)
        {
            return true;
        }
        let ledger = self.ledger();
        let Some(state) = ledger.get(source) else {
            return false;
        };
        let applied_here = state
            .applied_this_run
            .iter()
            .any(|&i| self.migrations[i].version == version);
        // A full SUCCESS has every migration applied there, this run or before.
        let complete = state
            .result
            .as_ref()
            .is_some_and(|r| r.status == DeploymentStatus::Success && !state.partial && !state.kept);
        applied_here || complete
    }

    /// Of `pending` (indexes into the migrations, in order) for `environment`,
    /// those its promotion rule lets through: the longest run from the
    /// start whose every version succeeded on every source. `Err` names what
    /// it waits for when not even the first may go. `announce` logs a cut.
    pub(super) fn promoted(
        &self,
        environment: &str,
        pending: Vec<usize>,
        announce: bool,
    ) -> Result<Vec<usize>, AwaitingPromotion> {
        let Some(sources) = self.promotions.get().and_then(|p| p.sources.get(environment)) else {
            return Ok(pending);
        };
        let waiting = |index: usize| {
            let version = &self.migrations[index].version;
            sources
                .iter()
                .find(|source| !self.promoted_on(source, version))
                .map(|source| (version.clone(), source.clone()))
        };
        let through = pending
            .iter()
            .position(|&i| waiting(i).is_some())
            .unwrap_or(pending.len());
        match (through, pending.get(through)) {
            (_, None) => Ok(pending),
            (0, Some(&first)) => {
                let (version, source) = waiting(first).unwrap_or_default();
                Err(AwaitingPromotion {
                    version,
                    environment: source,
                })
            }
            (through, Some(&next)) => {
                if let Some((version, source)) = waiting(next).filter(|_| announce) {
                    self.log(format!(
                        "{environment}: deploying up to {} only: {version} has not ended SUCCESS on {source} yet (promote_from)",
                        self.migrations[pending[through - 1]].version
                    ));
                }
                Ok(pending[..through].to_vec())
            }
        }
    }
}
