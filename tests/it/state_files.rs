//! The default state store, a folder of record files, against what
//! production does to it: records of an older surql (an embedded
//! SurrealDB store) moved in once, a record edited by hand, a write cut
//! short by a crash.

use crate::common::runs::deploy_args;
use crate::common::{self, TestServer, migrations_dir, run_surql, stdout_json, strs, text};

const ACCOUNTS: &str =
    "-- migrate:up\nDEFINE TABLE IF NOT EXISTS account SCHEMALESS;\n-- migrate:down\nREMOVE TABLE account;\n";

fn deploy(work: &std::path::Path, migrations: &std::path::Path, extra: &[&str]) -> String {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let out = run_surql(&strs(&deploy_args(migrations.to_str().unwrap(), &extra)), work);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    stdout_json(&out)["deployment_id"].as_str().unwrap().to_string()
}

/// An older surql recorded in `surrealkv://.surql/state`: the first command
/// of this one moves every record into `.surql/deployments` (saying so,
/// once), keeps the old store aside, and `show`, `deployments` and a new
/// deployment all see the old records.
#[test]
fn records_of_an_older_surql_are_moved_into_the_folder_once() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &server.ws_url(), 3, "conv");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let old = deploy(work.path(), migrations.path(), &["--state", "surrealkv://.surql/state"]);
    assert!(!work.path().join(".surql/deployments").exists());

    let out = run_surql(&["orchestrate", "deployments", "--output", "json"], work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 deployment record(s) of surrealkv://.surql/state moved to files://.surql/deployments"),
        "{stderr}"
    );
    let listed = stdout_json(&out);
    assert_eq!(listed["deployments"][0]["deployment_id"], old.as_str(), "{listed}");
    assert!(work.path().join(".surql/state.converted").is_dir());
    assert!(!work.path().join(".surql/state").exists());

    let out = run_surql(&["orchestrate", "show", &old, "--output", "json"], work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("moved to"), "said once");
    let shown = stdout_json(&out);
    let states: Vec<&str> = shown["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["success", "success", "success"], "{shown}");
    assert_eq!(shown["environments"][0]["versions"], serde_json::json!(["1_accounts"]));

    let new = deploy(work.path(), migrations.path(), &[]);
    let listed = stdout_json(&run_surql(
        &["orchestrate", "deployments", "--output", "json"],
        work.path(),
    ));
    let ids: Vec<&str> = listed["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deployment_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [new.as_str(), old.as_str()], "{listed}");
}

/// A record file broken by hand is refused with its path and the fix, exit
/// 1, never a panic; a last environment line cut short by a crash is read
/// as not written yet, and everything before it stands.
#[test]
fn a_record_broken_by_hand_is_named_and_a_torn_last_line_is_skipped() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &server.ws_url(), 2, "hand");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let id = deploy(work.path(), migrations.path(), &[]);
    let folder = work.path().join(".surql/deployments");

    let environments = folder.join(format!("environments/{id}.jsonl"));
    let mut log = std::fs::read_to_string(&environments).unwrap();
    log.push_str("{\"environment\":\"t0\",\"state\":\"fai");
    std::fs::write(&environments, log).unwrap();
    let out = run_surql(&["orchestrate", "show", &id, "--output", "json"], work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stdout_json(&out)["environments"][0]["state"], "success");

    let record = folder.join(format!("deployments/{id}.json"));
    std::fs::write(&record, "{ \"deployment_id\": ").unwrap();
    for args in [
        &["orchestrate", "deployments"][..],
        &["orchestrate", "show", &id][..],
        &[
            "orchestrate",
            "deploy",
            "-e",
            "all",
            "-m",
            migrations.path().to_str().unwrap(),
        ][..],
    ] {
        let out = run_surql(args, work.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("deployments/deployments/{id}.json is not a deployment record"))
                && stderr.contains("move it aside")
                && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}
