//! Orchestration through the library: strategies, approvals, destructive
//! blocking, dry runs, auto-rollback and script errors, on embedded databases
//! read back afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use surql::connection::{Client, connect, run_query};
use surql::{
    ConnectionConfig, DeployRequest, DeploymentReport, DeploymentStatus, EnvironmentConfig, EnvironmentRegistry,
    MigrationCoordinator, discover_migrations,
};
use surql::{Event, EventSink};

use crate::common::{LatencyProxy, TestServer, applied_versions, migrations_dir, tables, unique};

const TIMEOUT: Duration = Duration::from_secs(10);

const ACCOUNTS: &str = "-- migrate:up\nDEFINE TABLE account SCHEMAFULL;\nDEFINE FIELD name ON account TYPE string;\n-- migrate:down\nREMOVE TABLE account;\n";
/// Fails where `sentinel:taken` already exists (a "poisoned" environment).
const SENTINEL: &str = "-- migrate:up\nDEFINE TABLE IF NOT EXISTS sentinel SCHEMALESS;\nCREATE sentinel:taken SET at = time::now();\n-- migrate:down\nDELETE sentinel:taken;\n";
const INDEX: &str = "-- migrate:up\nDEFINE INDEX account_name ON account FIELDS name;\n-- migrate:down\nREMOVE INDEX account_name ON account;\n";

fn standard_migrations() -> tempfile::TempDir {
    migrations_dir(&[
        ("1_accounts.surql", ACCOUNTS),
        ("2_sentinel.surql", SENTINEL),
        ("3_index.surql", INDEX),
    ])
}

/// Environments `name` → fresh embedded database, with priorities as given.
fn fleet(specs: &[(&str, i64)]) -> (EnvironmentRegistry, Vec<EnvironmentConfig>) {
    let mut registry = EnvironmentRegistry::new();
    let mut envs = Vec::new();
    for (name, priority) in specs {
        let mut env = EnvironmentConfig::new(*name, ConnectionConfig::new("mem://", unique(name), "main"));
        env.priority = *priority;
        registry.register(env.clone()).unwrap();
        envs.push(env);
    }
    (registry, envs)
}

async fn poison(env: &EnvironmentConfig) {
    let db = connect(&Client::new(), &env.connection, TIMEOUT).await.unwrap();
    run_query(
        &db,
        "DEFINE TABLE sentinel SCHEMALESS; CREATE sentinel:taken;",
        json!({}),
    )
    .await
    .unwrap();
}

struct Run {
    report: DeploymentReport,
    events: Vec<Event>,
}

impl Run {
    fn status(&self, name: &str) -> DeploymentStatus {
        self.report.results[name].status
    }

    fn error(&self, name: &str) -> String {
        self.report.results[name].error.clone().unwrap_or_default()
    }

    /// The error of `name` mentions `expected`.
    fn assert_error(&self, name: &str, expected: &str) {
        let error = self.error(name);
        assert!(error.contains(expected), "{name}: {error:?} lacks {expected:?}");
    }

    /// Environments in the order they started.
    fn started(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Started { environment } => Some(environment.clone()),
                _ => None,
            })
            .collect()
    }

    /// The most environments running at the same time.
    fn max_running(&self) -> usize {
        let mut running = std::collections::HashSet::new();
        let mut max = 0;
        for event in &self.events {
            match event {
                Event::Started { environment } => {
                    running.insert(environment.clone());
                }
                Event::Finished { result } => {
                    running.remove(&result.environment);
                }
                _ => {}
            }
            max = max.max(running.len());
        }
        max
    }
}

async fn deploy(registry: EnvironmentRegistry, request: DeployRequest) -> Run {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let coordinator = MigrationCoordinator::new(registry).with_events(EventSink::new(sender));
    let report = coordinator.deploy_to_environments(request).await.unwrap();
    drop(coordinator);
    let mut events = Vec::new();
    while let Some(event) = receiver.recv().await {
        events.push(event);
    }
    Run { report, events }
}

fn request(envs: &[&str], dir: &tempfile::TempDir, strategy: &str) -> DeployRequest {
    let mut request = DeployRequest::new(envs, discover_migrations(dir.path()).unwrap(), strategy);
    request.options.verify_health = true;
    request
}

