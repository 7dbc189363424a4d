//! `surql orchestrate deployments`, `show ID`, `resume ID` and `retry ID`:
//! the recorded deployments.

use comfy_table::Table;
use serde_json::json;

use super::args::{ApproveArgs, OrchestrateCommon, OutputFormat, RecordedTimeouts, RollbackArgs, StateArgs};
use super::execute::{open, open_to_read, store_config};
use crate::Error;
use crate::coordinator::DeployRequest;
use crate::engine::{DeployOptions, FailureBudget, UndoTarget};
use crate::error::EXIT_SUCCESS;
use crate::migration::discover_migrations;
use crate::migration::lock::MIN_LOCK_TTL;
use crate::registry::Shard;
use crate::state::DeploymentState;
use crate::state::{DeploymentRecord, EnvironmentRecord, EnvironmentState};

pub(super) async fn list(
    limit: usize,
    state: &StateArgs,
    config: &std::path::Path,
    output: OutputFormat,
) -> Result<i32, Error> {
    let deployments = open_to_read(state, config).await?.list(limit).await?;
    match output {
        OutputFormat::Json => println!("{}", json!({ "deployments": deployments })),
        OutputFormat::Table => println!("{}", deployments_table(&deployments)),
    }
    Ok(EXIT_SUCCESS)
}

pub(super) async fn show(
    id: &str,
    state: &StateArgs,
    config: &std::path::Path,
    output: OutputFormat,
) -> Result<i32, Error> {
    let (deployment, environments) = open_to_read(state, config).await?.show(id).await?;
    match output {
        OutputFormat::Json => {
            let view = crate::observe::DeploymentView::of(deployment, environments);
            println!("{}", serde_json::to_string(&view).unwrap_or_default());
        }
        OutputFormat::Table => {
            println!(
                "deployment {} ({}) by {} on {}: {}, started {}{}",
                deployment.id,
                deployment.strategy,
                deployment.actor,
                deployment.runner,
                deployment.state,
                deployment.started_at,
                deployment
                    .finished_at
                    .as_deref()
                    .map(|at| format!(", finished {at}"))
                    .unwrap_or_default()
            );
            println!("options: {}", json!(deployment.options));
            if let Some(control) = &deployment.control {
                if let Some(paused) = &control.paused {
                    println!("paused by {paused} (since {})", paused.at);
                }
                if let Some(aborted) = &control.aborted {
                    println!("aborted by {aborted} (at {})", aborted.at);
                }
                if let Some(max) = control.max_concurrent {
                    println!("throttled to {max} at once");
                }
            }
            for command in &deployment.commands {
                println!(
                    "command {} by {} at {}",
                    serde_json::to_value(&command.command).unwrap_or_default(),
                    command.actor,
                    command.at
                );
            }
            for change in &deployment.plan_changes {
                println!(
                    "plan changed by {} at {} (resume --force): {change}",
                    change.actor, change.at
                );
            }
            for part in &deployment.shards {
                println!(
                    "shard {} on {}: {}, {}",
                    part.shard, part.runner, part.state, part.counts
                );
            }
            println!("{}", environments_table(&environments));
        }
    }
    Ok(EXIT_SUCCESS)
}

/// `orchestrate dashboard`: serves until stopped (Ctrl-C).
pub(super) async fn dashboard(args: &super::record_args::DashboardArgs) -> Result<i32, Error> {
    let options = crate::observe::DashboardOptions {
        listen: args.listen.clone(),
        token: args.token.clone(),
        store: store_config(&args.state, &args.config)?,
    };
    let dashboard = crate::observe::Dashboard::start(options).await?;
    eprintln!(
        "dashboard on http://{}/ (read-only; Ctrl-C stops it)",
        dashboard.address
    );
    tokio::select! {
        served = dashboard.wait() => served.map(|()| EXIT_SUCCESS).map_err(Error::from),
        _ = tokio::signal::ctrl_c() => Ok(EXIT_SUCCESS),
    }
}

