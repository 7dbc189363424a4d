//! `surql orchestrate deployments` and `show ID`: the recorded deployments.

use comfy_table::Table;
use serde_json::json;

use super::args::{OutputFormat, StateArgs};
use crate::Error;
use crate::error::EXIT_SUCCESS;
use crate::state::{DeploymentRecord, EnvironmentRecord, StateStore};

/// The state store of `--state` (its password registered as a secret).
pub(super) async fn open(state: &StateArgs) -> Result<StateStore, Error> {
    let config = state.connection();
    crate::redact::register_secrets_in(&json!({ "password": config.password }));
    Ok(StateStore::open(config, std::time::Duration::from_secs(10)).await?)
}

pub(super) async fn list(limit: usize, state: &StateArgs, output: OutputFormat) -> Result<i32, Error> {
    let deployments = open(state).await?.list(limit).await?;
    match output {
        OutputFormat::Json => println!("{}", json!({ "deployments": deployments })),
        OutputFormat::Table => println!("{}", deployments_table(&deployments)),
    }
    Ok(EXIT_SUCCESS)
}

pub(super) async fn show(id: &str, state: &StateArgs, output: OutputFormat) -> Result<i32, Error> {
    let (deployment, environments) = open(state).await?.show(id).await?;
    match output {
        OutputFormat::Json => println!("{}", json!({ "deployment": deployment, "environments": environments })),
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
            println!("options: {}", deployment.options);
            println!("{}", environments_table(&environments));
        }
    }
    Ok(EXIT_SUCCESS)
}

fn counts(record: &DeploymentRecord) -> String {
    let count = |key: &str| record.counts.get(key).copied().unwrap_or(0);
    format!(
        "{} success, {} failed, {} rolled back, {} skipped",
        count("success"),
        count("failed"),
        count("rolled_back"),
        count("skipped")
    )
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
            d.strategy.clone(),
            d.selection.len().to_string(),
            counts(d),
            d.state.clone(),
        ]);
    }
    table
}

fn environments_table(environments: &[EnvironmentRecord]) -> Table {
    let mut table = super::render::table(&["Environment", "State", "Migrations", "Updated", "Error"]);
    for e in environments {
        let state = serde_json::to_value(e.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
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