#[tokio::test]
async fn sequential_follows_priority_and_stops_at_the_first_failure() {
    let (registry, envs) = fleet(&[("dev", 30), ("qa", 20), ("stage", 10), ("prod", 40)]);
    let dir = standard_migrations();
    poison(&envs[1]).await; // qa
    let run = deploy(registry, request(&["dev", "qa", "stage", "prod"], &dir, "sequential")).await;

    assert_eq!(run.started(), ["stage", "qa"], "priority order, stopped after qa");
    assert_eq!(run.status("stage"), DeploymentStatus::Success);
    assert_eq!(run.report.results["stage"].migrations_applied, 3);
    assert_eq!(run.status("qa"), DeploymentStatus::RolledBack);
    run.assert_error("qa", "migration 2_sentinel failed");
    run.assert_error("qa", "rolled back 1 migration");
    assert_eq!(run.status("dev"), DeploymentStatus::Skipped);
    run.assert_error("dev", "'qa' ended ROLLED_BACK and sequential stops");
    assert_eq!(run.status("prod"), DeploymentStatus::Skipped);
    // Results come back in input order, one per environment.
    let order: Vec<&String> = run.report.results.keys().collect();
    assert_eq!(order, ["dev", "qa", "stage", "prod"]);

    assert_eq!(applied_versions(&envs[2].connection).await.unwrap(), ["1", "2", "3"]);
    assert_eq!(
        applied_versions(&envs[1].connection).await.unwrap(),
        Vec::<String>::new(),
        "qa rolled back"
    );
    assert!(
        !tables(&envs[1].connection).await.contains(&"account".to_string()),
        "rollback removed account"
    );
    assert_eq!(applied_versions(&envs[0].connection).await, None, "dev never touched");
}

#[tokio::test]
async fn no_rollback_keeps_what_was_applied() {
    let (registry, envs) = fleet(&[("only", 1)]);
    let dir = standard_migrations();
    poison(&envs[0]).await;
    let mut req = request(&["only"], &dir, "sequential");
    req.options.auto_rollback = false;
    let run = deploy(registry, req).await;
    assert_eq!(run.status("only"), DeploymentStatus::Failed);
    assert_eq!(run.report.results["only"].migrations_applied, 1);
    run.assert_error("only", "kept (--no-rollback)");
    assert_eq!(applied_versions(&envs[0].connection).await.unwrap(), ["1"]);
}

#[tokio::test]
async fn rollback_without_a_down_section_is_failed_and_says_so() {
    let (registry, envs) = fleet(&[("env", 1)]);
    let dir = migrations_dir(&[
        ("1_oneway.surql", "-- migrate:up\nDEFINE TABLE oneway;\n"),
        ("2_sentinel.surql", SENTINEL),
    ]);
    poison(&envs[0]).await;
    let run = deploy(registry, request(&["env"], &dir, "sequential")).await;
    assert_eq!(run.status("env"), DeploymentStatus::Failed);
    run.assert_error("env", "cannot roll back 1_oneway");
    assert_eq!(applied_versions(&envs[0].connection).await.unwrap(), ["1"]);
}

fn slow_migrations() -> tempfile::TempDir {
    migrations_dir(&[(
        "1_slow.surql",
        "-- migrate:up\nDEFINE TABLE slow;\nSLEEP 150ms;\n-- migrate:down\nREMOVE TABLE slow;\n",
    )])
}

#[tokio::test]
async fn parallel_respects_max_concurrent_and_reports_every_result() {
    let names = ["t1", "t2", "t3", "t4", "t5", "t6"];
    let (registry, envs) = fleet(&names.map(|n| (n, 100)));
    let dir = migrations_dir(&[
        (
            "1_slow.surql",
            "-- migrate:up\nDEFINE TABLE slow;\nSLEEP 150ms;\n-- migrate:down\nREMOVE TABLE slow;\n",
        ),
        ("2_sentinel.surql", SENTINEL),
    ]);
    poison(&envs[2]).await;
    let mut req = request(&names, &dir, "parallel");
    req.options.max_concurrent = 2;
    let run = deploy(registry, req).await;
    assert_eq!(run.max_running(), 2, "never more than 2, and 2 were used");
    assert_eq!(run.report.results.len(), 6);
    for name in names {
        let expected = if name == "t3" {
            DeploymentStatus::RolledBack
        } else {
            DeploymentStatus::Success
        };
        assert_eq!(run.status(name), expected, "{name}: {}", run.error(name));
    }
}

