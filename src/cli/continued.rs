//! Continuing a recorded deployment: a `--deployment-id` run again, and
//! what `resume` and `retry` share — the record completed from the
//! databases, the recorded plan checked against the files, and the
//! environments kept as finished.

use super::args::OrchestrateCommon;
use crate::Error;
use crate::engine::{DeploymentResult, DeploymentStatus};
use crate::error::EXIT_SUCCESS;
use crate::registry::Shard;
use crate::state::{DeploymentRecord, EnvironmentRecord, EnvironmentState, StateError, StateStore};

/// What a `--deployment-id` given again continues.
pub(super) enum Recorded {
    /// Not recorded yet (or this shard not yet): a new run.
    New,
    /// Its runner is gone: continue it, keeping what it finished.
    Continue {
        kept: Vec<DeploymentResult>,
        /// The runner recorded for it (the claim takes it over from that one only).
        runner: String,
    },
    /// Another runner finished it while this one waited: its exit code.
    FinishedMeanwhile(i32),
}

/// A `--deployment-id` given again. New, or a shard not recorded yet: runs
/// as new. Recorded and its runner gone (a crashed or killed pod that
/// Kubernetes starts again): continues it with its recorded plan (the
/// record first completed from the databases), keeping the environments it
/// finished. Running: refused, or waited for with `wait`. Finished: refused,
/// unless it finished while this runner waited (`waited`: already before the call).
pub(super) async fn continue_recorded(
    store: &StateStore,
    id: &str,
    shard: Option<Shard>,
    wait: bool,
    mut waited: bool,
    migrations: &[crate::migration::Migration],
    common: &OrchestrateCommon,
) -> Result<Recorded, Error> {
    loop {
        let (record, mut environments) = match store.show(id).await {
            Ok(found) => found,
            Err(StateError::NotFound(_)) => return Ok(Recorded::New),
            Err(error) => return Err(error.into()),
        };
        let part = match (shard, record.shards.is_empty()) {
            (None, true) => record,
            (Some(shard), false) => match record.part(&shard.to_string()) {
                Some(part) => part,
                None => return Ok(Recorded::New),
            },
            (Some(shard), true) => {
                return Err(Error::Usage(format!(
                    "deployment {id} is recorded already, not split into shards: give --shard {shard} a new --deployment-id"
                )));
            }
            (None, false) => {
                return Err(Error::Usage(format!(
                    "deployment {id} is recorded already, split into shards: give each runner its --shard, or a new --deployment-id"
                )));
            }
        };
        let what = match shard {
            Some(shard) => format!("deployment {id} shard {shard}"),
            None => format!("deployment {id}"),
        };
        if part.state == crate::state::DeploymentState::Finished {
            if waited {
                eprintln!("{what} was finished by {} ({})", part.runner, part.counts);
                let failed = part.counts.failed + part.counts.rolled_back > 0;
                return Ok(Recorded::FinishedMeanwhile(if failed {
                    crate::error::EXIT_FAILURE
                } else {
                    EXIT_SUCCESS
                }));
            }
            return Err(Error::Usage(format!(
                "{what} is recorded already ({}): give a new --deployment-id; `surql orchestrate retry {id}` deploys again what did not succeed",
                part.counts
            )));
        }
        if part.may_be_running() {
            if !wait {
                return Err(Error::Usage(format!(
                    "{what} is running on {}: --wait waits for it (and continues it if its runner dies)",
                    part.runner
                )));
            }
            eprintln!("waiting: {what} is running on {}", part.runner);
            waited = true;
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            continue;
        }
        if let Some(change) = changed_plan(&part, migrations) {
            return Err(Error::Usage(format!(
                "{what} was planned with other migration files ({change}): a continued deployment applies its recorded plan; restore the files, accept the change with `surql orchestrate resume {id} --force` (recorded), or give a new --deployment-id"
            )));
        }
        eprintln!(
            "continuing {what}: its runner ({}) stopped; what it finished is kept",
            part.runner
        );
        let selected: std::collections::HashSet<&String> = part.selection.iter().collect();
        environments.retain(|e| selected.contains(&e.environment));
        reconcile(store, &part, &mut environments, migrations, common).await?;
        return Ok(Recorded::Continue {
            kept: finished(&environments, &selected),
            runner: part.runner,
        });
    }
}

/// Completes the record of `id` from the databases against its recorded
/// plan (the files, for records without one; see
/// [`crate::coordinator::MigrationCoordinator::reconcile`]), saying how many it completed.
pub(super) async fn reconcile(
    store: &StateStore,
    record: &DeploymentRecord,
    environments: &mut [EnvironmentRecord],
    migrations: &[crate::migration::Migration],
    common: &OrchestrateCommon,
) -> Result<(), Error> {
    let id = &record.id;
    // A rollback's environments end with its migrations reverted, not
    // applied: its record is not completed from the histories.
    if record.rollback_of.is_some() {
        return Ok(());
    }
    let plan = match record.plan.is_empty() {
        true => crate::state::PlannedMigration::plan_of(migrations),
        false => record.plan.clone(),
    };
    let coordinator = super::execute::coordinator(common).await?;
    let completed = coordinator
        .reconcile(store, id, environments, &plan, common.health_timeout)
        .await?;
    if completed > 0 {
        eprintln!(
            "deployment {id}: {completed} environment(s) finished while it could not be recorded (read from their databases): recorded as SUCCESS, not deployed again"
        );
    }
    Ok(())
}

/// How the files differ from `record`'s plan; `None` when they do not, or
/// when the record has no plan to compare (written before plans were recorded).
fn changed_plan(
    record: &DeploymentRecord,
    migrations: &[crate::migration::Migration],
) -> Option<crate::state::PlanChange> {
    let change = crate::state::PlanChange::between(&record.plan, migrations);
    (!record.plan.is_empty() && !change.is_empty()).then_some(change)
}

/// The plan changes to record for a continued run: none when the files are
/// as planned; refused when they differ, unless `force` accepts (and records) it.
pub(super) fn checked_plan(
    record: &DeploymentRecord,
    migrations: &[crate::migration::Migration],
    force: bool,
    actor: &str,
) -> Result<Vec<crate::state::PlanChange>, Error> {
    let mut changes = record.plan_changes.clone();
    let Some(mut change) = changed_plan(record, migrations) else {
        return Ok(changes);
    };
    if !force {
        return Err(Error::Usage(format!(
            "deployment {} was planned with other migration files ({change}): resume applies the recorded plan; restore the files, pass --force to resume with the files as they are now (the change is recorded), or `surql orchestrate retry {}` to plan afresh",
            record.id, record.id
        )));
    }
    eprintln!(
        "deployment {}: resuming with changed migration files ({change}); recorded",
        record.id
    );
    change.at = chrono::Utc::now().to_rfc3339();
    change.actor = actor.to_string();
    changes.push(change);
    Ok(changes)
}

/// The environments recorded as SUCCESS among `selected`: kept untouched by a resume.
pub(super) fn finished(
    environments: &[EnvironmentRecord],
    selected: &std::collections::HashSet<&String>,
) -> Vec<DeploymentResult> {
    let now = chrono::Utc::now();
    environments
        .iter()
        .filter(|e| e.state == EnvironmentState::Success && selected.contains(&e.environment))
        .map(|e| {
            DeploymentResult::finished(
                &e.environment,
                DeploymentStatus::Success,
                e.migrations_applied,
                None,
                now,
            )
        })
        .collect()
}