fn deployments_table(deployments: &[DeploymentRecord]) -> Table {
    let mut table = super::render::table(&[
        "Deployment",
        "Started",
        "Actor",
        "Strategy",
        "Environments",
        "Results",
        "State",
    ]);
    for d in deployments {
        table.add_row(vec![
            d.id.clone(),
            d.started_at.clone(),
            d.actor.clone(),
            match (&d.rollback_of, &d.retry_of) {
                (Some(of), _) => format!("{}, rollback of {of}", d.strategy),
                (None, Some(of)) => format!("{}, retry of {of}", d.strategy),
                (None, None) => d.strategy.clone(),
            },
            d.selection.len().to_string(),
            d.counts.to_string(),
            match d.control.as_ref().filter(|_| d.state == DeploymentState::Running) {
                Some(control) if control.aborted.is_some() => "running (aborting)".to_string(),
                Some(control) if control.paused.is_some() => "running (paused)".to_string(),
                _ => d.state.to_string(),
            },
        ]);
    }
    table
}

fn environments_table(environments: &[EnvironmentRecord]) -> Table {
    let mut table = super::render::table(&["Environment", "State", "Migrations", "Updated", "Error"]);
    for e in environments {
        let mut state = serde_json::to_value(e.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if e.reconciled {
            state.push_str(" (read from the database)");
        }
        if e.joined_late {
            state.push_str(" (joined late)");
        }
        table.add_row(vec![
            e.environment.clone(),
            state,
            e.migrations_applied.to_string(),
            e.updated_at.clone(),
            e.error.clone().unwrap_or_default(),
        ]);
    }
    table
}

/// `resume ID`: the recorded deployment's strategy, options and plan over
/// the environments it did not finish; the finished ones (recorded, or read
/// from their databases) keep their result. Of a deployment split across
/// runners, each shard resumes its own part.
pub(super) use super::continued::{Recorded, continue_recorded};
use super::continued::{checked_plan, finished, reconcile};

pub(super) async fn resume(id: &str, force: bool, shard: Option<Shard>, run: Run<'_>) -> Result<i32, Error> {
    let store = open(run.state, &run.common.config).await?;
    let (record, mut environments) = store.show(id).await?;
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
    let mut request = recorded_request(&record, run.timeouts, run.approvals, run.common)?;
    request.plan_changes = checked_plan(&record, &request.migrations, force, &request.context.actor)?;
    request.context.deployment_id = id.to_string();
    request.shard = shard;
    request.recorded_runner = Some(record.runner.clone());
    let selected: std::collections::HashSet<&String> = record.selection.iter().collect();
    environments.retain(|e| selected.contains(&e.environment));
    reconcile(&store, &record, &mut environments, &request.migrations, run.common).await?;
    request.kept = finished(&environments, &selected);
    super::execute::execute(request, run.common, Some(store.into()), run.wait, None).await
}

/// `pause`, `continue`, `abort`, `throttle`: a command to a running
/// deployment, recorded in it; its runners obey within about a second.
pub(super) async fn steer(
    id: &str,
    command: crate::state::Command,
    args: &super::args::SteerArgs,
) -> Result<i32, Error> {
    let store = open_to_read(&args.state, &args.config).await?;
    let actor = args
        .actor
        .clone()
        .unwrap_or_else(|| crate::migration::ApplyContext::new().actor);
    let record = crate::state::CommandRecord::now(command, &actor);
    let control = store.command(id, &record).await?;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            json!({ "deployment_id": id, "command": record, "control": control })
        ),
        OutputFormat::Table => {
            let what = match &record.command {
                crate::state::Command::Pause { .. } => {
                    "paused: running environments finish, no new one starts".to_string()
                }
                crate::state::Command::Continue => "continued".to_string(),
                crate::state::Command::Abort { .. } => {
                    "aborted: running environments finish, the rest are SKIPPED".to_string()
                }
                crate::state::Command::Throttle { max_concurrent } => format!("throttled to {max_concurrent} at once"),
            };
            println!("deployment {id}: {what} (by {actor}; its runners obey within about a second)");
        }
    }
    Ok(EXIT_SUCCESS)
}

/// How `resume` and `retry` run: approvals, the state store, the common
/// flags, and whether to wait for an overlapping deployment.
pub(super) struct Run<'a> {
    pub timeouts: &'a RecordedTimeouts,
    pub approvals: &'a ApproveArgs,
    pub state: &'a StateArgs,
    pub common: &'a OrchestrateCommon,
    pub wait: bool,
}