#[tokio::test]
async fn rolling_deploys_batches_and_stops_at_a_failed_batch() {
    let names = ["r1", "r2", "r3", "r4", "r5"];
    let (registry, envs) = fleet(&[("r1", 1), ("r2", 2), ("r3", 3), ("r4", 4), ("r5", 5)]);
    let dir = standard_migrations();
    poison(&envs[3]).await; // r4, in the second batch
    let mut req = request(&names, &dir, "rolling");
    req.options.batch_size = 2;
    let run = deploy(registry, req).await;
    assert!(run.max_running() <= 2);
    assert_eq!(run.started(), ["r1", "r2", "r3", "r4"]);
    assert_eq!(run.status("r1"), DeploymentStatus::Success);
    assert_eq!(run.status("r2"), DeploymentStatus::Success);
    assert_eq!(
        run.status("r3"),
        DeploymentStatus::Success,
        "same batch as the failure, not rolled back"
    );
    assert_eq!(run.status("r4"), DeploymentStatus::RolledBack);
    assert_eq!(run.status("r5"), DeploymentStatus::Skipped);
    run.assert_error("r5", "batch 2 did not succeed ('r4' ended ROLLED_BACK)");
    assert_eq!(applied_versions(&envs[4].connection).await, None);
}

#[tokio::test]
async fn canary_deploys_the_rounded_share_first() {
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let specs: Vec<(&str, i64)> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i as i64)).collect();
    let (registry, _envs) = fleet(&specs);
    let dir = slow_migrations();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut req = request(&refs, &dir, "canary");
    req.options.canary_percent = 25.0; // 2.5 of 10 rounds to 3
    req.options.max_concurrent = 10;
    let run = deploy(registry, req).await;
    assert!(run.report.all_succeeded(), "{:?}", run.report.results);
    // The three canaries all finished before any other environment started.
    let mut finished = 0;
    for event in &run.events {
        match event {
            Event::Finished { .. } => finished += 1,
            Event::Started { environment } if !["c0", "c1", "c2"].contains(&environment.as_str()) => {
                assert_eq!(finished, 3, "{environment} started before the canaries finished");
                break;
            }
            _ => {}
        }
    }
    assert_eq!(&run.started()[..3], ["c0", "c1", "c2"]);
}

#[tokio::test]
async fn a_failed_canary_cancels_the_rest() {
    let (registry, envs) = fleet(&[("p1", 1), ("p2", 2), ("p3", 3), ("p4", 4), ("p5", 5)]);
    let dir = standard_migrations();
    poison(&envs[0]).await;
    let mut req = request(&["p1", "p2", "p3", "p4", "p5"], &dir, "canary");
    req.options.canary_percent = 10.0; // at least one
    let run = deploy(registry, req).await;
    assert_eq!(run.started(), ["p1"]);
    assert_eq!(run.status("p1"), DeploymentStatus::RolledBack);
    for name in ["p2", "p3", "p4", "p5"] {
        assert_eq!(run.status(name), DeploymentStatus::Skipped);
        run.assert_error(name, "canary failed");
    }
    for env in &envs[1..] {
        assert_eq!(applied_versions(&env.connection).await, None);
    }
}

#[tokio::test]
async fn approval_required_without_approval_is_skipped_and_untouched() {
    let (mut registry, mut envs) = fleet(&[("dev", 1)]);
    let mut prod = EnvironmentConfig::new("prod", ConnectionConfig::new("mem://", unique("prod"), "main"));
    prod.require_approval = true;
    registry.register(prod.clone()).unwrap();
    envs.push(prod);
    let dir = standard_migrations();

    let run = deploy(registry.clone(), request(&["dev", "prod"], &dir, "sequential")).await;
    assert_eq!(run.status("dev"), DeploymentStatus::Success);
    assert_eq!(run.status("prod"), DeploymentStatus::Skipped);
    run.assert_error("prod", "approval required");
    assert_eq!(applied_versions(&envs[1].connection).await, None, "prod never touched");

    let mut req = request(&["prod"], &dir, "sequential");
    req.options.approvals.approved.insert("prod".into());
    let run = deploy(registry.clone(), req).await;
    assert_eq!(run.status("prod"), DeploymentStatus::Success);
    assert_eq!(applied_versions(&envs[1].connection).await.unwrap().len(), 3);
}

