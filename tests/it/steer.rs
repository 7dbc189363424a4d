//! Steering a running deployment through the real binary against real
//! servers: pause and continue from another process sharing the state
//! server, abort from a second terminal with the embedded default store,
//! throttle mid-wave, and a cap per database server — each read back from
//! the databases (what was touched, and what ran at once by the servers' own clocks).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use crate::common;

use std::time::Duration;

use serde_json::Value;

use crate::common::runs::{
    count_in, deploy_args, finish_within, max_overlap, show_args, slow, spawn, state_args, wait_for_record,
};
use crate::common::{TestServer, applied_versions, migrations_dir, run_surql, stdout_json, strs, text};

const ACCOUNTS: &str =
    "-- migrate:up\nDEFINE TABLE IF NOT EXISTS account SCHEMALESS;\n-- migrate:down\nREMOVE TABLE account;\n";

/// Tenants `{prefix}0…` of `server` that have any history (were touched).
async fn touched(server: &TestServer, prefix: &str, n: usize) -> usize {
    let mut count = 0;
    for i in 0..n {
        if applied_versions(&server.connection(&format!("{prefix}{i}"), "main"))
            .await
            .is_some_and(|v| !v.is_empty())
        {
            count += 1;
        }
    }
    count
}

/// The history rows of migration `2` (the slow one) of tenants `{prefix}0…`.
async fn slow_rows(server: &TestServer, prefix: &str, n: usize) -> Vec<Value> {
    let mut rows = Vec::new();
    for i in 0..n {
        let history = common::db::history_rows(&server.connection(&format!("{prefix}{i}"), "main")).await;
        rows.extend(history.into_iter().filter(|r| r["version"] == "2"));
    }
    rows
}

fn command(args: &[&str], state: &TestServer, dir: &std::path::Path) -> std::process::Output {
    let mut all: Vec<String> = ["orchestrate"].iter().chain(args).map(|s| s.to_string()).collect();
    all.extend(state_args(state));
    run_surql(&strs(&all), dir)
}

/// Paused from another process (sharing the state server), the runner
/// starts no new tenant — none is touched while it is paused — and says so
/// in its record; continued, it completes. Both commands are recorded.
#[tokio::test]
async fn pause_holds_new_tenants_and_continue_completes() {
    const TENANTS: usize = 30;
    let tenants = TestServer::start();
    let state = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &tenants.ws_url(), TENANTS, "pause");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", &slow(400))]);
    let m = migrations.path().to_str().unwrap();
    let mut extra = state_args(&state);
    extra.extend(["--max-concurrent", "3", "--deployment-id", "pause-1"].map(str::to_string));
    let runner = spawn(&deploy_args(m, &extra), work.path());
    let show = show_args("pause-1", &state);
    wait_for_record(&show, work.path(), |shown| count_in(shown, "success") >= 3);

    let out = command(
        &["pause", "pause-1", "--reason", "latency spike", "--actor", "oncall"],
        &state,
        work.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Within a second the runner obeys; the three running then finish.
    std::thread::sleep(Duration::from_millis(2500));
    let at_pause = touched(&tenants, "pause", TENANTS).await;
    assert!(at_pause < TENANTS, "paused before the end: {at_pause}");
    let shown = wait_for_record(&show, work.path(), |shown| count_in(shown, "running") == 0);
    let paused = &shown["deployment"]["control"]["paused"];
    assert_eq!(
        (paused["by"].as_str(), paused["reason"].as_str()),
        (Some("oncall"), Some("latency spike")),
        "{shown}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        touched(&tenants, "pause", TENANTS).await,
        at_pause,
        "a tenant was touched while paused"
    );
    let listed = command(&["deployments", "--output", "json"], &state, work.path());
    assert_eq!(
        stdout_json(&listed)["deployments"][0]["control"]["paused"]["by"],
        "oncall"
    );

    let out = command(&["continue", "pause-1", "--actor", "oncall"], &state, work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = finish_within(runner, Duration::from_secs(60), "the continued runner");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("paused by oncall: latency spike") && stderr.contains("continued"),
        "{stderr}"
    );
    // The progress lines estimate the time left.
    assert!(stderr.contains("s left)"), "{stderr}");
    assert_eq!(touched(&tenants, "pause", TENANTS).await, TENANTS);
    let shown = stdout_json(&run_surql(&strs(&show), work.path()));
    let commands: Vec<&str> = shown["deployment"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["pause", "continue"], "{shown}");
    assert_eq!(shown["deployment"]["commands"][0]["actor"], "oncall");
}

/// Aborted from a second terminal in the same folder (the default store, a
/// folder of record files both processes open): running tenants finish,
/// the rest end SKIPPED "aborted by ACTOR: REASON" and are never connected
/// to; the run exits 1. A command to a finished deployment is refused.
#[tokio::test]
async fn abort_from_a_second_terminal_skips_the_rest_untouched() {
    abort_from_a_second_terminal(&[]).await;
}

