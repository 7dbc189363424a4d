//! `surql orchestrate deploy|status|validate`: flags into a request, the
//! coordinator runs it, the results are rendered.

use std::sync::Arc;

use serde_json::json;

use super::args::{DeployArgs, ExistingHistoryArgs, OrchestrateCommand, OrchestrateCommon, OutputFormat};
use super::execute::{coordinator, execute, migrations, override_freeze, script_options};
use super::render;
use surql::DeployOptions;
use surql::DeployRequest;
use surql::Error;
use surql::connection::Client;
use surql::error::{EXIT_FAILURE, EXIT_SUCCESS};
use surql::migration::{ApplyContext, Migration};

pub async fn run(command: OrchestrateCommand) -> Result<i32, Error> {
    match command {
        OrchestrateCommand::Deploy(args) => deploy(*args).await,
        OrchestrateCommand::Status { environments, common } => status(&environments, &common).await,
        OrchestrateCommand::Validate { environments, common } => validate(&environments, &common).await,
        OrchestrateCommand::Verify { environments, common } => verify(&environments, &common).await,
        OrchestrateCommand::Deployments {
            limit,
            config,
            state,
            output,
        } => super::records::list(limit, &state, &config, output).await,
        OrchestrateCommand::Show {
            id,
            config,
            state,
            output,
        } => super::records::show(&id, &state, &config, output).await,
        OrchestrateCommand::Dashboard(args) => super::records::dashboard(&args).await,
        OrchestrateCommand::Resume {
            id,
            force,
            shard,
            wait,
            timeouts,
            approvals,
            state,
            common,
        } => {
            let shard = shard.shard().map_err(Error::Usage)?;
            let run = super::records::Run {
                timeouts: &timeouts,
                approvals: &approvals,
                state: &state,
                common: &common,
                wait,
            };
            super::records::resume(&id, force, shard, run).await
        }
        OrchestrateCommand::Retry {
            id,
            failed,
            skipped,
            wait,
            timeouts,
            approvals,
            state,
            common,
        } => {
            let which = surql::RetrySelection {
                failed: failed || !skipped,
                skipped,
            };
            let run = super::records::Run {
                timeouts: &timeouts,
                approvals: &approvals,
                state: &state,
                common: &common,
                wait,
            };
            super::records::retry(&id, which, run).await
        }
        OrchestrateCommand::Rollback(args) => super::records::rollback(&args).await,
        OrchestrateCommand::Baseline { version, existing } => record_existing(existing, Some(&version)).await,
        OrchestrateCommand::Adopt(existing) => record_existing(existing, None).await,
        OrchestrateCommand::Pause { id, reason, steer } => {
            super::records::steer(&id, surql::state::Command::Pause { reason }, &steer).await
        }
        OrchestrateCommand::Continue { id, steer } => {
            super::records::steer(&id, surql::state::Command::Continue, &steer).await
        }
        OrchestrateCommand::Abort { id, reason, steer } => {
            super::records::steer(&id, surql::state::Command::Abort { reason }, &steer).await
        }
        OrchestrateCommand::Throttle {
            id,
            max_concurrent,
            steer,
        } => {
            let command = surql::state::Command::Throttle {
                max_concurrent: max_concurrent as usize,
            };
            super::records::steer(&id, command, &steer).await
        }
        OrchestrateCommand::Unlock {
            environments,
            yes,
            common,
        } => unlock(&environments, yes, &common).await,
    }
}