struct Answer(surql::ApprovalDecision);
impl surql::Approver for Answer {
    fn approve(&self, _: &surql::ApprovalRequest) -> surql::ApprovalDecision {
        self.0.clone()
    }
}

#[tokio::test]
async fn an_interactive_answer_decides() {
    let mut prod = EnvironmentConfig::new("prod", ConnectionConfig::new("mem://", unique("prod"), "main"));
    prod.require_approval = true;
    let mut registry = EnvironmentRegistry::new();
    registry.register(prod.clone()).unwrap();
    let dir = standard_migrations();
    for (answer, expected) in [
        (
            surql::ApprovalDecision::Denied("declined".into()),
            DeploymentStatus::Skipped,
        ),
        (surql::ApprovalDecision::Approved, DeploymentStatus::Success),
    ] {
        let mut req = request(&["prod"], &dir, "sequential");
        req.options.approvals.interactive = true;
        let coordinator = MigrationCoordinator::new(registry.clone()).with_approver(Arc::new(Answer(answer)));
        let report = coordinator.deploy_to_environments(req).await.unwrap();
        assert_eq!(report.results["prod"].status, expected);
    }
}

#[tokio::test]
async fn destructive_migrations_are_blocked_before_anything_runs() {
    let (mut registry, _) = fleet(&[]);
    let mut prod = EnvironmentConfig::new("prod", ConnectionConfig::new("mem://", unique("prod"), "main"));
    prod.allow_destructive = false;
    registry.register(prod.clone()).unwrap();
    let mut dev = EnvironmentConfig::new("dev", ConnectionConfig::new("mem://", unique("dev"), "main"));
    dev.priority = 1;
    registry.register(dev.clone()).unwrap();
    let dir = migrations_dir(&[
        ("1_accounts.surql", ACCOUNTS),
        (
            "2_drop_name.surql",
            "-- migrate:up\nREMOVE FIELD name ON account;\n-- migrate:down\nDEFINE FIELD name ON account TYPE string;\n",
        ),
    ]);
    let run = deploy(registry, request(&["dev", "prod"], &dir, "parallel")).await;
    assert_eq!(run.status("dev"), DeploymentStatus::Success);
    assert_eq!(run.status("prod"), DeploymentStatus::Failed);
    let error = run.error("prod");
    assert!(
        error.contains("2_drop_name.surql") && error.contains("REMOVE FIELD name ON account"),
        "{error}"
    );
    assert_eq!(
        applied_versions(&prod.connection).await,
        None,
        "not even the harmless first migration ran"
    );
}

#[tokio::test]
async fn dry_run_plans_and_writes_nothing() {
    let (mut registry, envs) = fleet(&[("dev", 1)]);
    let mut prod = EnvironmentConfig::new("prod", ConnectionConfig::new("mem://", unique("prod"), "main"));
    prod.require_approval = true;
    registry.register(prod.clone()).unwrap();
    let dir = migrations_dir(&[
        ("1_accounts.surql", ACCOUNTS),
        ("2_cleanup.surql", "-- migrate:up\nDELETE account WHERE name = 'x';\n"),
    ]);
    let mut req = request(&["dev", "prod"], &dir, "sequential");
    req.options.dry_run = true;
    let run = deploy(registry, req).await;
    assert!(run.report.all_succeeded(), "{:?}", run.report.results);
    let plan = run.report.results["prod"].plan.clone().unwrap();
    assert_eq!(plan.pending, ["1_accounts", "2_cleanup"]);
    assert!(plan.approval_required);
    assert_eq!(plan.destructive.len(), 1);
    assert_eq!(plan.irreversible, ["2_cleanup"]);
    assert!(plan.statements[0].contains("DEFINE TABLE account SCHEMAFULL"));
    assert_eq!(
        applied_versions(&envs[0].connection).await,
        None,
        "no namespace, no database, no table"
    );
    assert_eq!(applied_versions(&prod.connection).await, None);
}

