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

/// A deployment resumed by a live runner holds its environments: a second
/// deployment over one of them is refused, not let through because the
/// resumed runner's process started after the deployment first did.
#[test]
fn a_resumed_deployment_still_holds_its_environments() {
    use crate::common::runs::{count_in, finish_within, slow, spawn, wait_for_record};
    use std::time::Duration;
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &server.ws_url(), 6, "held");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", &slow(700))]);
    let m = migrations.path().to_str().unwrap();
    let extra = ["--max-concurrent", "1", "--deployment-id", "held-1"].map(str::to_string);
    let show: Vec<String> = ["orchestrate", "show", "held-1", "--output", "json"]
        .map(str::to_string)
        .to_vec();
    let mut first = spawn(&deploy_args(m, &extra), work.path());
    wait_for_record(&show, work.path(), |shown| count_in(shown, "success") >= 1);
    first.kill().unwrap();
    first.wait().unwrap();
    // The runner's start is a second or more after the deployment's.
    std::thread::sleep(Duration::from_millis(2500));

    let resume: Vec<String> = ["orchestrate", "resume", "held-1", "-m", m, "--force"]
        .map(str::to_string)
        .to_vec();
    let resumed = spawn(&resume, work.path());
    wait_for_record(&show, work.path(), |shown| {
        shown["deployment"]["resumed_at"].is_string() && count_in(shown, "running") >= 1
    });
    let out = run_surql(&["orchestrate", "deploy", "-e", "t5", "-m", m], work.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another deployment is running on the same environments: held-1"),
        "{}",
        text(&out)
    );
    let out = finish_within(resumed, Duration::from_secs(60), "the resumed runner");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = stdout_json(&run_surql(&strs(&show), work.path()));
    assert_eq!(count_in(&shown, "success"), 6, "{shown}");
}
