//! Deploying programmatically with the library API: load environments.json,
//! discover migrations, deploy with a strategy, inspect the results.
//!
//!   cargo run --example deploy -- [CONFIG] [MIGRATIONS_DIR] [STRATEGY]
//!
//! Defaults: environments.json, examples/migrations, sequential. Environments
//! that require approval are approved here (the program is the approver).

use surql::{DeployRequest, DeploymentStatus, configure_environments, discover_migrations};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let config = args.next().unwrap_or_else(|| "environments.json".into());
    let migrations_dir = args.next().unwrap_or_else(|| "examples/migrations".into());
    let strategy = args.next().unwrap_or_else(|| "sequential".into());

    // Expands `discover` templates and loads plugins, as `surql orchestrate` does.
    let coordinator = configure_environments(&config).await?;
    let migrations = discover_migrations(&migrations_dir)?;
    let names: Vec<String> = coordinator.registry().names();

    let mut request = DeployRequest::new(
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
        migrations,
        &strategy,
    );
    request.options.verify_health = true;
    request.options.auto_rollback = true;
    request.options.approvals.approve_all = true;

    let report = coordinator.deploy_to_environments(request).await?;

    println!("deployment {} ({})", report.deployment_id, report.strategy);
    for (name, result) in &report.results {
        let mark = if result.status == DeploymentStatus::Success {
            "✓"
        } else {
            "✗"
        };
        println!(
            "{mark} {name}: {} — {} migration(s) in {:.2}s{}",
            result.status.label(),
            result.migrations_applied,
            result.duration_seconds.unwrap_or_default(),
            result.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
        );
    }
    let failed = report.results.values().filter(|r| r.is_failure()).count();
    println!("{}/{} succeeded", report.results.len() - failed, report.results.len());
    std::process::exit(if report.all_succeeded() { 0 } else { 1 });
}
