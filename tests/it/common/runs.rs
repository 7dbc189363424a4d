//! Running `surql` processes against test servers: long deployments to
//! steer, kill or race.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{TestServer, strs, text};

/// A migration that holds its transaction open for `ms` on the server.
pub fn slow(ms: u64) -> String {
    format!("-- migrate:up\nDEFINE TABLE slow SCHEMALESS;\nSLEEP {ms}ms;\n-- migrate:down\nREMOVE TABLE slow;\n")
}

pub fn state_args(state: &TestServer) -> Vec<String> {
    [
        "--state",
        &state.ws_url(),
        "--state-user",
        "root",
        "--state-pass",
        "root",
    ]
    .map(str::to_string)
    .to_vec()
}

/// `orchestrate show ID --output json` from the state server.
pub fn show_args(id: &str, state: &TestServer) -> Vec<String> {
    let mut args: Vec<String> = ["orchestrate", "show", id, "--output", "json"]
        .map(str::to_string)
        .to_vec();
    args.extend(state_args(state));
    args
}

/// `orchestrate deploy -e all` of `m`, parallel, JSON, then `extra`.
pub fn deploy_args(m: &str, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
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
    ]
    .map(str::to_string)
    .to_vec();
    args.extend_from_slice(extra);
    args
}

pub fn spawn(args: &[String], dir: &std::path::Path) -> Child {
    super::surql_command(&strs(args), dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` at most `within`; kills it and fails the test past that.
pub fn finish_within(mut child: Child, within: Duration, what: &str) -> std::process::Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > within {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("{what} still running after {within:?}: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// The tenant `tNN`'s namespace (see `write_server_tenants`).
pub fn namespace(prefix: &str, environment: &str) -> String {
    format!("{prefix}{}", environment[1..].parse::<usize>().unwrap())
}

/// The most of these history rows whose migration ran at once, from the
/// server's own times: `applied_at` is its commit, `execution_ms` how long
/// it ran before.
pub fn max_overlap(rows: &[serde_json::Value]) -> usize {
    let mut events: Vec<(i64, i32)> = Vec::new();
    for row in rows {
        let end = chrono::DateTime::parse_from_rfc3339(row["applied_at"].as_str().unwrap())
            .unwrap()
            .timestamp_micros();
        let start = end - row["execution_ms"].as_i64().unwrap() * 1000;
        events.push((start, 1));
        events.push((end, -1));
    }
    // An end before a start at the same instant: touching is not overlapping.
    events.sort();
    let (mut running, mut most) = (0i32, 0i32);
    for (_, change) in events {
        running += change;
        most = most.max(running);
    }
    most as usize
}

/// Polls `show` until `ready` holds of its JSON (within 30 s).
pub fn wait_for_record(
    show: &[String],
    dir: &std::path::Path,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let out = super::run_surql(&strs(show), dir);
        if out.status.success() {
            let shown = super::stdout_json(&out);
            if ready(&shown) {
                return shown;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never ready: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many environments of a `show` JSON are in `state`.
pub fn count_in(shown: &serde_json::Value, state: &str) -> usize {
    shown["environments"]
        .as_array()
        .map_or(0, |e| e.iter().filter(|e| e["state"] == state).count())
}