/// The same through an embedded SurrealDB store, which one process holds:
/// the second terminal's command goes through the runner's socket.
#[tokio::test]
async fn abort_from_a_second_terminal_reaches_an_embedded_store_through_its_holder() {
    abort_from_a_second_terminal(&["--state".into(), "surrealkv://.surql/kv".into()]).await;
}

async fn abort_from_a_second_terminal(state: &[String]) {
    const TENANTS: usize = 16;
    let tenants = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &tenants.ws_url(), TENANTS, "abort");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", &slow(400))]);
    let m = migrations.path().to_str().unwrap();
    let mut extra = state.to_vec();
    extra.extend(["--max-concurrent", "2", "--deployment-id", "abort-1"].map(str::to_string));
    let runner = spawn(&deploy_args(m, &extra), work.path());
    let mut show: Vec<String> = ["orchestrate", "show", "abort-1", "--output", "json"]
        .map(str::to_string)
        .to_vec();
    show.extend(state.iter().cloned());
    wait_for_record(&show, work.path(), |shown| count_in(shown, "success") >= 2);
    let mut abort: Vec<String> = [
        "orchestrate",
        "abort",
        "abort-1",
        "--reason",
        "bad release",
        "--actor",
        "oncall",
    ]
    .map(str::to_string)
    .to_vec();
    abort.extend(state.iter().cloned());
    let out = run_surql(&strs(&abort), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = finish_within(runner, Duration::from_secs(60), "the aborted runner");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error: aborted by oncall: bad release"),
        "{}",
        text(&out)
    );
    let report = stdout_json(&out);
    let results = report["results"].as_array().unwrap();
    let aborted: Vec<&Value> = results
        .iter()
        .filter(|r| r["error"] == "aborted by oncall: bad release")
        .collect();
    assert!(!aborted.is_empty(), "{report}");
    for result in &aborted {
        assert_eq!(result["status"], "skipped");
        let name = result["environment"].as_str().unwrap();
        let ns = format!("abort{}", name[1..].parse::<usize>().unwrap());
        assert_eq!(
            applied_versions(&tenants.connection(&ns, "main")).await,
            None,
            "{name} was connected to after the abort"
        );
    }
    assert!(
        results
            .iter()
            .all(|r| r["status"] == "success" || r["status"] == "skipped"),
        "{report}"
    );
    let mut pause: Vec<String> = ["orchestrate", "pause", "abort-1"].map(str::to_string).to_vec();
    pause.extend(state.iter().cloned());
    let out = run_surql(&strs(&pause), work.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not running"),
        "{}",
        text(&out)
    );
}

/// Throttled from 1 to 4 at once mid-wave: the servers' own clocks show one
/// at a time before, and up to four after — never more.
#[tokio::test]
async fn throttle_changes_the_running_wave() {
    const TENANTS: usize = 14;
    let tenants = TestServer::start();
    let state = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &tenants.ws_url(), TENANTS, "throttle");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", &slow(400))]);
    let m = migrations.path().to_str().unwrap();
    let mut extra = state_args(&state);
    extra.extend(["--max-concurrent", "1", "--deployment-id", "throttle-1"].map(str::to_string));
    let runner = spawn(&deploy_args(m, &extra), work.path());
    let show = show_args("throttle-1", &state);
    wait_for_record(&show, work.path(), |shown| count_in(shown, "success") >= 2);
    let before = slow_rows(&tenants, "throttle", TENANTS).await;
    let out = command(
        &["throttle", "throttle-1", "--max-concurrent", "4"],
        &state,
        work.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = finish_within(runner, Duration::from_secs(60), "the throttled runner");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    assert_eq!(max_overlap(&before), 1, "one at a time before: {before:?}");
    let all = slow_rows(&tenants, "throttle", TENANTS).await;
    assert_eq!(all.len(), TENANTS);
    let most = max_overlap(&all);
    assert!((3..=4).contains(&most), "up to four at once after the throttle: {most}");
    let shown = stdout_json(&run_surql(&strs(&show), work.path()));
    assert_eq!(shown["deployment"]["commands"][0]["max_concurrent"], 4, "{shown}");
}

