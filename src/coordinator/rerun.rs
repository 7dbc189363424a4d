//! Running a recorded deployment again — `resume`, `retry`, `rollback`, and
//! a `--deployment-id` given again — as a [`DeployRequest`] built from its
//! record: its strategy, options and plan, the record first completed from
//! the databases, the environments it finished kept.

use std::collections::HashSet;
use std::time::Duration;

use super::{DeployRequest, MigrationCoordinator};
use crate::Error;
use crate::engine::{DeployOptions, DeploymentResult, DeploymentStatus, FailureBudget, UndoTarget};
use crate::migration::Migration;
use crate::migration::lock::MIN_LOCK_TTL;
use crate::registry::Shard;
use crate::safety::ApprovalPolicy;
use crate::state::{
    Counts, DeploymentRecord, DeploymentState, EnvironmentRecord, EnvironmentState, PlanChange, PlannedMigration,
    StateError, StateStore,
};

/// What a caller sets when a recorded deployment runs again; everything
/// else comes from the record. A `None` keeps the recorded value.
#[derive(Debug, Clone, Default)]
pub struct RecordedOverrides {
    /// Time allowed to connect and sign in.
    pub connect_timeout: Option<Duration>,
    /// Time one query may take.
    pub operation_timeout: Option<Duration>,
    /// How long a database's migration lock lasts without renewal.
    pub lock_ttl: Option<Duration>,
    /// Approvals given for this run (they are never recorded).
    pub approvals: ApprovalPolicy,
}

/// A recorded deployment run again, ready for [`MigrationCoordinator::prepare`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Rerun {
    /// The request: the record's strategy, options and selection.
    pub request: DeployRequest,
    /// What the caller should tell the operator (environments read from
    /// their databases, a plan change accepted).
    pub notices: Vec<String>,
}

/// Which results of a deployment [`RecordedDeployment::retry`] deploys again.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetrySelection {
    /// FAILED, ROLLED_BACK, outcome unknown, and what a stopped runner left open.
    pub failed: bool,
    /// SKIPPED.
    pub skipped: bool,
}

/// What a `--deployment-id` given again continues ([`RecordedDeployment::continue_id`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Continued {
    /// Not recorded yet (or this shard not yet): a new run.
    New,
    /// Its runner is gone: continue it, keeping what it finished.
    Continue {
        /// The environments it finished, kept untouched.
        kept: Vec<DeploymentResult>,
        /// The runner recorded for it (the claim takes it over from that one only).
        runner: String,
        /// What the caller should tell the operator.
        notices: Vec<String>,
    },
    /// Another runner finished it while this one waited.
    FinishedMeanwhile {
        /// The runner that finished it.
        runner: String,
        /// Its results.
        counts: Counts,
    },
}

/// Reruns of deployments recorded in one state store: what a program does
/// with a record that the CLI's `resume`, `retry` and `rollback` do.
pub struct RecordedDeployment<'a> {
    /// Reads the environments' databases to complete a record.
    pub coordinator: &'a MigrationCoordinator,
    /// Where the deployments are recorded.
    pub store: &'a StateStore,
    /// Where the migration files are now.
    pub migrations_dir: &'a std::path::Path,
    /// What this run overrides.
    pub overrides: RecordedOverrides,
    /// Time allowed to read each environment's history.
    pub health_timeout: Duration,
}

