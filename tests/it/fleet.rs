//! 10,000 tenants on the embedded engine: every built-in strategy and the
//! waves example run to a truthful result, and every tenant's history is read
//! back (with plain SurrealQL, not surql's own status code). Speed is measured
//! by `examples/bench.rs`, never asserted here.
//!
//! About two minutes on two cores, so they are not part of the plain
//! `cargo test --workspace`: `.ci/run` runs them with
//! `cargo test --test fleet -- --ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

use crate::common;

use std::path::Path;

use serde_json::Value;
use surql::connection::ConnectionConfig;
use surql::{DeployRequest, DeploymentStatus, EnvironmentConfig, EnvironmentRegistry, MigrationCoordinator};

use crate::common::{migrations_dir, unique};

const FLEET: usize = 10_000;
const MIGRATION: &str = "-- migrate:up\nDEFINE TABLE account SCHEMALESS;\n-- migrate:down\nREMOVE TABLE account;\n";
const VERSION: &str = "1";

/// FLEET tenants `tenant-00000`… in namespaces of their own on one embedded datastore.
fn fleet(prefix: &str) -> EnvironmentRegistry {
    let mut registry = EnvironmentRegistry::new();
    for i in 0..FLEET {
        let mut env = EnvironmentConfig::new(
            format!("tenant-{i:05}"),
            ConnectionConfig::new("mem://", format!("{prefix}_{i:05}"), "main"),
        );
        env.tags = vec!["tenant".into()];
        if i < 3 {
            env.tags.push("canary".into());
        }
        registry.register(env).unwrap();
    }
    registry
}

