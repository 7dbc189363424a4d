//! What distributed runners do to a deployment's record, through the real
//! binary against real SurrealDB servers: the state server killed mid-run
//! (and back in time, or not), two runners of one shard started together,
//! a migration file changed before `resume`, and reading a running
//! deployment with the embedded default store from a second process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use crate::common;

use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::runs::{deploy_args, finish_within, namespace, show_args, slow, spawn, state_args};
use crate::common::{TestServer, applied_versions, migrations_dir, run_surql, stdout_json, strs, text};

const ACCOUNTS: &str =
    "-- migrate:up\nDEFINE TABLE IF NOT EXISTS account SCHEMALESS;\n-- migrate:down\nREMOVE TABLE account;\n";
const EXTRA: &str = "-- migrate:up\nDEFINE TABLE extra SCHEMALESS;\n-- migrate:down\nREMOVE TABLE extra;\n";

async fn history(server: &TestServer, ns: &str) -> Vec<Value> {
    common::db::history_rows(&server.connection(ns, "main")).await
}

/// The state server killed 8 tenants into a 60-tenant run and not back: the runner
/// starts nothing new, lets the running tenants finish, and ends within the
/// documented 30 s of retrying with exit 5, naming the store and the count
/// not started. Back, `resume` reads from the databases what finished while
/// the store was away (recorded as success, not deployed again) and deploys
/// the rest: every tenant once, under the one deployment id.
#[tokio::test]
async fn a_state_server_lost_mid_run_stops_new_starts_and_resume_completes_the_record() {
    const TENANTS: usize = 60;
    let tenants = TestServer::start();
    let storage = tempfile::tempdir().unwrap();
    let mut state = TestServer::start_persistent(&storage.path().join("state"));
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &tenants.ws_url(), TENANTS, "lost");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", &slow(500))]);
    let m = migrations.path().to_str().unwrap();
    let mut extra = state_args(&state);
    extra.extend(["--max-concurrent", "4", "--deployment-id", "lost-1"].map(str::to_string));
    let runner = spawn(&deploy_args(m, &extra), work.path());
    // Killed once 8 tenants are recorded as finished: well before the end.
    let show = show_args("lost-1", &state);
    let show = strs(&show);
    let started = Instant::now();
    loop {
        let out = run_surql(&show, work.path());
        let finished = out.status.success()
            && stdout_json(&out)["environments"]
                .as_array()
                .is_some_and(|e| e.iter().filter(|e| e["state"] == "success").count() >= 8);
        if finished {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never 8 finished: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    state.kill();

    // 30 s of retrying, the running tenants' last migration, and slack: never a hang.
    let out = finish_within(runner, Duration::from_secs(90), "the runner without its store");
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("state store ws://127.0.0.1:{}", state.port))
            && stderr.contains("not started")
            && stderr.contains("surql orchestrate resume lost-1"),
        "{stderr}"
    );
    let report = stdout_json(&out);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), TENANTS, "every tenant has its one result");
    let succeeded: Vec<String> = results
        .iter()
        .filter(|r| r["status"] == "success")
        .map(|r| r["environment"].as_str().unwrap().to_string())
        .collect();
    let not_started: Vec<String> = results
        .iter()
        .filter(|r| r["status"] == "skipped" && r["error"].as_str().unwrap().starts_with("not started: state store"))
        .map(|r| r["environment"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(succeeded.len() + not_started.len(), TENANTS, "{report}");
    assert!(!not_started.is_empty() && succeeded.len() >= 4, "{report}");
    for name in &not_started {
        assert_eq!(
            applied_versions(&tenants.connection(&namespace("lost", name), "main")).await,
            None,
            "{name} was started although the store was away"
        );
    }
    let mut before = std::collections::HashMap::new();
    for name in &succeeded {
        let rows = history(&tenants, &namespace("lost", name)).await;
        assert_eq!(rows.len(), 2, "{name}: {rows:?}");
        before.insert(name.clone(), rows);
    }

    state.restart();
    let recorded = stdout_json(&run_surql(&show, work.path()));
    let recorded_success = recorded["environments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] == "success")
        .count();
    assert!(
        recorded_success < succeeded.len(),
        "the tenants running when the store went away finished unrecorded: {recorded}"
    );

    let mut resume = vec![
        "orchestrate".to_string(),
        "resume".into(),
        "lost-1".into(),
        "-m".into(),
        m.into(),
    ];
    resume.extend(["--output", "json"].map(str::to_string));
    resume.extend(state_args(&state));
    let out = run_surql(&strs(&resume), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("finished while it could not be recorded"),
        "{}\nrecorded before: {recorded}\nsucceeded: {succeeded:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, rows) in &before {
        assert_eq!(
            &history(&tenants, &namespace("lost", name)).await,
            rows,
            "{name} finished in the first run and was touched again"
        );
    }
    for i in 0..TENANTS {
        let rows = history(&tenants, &format!("lost{i}")).await;
        assert_eq!(rows.len(), 2, "tenant {i}: {rows:?}");
        assert!(
            rows.iter().all(|r| r["deployment_id"] == "lost-1"),
            "tenant {i}: {rows:?}"
        );
    }
    let shown = stdout_json(&run_surql(&show, work.path()));
    assert_eq!(shown["deployment"]["state"], "finished", "{shown}");
    let environments = shown["environments"].as_array().unwrap();
    assert!(environments.iter().all(|e| e["state"] == "success"), "{shown}");
    let reconciled = environments.iter().filter(|e| e["reconciled"] == true).count();
    assert_eq!(
        reconciled,
        succeeded.len() - recorded_success,
        "exactly the unrecorded finishes are read from the databases: {shown}"
    );
}

/// Waits for the next line from `lines` that `wanted` holds of, at most `within`.
fn next_line_where(
    lines: &std::sync::mpsc::Receiver<String>,
    wanted: impl Fn(&str) -> bool,
    within: Duration,
    what: &str,
) {
    let started = Instant::now();
    loop {
        match lines.recv_timeout(within.saturating_sub(started.elapsed())) {
            Ok(line) if wanted(&line) => return,
            Ok(_) => {}
            Err(_) => panic!("no line with {what} within {within:?}"),
        }
    }
}

/// The state server away for a few seconds only: the runner holds new
/// tenants, goes on once it is back, and records everything.
#[tokio::test]
async fn a_state_server_back_within_the_limit_loses_nothing() {
    let tenants = TestServer::start();
    let storage = tempfile::tempdir().unwrap();
    let mut state = TestServer::start_persistent(&storage.path().join("state"));
    let work = tempfile::tempdir().unwrap();
    // Long enough that the outage falls mid-run even when other tests load the machine.
    common::write_server_tenants(work.path(), &tenants.ws_url(), 60, "blip");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", &slow(300))]);
    let m = migrations.path().to_str().unwrap();
    let mut extra = state_args(&state);
    extra.extend(["--max-concurrent", "2", "--deployment-id", "blip-1"].map(str::to_string));
    let mut runner = spawn(&deploy_args(m, &extra), work.path());
    // The runner's stderr, line by line, to see when it noticed the outage.
    let (lines, said) = std::sync::mpsc::channel::<String>();
    let stderr = runner.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Killed at the first progress line (6 of 60 done): well before the end,
    // seen at once (no `show` process to wait for on a loaded machine).
    let show = show_args("blip-1", &state);
    next_line_where(
        &said,
        |line| line.starts_with("progress: "),
        Duration::from_secs(60),
        "a progress line",
    );
    state.kill();
    // Down until the runner says it noticed (its next write fails or goes
    // unanswered for 2 s), however loaded the machine; then back well within the 30 s limit.
    next_line_where(
        &said,
        |line| line.contains("unreachable"),
        Duration::from_secs(20),
        "the store named unreachable",
    );
    state.restart();

    let out = finish_within(runner, Duration::from_secs(90), "the runner whose store came back");
    let stderr = reader.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{stderr}", text(&out));
    assert!(stderr.contains("is back after"), "{stderr}");
    let shown = stdout_json(&run_surql(&strs(&show), work.path()));
    assert_eq!(shown["deployment"]["state"], "finished", "{shown}");
    let environments = shown["environments"].as_array().unwrap();
    assert_eq!(environments.len(), 60);
    assert!(
        environments
            .iter()
            .all(|e| e["state"] == "success" && e["migrations_applied"] == 2),
        "{shown}"
    );
    for i in 0..60 {
        assert_eq!(
            applied_versions(&tenants.connection(&format!("blip{i}"), "main"))
                .await
                .unwrap(),
            ["1", "2"]
        );
    }
}

/// A state server that cannot be reached at the start: refused before any
/// tenant is touched.
#[tokio::test]
async fn an_unreachable_state_store_at_the_start_touches_nothing() {
    let tenants = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &tenants.ws_url(), 3, "nostore");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let port = common::free_port();
    let url = format!("ws://127.0.0.1:{port}");
    let extra: Vec<String> = ["--state", &url, "--state-user", "root", "--state-pass", "root"]
        .map(str::to_string)
        .to_vec();
    let out = run_surql(
        &strs(&deploy_args(migrations.path().to_str().unwrap(), &extra)),
        work.path(),
    );
    // A store that is down is a failure (1), not a usage error (2).
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&url), "{}", text(&out));
    for i in 0..3 {
        assert_eq!(
            applied_versions(&tenants.connection(&format!("nostore{i}"), "main")).await,
            None
        );
    }
}

