//! `surql strategy simulate`: a strategy run against scripted outcomes, with
//! no database; prints the waves and each environment's result.

use std::sync::Arc;

use super::args::{OutputFormat, SimulateArgs, StrategyCommand};
use super::render;
use surql::DeployOptions;
use surql::DeployRequest;
use surql::Error;
use surql::Simulation;
use surql::error::{EXIT_SCRIPT, EXIT_SUCCESS};
use surql::migration::discover_migrations;

pub async fn run(command: StrategyCommand) -> Result<i32, Error> {
    match command {
        StrategyCommand::Simulate(args) => simulate(*args).await,
    }
}

async fn simulate(args: SimulateArgs) -> Result<i32, Error> {
    let coordinator = super::execute::coordinator(&surql::Client::new(), &args.common).await?;
    let selected: Vec<String> = coordinator
        .select(&args.environments)
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    for (flag, names) in [
        ("--fail", &args.fail),
        ("--unhealthy", &args.unhealthy),
        ("--deny", &args.deny),
        ("--halt", &args.halt),
    ] {
        if let Some(name) = names.iter().find(|name| !selected.contains(name)) {
            return Err(Error::Usage(format!(
                "{flag} {name}: not one of the selected environments ({})",
                surql::some_of(&selected)
            )));
        }
    }
    // The migrations only shape `plan()`; a simulation needs none.
    let migrations = match args.common.dir.migrations_dir.is_dir() {
        true => discover_migrations(&args.common.dir.migrations_dir)?,
        false => Vec::new(),
    };
    let simulation = Simulation {
        fail: args.fail.iter().cloned().collect(),
        unhealthy: args.unhealthy.iter().cloned().collect(),
        deny: args.deny.iter().cloned().collect(),
        halt: args.halt.iter().cloned().collect(),
    };
    let options = DeployOptions {
        batch_size: args.rollout.batch_size,
        canary_percent: args.rollout.canary_percent,
        max_concurrent: args.rollout.max_concurrent,
        max_per_server: args.rollout.max_per_server.map(|n| n as usize),
        max_failures: args.rollout.max_failures,
        auto_rollback: !args.no_rollback,
        verify_health: !args.skip_health_check,
        set: super::execute::script_options(&args.set)?,
        simulation: Some(Arc::new(simulation)),
        override_freeze: super::execute::override_freeze(args.override_freeze.as_deref())?,
        ..DeployOptions::default()
    };
    let mut request = DeployRequest::new(&[], migrations, &args.strategy);
    request.environments = args.environments.clone();
    request.strategy_dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
    request.options = options;
    // Past durations for the estimate, read from a store that exists (creating nothing).
    let coordinator =
        match super::execute::open_existing(coordinator.client(), &args.state, &args.common.config).await? {
            Some(store) => coordinator.with_state(Arc::new(store)),
            None => coordinator,
        };
    let report = coordinator.deploy_to_environments(request).await?;
    match args.common.output {
        OutputFormat::Json => println!("{}", render::report_json(&report)),
        OutputFormat::Table => {
            println!("Simulated rollout ({}): nothing was connected to.", report.strategy);
            println!("{}", render::waves_table(&report.waves));
            if let Some(estimates) = &report.estimates {
                print!("{}", render::estimate_line(estimates));
            }
            if let Some(table) = render::results_table(&report) {
                println!("{table}");
            }
            println!("{}", render::summary_line(&report));
        }
    }
    Ok(match &report.script_error {
        Some(error) => {
            eprintln!("error: {}", surql::redact::redact(&error.to_string()));
            EXIT_SCRIPT
        }
        None => EXIT_SUCCESS,
    })
}