#[tokio::test]
async fn script_errors_name_the_position_and_every_environment_gets_a_result() {
    let (registry, envs) = fleet(&[("a", 1), ("b", 2), ("c", 3)]);
    let dir = standard_migrations();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("half.rhai"),
        "deploy([envs[0]]);\nlet x = 1;\nlet y = envs[x + 10];\n",
    )
    .unwrap();
    let mut req = request(&["a", "b", "c"], &dir, "half.rhai");
    req.strategy_dir = work.path().to_path_buf();
    let run = deploy(registry.clone(), req).await;
    let error = run.report.script_error.clone().expect("script error");
    assert_eq!((error.origin.as_str(), error.line), ("half.rhai", 3), "{error}");
    assert!(error.column > 0);
    assert_eq!(run.status("a"), DeploymentStatus::Success);
    for name in ["b", "c"] {
        assert_eq!(run.status(name), DeploymentStatus::Skipped);
        run.assert_error(name, "half.rhai:3:");
    }

    // A syntax error: nothing is deployed, everything is reported.
    std::fs::write(work.path().join("broken.rhai"), "let = ;\n").unwrap();
    let mut req = request(&["b", "c"], &dir, "broken.rhai");
    req.strategy_dir = work.path().to_path_buf();
    let run = deploy(registry.clone(), req).await;
    let error = run.report.script_error.clone().expect("syntax error");
    assert_eq!(error.line, 1, "{error}");
    assert_eq!(run.report.results.len(), 2);
    assert!(
        run.report
            .results
            .values()
            .all(|r| r.status == DeploymentStatus::Skipped)
    );
    assert_eq!(applied_versions(&envs[1].connection).await, None);

    // An endless loop is stopped by the operation limit.
    std::fs::write(work.path().join("loop.rhai"), "let n = 0;\nloop { n += 1; }\n").unwrap();
    let mut req = request(&["c"], &dir, "loop.rhai");
    req.strategy_dir = work.path().to_path_buf();
    let started = std::time::Instant::now();
    let run = deploy(registry, req).await;
    assert!(started.elapsed() < Duration::from_secs(30));
    let error = run.report.script_error.clone().expect("loop error");
    assert!(error.message.contains("operations"), "{error}");
    assert_eq!(run.status("c"), DeploymentStatus::Skipped);
}

#[tokio::test]
async fn custom_script_sees_envs_options_and_helpers() {
    let (registry, _envs) = fleet(&[("x1", 1), ("x2", 2), ("x3", 3)]);
    let dir = standard_migrations();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("custom.rhai"),
        r#"
        if options.greeting != "hi" { throw "options not passed"; }
        if envs.len() != 3 || envs[0].name != "x1" || envs[2].priority != 3 { throw "envs wrong"; }
        let parts = chunks(envs, 2);
        deploy(parts[0]);
        skip(parts[1], "custom reason");
        "#,
    )
    .unwrap();
    let mut req = request(&["x3", "x1", "x2"], &dir, "custom.rhai");
    req.strategy_dir = work.path().to_path_buf();
    req.options.set.insert("greeting".into(), json!("hi"));
    let run = deploy(registry, req).await;
    assert!(run.report.script_error.is_none(), "{:?}", run.report.script_error);
    assert_eq!(run.status("x1"), DeploymentStatus::Success);
    assert_eq!(run.status("x2"), DeploymentStatus::Success);
    assert_eq!(run.status("x3"), DeploymentStatus::Skipped);
    assert_eq!(run.error("x3"), "custom reason");
}