/// Runners of the same shard started together, as a replacement pod beside
/// the old one: exactly one runs it, the others are refused (exit 2, naming
/// the holder) — never two, never a tenant "locked by" a twin. With
/// `--wait`, the others wait and end with what the first finished.
#[tokio::test]
async fn runners_of_one_shard_started_together_never_both_run_it() {
    let state = TestServer::start();
    twins_race(&state_args(&state), 8).await;
}

/// The same race over the default store, a folder of record files that
/// every runner on the machine opens at once: its lock file makes each
/// claim one step.
#[tokio::test]
async fn runners_of_one_shard_started_together_in_the_default_folder_never_both_run_it() {
    twins_race(&[], 6).await;
}

/// `TWINS` runners of one shard started together, `rounds` times, recording
/// in the store that `state` (`--state …` arguments) names.
async fn twins_race(state: &[String], rounds: usize) {
    const TWINS: usize = 4;
    let tenants = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &tenants.ws_url(), 6, "race");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", &slow(400))]);
    let m = migrations.path().to_str().unwrap();
    for round in 0..rounds {
        let id = format!("race-{round}");
        let mut extra = state.to_vec();
        extra.extend(["--shard", "0/2", "--deployment-id", &id].map(str::to_string));
        let waiting = round + 1 == rounds;
        if waiting {
            extra.push("--wait".into());
        }
        let args = deploy_args(m, &extra);
        let twins: Vec<Child> = (0..TWINS).map(|_| spawn(&args, work.path())).collect();
        let outs: Vec<_> = twins
            .into_iter()
            .map(|child| finish_within(child, Duration::from_secs(60), "a racing runner"))
            .collect();
        let codes: Vec<Option<i32>> = outs.iter().map(|o| o.status.code()).collect();
        let all = outs.iter().map(text).collect::<Vec<_>>().join("\n---\n");
        assert!(!all.contains("locked by"), "round {round}: two ran: {all}");
        let ran = outs
            .iter()
            .filter(|o| o.status.success() && !o.stdout.is_empty())
            .count();
        if waiting {
            assert!(codes.iter().all(|c| *c == Some(0)), "round {round}: {all}");
            assert_eq!(
                all.matches("was finished by").count(),
                TWINS - 1,
                "round {round}: {all}"
            );
        } else {
            assert_eq!(ran, 1, "round {round}: {all}");
            for refused in outs.iter().filter(|o| !o.status.success()) {
                assert_eq!(refused.status.code(), Some(2), "round {round}: {all}");
                let stderr = String::from_utf8_lossy(&refused.stderr);
                // A twin that starts late, on a loaded machine, finds the
                // shard already finished: refused all the same.
                assert!(
                    stderr.contains("claimed by another runner")
                        || stderr.contains("is running on")
                        || stderr.contains("is recorded already"),
                    "round {round}: {stderr}"
                );
            }
        }
        // Shard 0 of 2 got its tenants exactly once, under this round's id.
        let mut show: Vec<String> = ["orchestrate", "show", &id, "--output", "json"]
            .map(str::to_string)
            .to_vec();
        show.extend(state.iter().cloned());
        let shown = stdout_json(&run_surql(&strs(&show), work.path()));
        let environments = shown["environments"].as_array().unwrap();
        assert!(
            !environments.is_empty() && environments.iter().all(|e| e["state"] == "success"),
            "{shown}"
        );
        for environment in environments {
            let ns = namespace("race", environment["environment"].as_str().unwrap());
            let rows = history(&tenants, &ns).await;
            let ours = rows.iter().filter(|r| r["deployment_id"] == id.as_str()).count();
            // The first round applies both migrations; later rounds find nothing pending.
            assert_eq!(ours, if round == 0 { 2 } else { 0 }, "{ns}: {rows:?}");
        }
    }
}

