//! Deployment records in the state store, through the real binary: every
//! deploy recorded with each environment's state and versions, listed and
//! shown; dry runs not recorded; a surql process killed mid-deployment
//! leaves a record that says which environments finished.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use crate::common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{TestServer, applied_versions, migrations_dir, run_surql, stdout_json, text};

fn write_tenants(dir: &std::path::Path, server: &TestServer, n: usize, prefix: &str) {
    common::write_server_tenants(dir, &server.ws_url(), n, prefix);
}

const ACCOUNTS: &str =
    "-- migrate:up\nDEFINE TABLE IF NOT EXISTS account SCHEMALESS;\n-- migrate:down\nREMOVE TABLE account;\n";
const EMAIL: &str = "-- migrate:up\nDEFINE FIELD email ON account TYPE option<string>;\n-- migrate:down\nREMOVE FIELD email ON account;\n";
const POISONED: &str = "-- migrate:up\nIF record::exists(account:poison) { THROW 'poisoned tenant' };\n";

#[tokio::test]
async fn every_deploy_is_recorded_listed_and_shown() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    write_tenants(work.path(), &server, 3, "rec");
    let db = surql::connection::connect(
        &surql::Client::new(),
        &server.connection("rec1", "main"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    surql::connection::run_query(&db, "CREATE account:poison;", json!({}))
        .await
        .unwrap();
    let migrations = migrations_dir(&[
        ("1_accounts.surql", ACCOUNTS),
        ("2_email.surql", EMAIL),
        ("3_poisoned.surql", POISONED),
    ]);
    let m = migrations.path().to_str().unwrap();
    let deploy = [
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
    ];

    let out = run_surql(&[&deploy[..], &["--dry-run"]].concat(), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run_surql(
        &[&deploy[..], &["--set", "api_token=s3cr3t-value"]].concat(),
        work.path(),
    );
    assert_eq!(out.status.code(), Some(1), "t1 fails: {}", text(&out));
    let id = stdout_json(&out)["deployment_id"].as_str().unwrap().to_string();
    assert!(
        work.path().join(".surql/deployments").is_dir(),
        "the default state store"
    );

    let out = run_surql(&["orchestrate", "deployments", "--output", "json"], work.path());
    let list = stdout_json(&out);
    let deployments = list["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 1, "the dry run is not recorded: {list}");
    assert_eq!(deployments[0]["deployment_id"], id.as_str());
    assert_eq!(deployments[0]["state"], "finished");
    assert_eq!(
        deployments[0]["counts"],
        json!({"success": 2, "failed": 0, "rolled_back": 1, "skipped": 0}),
        "{}",
        text(&run_surql(&["orchestrate", "show", &id], work.path()))
    );
    assert_eq!(deployments[0]["strategy"], "parallel");

    let out = run_surql(&["orchestrate", "show", &id, "--output", "json"], work.path());
    let shown = stdout_json(&out);
    let environments = shown["environments"].as_array().unwrap();
    let states: Vec<(&str, &str)> = environments
        .iter()
        .map(|e| (e["environment"].as_str().unwrap(), e["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("t0", "success"), ("t1", "rolled_back"), ("t2", "success")]);
    assert_eq!(
        environments[0]["versions"],
        json!(["1_accounts", "2_email", "3_poisoned"])
    );
    assert_eq!(
        environments[1]["versions"],
        json!(["1_accounts", "2_email"]),
        "applied, then rolled back"
    );
    assert!(
        environments[1]["error"].as_str().unwrap().contains("poisoned tenant"),
        "{shown}"
    );
    assert!(
        shown["deployment"]["options"]["set"]["api_token"].is_string(),
        "{shown}"
    );
    assert!(
        !shown.to_string().contains("s3cr3t-value"),
        "a --set secret in the record: {shown}"
    );

    // The rollback took the poisoned record with the table: retrying what
    // did not succeed deploys t1 alone, as a new deployment linked to the first.
    let out = run_surql(
        &["orchestrate", "retry", &id, "--failed", "-m", m, "--output", "json"],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let retried = stdout_json(&out);
    let second = retried["deployment_id"].as_str().unwrap().to_string();
    assert_ne!(second, id);
    let names: Vec<&str> = retried["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["environment"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t1"]);
    assert_eq!(
        applied_versions(&server.connection("rec1", "main")).await.unwrap(),
        ["1", "2", "3"]
    );
    let list = stdout_json(&run_surql(
        &["orchestrate", "deployments", "--output", "json"],
        work.path(),
    ));
    let deployments = list["deployments"].as_array().unwrap();
    let ids: Vec<&str> = deployments
        .iter()
        .map(|d| d["deployment_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), id.as_str()], "newest first");
    assert_eq!(deployments[0]["retry_of"], id.as_str());
    assert_eq!(deployments[0]["selection"], json!(["t1"]));
    let out = run_surql(&["orchestrate", "deployments"], work.path());
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.matches("finished").count(), 2, "{table}");
    // Nothing failed in the retry: nothing to retry there.
    let out = run_surql(&["orchestrate", "retry", &second, "-m", m], work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to retry"),
        "{}",
        text(&out)
    );

    let out = run_surql(&["orchestrate", "show", "no-such-id"], work.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no deployment 'no-such-id'"));
}

/// kill -9 of surql in the middle of a 50-tenant parallel deployment: the
/// record still says which tenants finished, and each tenant it calls
/// finished has every migration applied.
#[tokio::test]
async fn a_killed_deployment_leaves_a_truthful_record() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    write_tenants(work.path(), &server, 50, "kill");
    let slow = "-- migrate:up\nDEFINE TABLE slow SCHEMALESS;\nSLEEP 150ms;\n-- migrate:down\nREMOVE TABLE slow;\n";
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", slow)]);
    let m = migrations.path().to_str().unwrap();
    let mut child = common::surql_command(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "all",
            "-m",
            m,
            "--strategy",
            "parallel",
            "--max-concurrent",
            "4",
        ],
        work.path(),
    )
    .spawn()
    .unwrap();
    // The embedded store opens in one process at a time: the running one
    // serves reads (see tests/distributed.rs for a second deploy, refused).
    // Killed part-way: once it is recorded running with some tenants done.
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never recorded running with a tenant done"
        );
        let reading = run_surql(&["orchestrate", "deployments", "--output", "json"], work.path());
        assert_eq!(reading.status.code(), Some(0), "{}", text(&reading));
        let listed = stdout_json(&reading);
        let Some(id) = listed["deployments"][0]["deployment_id"].as_str() else {
            continue;
        };
        assert_eq!(listed["deployments"][0]["state"], "running", "{listed}");
        let shown = stdout_json(&run_surql(
            &["orchestrate", "show", id, "--output", "json"],
            work.path(),
        ));
        if common::runs::count_in(&shown, "success") >= 5 {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let started = Instant::now();
    let out = loop {
        let out = run_surql(&["orchestrate", "deployments", "--output", "json"], work.path());
        if out.status.success() || started.elapsed() > Duration::from_secs(10) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let list = stdout_json(&out);
    let deployment = &list["deployments"][0];
    assert_eq!(deployment["state"], "running", "{list}");
    let id = deployment["deployment_id"].as_str().unwrap();
    let shown = stdout_json(&run_surql(
        &["orchestrate", "show", id, "--output", "json"],
        work.path(),
    ));
    let environments = shown["environments"].as_array().unwrap();
    assert_eq!(environments.len(), 50);
    let succeeded: Vec<&Value> = environments.iter().filter(|e| e["state"] == "success").collect();
    assert!(!succeeded.is_empty() && succeeded.len() < 50, "{shown}");
    for environment in &succeeded {
        let name = environment["environment"].as_str().unwrap();
        let ns = format!("kill{}", name[1..].parse::<usize>().unwrap());
        let versions = applied_versions(&server.connection(&ns, "main")).await.unwrap();
        assert_eq!(versions, ["1", "2"], "{name} recorded as success");
    }
    let never_started = environments.iter().filter(|e| e["state"] == "pending").count();
    assert!(never_started > 0, "the kill came before the end: {shown}");

    // Resume: the finished tenants are not touched, the rest are deployed,
    // every migration exactly once, under the same deployment id.
    let first = succeeded[0]["environment"].as_str().unwrap().to_string();
    let first_ns = format!("kill{}", first[1..].parse::<usize>().unwrap());
    let before = history(&server, &first_ns).await;
    assert_eq!(shown["deployment"]["options"]["operation_timeout_s"], 300.0, "{shown}");
    let resume = [
        "orchestrate",
        "resume",
        id,
        "-m",
        m,
        "--output",
        "json",
        "--operation-timeout",
        "120",
    ];
    let out = run_surql(&resume, work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let resumed = stdout_json(&out);
    assert_eq!(resumed["deployment_id"], id);
    assert_eq!(
        resumed["results"].as_array().unwrap().len(),
        50,
        "every tenant reported"
    );
    assert_eq!(
        history(&server, &first_ns).await,
        before,
        "{first} was touched by the resume"
    );
    for i in 0..50 {
        let rows = history(&server, &format!("kill{i}")).await;
        let versions: Vec<&str> = rows.iter().map(|r| r["version"].as_str().unwrap()).collect();
        assert_eq!(versions, ["1", "2"], "tenant {i}");
        assert!(rows.iter().all(|r| r["deployment_id"] == id), "tenant {i}: {rows:?}");
    }
    let shown = stdout_json(&run_surql(
        &["orchestrate", "show", id, "--output", "json"],
        work.path(),
    ));
    assert_eq!(shown["deployment"]["state"], "finished", "{shown}");
    // The resume's timeout is recorded as the deployment's, as any run's options.
    assert_eq!(shown["deployment"]["options"]["operation_timeout_s"], 120.0, "{shown}");
    assert!(
        shown["environments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["state"] == "success"),
        "{shown}"
    );

    // Finished: nothing left to resume.
    let out = run_surql(&["orchestrate", "resume", id, "-m", m], work.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to resume"),
        "{}",
        text(&out)
    );
}

const ORDERS: &str = "-- migrate:up\nDEFINE TABLE orders SCHEMALESS;\n-- migrate:down\nREMOVE TABLE orders;\n";
const AUDIT: &str = "-- migrate:up\nDEFINE TABLE audit SCHEMALESS;\n-- migrate:down\nREMOVE TABLE audit;\n";

/// The tables of `ns`/main and the fields of its `account` table.
async fn schema(server: &TestServer, ns: &str) -> (Vec<String>, Vec<String>) {
    let db = surql::connection::connect(
        &surql::Client::new(),
        &server.connection(ns, "main"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let info = surql::connection::run_query(&db, "INFO FOR DB; INFO FOR TABLE account;", json!({}))
        .await
        .unwrap();
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    (keys(&info[0]["tables"]), keys(&info[1]["fields"]))
}

/// `rollback ID` reverts exactly what that deployment applied, newest first,
/// with the strategy given: schema and history as before it. A tenant where
/// a later deployment applied on top is refused, naming it, unless --force.
#[tokio::test]
async fn a_deployment_is_rolled_back_across_the_fleet() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    write_tenants(work.path(), &server, 4, "undo");
    let before = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let release = migrations_dir(&[
        ("1_accounts.surql", ACCOUNTS),
        ("2_email.surql", EMAIL),
        ("3_orders.surql", ORDERS),
    ]);
    let later = migrations_dir(&[
        ("1_accounts.surql", ACCOUNTS),
        ("2_email.surql", EMAIL),
        ("3_orders.surql", ORDERS),
        ("4_audit.surql", AUDIT),
    ]);
    let dir = |d: &tempfile::TempDir| d.path().to_str().unwrap().to_string();
    let deploy = |environments: &str, migrations: &str| {
        let out = run_surql(
            &[
                "orchestrate",
                "deploy",
                "-e",
                environments,
                "-m",
                migrations,
                "--output",
                "json",
            ],
            work.path(),
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        stdout_json(&out)["deployment_id"].as_str().unwrap().to_string()
    };
    deploy("all", &dir(&before));
    let mut original = Vec::new();
    for i in 0..4 {
        original.push(history(&server, &format!("undo{i}")).await);
    }
    let (tables_before, fields_before) = schema(&server, "undo1").await;
    let release_id = deploy("all", &dir(&release));
    let later_id = deploy("t0", &dir(&later));
    assert_eq!(
        applied_versions(&server.connection("undo0", "main")).await.unwrap(),
        ["1", "2", "3", "4"]
    );

    // A dry run says what it would revert and changes nothing.
    let out = run_surql(
        &[
            "orchestrate",
            "rollback",
            &release_id,
            "-m",
            &dir(&later),
            "--dry-run",
            "--strategy",
            "parallel",
            "--output",
            "json",
        ],
        work.path(),
    );
    let planned = stdout_json(&out);
    let t1 = planned["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["environment"] == "t1")
        .unwrap();
    assert_eq!(
        t1["plan"]["pending"],
        json!(["3_orders", "2_email"]),
        "newest first: {planned}"
    );
    assert_eq!(history(&server, "undo1").await.len(), 3, "the dry run wrote");

    let out = run_surql(
        &[
            "orchestrate",
            "rollback",
            &release_id,
            "-m",
            &dir(&later),
            "--strategy",
            "parallel",
            "--output",
            "json",
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(1), "t0 is refused: {}", text(&out));
    let rolled = stdout_json(&out);
    let undo_id = rolled["deployment_id"].as_str().unwrap().to_string();
    for result in rolled["results"].as_array().unwrap() {
        let name = result["environment"].as_str().unwrap();
        if name == "t0" {
            assert_eq!(result["status"], "failed", "{rolled}");
            let error = result["error"].as_str().unwrap();
            assert!(
                error.contains(&format!("deployment {later_id} applied 4_audit")),
                "{error}"
            );
            assert!(error.contains("--force"), "{error}");
        } else {
            assert_eq!(result["status"], "success", "{rolled}");
            assert_eq!(result["migrations_rolled_back"], 2, "{rolled}");
        }
    }
    for (i, original) in original.iter().enumerate().skip(1) {
        let ns = format!("undo{i}");
        assert_eq!(
            &history(&server, &ns).await,
            original,
            "{ns}: history as before the release"
        );
        assert_eq!(
            schema(&server, &ns).await,
            (tables_before.clone(), fields_before.clone()),
            "{ns}: schema as before the release"
        );
    }
    assert_eq!(
        applied_versions(&server.connection("undo0", "main")).await.unwrap(),
        ["1", "2", "3", "4"],
        "the refused tenant is untouched"
    );

    // Forced: t0 loses the release's migrations and keeps the later one; the
    // others have nothing left to roll back.
    let out = run_surql(
        &[
            "orchestrate",
            "rollback",
            &release_id,
            "-m",
            &dir(&later),
            "--force",
            "--output",
            "json",
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        applied_versions(&server.connection("undo0", "main")).await.unwrap(),
        ["1", "4"]
    );
    let (tables, _) = schema(&server, "undo0").await;
    assert_eq!(tables, ["_migration_history", "_migration_lock", "account", "audit"]);

    let list = stdout_json(&run_surql(
        &["orchestrate", "deployments", "--output", "json"],
        work.path(),
    ));
    let recorded = list["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deployment_id"] == undo_id.as_str())
        .unwrap();
    assert_eq!(recorded["rollback_of"], release_id.as_str(), "{list}");
    assert_eq!(recorded["strategy"], "parallel");
}

/// The history rows of `ns`/main, oldest first.
async fn history(server: &TestServer, ns: &str) -> Vec<Value> {
    common::db::history_rows(&server.connection(ns, "main")).await
}

/// The fleet lock, with a state server every runner shares: a deployment
/// whose environments overlap a running one's is refused naming it, one that
/// does not overlap runs, and `--wait` waits for the first to end.
#[tokio::test]
async fn overlapping_deployments_are_refused_or_wait() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    write_tenants(work.path(), &server, 6, "fleet");
    let slow = "-- migrate:up\nDEFINE TABLE slow SCHEMALESS;\nSLEEP 700ms;\n-- migrate:down\nREMOVE TABLE slow;\n";
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", slow)]);
    let m = migrations.path().to_str().unwrap();
    let url = server.ws_url();
    let state = ["--state", url.as_str(), "--state-user", "root", "--state-pass", "root"];
    let deploy = |envs: &str, extra: &[&str]| {
        let mut args = vec!["orchestrate", "deploy", "-e", envs, "-m", m, "--output", "json"];
        args.extend_from_slice(&state);
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let first_args = deploy("t0,t1,t2,t3", &["--strategy", "sequential"]);
    let first_args: Vec<&str> = first_args.iter().map(String::as_str).collect();
    let first = common::surql_command(&first_args, work.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Until the first is recorded as running.
    let listing = [&["orchestrate", "deployments", "--output", "json"][..], &state].concat();
    let started = Instant::now();
    let first_id = loop {
        let list = stdout_json(&run_surql(&listing, work.path()));
        if let Some(id) = list["deployments"][0]["deployment_id"].as_str() {
            break id.to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the first deployment was never recorded"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let overlapping = deploy("t3,t4", &[]);
    let out = run_surql(&overlapping.iter().map(String::as_str).collect::<Vec<_>>(), work.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&first_id) && stderr.contains("is running on t3"),
        "{stderr}"
    );
    assert_eq!(
        applied_versions(&server.connection("fleet4", "main")).await,
        None,
        "the refused run touched t4"
    );

    let apart = deploy("t4,t5", &[]);
    let out = run_surql(&apart.iter().map(String::as_str).collect::<Vec<_>>(), work.path());
    assert_eq!(out.status.code(), Some(0), "no overlap: {}", text(&out));

    let waiting = deploy("t3", &["--wait"]);
    let out = run_surql(&waiting.iter().map(String::as_str).collect::<Vec<_>>(), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("waiting:"),
        "{}",
        text(&out)
    );
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    // The waiting run started after the first ended: t3 was already done.
    assert_eq!(
        stdout_json(&out)["results"][0]["migrations_applied"],
        0,
        "{}",
        text(&out)
    );
}

/// `"state"` in environments.json names the store when `--state` does not;
/// a relative `surrealkv://` path is relative to the file.
#[test]
fn the_environments_file_can_name_the_state_store() {
    let work = tempfile::tempdir().unwrap();
    let config_dir = work.path().join("config");
    std::fs::create_dir(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("environments.json"),
        json!({
            "environments": [{"name": "db", "connection": {"db_url": "mem://", "db_ns": "cfg", "db": "main"}}],
            "state": {"db_url": "surrealkv://records/state"}
        })
        .to_string(),
    )
    .unwrap();
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let m = migrations.path().to_str().unwrap();
    let out = run_surql(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "db",
            "-m",
            m,
            "--config",
            "config/environments.json",
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        config_dir.join("records/state").is_dir(),
        "the store is beside the file"
    );
    assert!(!work.path().join(".surql").exists(), "not the default store");
    let listed = common::surql_command(&["orchestrate", "deployments", "--output", "json"], work.path())
        .env("SURQL_CONFIG", config_dir.join("environments.json"))
        .output()
        .unwrap();
    assert_eq!(
        stdout_json(&listed)["deployments"].as_array().unwrap().len(),
        1,
        "{}",
        text(&listed)
    );
}
