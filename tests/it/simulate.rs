//! The built-in strategies' semantics, table-driven through the simulator
//! (`surql strategy simulate`): scripted failures, unhealthy environments and
//! denied approvals, no database touched.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use crate::common;

use std::sync::Arc;

use surql::{
    ConnectionConfig, DeployRequest, DeploymentReport, DeploymentStatus, EnvironmentConfig, EnvironmentRegistry,
    FailureBudget, MigrationCoordinator, Simulation,
};

use crate::common::{applied_versions, unique};
use DeploymentStatus::{Failed as F, RolledBack as R, Skipped as K, Success as S};

struct Case {
    strategy: &'static str,
    environments: usize,
    fail: &'static [usize],
    unhealthy: &'static [usize],
    deny: &'static [usize],
    halt: &'static [usize],
    setup: fn(&mut DeployRequest),
    expected: &'static [DeploymentStatus],
    waves: &'static [&'static str],
}

fn no_setup(_: &mut DeployRequest) {}

async fn simulate(case: &Case) -> (DeploymentReport, Vec<EnvironmentConfig>) {
    let mut registry = EnvironmentRegistry::new();
    let mut envs = Vec::new();
    for i in 0..case.environments {
        let env = EnvironmentConfig::new(
            format!("env{i:02}"),
            ConnectionConfig::new("mem://", unique("sim"), "main"),
        );
        registry.register(env.clone()).unwrap();
        envs.push(env);
    }
    let names = |indexes: &[usize]| indexes.iter().map(|&i| format!("env{i:02}")).collect();
    let mut request = DeployRequest::new(&["all"], Vec::new(), case.strategy);
    request.strategy_dir = crate::common::repo().to_path_buf();
    request.options.simulation = Some(Arc::new(Simulation {
        fail: names(case.fail),
        unhealthy: names(case.unhealthy),
        deny: names(case.deny),
        halt: names(case.halt),
    }));
    (case.setup)(&mut request);
    let report = MigrationCoordinator::new(registry)
        .deploy_to_environments(request)
        .await
        .unwrap();
    (report, envs)
}

#[tokio::test]
async fn built_in_strategies_behave_as_documented() {
    let cases = [
        Case {
            strategy: "sequential",
            environments: 4,
            fail: &[1],
            unhealthy: &[],
            deny: &[],
            halt: &[],
            setup: no_setup,
            expected: &[S, R, K, K],
            waves: &["step 1/4", "step 2/4"],
        },
        Case {
            strategy: "sequential",
            environments: 3,
            fail: &[],
            unhealthy: &[],
            deny: &[0],
            halt: &[],
            setup: no_setup,
            expected: &[K, K, K],
            waves: &["step 1/3"],
        },
        Case {
            strategy: "rolling",
            environments: 6,
            fail: &[3],
            unhealthy: &[],
            deny: &[],
            halt: &[],
            setup: |r| r.options.batch_size = 2,
            expected: &[S, S, S, R, K, K],
            waves: &["batch 1/3", "batch 2/3"],
        },
        Case {
            strategy: "rolling",
            environments: 4,
            fail: &[],
            unhealthy: &[2],
            deny: &[],
            halt: &[],
            setup: |r| r.options.batch_size = 2,
            expected: &[S, S, F, S],
            waves: &["batch 1/2", "batch 2/2"],
        },
        Case {
            strategy: "canary",
            environments: 10,
            fail: &[1],
            unhealthy: &[],
            deny: &[],
            halt: &[],
            setup: |r| r.options.canary_percent = 20.0,
            expected: &[S, R, K, K, K, K, K, K, K, K],
            waves: &["canary"],
        },
        // Healthy enough to deploy (no health check), but its verification fails:
        // the whole canary is rolled back and the rest skipped.
        Case {
            strategy: "canary",
            environments: 5,
            fail: &[],
            unhealthy: &[0],
            deny: &[],
            halt: &[],
            setup: |r| {
                r.options.canary_percent = 40.0;
                r.options.verify_health = false;
            },
            expected: &[R, R, K, K, K],
            waves: &["canary"],
        },
        Case {
            strategy: "canary",
            environments: 5,
            fail: &[],
            unhealthy: &[],
            deny: &[],
            halt: &[],
            setup: no_setup,
            expected: &[S, S, S, S, S],
            waves: &["canary", "rest"],
        },
        Case {
            strategy: "parallel",
            environments: 4,
            fail: &[0, 3],
            unhealthy: &[],
            deny: &[1],
            halt: &[],
            setup: |r| r.options.auto_rollback = false,
            expected: &[F, K, S, F],
            waves: &["all"],
        },
        Case {
            strategy: "examples/strategies/waves.rhai",
            environments: 9,
            fail: &[3],
            unhealthy: &[],
            deny: &[],
            halt: &[],
            setup: |r| {
                r.options.set.insert("wave_pause_seconds".into(), 0.into());
            },
            // Wave 1 is env0, wave 2 (25 % of the other 8) env1 and env2, wave 3
            // the rest: env3 fails there, and the whole wave is rolled back.
            expected: &[S, S, S, R, R, R, R, R, R],
            waves: &["wave 1 (canary)", "wave 2 (25%)", "wave 3 (rest)"],
        },
        Case {
            strategy: "examples/strategies/budgeted.rhai",
            environments: 20,
            fail: &[2],
            unhealthy: &[],
            deny: &[],
            halt: &[],
            setup: |r| {
                r.options.set.insert("bake_seconds".into(), 0.into());
            },
            // Canary env00; 10 % of the other 19 (env01, env02) with a budget of
            // one: env02 fails there, and the rest is never started.
            expected: &[S, S, R, K, K, K, K, K, K, K, K, K, K, K, K, K, K, K, K, K],
            waves: &["canary", "10%"],
        },
        // A gate halting a wave leaves it SKIPPED, and the built-ins stop there.
        Case {
            strategy: "canary",
            environments: 10,
            fail: &[],
            unhealthy: &[],
            deny: &[],
            halt: &[5],
            setup: no_setup,
            expected: &[S, K, K, K, K, K, K, K, K, K],
            waves: &["canary", "rest"],
        },
        Case {
            strategy: "rolling",
            environments: 6,
            fail: &[],
            unhealthy: &[],
            deny: &[],
            halt: &[2],
            setup: |r| r.options.batch_size = 2,
            expected: &[S, S, K, K, K, K],
            waves: &["batch 1/3", "batch 2/3"],
        },
        Case {
            strategy: "sequential",
            environments: 3,
            fail: &[],
            unhealthy: &[],
            deny: &[],
            halt: &[0],
            setup: no_setup,
            expected: &[K, K, K],
            waves: &["step 1/3"],
        },
    ];
    for case in &cases {
        let (report, envs) = simulate(case).await;
        assert!(
            report.script_error.is_none(),
            "{}: {:?}",
            case.strategy,
            report.script_error
        );
        let statuses: Vec<DeploymentStatus> = envs.iter().map(|e| report.results[&e.name].status).collect();
        assert_eq!(statuses, case.expected, "{} {:?}", case.strategy, report.results);
        let waves: Vec<&str> = report.waves.iter().map(|w| w.label.as_str()).collect();
        assert_eq!(waves, case.waves, "{}", case.strategy);
        for env in &envs {
            assert_eq!(
                applied_versions(&env.connection).await,
                None,
                "a simulation touched {}",
                env.name
            );
        }
    }
}

