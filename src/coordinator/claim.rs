//! A deployment prepared and claimed under its id, the way `deploy
//! --deployment-id` starts one: an id recorded already is continued, and a
//! claim lost to another runner of the same id is waited out.

use std::time::Duration;

use super::{Continued, DeployRequest, MigrationCoordinator, PreparedDeployment, RecordedDeployment};
use crate::Error;
use crate::state::{Counts, StateError};

/// How long a waiting runner sleeps before it looks at the record again.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// What [`MigrationCoordinator::prepare_and_claim`] leads to.
#[non_exhaustive]
pub enum ClaimOutcome<'c> {
    /// Claimed (recorded as running, where there is a state store): run it.
    Ready {
        /// The deployment, claimed.
        prepared: PreparedDeployment<'c>,
        /// What the caller should tell the operator before it runs (a
        /// stopped runner's deployment continued, environments completed
        /// from their databases).
        notices: Vec<String>,
    },
    /// Another runner of the same id (or shard) finished it while this one
    /// waited: nothing is left to run.
    FinishedMeanwhile {
        /// `deployment ID` or `deployment ID shard I/N`.
        what: String,
        /// The runner that finished it.
        runner: String,
        /// Its results.
        counts: Counts,
    },
}

/// How [`MigrationCoordinator::prepare_and_claim`] starts a deployment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClaimOptions {
    /// Wait for a running deployment holding the same environments, or for
    /// another runner of the same id or shard (continuing what it leaves
    /// when it stops), instead of being refused.
    pub wait: bool,
    /// The request's deployment id was chosen by the caller (`--deployment-id`):
    /// when it is recorded already, continue it ([`RecordedDeployment::continue_id`]).
    pub continue_recorded: bool,
}

impl MigrationCoordinator {
    /// Prepares `request` and claims it in the state store, as `surql
    /// orchestrate deploy` does: with `continue_recorded`, a deployment id
    /// (or shard) recorded already continues from its record, keeping what
    /// it finished; with `wait`, a deployment holding the same environments,
    /// or another runner claiming the same id or shard first, is waited for
    /// (`waiting` hears what it waits for each time, every 2 s) and whatever
    /// it leaves unfinished is continued. Dry runs and coordinators without
    /// a state store record nothing: it only prepares.
    pub async fn prepare_and_claim(
        &self,
        mut request: DeployRequest,
        options: ClaimOptions,
        mut waiting: impl FnMut(&str),
    ) -> Result<ClaimOutcome<'_>, Error> {
        let store = self.state.clone().filter(|_| !request.options.dry_run);
        let mut waited = false;
        loop {
            let mut notices = Vec::new();
            if let (Some(store), true) = (&store, options.continue_recorded) {
                let recorded = RecordedDeployment {
                    coordinator: self,
                    store,
                    // Continuing reads the record and the databases, no files.
                    migrations_dir: std::path::Path::new("."),
                    overrides: Default::default(),
                    health_timeout: request.options.health_timeout,
                };
                let id = request.context.deployment_id.clone();
                let continued = recorded
                    .continue_id(
                        &id,
                        request.shard,
                        &request.migrations,
                        options.wait,
                        waited,
                        &mut waiting,
                    )
                    .await?;
                (request.kept, request.recorded_runner) = match continued {
                    Continued::New => (Vec::new(), None),
                    Continued::Continue {
                        kept,
                        runner,
                        notices: told,
                    } => {
                        notices = told;
                        (kept, Some(runner))
                    }
                    Continued::FinishedMeanwhile { runner, counts } => {
                        let what = match request.shard {
                            Some(shard) => format!("deployment {id} shard {shard}"),
                            None => format!("deployment {id}"),
                        };
                        return Ok(ClaimOutcome::FinishedMeanwhile { what, runner, counts });
                    }
                };
            }
            let mut prepared = self.prepare(request.clone()).await?;
            match prepared.claim(options.wait, &mut waiting).await {
                Ok(()) => return Ok(ClaimOutcome::Ready { prepared, notices }),
                // Another runner claimed it first: wait for it, then continue what it leaves.
                Err(StateError::Claimed { what, holder }) if options.wait && options.continue_recorded => {
                    waiting(&format!("{what} is claimed by {holder}"));
                    waited = true;
                    tokio::time::sleep(RETRY_EVERY).await;
                }
                Err(refused) => return Err(refused.into()),
            }
        }
    }
}