/// Two servers, eight tenants each, `--max-concurrent 8 --max-per-server 2`:
/// by each server's clock never more than two at once on it, while both
/// servers work at the same time.
#[tokio::test]
async fn a_cap_per_server_is_never_exceeded() {
    let (first, second) = (TestServer::start(), TestServer::start());
    let work = tempfile::tempdir().unwrap();
    let mut environments = Vec::new();
    for (server, prefix) in [(&first, "capa"), (&second, "capb")] {
        for i in 0..8 {
            environments.push(serde_json::json!({
                "name": format!("{prefix}{i}"),
                "connection": {"db_url": server.ws_url(), "db_ns": format!("{prefix}{i}"), "db": "main",
                    "username": "root", "password": "${SURQL_TEST_SECRET}"}
            }));
        }
    }
    common::write_environments(work.path(), Value::Array(environments));
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", &slow(300))]);
    let m = migrations.path().to_str().unwrap();
    let extra = ["--max-concurrent", "8", "--max-per-server", "2"].map(str::to_string);
    let out = run_surql(&strs(&deploy_args(m, &extra)), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let on_first = slow_rows(&first, "capa", 8).await;
    let on_second = slow_rows(&second, "capb", 8).await;
    assert_eq!((on_first.len(), on_second.len()), (8, 8));
    assert_eq!(max_overlap(&on_first), 2, "{on_first:?}");
    assert_eq!(max_overlap(&on_second), 2, "{on_second:?}");
    let both: Vec<Value> = on_first.into_iter().chain(on_second).collect();
    assert!(max_overlap(&both) >= 3, "the two servers worked at once");
}

/// `--max-server-latency-ms 40` with the server behind a proxy adding 50 ms
/// each way: no tenant starts while its round trips are slow, the progress
/// says which server and why; once the proxy is fast again they all deploy.
#[tokio::test]
async fn a_slow_server_holds_its_new_environments_until_it_recovers() {
    let server = TestServer::start();
    let proxy = common::LatencyProxy::start(format!("127.0.0.1:{}", server.port), Duration::from_millis(50));
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &proxy.ws_url(), 4, "slowsrv");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let m = migrations.path().to_str().unwrap();
    let extra = ["--max-server-latency-ms", "40"].map(str::to_string);
    let runner = spawn(&deploy_args(m, &extra), work.path());
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        touched(&server, "slowsrv", 4).await,
        0,
        "a tenant started on the slow server"
    );
    let recovered_at = chrono::Utc::now();
    proxy.set_delay(Duration::ZERO);
    let out = finish_within(runner, Duration::from_secs(60), "the runner waiting for its server");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("server 127.0.0.1:{}: recent round trip", proxy.port))
            && stderr.contains("over --max-server-latency-ms 40: its new environments wait")
            && stderr.contains("round trips back under 40 ms"),
        "{stderr}"
    );
    std::thread::sleep(Duration::from_millis(1100));
    for i in 0..4 {
        let rows = common::db::history_rows(&server.connection(&format!("slowsrv{i}"), "main")).await;
        assert_eq!(rows.len(), 1, "tenant {i}");
        let applied = chrono::DateTime::parse_from_rfc3339(rows[0]["applied_at"].as_str().unwrap()).unwrap();
        assert!(
            applied > recovered_at,
            "tenant {i} was deployed before its server recovered"
        );
    }
}

/// `--refresh-discovery`: a tenant created while a rolling deployment runs
/// joins a wave still to come, is deployed, and `show` marks it joined late.
#[tokio::test]
async fn a_tenant_created_mid_rollout_joins_with_refresh_discovery() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    for i in 0..4 {
        common::initialise(&server.connection(&format!("late{i}"), "main")).await;
    }
    common::write_environments(
        work.path(),
        serde_json::json!([{
            "name": "tenant-{ns}",
            "discover": {
                "connection": {"db_url": server.ws_url(), "db": "main", "username": "root", "password": "${SURQL_TEST_SECRET}"},
                "namespaces": "late*"
            }
        }]),
    );
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", &slow(400))]);
    let m = migrations.path().to_str().unwrap();
    let args: Vec<String> = [
        "orchestrate",
        "deploy",
        "-e",
        "all",
        "-m",
        m,
        "--strategy",
        "rolling",
        "--batch-size",
        "1",
        "--refresh-discovery",
        "--deployment-id",
        "late-1",
        "--output",
        "json",
    ]
    .map(str::to_string)
    .to_vec();
    let runner = spawn(&args, work.path());
    let show: Vec<String> = ["orchestrate", "show", "late-1", "--output", "json"]
        .map(str::to_string)
        .to_vec();
    wait_for_record(&show, work.path(), |shown| count_in(shown, "success") >= 1);
    common::initialise(&server.connection("late9", "main")).await;

    let out = finish_within(runner, Duration::from_secs(60), "the refreshing runner");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = stdout_json(&out);
    let late = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["environment"] == "tenant-late9")
        .unwrap_or_else(|| panic!("the new tenant did not join: {report}"));
    assert_eq!(late["status"], "success", "{report}");
    assert_eq!(
        applied_versions(&server.connection("late9", "main")).await.unwrap(),
        ["1", "2"]
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("found since the deployment started join this wave: tenant-late9")
    );
    let shown = stdout_json(&run_surql(&strs(&show), work.path()));
    let joined: Vec<&str> = shown["environments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["joined_late"] == true)
        .map(|e| e["environment"].as_str().unwrap())
        .collect();
    assert_eq!(joined, ["tenant-late9"], "{shown}");
    assert!(
        shown["deployment"]["selection"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "tenant-late9"),
        "{shown}"
    );
}