#[tokio::test]
async fn waves_example_runs_canary_tag_first() {
    let (mut registry, _) = fleet(&[("w1", 1), ("w2", 2), ("w3", 3), ("w4", 4), ("w5", 5)]);
    let mut tagged = EnvironmentConfig::new("w0", ConnectionConfig::new("mem://", unique("w0"), "main"));
    tagged.priority = 9;
    tagged.tags = vec!["canary".into()];
    registry.register(tagged).unwrap();
    let dir = standard_migrations();
    let mut req = request(
        &["all"],
        &dir,
        concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/strategies/waves.rhai"),
    );
    req.options.set.insert("wave_pause_seconds".into(), json!(0));
    let run = deploy(registry, req).await;
    assert!(run.report.script_error.is_none(), "{:?}", run.report.script_error);
    assert!(run.report.all_succeeded(), "{:?}", run.report.results);
    let started = run.started();
    assert_eq!(started[0], "w0", "canary-tagged first");
    assert_eq!(started[1], "w1", "then 25% of the rest (1 of 5, rounded)");
    assert_eq!(started.len(), 6);
}

#[tokio::test]
async fn rollback_primitive_undoes_this_runs_work() {
    let (registry, envs) = fleet(&[("r1", 1), ("r2", 2)]);
    let dir = standard_migrations();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("undo.rhai"),
        "let results = deploy(envs);\nif any_failed(results) { throw \"unexpected\"; }\nrollback([envs[1]], \"changed my mind\");\n",
    )
    .unwrap();
    let mut req = request(&["r1", "r2"], &dir, "undo.rhai");
    req.strategy_dir = work.path().to_path_buf();
    let run = deploy(registry, req).await;
    assert!(run.report.script_error.is_none(), "{:?}", run.report.script_error);
    assert_eq!(run.status("r1"), DeploymentStatus::Success);
    assert_eq!(run.status("r2"), DeploymentStatus::RolledBack);
    run.assert_error("r2", "changed my mind; rolled back 3 migration(s)");
    assert_eq!(applied_versions(&envs[0].connection).await.unwrap().len(), 3);
    assert_eq!(
        applied_versions(&envs[1].connection).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        tables(&envs[1].connection).await,
        ["_migration_history", "_migration_lock", "sentinel"]
    );
}

/// A server a network away (a proxy adding 2 ms each way) gets an
/// environment's migrations in one request: a failure in the middle still
/// leaves nothing of the failed migration and nothing after it, is rolled
/// back, and a clean deployment releases the lock in that same request.
#[tokio::test]
async fn over_a_network_a_batch_fails_atomically_and_rolls_back() {
    let server = TestServer::start();
    let proxy = LatencyProxy::start(format!("127.0.0.1:{}", server.port), Duration::from_millis(2));
    let env = |name: &str| {
        EnvironmentConfig::new(
            name,
            ConnectionConfig::new(proxy.ws_url(), "app", name).with_credentials("root", "root"),
        )
    };
    let mut registry = EnvironmentRegistry::new();
    let (poisoned, clean) = (env("poisoned"), env("clean"));
    registry.register(poisoned.clone()).unwrap();
    registry.register(clean.clone()).unwrap();
    poison(&poisoned).await;
    // The round trip is measured when a client makes its pooled connection
    // (the deployment's client measures its own).
    let client = Client::new();
    connect(&client, &poisoned.connection, TIMEOUT).await.unwrap();
    let round_trip = surql::connection::round_trip(&client, &poisoned.connection).unwrap();
    assert!(round_trip >= Duration::from_millis(4), "{round_trip:?}");
    assert!(round_trip >= surql::migration::apply::BATCH_FROM_ROUND_TRIP);

    let dir = standard_migrations();
    let run = deploy(registry, request(&["poisoned", "clean"], &dir, "parallel")).await;
    assert_eq!(
        run.status("poisoned"),
        DeploymentStatus::RolledBack,
        "{}",
        run.error("poisoned")
    );
    run.assert_error("poisoned", "migration 2_sentinel failed: statement 2 failed");
    run.assert_error("poisoned", "rolled back 1 migration(s)");
    assert_eq!(
        applied_versions(&poisoned.connection).await.unwrap(),
        Vec::<String>::new()
    );
    assert!(!tables(&poisoned.connection).await.contains(&"account".to_string()));
    let applied: Vec<_> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MigrationApplied {
                environment, migration, ..
            } if environment == "clean" => Some(migration.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(applied, ["1_accounts", "2_sentinel", "3_index"]);
    assert_eq!(run.status("clean"), DeploymentStatus::Success, "{}", run.error("clean"));
    assert_eq!(applied_versions(&clean.connection).await.unwrap(), ["1", "2", "3"]);
    let db = connect(&Client::new(), &clean.connection, TIMEOUT).await.unwrap();
    assert_eq!(surql::migration::current_lock(&db).await.unwrap(), None);
}

/// The operation timeout belongs to each deployment: two coordinators in one
/// process, one impatient, one not, deploying a slow migration at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_coordinators_keep_their_own_operation_timeouts() {
    let slow = migrations_dir(&[(
        "1_slow.surql",
        "-- migrate:up\nSLEEP 1500ms;\nDEFINE TABLE slow SCHEMALESS;\n-- migrate:down\nREMOVE TABLE slow;\n",
    )]);
    let migrations = discover_migrations(slow.path()).unwrap();
    let (impatient_registry, impatient_envs) = fleet(&[("impatient", 1)]);
    let (patient_registry, patient_envs) = fleet(&[("patient", 1)]);
    let mut impatient = DeployRequest::new(&["impatient"], migrations.clone(), "sequential");
    impatient.options.operation_timeout = Duration::from_millis(300);
    impatient.options.auto_rollback = false;
    let patient = DeployRequest::new(&["patient"], migrations, "sequential");
    let (impatient_coordinator, patient_coordinator) = (
        MigrationCoordinator::new(impatient_registry),
        MigrationCoordinator::new(patient_registry),
    );
    let (impatient, patient) = tokio::join!(
        impatient_coordinator.deploy_to_environments(impatient),
        patient_coordinator.deploy_to_environments(patient),
    );
    let impatient = &impatient.unwrap().results["impatient"];
    assert_eq!(impatient.status, DeploymentStatus::Failed, "{impatient:?}");
    assert!(
        impatient
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("no answer within 0.3s"),
        "{impatient:?}"
    );
    let patient_result = &patient.unwrap().results["patient"];
    assert_eq!(patient_result.status, DeploymentStatus::Success, "{patient_result:?}");
    assert_eq!(
        applied_versions(&patient_envs[0].connection).await,
        Some(vec!["1".to_string()])
    );
    assert!(impatient_envs[0].connection.db_ns != patient_envs[0].connection.db_ns);
}

