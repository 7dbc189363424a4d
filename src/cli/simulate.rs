//! `surql strategy simulate`: a strategy run against scripted outcomes, with
//! no database; prints the waves and each environment's result.

use std::sync::Arc;

use clap::Args;

use super::args::{OutputFormat, StrategyCommand};
use super::render;
use crate::Error;
use crate::coordinator::DeployRequest;
use crate::engine::DeployOptions;
use crate::engine::simulate::Simulation;
use crate::error::{EXIT_SCRIPT, EXIT_SUCCESS};
use crate::migration::discover_migrations;

/// `surql strategy simulate`'s flags.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// sequential, parallel, rolling, canary, a name in ./strategies/, or a .rhai path.
    #[arg(value_name = "FILE|NAME")]
    pub strategy: String,
    /// Environments: NAME[,NAME], all, tag:TAG (combinable).
    #[arg(short = 'e', long = "environments", required = true, value_delimiter = ',')]
    pub environments: Vec<String>,
    /// Environments where a migration fails (NAME[,NAME]).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub fail: Vec<String>,
    /// Environments whose health check fails (NAME[,NAME]).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub unhealthy: Vec<String>,
    /// Environments whose approval is denied (NAME[,NAME]).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub deny: Vec<String>,
    /// A gate halts each wave (and script `gate()` call) that includes one of these (NAME[,NAME]).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub halt: Vec<String>,
    #[command(flatten)]
    pub rollout: super::args::RolloutArgs,
    /// As deploy: failures keep what they applied (FAILED, not ROLLED_BACK).
    #[arg(long)]
    pub no_rollback: bool,
    /// As deploy: no health check before deploying.
    #[arg(long)]
    pub skip_health_check: bool,
    /// A value for the script's `options` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// As deploy: environments under a change freeze are deployed anyway.
    #[arg(long, value_name = "REASON")]
    pub override_freeze: Option<String>,
    /// The state store past durations are read from, when it exists (for estimates).
    #[command(flatten)]
    pub state: super::args::StateArgs,
    #[command(flatten)]
    pub common: super::args::OrchestrateCommon,
}

pub async fn run(command: StrategyCommand) -> Result<i32, Error> {
    match command {
        StrategyCommand::Simulate(args) => simulate(*args).await,
    }
}

async fn simulate(args: SimulateArgs) -> Result<i32, Error> {
    let coordinator = super::orchestrate::coordinator(&args.common).await?;
    let selected: Vec<String> = coordinator
        .select(&args.environments)?
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
                crate::registry::some_of(&selected)
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
        extra: super::orchestrate::script_options(&args.set)?,
        simulation: Some(Arc::new(simulation)),
        override_freeze: super::orchestrate::override_freeze(args.override_freeze.as_deref())?,
        ..DeployOptions::default()
    };
    let mut request = DeployRequest::new(&[], migrations, &args.strategy);
    request.environments = args.environments.clone();
    request.strategy_dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
    request.options = options;
    // Past durations for the estimate, read from a store that exists (creating nothing).
    let coordinator = match super::records::open_existing(&args.state, &args.common.config).await? {
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
            eprintln!("error: {}", crate::redact::redact(&error.to_string()));
            EXIT_SCRIPT
        }
        None => EXIT_SUCCESS,
    })
}
