//! `surql orchestrate deployments`, `show ID`, `resume ID` and `retry ID`:
//! the recorded deployments.

use comfy_table::Table;
use serde_json::json;

use super::args::{ApproveArgs, OrchestrateCommon, OutputFormat, RecordedTimeouts, RollbackArgs, StateArgs};
use super::execute::{open, open_to_read, store_config};
use surql::Error;
use surql::connection::Client;
use surql::error::EXIT_SUCCESS;
use surql::state::{DeploymentRecord, DeploymentState, EnvironmentRecord};
use surql::{RecordedDeployment, RecordedOverrides, Rerun, RetrySelection, Shard};

pub(super) async fn list(
    limit: usize,
    state: &StateArgs,
    config: &std::path::Path,
    output: OutputFormat,
) -> Result<i32, Error> {
    let deployments = open_to_read(&Client::new(), state, config).await?.list(limit).await?;
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
    let (deployment, environments) = open_to_read(&Client::new(), state, config).await?.show(id).await?;
    match output {
        OutputFormat::Json => {
            let view = surql::observe::DeploymentView::of(deployment, environments);
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
    let options = surql::observe::DashboardOptions {
        listen: args.listen.clone(),
        token: args.token.clone(),
        store: store_config(&args.state, &args.config)?,
    };
    let dashboard = surql::observe::Dashboard::start(options).await?;
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
    let mut table = super::render::table(&["Environment", "State", "Server", "Migrations", "Updated", "Error"]);
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
            e.server_version
                .as_ref()
                .map_or_else(|| "-".into(), |v| format!("SurrealDB {v}")),
            e.migrations_applied.to_string(),
            e.updated_at.clone(),
            e.error.clone().unwrap_or_default(),
        ]);
    }
    table
}

/// `pause`, `continue`, `abort`, `throttle`: a command to a running
/// deployment, recorded in it; its runners obey within about a second.
pub(super) async fn steer(
    id: &str,
    command: surql::state::Command,
    args: &super::args::SteerArgs,
) -> Result<i32, Error> {
    let store = open_to_read(&Client::new(), &args.state, &args.config).await?;
    let actor = args
        .actor
        .clone()
        .unwrap_or_else(|| surql::migration::ApplyContext::new().actor);
    let record = surql::state::CommandRecord::now(command, &actor);
    let control = store.command(id, &record).await?;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            json!({ "deployment_id": id, "command": record, "control": control })
        ),
        OutputFormat::Table => {
            let what = match &record.command {
                surql::state::Command::Pause { .. } => {
                    "paused: running environments finish, no new one starts".to_string()
                }
                surql::state::Command::Continue => "continued".to_string(),
                surql::state::Command::Abort { .. } => {
                    "aborted: running environments finish, the rest are SKIPPED".to_string()
                }
                surql::state::Command::Throttle { max_concurrent } => format!("throttled to {max_concurrent} at once"),
                other => format!("{}", serde_json::to_value(other).unwrap_or_default()),
            };
            println!("deployment {id}: {what} (by {actor}; its runners obey within about a second)");
        }
    }
    Ok(EXIT_SUCCESS)
}

/// `resume ID` (see [`RecordedDeployment::resume`]).
pub(super) async fn resume(id: &str, force: bool, shard: Option<Shard>, run: Run<'_>) -> Result<i32, Error> {
    let client = &Client::new();
    let store = open(client, run.state, &run.common.config).await?;
    let coordinator = super::execute::coordinator(client, run.common).await?;
    let rerun = run.recorded(&coordinator, &store).resume(id, shard, force).await?;
    execute_rerun(client, rerun, run.common, Some(store), run.wait).await
}

/// `retry ID` (see [`RecordedDeployment::retry`]).
pub(super) async fn retry(id: &str, which: RetrySelection, run: Run<'_>) -> Result<i32, Error> {
    let client = &Client::new();
    let store = open(client, run.state, &run.common.config).await?;
    let coordinator = super::execute::coordinator(client, run.common).await?;
    match run.recorded(&coordinator, &store).retry(id, which).await? {
        Some(rerun) => execute_rerun(client, rerun, run.common, Some(store), run.wait).await,
        None => nothing_to(id, "retry", &store).await,
    }
}

/// `rollback ID` (see [`RecordedDeployment::rollback`]), with this run's rollout options.
pub(super) async fn rollback(args: &RollbackArgs) -> Result<i32, Error> {
    let id = args.id.as_str();
    let client = &Client::new();
    let store = open(client, &args.state, &args.common.config).await?;
    let coordinator = super::execute::coordinator(client, &args.common).await?;
    let run = Run {
        timeouts: &args.timeouts,
        approvals: &args.approvals,
        state: &args.state,
        common: &args.common,
        wait: args.wait,
    };
    let Some(mut rerun) = run.recorded(&coordinator, &store).rollback(id, args.force).await? else {
        return nothing_to(id, "roll back", &store).await;
    };
    let request = &mut rerun.request;
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
    let store = (!args.dry_run).then_some(store);
    execute_rerun(client, rerun, &args.common, store, args.wait).await
}

async fn nothing_to(id: &str, what: &str, store: &surql::state::StateStore) -> Result<i32, Error> {
    let (record, _) = store.show(id).await?;
    println!("deployment {id}: nothing to {what} ({})", record.counts);
    Ok(EXIT_SUCCESS)
}

async fn execute_rerun(
    client: &Client,
    rerun: Rerun,
    common: &OrchestrateCommon,
    store: Option<surql::state::StateStore>,
    wait: bool,
) -> Result<i32, Error> {
    for notice in &rerun.notices {
        eprintln!("{notice}");
    }
    let claim = surql::ClaimOptions {
        wait,
        continue_recorded: false,
    };
    super::execute::execute(client, rerun.request, common, store.map(Into::into), claim, None).await
}

/// How `resume`, `retry` and `rollback` run: approvals, the state store,
/// the common flags, and whether to wait for an overlapping deployment.
pub(super) struct Run<'a> {
    pub timeouts: &'a RecordedTimeouts,
    pub approvals: &'a ApproveArgs,
    pub state: &'a StateArgs,
    pub common: &'a OrchestrateCommon,
    pub wait: bool,
}

impl Run<'_> {
    /// The deployments recorded in `store`, run again with these flags.
    pub fn recorded<'a>(
        &'a self,
        coordinator: &'a surql::MigrationCoordinator,
        store: &'a surql::state::StateStore,
    ) -> RecordedDeployment<'a> {
        RecordedDeployment {
            coordinator,
            store,
            migrations_dir: &self.common.dir.migrations_dir,
            overrides: RecordedOverrides {
                connect_timeout: self.timeouts.connect_timeout,
                operation_timeout: self.timeouts.operation_timeout,
                lock_ttl: self.timeouts.lock_ttl,
                approvals: self.approvals.policy(),
            },
            health_timeout: self.common.health_timeout,
        }
    }
}