impl RecordedDeployment<'_> {
    /// `resume ID`: the recorded strategy, options and plan over the
    /// environments it did not finish (the finished ones, recorded or read
    /// from their databases, keep their result). A deployment split across
    /// runners resumes one `shard` at a time. Files changed since it was
    /// planned are refused unless `force` accepts (and records) the change;
    /// a deployment that may still be running is refused unless `force`.
    pub async fn resume(&self, id: &str, shard: Option<Shard>, force: bool) -> Result<Rerun, Error> {
        let (record, mut environments) = self.store.show(id).await?;
        let record = match (shard, record.shards.is_empty()) {
            (None, true) => record,
            (Some(shard), true) => {
                return Err(Error::Usage(format!(
                    "deployment {id} was not split across runners: resume it without --shard {shard}"
                )));
            }
            (None, false) => {
                return Err(Error::Usage(format!(
                    "deployment {id} ran in shards ({}): resume each with --shard I/N as it ran",
                    record
                        .shards
                        .iter()
                        .map(|p| p.shard.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            (Some(shard), false) => record
                .part(&shard.to_string())
                .ok_or_else(|| Error::Usage(format!("deployment {id} has no shard {shard} recorded")))?,
        };
        if record.state == DeploymentState::Finished {
            return Err(Error::Usage(format!(
                "deployment {id} is {} ({}): nothing to resume; `surql orchestrate retry {id}` deploys again what did not succeed",
                record.state, record.counts
            )));
        }
        if !force && record.may_be_running() {
            return Err(Error::Usage(format!(
                "deployment {id} may still be running ({}): resume it once that process has ended, or pass --force if it has",
                record.runner
            )));
        }
        let mut request = self.request(&record)?;
        let mut notices = Vec::new();
        request.plan_changes = checked_plan(
            &record,
            &request.migrations,
            force,
            &request.context.actor,
            &mut notices,
        )?;
        request.context.deployment_id = id.to_string();
        request.shard = shard;
        request.recorded_runner = Some(record.runner.clone());
        let selected: HashSet<&String> = record.selection.iter().collect();
        environments.retain(|e| selected.contains(&e.environment));
        notices.extend(self.reconcile(&record, &mut environments, &request.migrations).await?);
        request.kept = finished(&environments, &selected);
        Ok(Rerun { request, notices })
    }

    /// `retry ID`: a new deployment, linked to ID, over the environments
    /// `which` names among its results (after completing the record from
    /// the databases); `None` when there is none.
    pub async fn retry(&self, id: &str, which: RetrySelection) -> Result<Option<Rerun>, Error> {
        let (record, mut environments) = self.store.show(id).await?;
        refuse_running(&record, "retry it")?;
        let migrations = crate::migration::discover_migrations(self.migrations_dir)?;
        let notices = self.reconcile(&record, &mut environments, &migrations).await?;
        let chosen: Vec<String> = environments
            .iter()
            .filter(|e| match e.state {
                // Pending and running: left open by a runner that stopped or lost its store.
                EnvironmentState::Failed
                | EnvironmentState::RolledBack
                | EnvironmentState::OutcomeUnknown
                | EnvironmentState::Pending
                | EnvironmentState::Running => which.failed,
                EnvironmentState::Skipped => which.skipped,
                _ => false,
            })
            .map(|e| e.environment.clone())
            .collect();
        if chosen.is_empty() {
            return Ok(None);
        }
        let mut request = self.request(&record)?;
        request.environments = chosen;
        request.retry_of = Some(id.to_string());
        Ok(Some(Rerun {
            request,
            notices: notices.into_iter().collect(),
        }))
    }

    /// `rollback ID`: a new deployment, linked to ID, that reverts on each
    /// environment it started what it applied there (`force`: also where a
    /// later deployment applied more); `None` when it started none. The
    /// rollout options (strategy, batch size, …) are the record's: set them
    /// on the request to roll back differently.
    pub async fn rollback(&self, id: &str, force: bool) -> Result<Option<Rerun>, Error> {
        let (record, environments) = self.store.show(id).await?;
        refuse_running(&record, "roll it back")?;
        let mut request = self.request(&record)?;
        request.environments = environments
            .iter()
            .filter(|e| e.state != EnvironmentState::Skipped)
            .map(|e| e.environment.clone())
            .collect();
        if request.environments.is_empty() {
            return Ok(None);
        }
        request.options.undo = Some(UndoTarget {
            deployment_id: id.to_string(),
            force,
        });
        Ok(Some(Rerun {
            request,
            notices: Vec::new(),
        }))
    }

    /// A `--deployment-id` given again with `migrations`. New, or a shard
    /// not recorded yet: runs as new. Recorded and its runner gone (a
    /// crashed or killed pod started again): continues it with its recorded
    /// plan, keeping the environments it finished. Running: refused, or
    /// with `wait`, waited for (`on_wait` told every 2 s). Finished:
    /// refused, unless it finished while this runner waited (`waited`:
    /// already before the call).
    pub async fn continue_id(
        &self,
        id: &str,
        shard: Option<Shard>,
        migrations: &[Migration],
        wait: bool,
        mut waited: bool,
        mut on_wait: impl FnMut(&str),
    ) -> Result<Continued, Error> {
        loop {
            let (record, mut environments) = match self.store.show(id).await {
                Ok(found) => found,
                Err(StateError::NotFound(_)) => return Ok(Continued::New),
                Err(error) => return Err(error.into()),
            };
            let part = match (shard, record.shards.is_empty()) {
                (None, true) => record,
                (Some(shard), false) => match record.part(&shard.to_string()) {
                    Some(part) => part,
                    None => return Ok(Continued::New),
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
            if part.state == DeploymentState::Finished {
                if waited {
                    return Ok(Continued::FinishedMeanwhile {
                        runner: part.runner,
                        counts: part.counts,
                    });
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
                on_wait(&format!("{what} is running on {}", part.runner));
                waited = true;
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            if let Some(change) = changed_plan(&part, migrations) {
                return Err(Error::Usage(format!(
                    "{what} was planned with other migration files ({change}): a continued deployment applies its recorded plan; restore the files, accept the change with `surql orchestrate resume {id} --force` (recorded), or give a new --deployment-id"
                )));
            }
            let mut notices = vec![format!(
                "continuing {what}: its runner ({}) stopped; what it finished is kept",
                part.runner
            )];
            let selected: HashSet<&String> = part.selection.iter().collect();
            environments.retain(|e| selected.contains(&e.environment));
            notices.extend(self.reconcile(&part, &mut environments, migrations).await?);
            return Ok(Continued::Continue {
                kept: finished(&environments, &selected),
                runner: part.runner,
                notices,
            });
        }
    }

    /// Completes the record from the databases against its recorded plan
    /// (the files, for records without one; see
    /// [`MigrationCoordinator::reconcile`]); a notice when it completed any.
    async fn reconcile(
        &self,
        record: &DeploymentRecord,
        environments: &mut [EnvironmentRecord],
        migrations: &[Migration],
    ) -> Result<Option<String>, Error> {
        // A rollback's environments end with its migrations reverted, not
        // applied: its record is not completed from the histories.
        if record.rollback_of.is_some() {
            return Ok(None);
        }
        let plan = match record.plan.is_empty() {
            true => PlannedMigration::plan_of(migrations),
            false => record.plan.clone(),
        };
        let id = &record.id;
        let completed = self
            .coordinator
            .reconcile(self.store, id, environments, &plan, self.health_timeout)
            .await?;
        Ok((completed > 0).then(|| format!(
            "deployment {id}: {completed} environment(s) finished while it could not be recorded (read from their databases): recorded as SUCCESS, not deployed again"
        )))
    }

    /// A request with the record's strategy, options and selection, the
    /// migrations as they are now. (`--set` values that named a secret were
    /// recorded redacted.)
    fn request(&self, record: &DeploymentRecord) -> Result<DeployRequest, Error> {
        let options = &record.options;
        let overrides = &self.overrides;
        let defaults = DeployOptions::default();
        let mut request = DeployRequest::new(
            &[],
            crate::migration::discover_migrations(self.migrations_dir)?,
            options.strategy_name(),
        );
        request.environments = record.selection.clone();
        request.strategy_dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
        request.options = DeployOptions {
            batch_size: options.batch_size.unwrap_or(defaults.batch_size),
            canary_percent: options.canary_percent.unwrap_or(defaults.canary_percent),
            max_concurrent: options.max_concurrent.unwrap_or(defaults.max_concurrent),
            max_per_server: options.max_per_server.filter(|n| *n >= 1),
            // A freeze the deployment overrode stays overridden when it is resumed or retried.
            override_freeze: options.override_freeze.as_ref().map(|o| o.reason.clone()),
            max_server_latency: options
                .max_server_latency_ms
                .filter(|ms| *ms >= 1)
                .map(Duration::from_millis),
            max_failures: options
                .max_failures
                .as_deref()
                .and_then(|text| FailureBudget::parse(text).ok()),
            verify_health: options.verify_health.unwrap_or(true),
            auto_rollback: options.auto_rollback.unwrap_or(true),
            set: options.set.clone().into_iter().collect(),
            approvals: overrides.approvals.clone(),
            connect_timeout: (overrides.connect_timeout)
                .or_else(|| recorded_seconds(options.connect_timeout_s))
                .unwrap_or(defaults.connect_timeout),
            operation_timeout: (overrides.operation_timeout)
                .or_else(|| recorded_seconds(options.operation_timeout_s))
                .unwrap_or(defaults.operation_timeout),
            ..defaults
        };
        // A rollback's record is resumed or retried as a rollback, not a deploy.
        if let Some(target) = &record.rollback_of {
            request.options.undo = Some(UndoTarget {
                deployment_id: target.clone(),
                force: options.force.unwrap_or(false),
            });
        }
        if let Some(lock_ttl) =
            (overrides.lock_ttl).or_else(|| recorded_seconds(options.lock_ttl_s).filter(|ttl| *ttl >= MIN_LOCK_TTL))
        {
            request.context.lock_ttl = lock_ttl;
        }
        Ok(request)
    }
}

/// A recorded number of seconds, trusted only from a millisecond to a week
/// (a hand edit out of range falls back to the default).
fn recorded_seconds(seconds: Option<f64>) -> Option<Duration> {
    seconds
        .filter(|s| s.is_finite() && (0.001..=surql_plugin_sdk::MAX_SECONDS).contains(s))
        .map(Duration::from_secs_f64)
}

fn refuse_running(record: &DeploymentRecord, what: &str) -> Result<(), Error> {
    match record.may_be_running() {
        true => Err(Error::Usage(format!(
            "deployment {} may still be running ({}): {what} once it has ended",
            record.id, record.runner
        ))),
        false => Ok(()),
    }
}

/// How the files differ from `record`'s plan; `None` when they do not, or
/// when the record has no plan to compare (written before plans were recorded).
fn changed_plan(record: &DeploymentRecord, migrations: &[Migration]) -> Option<PlanChange> {
    let change = PlanChange::between(&record.plan, migrations);
    (!record.plan.is_empty() && !change.is_empty()).then_some(change)
}

/// The plan changes to record for a resumed run: none when the files are as
/// planned; refused when they differ, unless `force` accepts (and records) it.
fn checked_plan(
    record: &DeploymentRecord,
    migrations: &[Migration],
    force: bool,
    actor: &str,
    notices: &mut Vec<String>,
) -> Result<Vec<PlanChange>, Error> {
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
    notices.push(format!(
        "deployment {}: resuming with changed migration files ({change}); recorded",
        record.id
    ));
    change.at = chrono::Utc::now().to_rfc3339();
    change.actor = actor.to_string();
    changes.push(change);
    Ok(changes)
}

/// The environments recorded as SUCCESS among `selected`: kept untouched.
fn finished(environments: &[EnvironmentRecord], selected: &HashSet<&String>) -> Vec<DeploymentResult> {
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