fn request(args: &DeployArgs, migrations: Vec<Migration>) -> Result<DeployRequest, Error> {
    let set = script_options(&args.set)?;
    let options = DeployOptions {
        batch_size: args.rollout.batch_size,
        canary_percent: args.rollout.canary_percent,
        max_concurrent: args.rollout.max_concurrent,
        verify_health: !args.skip_health_check,
        auto_rollback: !args.no_rollback,
        dry_run: args.dry_run,
        health_timeout: args.common.health_timeout,
        connect_timeout: args.connect_timeout,
        operation_timeout: args.operation_timeout,
        approvals: args.approvals.policy(),
        set,
        max_pause: args.max_pause,
        max_failures: args.rollout.max_failures,
        simulation: None,
        undo: None,
        max_per_server: args.rollout.max_per_server.map(|n| n as usize),
        max_server_latency: args.max_server_latency_ms.map(std::time::Duration::from_millis),
        refresh_discovery: args.refresh_discovery,
        override_freeze: override_freeze(args.override_freeze.as_deref())?,
    };
    let mut context = ApplyContext::new();
    let shard = args.shard.shard().map_err(Error::Usage)?;
    match (&args.deployment_id, shard) {
        (Some(id), _) => context.deployment_id = valid_deployment_id(id)?,
        (None, Some(shard)) => {
            return Err(Error::Usage(format!(
                "--shard {shard} needs --deployment-id: every shard records under one id (e.g. the Job's name)"
            )));
        }
        (None, None) => {}
    }
    if let Some(actor) = &args.actor {
        context.actor = actor.clone();
    }
    context.lock_ttl = args.lock_ttl;
    context.order = surql::migration::plan::OrderPolicy {
        allow_out_of_order: args.allow_out_of_order,
        allow_missing: args.allow_missing,
    };
    Ok(DeployRequest {
        environments: args.environments.clone(),
        migrations,
        strategy: args.strategy.clone(),
        strategy_dir: std::env::current_dir().unwrap_or_else(|_| ".".into()),
        options,
        context,
        kept: Vec::new(),
        retry_of: None,
        shard,
        recorded_runner: None,
        plan_changes: Vec::new(),
    })
}

/// A `--deployment-id`: it names records, history rows and lock holders.
fn valid_deployment_id(id: &str) -> Result<String, Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > 100 || !id.chars().all(allowed) {
        return Err(Error::Usage(format!(
            "--deployment-id '{id}': use 1 to 100 letters, digits, '.', '_' or '-'"
        )));
    }
    Ok(id.to_string())
}

async fn deploy(args: DeployArgs) -> Result<i32, Error> {
    let migrations = migrations(&args.common)?;
    let request = request(&args, migrations)?;
    // One client for the command: the store, discovery and the deployment
    // share its connections.
    let client = &Client::new();
    // A dry run records nothing, but reads the store when there is one
    // (promotion rules, estimates), creating nothing.
    let store: Option<Arc<surql::state::StateStore>> = match args.dry_run {
        true => super::execute::open_existing(client, &args.state, &args.common.config)
            .await?
            .map(Arc::new),
        false => Some(
            super::execute::open(client, &args.state, &args.common.config)
                .await?
                .into(),
        ),
    };
    let claim = surql::ClaimOptions {
        wait: args.wait,
        continue_recorded: args.deployment_id.is_some(),
    };
    execute(client, request, &args.common, store, claim, Some(&args)).await
}

async fn status(environments: &[String], common: &OrchestrateCommon) -> Result<i32, Error> {
    let coordinator = coordinator(&Client::new(), common).await?;
    let migrations = migrations(common)?;
    let check = coordinator.health_check(common.health_timeout);
    let statuses = coordinator
        .get_deployment_status(environments, &migrations, &check)
        .await?;
    match common.output {
        OutputFormat::Json => println!("{}", json!({ "environments": statuses.values().collect::<Vec<_>>() })),
        OutputFormat::Table => {
            println!("Environment Deployment Status");
            println!("{}", render::status_table(statuses.values()));
        }
    }
    let all_healthy = statuses.values().all(|s| s.health.is_healthy && s.drift.is_empty());
    Ok(if all_healthy { EXIT_SUCCESS } else { EXIT_FAILURE })
}

