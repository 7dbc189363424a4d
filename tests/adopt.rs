//! Adopting databases whose schema was made another way, through the real
//! binary on a real server: `migrate baseline` and `orchestrate baseline`
//! record what is already there (marked baseline, nothing run), refuse a
//! history that goes beyond, and the next deploy applies only what is new.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

mod common;

use std::process::Output;

use serde_json::{Value, json};
use surql::connection::{connect, run_query};

use common::{TestServer, applied_versions, migrations_dir, text};

const ACCOUNTS: &str = "-- migrate:up\nDEFINE TABLE account SCHEMALESS;\n-- migrate:down\nREMOVE TABLE account;\n";
const EMAIL: &str =
    "-- migrate:up\nDEFINE FIELD email ON account TYPE string;\n-- migrate:down\nREMOVE FIELD email ON account;\n";
const ORDERS: &str = "-- migrate:up\nDEFINE TABLE orders SCHEMALESS;\n-- migrate:down\nREMOVE TABLE orders;\n";

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn run(args: &[&str], dir: &std::path::Path) -> Output {
    common::surql_command(args, dir).output().unwrap()
}

/// The schema of migrations 1 and 2, made by hand (as another tool would have).
async fn made_by_hand(server: &TestServer, ns: &str) {
    let db = connect(&server.connection(ns, "main"), std::time::Duration::from_secs(10))
        .await
        .unwrap();
    run_query(
        &db,
        "DEFINE TABLE account SCHEMALESS; DEFINE FIELD email ON account TYPE string;",
        json!({}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn migrate_baseline_records_what_is_there_and_up_applies_only_what_is_new() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    made_by_hand(&server, "legacy").await;
    let migrations = migrations_dir(&[
        ("1_accounts.surql", ACCOUNTS),
        ("2_email.surql", EMAIL),
        ("3_orders.surql", ORDERS),
    ]);
    let m = migrations.path().to_str().unwrap();
    let url = server.ws_url();
    let target = [
        "--db-url",
        url.as_str(),
        "--ns",
        "legacy",
        "--db",
        "main",
        "--user",
        "root",
        "--pass",
        "root",
        "-m",
        m,
    ];
    let with = |command: &[&'static str]| -> Vec<String> {
        command.iter().chain(target.iter()).map(|s| s.to_string()).collect()
    };

    let out = run(&strs(&with(&["migrate", "baseline", "2", "--dry-run"])), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("would record 2 migration(s)") && stdout.contains("1_accounts") && stdout.contains("2_email"),
        "{stdout}"
    );
    assert!(
        !common::tables(&server.connection("legacy", "main"))
            .await
            .contains(&"_migration_history".to_string()),
        "the dry run wrote"
    );

    let out = run(&strs(&with(&["migrate", "baseline", "2"])), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = common::db::history_rows(&server.connection("legacy", "main")).await;
    let marked: Vec<(&str, bool, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["version"].as_str().unwrap(),
                r["baseline"] == true,
                r["execution_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(marked, [("1", true, 0), ("2", true, 0)]);

    let out = run(&strs(&with(&["migrate", "status"])), work.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("baseline").count(), 2, "{stdout}");
    assert!(stdout.contains("2 applied, 1 pending"), "{stdout}");

    // Up applies only the new migration: the baselined ones' statements
    // would fail on the existing schema if they ran.
    let out = run(&strs(&with(&["migrate", "up"])), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        applied_versions(&server.connection("legacy", "main")).await.unwrap(),
        ["1", "2", "3"]
    );
    assert!(
        common::tables(&server.connection("legacy", "main"))
            .await
            .contains(&"orders".to_string())
    );

    // A baseline never goes past the history.
    let out = run(&strs(&with(&["migrate", "baseline", "1"])), work.path());
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("history already goes beyond 1: 3_orders"),
        "{}",
        text(&out)
    );
    let out = run(&strs(&with(&["migrate", "baseline", "9"])), work.path());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no migration has version '9'"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn orchestrate_baseline_records_each_environment_and_refuses_one_that_went_further() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &server.ws_url(), 3, "fleet");
    let migrations = migrations_dir(&[
        ("1_accounts.surql", ACCOUNTS),
        ("2_email.surql", EMAIL),
        ("3_orders.surql", ORDERS),
    ]);
    let m = migrations.path().to_str().unwrap();
    made_by_hand(&server, "fleet0").await;
    made_by_hand(&server, "fleet1").await;
    let out = run(&["orchestrate", "deploy", "-e", "t2", "-m", m], work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let baseline = [
        "orchestrate",
        "baseline",
        "-e",
        "all",
        "--version",
        "2",
        "-m",
        m,
        "--output",
        "json",
    ];
    let out = run(&[&baseline[..], &["--dry-run"]].concat(), work.path());
    let planned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        planned["environments"][0]["recorded"],
        json!(["1_accounts", "2_email"]),
        "{planned}"
    );
    assert!(
        !common::tables(&server.connection("fleet0", "main"))
            .await
            .contains(&"_migration_history".to_string()),
        "the dry run wrote"
    );

    let out = run(&baseline, work.path());
    assert_eq!(out.status.code(), Some(1), "t2 is refused: {}", text(&out));
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcome = |name: &str| {
        done["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["environment"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(outcome("t0")["recorded"], json!(["1_accounts", "2_email"]));
    assert_eq!(outcome("t1")["recorded"], json!(["1_accounts", "2_email"]));
    assert!(
        outcome("t2")["error"]
            .as_str()
            .unwrap()
            .contains("history already goes beyond 2: 3_orders"),
        "{done}"
    );
    let out = run(
        &["orchestrate", "status", "-e", "t0", "-m", m, "--output", "json"],
        work.path(),
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["environments"][0]["baseline_count"], 2, "{status}");
    assert_eq!(status["environments"][0]["pending_count"], 1, "{status}");

    let out = run(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "all",
            "-m",
            m,
            "--strategy",
            "parallel",
            "--output",
            "json",
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for result in report["results"].as_array().unwrap() {
        let expected = if result["environment"] == "t2" { 0 } else { 1 };
        assert_eq!(result["migrations_applied"], expected, "only what is new: {result}");
    }
}