/// A request with a recorded deployment's strategy, options and selection.
/// (`--set` values that named a secret were recorded redacted.)
fn recorded_request(
    record: &DeploymentRecord,
    timeouts: &RecordedTimeouts,
    approvals: &ApproveArgs,
    common: &OrchestrateCommon,
) -> Result<DeployRequest, Error> {
    let options = &record.options;
    // Recorded by surql itself; a value edited out of range is not trusted.
    let seconds = |value: Option<f64>| value.and_then(super::args::seconds_in_range);
    let defaults = DeployOptions::default();
    let mut request = DeployRequest::new(
        &[],
        discover_migrations(&common.dir.migrations_dir)?,
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
            .map(std::time::Duration::from_millis),
        max_failures: options
            .max_failures
            .as_deref()
            .and_then(|text| FailureBudget::parse(text).ok()),
        verify_health: options.verify_health.unwrap_or(true),
        auto_rollback: options.auto_rollback.unwrap_or(true),
        extra: options.set.clone().into_iter().collect(),
        approvals: approvals.policy(),
        connect_timeout: (timeouts.connect_timeout)
            .or_else(|| seconds(options.connect_timeout_s))
            .unwrap_or(defaults.connect_timeout),
        operation_timeout: (timeouts.operation_timeout)
            .or_else(|| seconds(options.operation_timeout_s))
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
        (timeouts.lock_ttl).or_else(|| seconds(options.lock_ttl_s).filter(|ttl| *ttl >= MIN_LOCK_TTL))
    {
        request.context.lock_ttl = lock_ttl;
    }
    Ok(request)
}

/// `rollback ID`: a new deployment, linked to ID, that reverts on each of
/// its environments what it applied there (every environment it started).
pub(super) async fn rollback(args: &RollbackArgs) -> Result<i32, Error> {
    let id = args.id.as_str();
    let store = open(&args.state, &args.common.config).await?;
    let (record, environments) = store.show(id).await?;
    if record.may_be_running() {
        return Err(Error::Usage(format!(
            "deployment {id} may still be running ({}): roll it back once it has ended",
            record.runner
        )));
    }
    let mut request = recorded_request(&record, &args.timeouts, &args.approvals, &args.common)?;
    request.environments = environments
        .iter()
        .filter(|e| e.state != EnvironmentState::Skipped)
        .map(|e| e.environment.clone())
        .collect();
    if request.environments.is_empty() {
        println!("deployment {id}: nothing to roll back ({})", record.counts);
        return Ok(EXIT_SUCCESS);
    }
    if let Some(strategy) = &args.strategy {
        request.strategy = strategy.clone();
    }
    let rollout = &args.rollout;
    request.options.batch_size = rollout.batch_size;
    request.options.canary_percent = rollout.canary_percent;
    request.options.max_concurrent = rollout.max_concurrent;
    request.options.max_per_server = rollout.max_per_server.map(|n| n as usize);
    request.options.max_failures = rollout.max_failures;
    request.options.dry_run = args.dry_run;
    request.options.undo = Some(UndoTarget {
        deployment_id: id.to_string(),
        force: args.force,
    });
    let store = (!args.dry_run).then(|| store.into());
    super::execute::execute(request, &args.common, store, args.wait, None).await
}

/// Which results of a deployment `retry` deploys again.
pub(super) struct Which {
    /// FAILED, ROLLED_BACK and outcome unknown.
    pub failed: bool,
    pub skipped: bool,
}

/// `retry ID`: a new deployment, linked to ID, over what did not succeed there.
pub(super) async fn retry(id: &str, which: Which, run: Run<'_>) -> Result<i32, Error> {
    let store = open(run.state, &run.common.config).await?;
    let (record, mut environments) = store.show(id).await?;
    if record.may_be_running() {
        return Err(Error::Usage(format!(
            "deployment {id} may still be running ({}): retry it once it has ended",
            record.runner
        )));
    }
    let migrations = discover_migrations(&run.common.dir.migrations_dir)?;
    reconcile(&store, &record, &mut environments, &migrations, run.common).await?;
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
        println!("deployment {id}: nothing to retry ({})", record.counts);
        return Ok(EXIT_SUCCESS);
    }
    let mut request = recorded_request(&record, run.timeouts, run.approvals, run.common)?;
    request.environments = chosen;
    request.retry_of = Some(id.to_string());
    super::execute::execute(request, run.common, Some(store.into()), run.wait, None).await
}