/// A promotion pipeline never jumps a stage: with staging unapproved and
/// production approved, sequential, rolling and canary stop at staging
/// (SKIPPED) and production is SKIPPED naming it, untouched; parallel goes on.
#[tokio::test]
async fn an_unapproved_stage_stops_sequential_rolling_and_canary() {
    for strategy in ["sequential", "rolling", "canary", "parallel"] {
        let mut registry = EnvironmentRegistry::new();
        let mut staging = EnvironmentConfig::new("staging", ConnectionConfig::new("mem://", unique("staging"), "main"));
        staging.priority = 1;
        staging.require_approval = true;
        let mut production =
            EnvironmentConfig::new("production", ConnectionConfig::new("mem://", unique("prod"), "main"));
        production.priority = 2;
        production.require_approval = true;
        registry.register(staging.clone()).unwrap();
        registry.register(production.clone()).unwrap();
        let dir = standard_migrations();
        let mut req = request(&["staging", "production"], &dir, strategy);
        req.options.approvals.approved.insert("production".into());
        req.options.canary_percent = 50.0;
        let run = deploy(registry, req).await;
        assert_eq!(run.status("staging"), DeploymentStatus::Skipped, "{strategy}");
        assert_eq!(applied_versions(&staging.connection).await, None, "{strategy}");
        if strategy == "parallel" {
            assert_eq!(run.status("production"), DeploymentStatus::Success, "{strategy}");
            continue;
        }
        assert_eq!(run.status("production"), DeploymentStatus::Skipped, "{strategy}");
        run.assert_error("production", "'staging' ended SKIPPED");
        assert_eq!(applied_versions(&production.connection).await, None, "{strategy}");
        assert_eq!(run.report.exit_code(), surql::error::EXIT_FAILURE);
    }
}

