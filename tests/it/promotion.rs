//! Promotion rules through the binary against a real server: production
//! with `"promote_from": ["staging"]` gets a version only once it ended
//! SUCCESS on staging — by the state store's records of earlier
//! deployments, or by staging's result earlier in the same run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use crate::common;

use serde_json::json;

use crate::common::{TestServer, applied_versions, run_surql, stdout_json, text};

const ONE: &str = "-- migrate:up\nDEFINE TABLE one SCHEMALESS;\n-- migrate:down\nREMOVE TABLE one;\n";
const TWO: &str = "-- migrate:up\nDEFINE TABLE two SCHEMALESS;\n-- migrate:down\nREMOVE TABLE two;\n";
const THREE: &str = "-- migrate:up\nDEFINE TABLE three SCHEMALESS;\n-- migrate:down\nREMOVE TABLE three;\n";

fn deploy(environments: &str, m: &str, dir: &std::path::Path) -> std::process::Output {
    run_surql(
        &[
            "orchestrate",
            "deploy",
            "-e",
            environments,
            "-m",
            m,
            "--strategy",
            "sequential",
            "--output",
            "json",
        ],
        dir,
    )
}

fn result_of<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["environment"] == name)
        .unwrap()
}

#[tokio::test]
async fn production_gets_only_what_staging_took() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let connection = |ns: &str| json!({"db_url": server.ws_url(), "db_ns": ns, "db": "main", "username": "root", "password": "${SURQL_TEST_SECRET}"});
    common::write_environments(
        work.path(),
        json!([
            {"name": "staging", "priority": 10, "connection": connection("stage")},
            {"name": "production", "priority": 20, "connection": connection("prod"), "promote_from": ["staging"]},
        ]),
    );
    let migrations = common::migrations_dir(&[("1_one.surql", ONE), ("2_two.surql", TWO)]);
    let m = migrations.path().to_str().unwrap();
    let production = server.connection("prod", "main");

    // Nothing succeeded on staging yet: production waits, untouched.
    let out = deploy("production", m, work.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = stdout_json(&out);
    let result = result_of(&report, "production");
    assert_eq!(result["status"], "skipped", "{report}");
    assert_eq!(
        result["error"],
        "waiting for promotion: 1 has not ended SUCCESS on staging yet (promote_from)"
    );
    assert_eq!(applied_versions(&production).await, None, "production was touched");
    // A dry run says the same.
    let out = run_surql(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "production",
            "-m",
            m,
            "--dry-run",
            "--output",
            "json",
        ],
        work.path(),
    );
    assert!(
        result_of(&stdout_json(&out), "production")["error"]
            .as_str()
            .unwrap()
            .starts_with("waiting for promotion: 1"),
        "{}",
        text(&out)
    );

    // Staging takes 1 and 2 (recorded); then production may have them.
    let out = deploy("staging", m, work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::write(migrations.path().join("3_three.surql"), THREE).unwrap();
    let out = deploy("production", m, work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(result_of(&stdout_json(&out), "production")["migrations_applied"], 2);
    // This process remembers for a second that the namespace did not exist.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        applied_versions(&production).await.unwrap(),
        ["1", "2"],
        "3 is not on staging yet"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("deploying up to 2 only: 3 has not ended SUCCESS on staging"),
        "{}",
        text(&out)
    );

    // One run over both: staging first takes 3, so production gets it too.
    let out = deploy("all", m, work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(applied_versions(&production).await.unwrap(), ["1", "2", "3"]);

    // A dry run estimates each wave from the durations recorded so far.
    std::fs::write(migrations.path().join("4_four.surql"), ONE.replace("one", "four")).unwrap();
    let out = run_surql(
        &["orchestrate", "deploy", "-e", "all", "-m", m, "--dry-run"],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Estimated: ")
            && stdout.contains("past durations of 2 environment(s), the fleet's median for 0"),
        "{stdout}"
    );
    // So does a simulation, which connects to no environment.
    let out = run_surql(&["strategy", "simulate", "parallel", "-e", "all", "-m", m], work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Estimated: all ~"),
        "{}",
        text(&out)
    );
}