/// A deployment records its plan; after a kill, a file added to the folder
/// makes `resume` refuse, naming it; `--force` resumes with it and records
/// the change. Meanwhile, `deployments` and `show` read the running
/// deployment from a second process with the default store.
#[tokio::test]
async fn resume_replays_the_recorded_plan_and_a_running_deployment_can_be_read() {
    let tenants = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &tenants.ws_url(), 16, "plan");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", &slow(800))]);
    let m = migrations.path().to_str().unwrap();
    let extra = ["--max-concurrent", "2", "--deployment-id", "plan-1"].map(str::to_string);
    let mut runner = spawn(&deploy_args(m, &extra), work.path());

    // Read from another process while it runs (the default embedded store).
    let started = Instant::now();
    let listed = loop {
        let out = run_surql(&["orchestrate", "deployments", "--output", "json"], work.path());
        assert!(out.status.success(), "{}", text(&out));
        let list = stdout_json(&out);
        if list["deployments"][0]["deployment_id"] == "plan-1" {
            break list;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never listed: {list}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(listed["deployments"][0]["state"], "running", "{listed}");
    let out = run_surql(
        &[
            "orchestrate",
            "show",
            "plan-1",
            "--output",
            "json",
            "--config",
            "environments.json",
        ],
        work.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let shown = stdout_json(&out);
    assert_eq!(shown["environments"].as_array().unwrap().len(), 16, "{shown}");
    let plan: Vec<&str> = shown["deployment"]["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].as_str().unwrap())
        .collect();
    assert_eq!(plan, ["1", "2"], "{shown}");
    let out = run_surql(&["orchestrate", "show", "no-such-id"], work.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no deployment 'no-such-id'"),
        "{}",
        text(&out)
    );

    // A second deploy from this folder over the same tenant is refused, naming the holder.
    let busy = run_surql(&["orchestrate", "deploy", "-e", "t00", "-m", m], work.path());
    assert_eq!(busy.status.code(), Some(2), "{}", text(&busy));
    assert!(
        String::from_utf8_lossy(&busy.stderr)
            .contains("another deployment is running on the same environments: plan-1"),
        "{}",
        text(&busy)
    );
    runner.kill().unwrap();
    runner.wait().unwrap();
    // The killed runner's socket is left behind; the store itself is read.
    let started = Instant::now();
    let killed = loop {
        let out = run_surql(&["orchestrate", "show", "plan-1", "--output", "json"], work.path());
        if out.status.success() {
            break stdout_json(&out);
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{}", text(&out));
        std::thread::sleep(Duration::from_millis(200));
    };
    let finished_first: Vec<String> = killed["environments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] == "success")
        .map(|e| e["environment"].as_str().unwrap().to_string())
        .collect();
    assert!(finished_first.len() < 16, "killed before the end: {killed}");

    std::fs::write(migrations.path().join("3_extra.surql"), EXTRA).unwrap();
    let resume = ["orchestrate", "resume", "plan-1", "-m", m, "--output", "json"];
    let out = run_surql(&resume, work.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("added 3_extra") && stderr.contains("--force"),
        "{stderr}"
    );
    for i in 0..16 {
        let versions = applied_versions(&tenants.connection(&format!("plan{i}"), "main")).await;
        assert!(
            !versions.unwrap_or_default().contains(&"3".to_string()),
            "the refused resume applied 3 to tenant {i}"
        );
    }

    let out = run_surql(&[&resume[..], &["--force"]].concat(), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = stdout_json(&run_surql(
        &["orchestrate", "show", "plan-1", "--output", "json"],
        work.path(),
    ));
    let change = &shown["deployment"]["plan_changes"][0];
    assert_eq!(change["added"], serde_json::json!(["3_extra"]), "{shown}");
    assert!(change["at"].as_str().is_some_and(|at| !at.is_empty()), "{shown}");
    for environment in shown["environments"].as_array().unwrap() {
        let name = environment["environment"].as_str().unwrap();
        let versions = applied_versions(&tenants.connection(&namespace("plan", name), "main"))
            .await
            .unwrap();
        // What finished before the kill (recorded, or read from the database)
        // is kept untouched; the rest get the new plan.
        let kept = finished_first.iter().any(|f| f == name) || environment["reconciled"] == true;
        let expected: &[&str] = if kept { &["1", "2"] } else { &["1", "2", "3"] };
        assert_eq!(versions, expected, "{name}");
    }
}