#[tokio::test]
async fn a_failure_budget_stops_a_simulated_fleet() {
    let case = Case {
        strategy: "parallel",
        environments: 40,
        fail: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        unhealthy: &[],
        deny: &[],
        halt: &[],
        setup: |r| {
            r.options.max_concurrent = 1;
            r.options.max_failures = Some(FailureBudget::Count(3));
        },
        expected: &[],
        waves: &[],
    };
    let (report, envs) = simulate(&case).await;
    let statuses: Vec<DeploymentStatus> = envs.iter().map(|e| report.results[&e.name].status).collect();
    assert_eq!(&statuses[..3], [R, R, R]);
    assert!(statuses[3..].iter().all(|s| *s == K), "{statuses:?}");
    assert!(
        report.results["env39"]
            .error
            .as_deref()
            .unwrap()
            .starts_with("failure budget spent: 3 of 3 failed (env00, env01, env02)")
    );
    assert_eq!(report.waves[0].max_failures, Some(3));
}

#[test]
fn the_cli_simulates_without_a_database() {
    let work = tempfile::tempdir().unwrap();
    let environments: Vec<serde_json::Value> = (0..6)
        .map(|i| {
            serde_json::json!({"name": format!("env{i:02}"),
                "connection": {"db_url": "surrealkv://data/never", "db_ns": format!("t{i}"), "db": "main"}})
        })
        .collect();
    common::write_environments(work.path(), serde_json::Value::Array(environments));
    let run = |args: &[&str]| common::surql_command(args, work.path()).output().unwrap();

    let out = run(&[
        "strategy",
        "simulate",
        "rolling",
        "-e",
        "all",
        "--batch-size",
        "2",
        "--fail",
        "env03",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<&str> = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["success", "success", "success", "rolled_back", "skipped", "skipped"]
    );
    assert_eq!(doc["waves"].as_array().unwrap().len(), 2);
    assert!(
        !work.path().join("data").exists(),
        "a simulation created the embedded store"
    );

    let out = run(&["strategy", "simulate", "canary", "-e", "all", "--deny", "env00"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Simulated rollout (canary)") && stdout.contains("approval denied (simulated)"),
        "{stdout}"
    );

    let out = run(&["strategy", "simulate", "canary", "-e", "all", "--halt", "env03"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("halted by gate 'simulated' before rest: --halt env03")
            && stdout.contains("1 success, 5 skipped"),
        "{stdout}"
    );

    // A script's `gate()` sees the simulated halt, and the halted wave is SKIPPED.
    std::fs::write(
        work.path().join("gated.rhai"),
        "let g = gate(envs, \"preflight\");\nif !g.halted { deploy(envs); }\n#{ halted: g.halted, gate: g.gate }\n",
    )
    .unwrap();
    let out = run(&[
        "strategy",
        "simulate",
        "gated.rhai",
        "-e",
        "all",
        "--halt",
        "env01",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for result in doc["results"].as_array().unwrap() {
        assert_eq!(result["status"], "skipped", "{result}");
        assert_eq!(
            result["error"], "halted by gate 'simulated' before preflight: --halt env01",
            "{result}"
        );
    }
    let out = run(&["strategy", "simulate", "gated.rhai", "-e", "all", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "success"),
        "{doc}"
    );

    let out = run(&["strategy", "simulate", "parallel", "-e", "all", "--fail", "nobody"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--fail nobody: not one of the selected environments"));

    std::fs::write(work.path().join("broken.rhai"), "deploy(envs\n").unwrap();
    let out = run(&["strategy", "simulate", "broken.rhai", "-e", "all"]);
    assert_eq!(out.status.code(), Some(3), "{}", common::text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.rhai:"),
        "{}",
        common::text(&out)
    );
}