/// `(version, deployment_id)` of every history row of each tenant, read in
/// requests of 500 tenants that switch namespace with `USE`.
async fn histories(prefix: &str) -> Vec<Vec<(String, String)>> {
    let db = surql::connection::connect(
        &surql::Client::new(),
        &ConnectionConfig::new("mem://", prefix, "main"),
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    let mut all = Vec::with_capacity(FLEET);
    for start in (0..FLEET).step_by(500) {
        let sql: String = (start..(start + 500).min(FLEET))
            .map(|i| {
                format!("USE NS {prefix}_{i:05} DB main; SELECT version, deployment_id FROM _migration_history;\n")
            })
            .collect();
        let mut response = db.query(sql).await.unwrap();
        for statement in 0..response.num_statements() {
            if statement % 2 == 1 {
                let rows: Vec<Value> = response.take(statement).unwrap();
                all.push(
                    rows.iter()
                        .map(|r| {
                            (
                                r["version"].as_str().unwrap().to_string(),
                                r["deployment_id"].as_str().unwrap().to_string(),
                            )
                        })
                        .collect(),
                );
            }
        }
    }
    all
}

/// Deploys one migration to FLEET tenants with `strategy` and checks every
/// result and every history.
async fn deploy_the_fleet(strategy: &str, configure: impl FnOnce(&mut DeployRequest)) {
    let prefix = unique(&format!(
        "fleet_{}",
        Path::new(strategy).file_stem().unwrap().to_string_lossy()
    ));
    let migrations = migrations_dir(&[("1_account.surql", MIGRATION)]);
    let mut request = DeployRequest::new(
        &["all"],
        surql::discover_migrations(migrations.path()).unwrap(),
        strategy,
    );
    request.strategy_dir = crate::common::repo().to_path_buf();
    request.options.max_concurrent = 16;
    configure(&mut request);
    let deployment_id = request.context.deployment_id.clone();

    let report = MigrationCoordinator::new(fleet(&prefix))
        .deploy_to_environments(request)
        .await
        .unwrap();

    assert_eq!(report.script_error, None, "{strategy}");
    assert_eq!(report.results.len(), FLEET);
    for (i, (name, result)) in report.results.iter().enumerate() {
        assert_eq!(name, &format!("tenant-{i:05}"), "results keep the selection order");
        assert_eq!(result.status, DeploymentStatus::Success, "{strategy}: {result:?}");
        assert_eq!(result.migrations_applied, 1, "{strategy}: {result:?}");
    }
    let histories = histories(&prefix).await;
    assert_eq!(histories.len(), FLEET);
    for (i, rows) in histories.iter().enumerate() {
        assert_eq!(
            rows,
            &[(VERSION.to_string(), deployment_id.clone())],
            "{strategy}: history of tenant {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10,000 tenants, about 2 minutes: .ci/run runs it (cargo test --test fleet -- --ignored)"]
async fn sequential_deploys_ten_thousand_tenants() {
    deploy_the_fleet("sequential", |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10,000 tenants, about 2 minutes: .ci/run runs it (cargo test --test fleet -- --ignored)"]
async fn parallel_deploys_ten_thousand_tenants() {
    deploy_the_fleet("parallel", |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10,000 tenants, about 2 minutes: .ci/run runs it (cargo test --test fleet -- --ignored)"]
async fn rolling_deploys_ten_thousand_tenants() {
    deploy_the_fleet("rolling", |r| r.options.batch_size = 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10,000 tenants, about 2 minutes: .ci/run runs it (cargo test --test fleet -- --ignored)"]
async fn canary_deploys_ten_thousand_tenants() {
    deploy_the_fleet("canary", |r| r.options.canary_percent = 10.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10,000 tenants, about 2 minutes: .ci/run runs it (cargo test --test fleet -- --ignored)"]
async fn the_waves_example_deploys_ten_thousand_tenants() {
    deploy_the_fleet("examples/strategies/waves.rhai", |r| {
        r.options.set.insert("wave_pause_seconds".into(), 0.into());
    })
    .await;
}

/// A migration that fails everywhere: every tenant FAILED with its own reason,
/// no strategy error (10,000 error texts are more than the sandbox's old 1 MiB
/// of strings), nothing left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10,000 tenants, about 2 minutes: .ci/run runs it (cargo test --test fleet -- --ignored)"]
async fn a_migration_failing_on_ten_thousand_tenants_fails_each_truthfully() {
    let prefix = unique("fleet_failing");
    let migrations = migrations_dir(&[(
        "1_broken.surql",
        "-- migrate:up\nDEFINE TABLE account SCHEMALESS;\nTHROW \"this migration is broken on purpose\";\n-- migrate:down\nREMOVE TABLE account;\n",
    )]);
    let mut request = DeployRequest::new(
        &["all"],
        surql::discover_migrations(migrations.path()).unwrap(),
        "parallel",
    );
    request.options.max_concurrent = 16;
    let report = MigrationCoordinator::new(fleet(&prefix))
        .deploy_to_environments(request)
        .await
        .unwrap();
    assert_eq!(report.script_error, None);
    assert_eq!(report.results.len(), FLEET);
    for result in report.results.values() {
        assert_eq!(result.status, DeploymentStatus::Failed, "{result:?}");
        let error = result.error.as_deref().unwrap_or_default();
        assert!(error.contains("broken on purpose"), "{error}");
    }
    assert!(histories(&prefix).await.iter().all(|rows| rows.is_empty()));
}

/// The CLI at 10,000: one progress line every 10 % (not one per tenant), a
/// table of only the tenants that did not succeed, `--report` and `status
/// --output json` with every tenant.
#[test]
#[ignore = "10,000 tenants, about 2 minutes: .ci/run runs it (cargo test --test fleet -- --ignored)"]
fn the_cli_at_ten_thousand_tenants_reports_every_one_and_prints_only_failures() {
    let work = tempfile::tempdir().unwrap();
    let prefix = unique("fleet_cli");
    let environments: Vec<Value> = (0..FLEET)
        .map(|i| {
            serde_json::json!({
                "name": format!("tenant-{i:05}"),
                "tags": ["tenant"],
                // Every 1,000th tenant refuses the destructive second migration.
                "allow_destructive": i % 1_000 != 7,
                // One store on disk for all (a namespace each): `status` runs in another process.
                "connection": {"db_url": "surrealkv://data", "db_ns": format!("{prefix}_{i:05}"), "db": "main"}
            })
        })
        .collect();
    std::fs::write(
        work.path().join("environments.json"),
        serde_json::json!({ "environments": environments }).to_string(),
    )
    .unwrap();
    let migrations = migrations_dir(&[
        ("1_account.surql", MIGRATION),
        ("2_cleanup.surql", "-- migrate:up\nDELETE account WHERE stale = true;\n"),
    ]);
    let m = migrations.path().to_str().unwrap();
    let surql = |args: &[&str]| common::surql_command(args, work.path()).output().unwrap();
    let out = surql(&[
        "orchestrate",
        "deploy",
        "-e",
        "all",
        "--strategy",
        "parallel",
        "--max-concurrent",
        "16",
        "-m",
        m,
        "--report",
        "report.json",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("10000 environment(s): 9990 success, 10 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tenant-00007") && stdout.contains("tenant-09007"),
        "{stdout}"
    );
    assert!(!stdout.contains("tenant-00008"), "successes are not listed: {stdout}");
    assert!(stdout.lines().count() < 60, "{stdout}");
    assert!(stderr.contains("progress: 10000/10000 environments done"), "{stderr}");
    assert!(
        stderr.lines().count() < 200,
        "a line per 10 % and per failure, not per tenant:\n{stderr}"
    );

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("report.json")).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), FLEET);
    assert_eq!(results.iter().filter(|r| r["status"] == "success").count(), 9_990);

    let out = surql(&["orchestrate", "status", "-e", "all", "-m", m, "--output", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let environments = status["environments"].as_array().unwrap();
    assert_eq!(environments.len(), FLEET);
    assert_eq!(
        environments.iter().filter(|e| e["applied_count"] == 2).count(),
        9_990,
        "{:?}",
        environments[7]
    );
    assert_eq!(environments[7]["applied_count"], 0, "the blocked tenant is untouched");
}