async fn validate(environments: &[String], common: &OrchestrateCommon) -> Result<i32, Error> {
    let coordinator = coordinator(&Client::new(), common).await?;
    let selected = coordinator.select(environments).await?;
    let check = coordinator.health_check(common.health_timeout);
    let refs: Vec<_> = selected.iter().collect();
    let statuses = check.check_environments(&refs).await;
    let unhealthy = statuses.values().filter(|s| !s.is_healthy).count();
    match common.output {
        OutputFormat::Json => println!("{}", json!({ "environments": statuses.values().collect::<Vec<_>>() })),
        OutputFormat::Table => {
            println!("Environment Validation");
            println!("{}", render::validation_table(statuses.values()));
            if unhealthy == 0 {
                println!("✓ All environments validated successfully");
            } else {
                for status in statuses.values().filter(|s| !s.is_healthy) {
                    eprintln!(
                        "✗ {}: {}",
                        status.environment,
                        status.error.as_deref().unwrap_or("unhealthy")
                    );
                }
            }
        }
    }
    Ok(if unhealthy == 0 { EXIT_SUCCESS } else { EXIT_FAILURE })
}

async fn verify(environments: &[String], common: &OrchestrateCommon) -> Result<i32, Error> {
    let coordinator = coordinator(&Client::new(), common).await?;
    let results = coordinator
        .verify_environments(environments, migrations(common)?, common.health_timeout)
        .await?;
    match common.output {
        OutputFormat::Json => println!("{}", surql::redact::redact_json(json!({ "environments": results }))),
        OutputFormat::Table => println!("{}", render::verify_table(&results)),
    }
    Ok(if results.iter().all(|r| r.ok) {
        EXIT_SUCCESS
    } else {
        EXIT_FAILURE
    })
}

/// `orchestrate baseline` (with `version`) and `orchestrate adopt`: one
/// row per environment, what was (or would be) recorded there or why not.
async fn record_existing(args: ExistingHistoryArgs, version: Option<&str>) -> Result<i32, Error> {
    let ExistingHistoryArgs {
        environments,
        dry_run,
        actor,
        common,
    } = args;
    let (environments, common) = (&environments, &common);
    let coordinator = coordinator(&Client::new(), common).await?;
    let mut context = ApplyContext::new();
    if let Some(actor) = actor {
        context.actor = actor;
    }
    let timeouts = surql::connection::Timeouts::from(common.health_timeout);
    let migrations = migrations(common)?;
    let outcomes = match version {
        Some(version) => {
            coordinator
                .baseline_environments(environments, &migrations, version, &context, timeouts, dry_run)
                .await?
        }
        None => {
            coordinator
                .adopt_environments(environments, &migrations, &context, timeouts, dry_run)
                .await?
        }
    };
    match common.output {
        OutputFormat::Json => println!("{}", json!({ "dry_run": dry_run, "environments": outcomes })),
        OutputFormat::Table => {
            if dry_run {
                println!("Dry run: nothing was written.");
            }
            let heading = match (version.is_some(), dry_run) {
                (true, true) => "Would record as baseline",
                (true, false) => "Recorded as baseline",
                (false, true) => "Would adopt",
                (false, false) => "Adopted",
            };
            println!("{}", render::existing_table(&outcomes, heading));
        }
    }
    Ok(if outcomes.iter().all(|o| o.error.is_none()) {
        EXIT_SUCCESS
    } else {
        EXIT_FAILURE
    })
}

async fn unlock(environments: &[String], yes: bool, common: &OrchestrateCommon) -> Result<i32, Error> {
    let coordinator = coordinator(&Client::new(), common).await?;
    let mut all_unlocked = true;
    for environment in coordinator.select(environments).await? {
        let timeouts = surql::connection::Timeouts::from(common.health_timeout);
        let outcome = super::unlock::unlock(
            coordinator.client(),
            &environment.name,
            &environment.connection,
            timeouts,
            yes,
        )
        .await?;
        all_unlocked &= super::unlock::report(&environment.name, &outcome);
    }
    Ok(if all_unlocked { EXIT_SUCCESS } else { EXIT_FAILURE })
}