/// A coordinator over environments `a` and `b` recording in a state store
/// of its own, and one migration to deploy.
async fn recording_coordinator() -> (MigrationCoordinator, tempfile::TempDir, tempfile::TempDir) {
    let (registry, _) = fleet(&[("a", 1), ("b", 2)]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("surrealkv://{}", dir.path().join("state").display());
    let coordinator = MigrationCoordinator::new(registry);
    let store = surql::state::StateStore::open(coordinator.client(), ConnectionConfig::new(&url, "x", "y"), TIMEOUT)
        .await
        .unwrap();
    let coordinator = coordinator.with_state(Arc::new(store));
    let migrations = migrations_dir(&[(
        "1_accounts.surql",
        "-- migrate:up\nDEFINE TABLE account;\n-- migrate:down\nREMOVE TABLE account;\n",
    )]);
    (coordinator, dir, migrations)
}

/// A program deploys under an id it chose as `deploy --deployment-id --wait`
/// does: a second runner of the same id is refused while the first runs,
/// or with `wait` waits for it and hears it finished; nothing runs twice.
#[tokio::test]
async fn a_second_runner_of_one_deployment_id_waits_and_hears_it_finished() {
    let (coordinator, _state, migrations) = recording_coordinator().await;
    let mut request = DeployRequest::new(&["a", "b"], discover_migrations(migrations.path()).unwrap(), "parallel");
    request.context.deployment_id = "release-42".into();
    let waiting = surql::ClaimOptions {
        wait: true,
        continue_recorded: true,
    };
    let refusing = surql::ClaimOptions { wait: false, ..waiting };

    let surql::ClaimOutcome::Ready {
        prepared: first,
        notices,
    } = coordinator
        .prepare_and_claim(request.clone(), waiting, |_| {})
        .await
        .unwrap()
    else {
        panic!("a new id is ready to run");
    };
    assert!(notices.is_empty(), "{notices:?}");
    let refused = coordinator
        .prepare_and_claim(request.clone(), refusing, |_| {})
        .await
        .err()
        .unwrap();
    assert!(
        refused.to_string().contains("deployment release-42 is running on"),
        "{refused}"
    );

    let mut heard = Vec::new();
    let (report, second) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            first.run().await
        },
        coordinator.prepare_and_claim(request.clone(), waiting, |what| heard.push(what.to_string()))
    );
    assert!(
        report.results.values().all(|r| r.status == DeploymentStatus::Success),
        "{report:?}"
    );
    match second.unwrap() {
        surql::ClaimOutcome::FinishedMeanwhile { what, counts, .. } => {
            assert_eq!(what, "deployment release-42");
            assert_eq!((counts.success, counts.failed), (2, 0), "{counts}");
        }
        _ => panic!("the waiting runner ran it again"),
    }
    assert!(heard.iter().any(|w| w.contains("is running on")), "{heard:?}");
    // Finished and not waited for: refused, naming what deploys it again.
    let refused = coordinator
        .prepare_and_claim(request, waiting, |_| {})
        .await
        .err()
        .unwrap();
    assert!(refused.to_string().contains("is recorded already"), "{refused}");
}

/// A program does what the CLI does, step by step: prepare, claim in the
/// state store (a second deployment over the same environments is refused
/// while the first holds them), run, and then the second may claim.
#[tokio::test]
async fn a_prepared_deployment_claims_then_runs() {
    let (coordinator, _state, migrations) = recording_coordinator().await;
    let request = || DeployRequest::new(&["a", "b"], discover_migrations(migrations.path()).unwrap(), "parallel");

    let mut first = coordinator.prepare(request()).await.unwrap();
    first.claim(false, |_| {}).await.unwrap();
    first.claim(false, |_| {}).await.unwrap(); // claimed already: nothing more
    let mut second = coordinator.prepare(request()).await.unwrap();
    let refused = second.claim(false, |_| {}).await.unwrap_err();
    assert!(
        matches!(refused, surql::state::StateError::Overlap(ref busy) if busy.contains(&first.engine().context().deployment_id)),
        "{refused}"
    );
    let report = first.run().await;
    assert!(
        report.results.values().all(|r| r.status == DeploymentStatus::Success),
        "{report:?}"
    );
    second.claim(false, |_| {}).await.unwrap();
    let report = second.run().await;
    assert!(
        report
            .results
            .values()
            .all(|r| r.status == DeploymentStatus::Success && r.migrations_applied == 0)
    );
}
