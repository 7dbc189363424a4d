//! Faults against real SurrealDB server processes: a server killed mid-migration,
//! a server that never answers, Ctrl-C, two deploys at once, a crashed
//! runner's lock, hostile strategy scripts, secrets, and the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use surql::ConnectionConfig;
use surql::connection::{Client, connect_read_only, run_query};

use crate::common::surql_command as surql;
use crate::common::{
    LatencyProxy, TestServer, applied_versions, example_migrations, migrations_dir, plugin_library, stdout_json,
    tables, text, write_environments,
};

const FAST: &str = "-- migrate:up\nDEFINE TABLE account SCHEMAFULL;\nDEFINE FIELD name ON account TYPE string;\n-- migrate:down\nREMOVE TABLE account;\n";
const INDEX: &str = "-- migrate:up\nDEFINE INDEX account_name ON account FIELDS name;\n-- migrate:down\nREMOVE INDEX account_name ON account;\n";

fn slow(seconds: u32) -> String {
    format!(
        "-- migrate:up\nDEFINE TABLE slow SCHEMALESS;\nSLEEP {seconds}s;\nCREATE slow:done;\n-- migrate:down\nREMOVE TABLE slow;\n"
    )
}

/// `orchestrate deploy -e ENVS -m DIR --output json` and `extra` flags.
fn deploy_json<'a>(envs: &'a str, migrations: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "orchestrate",
        "deploy",
        "-e",
        envs,
        "-m",
        migrations,
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    args
}

/// Starts surql with its output captured.
fn spawn_piped(args: &[&str], dir: &Path) -> Child {
    surql(args, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until a run has taken the database's lock.
async fn wait_for_lock(connection: &ConnectionConfig) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while lock_record(connection).await.is_none() {
        assert!(Instant::now() < deadline, "the run never took the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn results(output: &Output) -> Vec<Value> {
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)));
    doc["results"].as_array().unwrap().clone()
}

fn status_of<'a>(results: &'a [Value], name: &str) -> &'a Value {
    results
        .iter()
        .find(|r| r["environment"] == name)
        .unwrap_or_else(|| panic!("no result for {name}"))
}

/// The error of environment `name` in a run that exited 1 with it FAILED.
fn failed_with(output: &Output, name: &str) -> String {
    assert_eq!(output.status.code(), Some(1), "{}", text(output));
    let result = status_of(&results(output), name).clone();
    assert_eq!(result["status"], "failed", "{}", text(output));
    result["error"].as_str().unwrap().to_string()
}

fn server_env(name: &str, server: &TestServer, priority: i64) -> Value {
    url_env(name, &server.ws_url(), priority)
}

fn url_env(name: &str, url: &str, priority: i64) -> Value {
    json!({"name": name, "priority": priority,
           "connection": {"db_url": url, "db_ns": "app", "db": name, "username": "root", "password": "root"}})
}

/// Whether the victim's history holds migration 1, as `orchestrate status` reads it.
fn committed_first(dir: &std::path::Path, migrations: &str) -> bool {
    let out = common::run_surql(
        &[
            "orchestrate",
            "status",
            "-e",
            "victim",
            "-m",
            migrations,
            "--output",
            "json",
        ],
        dir,
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .is_ok_and(|status| status["environments"][0]["applied_count"].as_u64() >= Some(1))
}

async fn lock_record(connection: &ConnectionConfig) -> Option<surql::migration::LockInfo> {
    let db = connect_read_only(&Client::new(), connection, Duration::from_secs(10))
        .await
        .unwrap()?;
    surql::migration::current_lock(&db).await.unwrap()
}

fn wait_for(mut child: Child, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!(
        "surql did not finish within {within:?}: {}",
        text(&child.wait_with_output().unwrap())
    );
}

#[tokio::test]
async fn server_killed_mid_migration_fails_only_that_environment_and_recovers() {
    server_killed_mid_migration(None).await;
}

/// The same across a network: the migrations went in one request, and the
/// proxy in front of the dead server still accepts connections.
#[tokio::test]
async fn server_killed_mid_batch_fails_only_that_environment_and_recovers() {
    server_killed_mid_migration(Some(Duration::from_millis(2))).await;
}

async fn server_killed_mid_migration(latency: Option<Duration>) {
    let storage = tempfile::tempdir().unwrap();
    let mut victim = TestServer::start_persistent(&storage.path().join("db"));
    let others = [TestServer::start(), TestServer::start()];
    let proxies: Vec<LatencyProxy> = latency
        .map(|delay| {
            [&victim, &others[0], &others[1]]
                .iter()
                .map(|s| LatencyProxy::start(format!("127.0.0.1:{}", s.port), delay))
                .collect()
        })
        .unwrap_or_default();
    let urls: Vec<String> = match proxies.as_slice() {
        [] => vec![victim.ws_url(), others[0].ws_url(), others[1].ws_url()],
        proxies => proxies.iter().map(LatencyProxy::ws_url).collect(),
    };
    let work = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[
        ("1_accounts.surql", FAST),
        ("2_slow.surql", &slow(4)),
        ("3_index.surql", INDEX),
    ]);
    write_environments(
        work.path(),
        json!([
            url_env("victim", &urls[0], 1),
            url_env("a", &urls[1], 2),
            url_env("b", &urls[2], 3)
        ]),
    );
    let m = migrations.path().to_str().unwrap();
    let args = deploy_json("all", m, &["--strategy", "parallel", "--operation-timeout", "15"]);
    let child = spawn_piped(&args, work.path());
    // Killed once the victim committed migration 1: the 4 s migration 2 is
    // running. Read by another process, so this one holds no connection to
    // the server that is about to die.
    let waiting = Instant::now();
    while !committed_first(work.path(), m) {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "migration 1 never committed on the victim"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    victim.kill();
    let out = wait_for(child, Duration::from_secs(40));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the run did not end promptly"
    );
    let results = results(&out);
    assert_eq!(status_of(&results, "victim")["status"], "failed", "{}", text(&out));
    assert!(!status_of(&results, "victim")["error"].as_str().unwrap().is_empty());
    assert_eq!(status_of(&results, "a")["status"], "success", "{}", text(&out));
    assert_eq!(status_of(&results, "b")["status"], "success", "{}", text(&out));

    // After a restart: no duplicate, nothing half-applied.
    victim.restart();
    let connection = victim.connection("app", "victim");
    let versions = applied_versions(&connection).await.unwrap();
    let mut unique = versions.clone();
    unique.dedup();
    assert_eq!(versions, unique, "duplicate history rows");
    assert!(!versions.contains(&"2".to_string()), "{versions:?}");
    assert!(
        !tables(&connection).await.contains(&"slow".to_string()),
        "half-applied migration 2"
    );

    // Deploying again completes (the dead run's lock is taken over).
    write_environments(work.path(), json!([url_env("victim", &urls[0], 1)]));
    let out = surql(&deploy_json("victim", m, &[]), work.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(applied_versions(&connection).await.unwrap(), ["1", "2", "3"]);
    assert_eq!(lock_record(&connection).await, None);
}

#[test]
fn a_server_that_never_answers_fails_within_the_timeouts() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let work = tempfile::tempdir().unwrap();
    write_environments(
        work.path(),
        json!([{"name": "mute", "connection": {"db_url": format!("ws://127.0.0.1:{port}/rpc"), "db_ns": "n", "db": "d",
                "username": "root", "password": "root"}},
               {"name": "local", "connection": {"db_url": "surrealkv://data/local", "db_ns": "n", "db": "d"}}]),
    );
    let m = example_migrations();
    for extra in [
        &["--health-timeout", "2"][..],
        &["--skip-health-check", "--connect-timeout", "2"][..],
    ] {
        let started = Instant::now();
        let mut args = deploy_json("all", m.to_str().unwrap(), &["--strategy", "parallel"]);
        args.extend_from_slice(extra);
        let out = surql(&args, work.path()).output().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "hung: {:?}",
            started.elapsed()
        );
        let results = results(&out);
        assert_eq!(status_of(&results, "mute")["status"], "failed", "{}", text(&out));
        assert!(
            status_of(&results, "mute")["error"]
                .as_str()
                .unwrap()
                .contains(&format!("127.0.0.1:{port}"))
        );
        assert_eq!(status_of(&results, "local")["status"], "success", "{}", text(&out));
    }
}

#[tokio::test]
async fn ctrl_c_finishes_the_running_migration_rolls_back_and_reports_everything() {
    ctrl_c_mid_deploy(None).await;
}

/// Over a network surql sends an environment's migrations in one request:
/// Ctrl-C still stops after the running one (the lock is marked interrupted).
#[tokio::test]
async fn ctrl_c_stops_a_batch_after_the_running_migration() {
    ctrl_c_mid_deploy(Some(Duration::from_millis(2))).await;
}

async fn ctrl_c_mid_deploy(latency: Option<Duration>) {
    let servers = [TestServer::start(), TestServer::start(), TestServer::start()];
    let proxies: Vec<LatencyProxy> = latency
        .map(|delay| {
            servers
                .iter()
                .map(|s| LatencyProxy::start(format!("127.0.0.1:{}", s.port), delay))
                .collect()
        })
        .unwrap_or_default();
    let url = |i: usize| proxies.get(i).map_or_else(|| servers[i].ws_url(), |p| p.ws_url());
    let work = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[
        ("1_accounts.surql", FAST),
        ("2_slow.surql", &slow(2)),
        ("3_index.surql", INDEX),
    ]);
    write_environments(
        work.path(),
        json!([
            url_env("first", &url(0), 1),
            url_env("second", &url(1), 2),
            url_env("third", &url(2), 3)
        ]),
    );
    let m = migrations.path().to_str().unwrap();
    let child = surql(&deploy_json("all", m, &[]), work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until migration 1 of "first" committed: migration 2 (2 s) is running.
    let first_db = servers[0].connection("app", "first");
    let deadline = Instant::now() + Duration::from_secs(20);
    while applied_versions(&first_db).await.unwrap_or_default() != ["1"] {
        assert!(Instant::now() < deadline, "migration 1 never committed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let out = wait_for(child, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let results = results(&out);
    assert_eq!(results.len(), 3, "every environment is reported");
    let first = status_of(&results, "first");
    assert_eq!(first["status"], "rolled_back", "{}", text(&out));
    assert!(
        first["error"].as_str().unwrap().contains("interrupted before 3_index"),
        "{first}"
    );
    for name in ["second", "third"] {
        assert_eq!(status_of(&results, name)["status"], "skipped");
        assert!(
            status_of(&results, name)["error"]
                .as_str()
                .unwrap()
                .contains("interrupted")
        );
    }
    assert_eq!(applied_versions(&first_db).await.unwrap(), Vec::<String>::new());
    assert_eq!(lock_record(&first_db).await, None, "lock released");
    assert_eq!(applied_versions(&servers[1].connection("app", "second")).await, None);
}

#[tokio::test]
async fn two_deploys_at_once_apply_each_migration_exactly_once() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[
        ("1_accounts.surql", FAST),
        ("2_slow.surql", &slow(1)),
        ("3_index.surql", INDEX),
    ]);
    write_environments(
        work.path(),
        json!([server_env("one", &server, 1), server_env("two", &server, 2)]),
    );
    let m = migrations.path().to_str().unwrap();
    let args = deploy_json("all", m, &["--strategy", "parallel"]);
    // Two runners, as on two machines: each records in a state store of its own.
    let runs: Vec<Child> = (0..2)
        .map(|i| {
            let state = format!("surrealkv://state-{i}");
            spawn_piped(&[&args[..], &["--state", &state]].concat(), work.path())
        })
        .collect();
    let outputs: Vec<Output> = runs.into_iter().map(|c| wait_for(c, Duration::from_secs(60))).collect();
    for name in ["one", "two"] {
        let mut applied = 0;
        for out in &outputs {
            let result = status_of(&results(out), name).clone();
            match result["status"].as_str().unwrap() {
                "success" => applied += result["migrations_applied"].as_u64().unwrap(),
                "failed" => {
                    let error = result["error"].as_str().unwrap();
                    assert!(error.contains("locked by") && error.contains("deployment"), "{error}");
                }
                other => panic!("{name}: unexpected {other}: {result}"),
            }
        }
        assert_eq!(applied, 3, "{name}: each migration applied once across both runs");
        assert_eq!(
            applied_versions(&server.connection("app", name)).await.unwrap(),
            ["1", "2", "3"]
        );
    }
}

#[tokio::test]
async fn a_deploy_longer_than_its_lease_keeps_the_lock() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[("1_slow.surql", &slow(14)), ("2_accounts.surql", FAST)]);
    write_environments(work.path(), json!([server_env("db", &server, 1)]));
    let m = migrations.path().to_str().unwrap();
    // An 8-second lease, renewed every 2.7 s, and a migration that takes 14
    // seconds: the second run must start while the first still works. (With
    // the shortest lease, 5 s, a machine loaded by the whole test suite once
    // stalled the renewals long enough for the lease to lapse.)
    let args = deploy_json("db", m, &["--lock-ttl", "8"]);
    let first = spawn_piped(&args, work.path());
    let connection = server.connection("app", "db");
    wait_for_lock(&connection).await;
    // Past the first lease: only renewals keep the lock.
    tokio::time::sleep(Duration::from_millis(10_000)).await;
    // Another runner, with a state store of its own.
    let second_args = [&args[..], &["--state", "surrealkv://state-2"]].concat();
    let second = surql(&second_args, work.path()).output().unwrap();
    let first = wait_for(first, Duration::from_secs(30));

    let first_result = status_of(&results(&first), "db").clone();
    assert_eq!(first_result["status"], "success", "{}", text(&first));
    assert_eq!(first_result["migrations_applied"], 2);
    let second_result = status_of(&results(&second), "db").clone();
    assert_eq!(second_result["status"], "failed", "{}", text(&second));
    let error = second_result["error"].as_str().unwrap();
    assert!(error.contains("locked by"), "{error}");
    assert_eq!(applied_versions(&connection).await.unwrap(), ["1", "2"]);
    assert_eq!(lock_record(&connection).await, None, "lock released");
}

#[tokio::test]
async fn a_crashed_runners_lock_is_taken_over() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[("1_slow.surql", &slow(5)), ("2_accounts.surql", FAST)]);
    write_environments(work.path(), json!([server_env("db", &server, 1)]));
    let m = migrations.path().to_str().unwrap();
    let mut crashed = surql(&["orchestrate", "deploy", "-e", "db", "-m", m], work.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let connection = server.connection("app", "db");
    wait_for_lock(&connection).await;
    crashed.kill().unwrap(); // kill -9: no cleanup
    crashed.wait().unwrap();
    let stale = lock_record(&connection).await.expect("the lock stays behind");
    assert!(stale.owner.contains(&format!("pid {}", crashed.id())), "{stale:?}");

    let out = surql(&deploy_json("db", m, &[]), work.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The crashed run's transaction may have committed on the server before
    // the kill or not; either way each migration is there exactly once.
    assert_eq!(applied_versions(&connection).await.unwrap(), ["1", "2"]);
    assert_eq!(lock_record(&connection).await, None);

    // A lock held by a live runner elsewhere is respected and named.
    let db = common::session(&connection).await;
    run_query(
        &db,
        "CREATE _migration_lock:current CONTENT { owner: 'ci@other-host pid 1 deployment X', acquired_at: time::now(), expires_at: time::now() + 1h };",
        json!({}),
    )
    .await
    .unwrap();
    std::fs::write(migrations.path().join("3_index.surql"), INDEX).unwrap();
    let out = surql(&deploy_json("db", m, &[]), work.path()).output().unwrap();
    let error = status_of(&results(&out), "db")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("locked by ci@other-host pid 1 deployment X since"),
        "{error}"
    );
}

#[test]
fn hostile_strategies_end_with_a_position_within_seconds() {
    let work = tempfile::tempdir().unwrap();
    write_environments(
        work.path(),
        json!([{"name": "a", "connection": {"db_url": "surrealkv://data/a", "db_ns": "n", "db": "d"}},
               {"name": "b", "connection": {"db_url": "surrealkv://data/b", "db_ns": "n", "db": "d"}}]),
    );
    let scripts = [
        ("syntax.rhai", "let x = ;\n", "syntax.rhai:1:"),
        ("loop.rhai", "let n = 0;\nwhile true { n += 1; }\n", "loop.rhai:2:"),
        (
            "recursion.rhai",
            "fn down(n) { down(n + 1) }\ndown(0);\n",
            "recursion.rhai:2:",
        ),
        (
            "string.rhai",
            "let s = \"xxxxxxxx\";\nloop { s += s; }\n",
            "string.rhai:2:",
        ),
        ("array.rhai", "let a = [];\na.pad(100000000, 0);\n", "array.rhai:2:"),
        ("files.rhai", "import \"/etc/passwd\" as p;\n", "files.rhai:1:"),
        ("eval.rhai", "eval(\"deploy(envs)\");\n", "eval.rhai:1:"),
        // Time inside a primitive is one Rhai operation: primitives have a budget of their own.
        (
            "health_loop.rhai",
            "let n = 0;\nloop { health(envs); n += 1; }\n",
            "health_loop.rhai:2:",
        ),
        ("pause_loop.rhai", "loop { pause(1); }\n", "pause_loop.rhai:1:"),
        // surql's own events cannot be forged (and would bypass a full queue).
        (
            "forged.rhai",
            "notify(\"deployment_finished\", #{});\n",
            "forged.rhai:1:",
        ),
    ];
    for (file, code, position) in scripts {
        std::fs::write(work.path().join(file), code).unwrap();
        let started = Instant::now();
        let out = surql(
            &[
                "orchestrate",
                "deploy",
                "-e",
                "all",
                "--strategy",
                file,
                "-m",
                example_migrations().to_str().unwrap(),
                "--output",
                "json",
                "--max-pause",
                "3",
            ],
            work.path(),
        )
        .output()
        .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{file} took {:?}",
            started.elapsed()
        );
        assert_eq!(out.status.code(), Some(3), "{file}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("strategy error at {position}")),
            "{file}: {stderr}"
        );
        let results = results(&out);
        assert_eq!(results.len(), 2, "{file}");
        assert!(results.iter().all(|r| r["status"] == "skipped"), "{file}: {results:?}");
    }
    assert!(
        !work.path().join("data").exists(),
        "a hostile script deployed something"
    );
}

#[tokio::test]
async fn secrets_never_appear_in_any_output() {
    const SECRET: &str = "Zq8-very-secret-pw";
    // A URL password with `/` and `@`, a plugin's token, a `--set` value.
    const URL_SECRET: &str = "Url/Zq8@pw-secret";
    const PLUGIN_SECRET: &str = "xoxb-Zq8-plugin-secret";
    const SET_SECRET: &str = "Zq8-set-token-secret";
    const NUMERIC_SECRET: &str = "8675309123456";
    let server = TestServer::start();
    let admin = common::session(&server.connection("app", "main")).await;
    run_query(
        &admin,
        &format!("DEFINE USER deployer ON ROOT PASSWORD '{SECRET}' ROLES OWNER;"),
        json!({}),
    )
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let events = work.path().join("events.jsonl");
    let config = json!({
        "environments": [
            {"name": "good", "connection": {"db_url": server.ws_url(), "db_ns": "app", "db": "main", "username": "deployer", "password": "${DB_SECRET}"}},
            {"name": "wrongpass", "connection": {"db_url": server.ws_url(), "db_ns": "app", "db": "other", "username": "deployer", "password": "${DB_SECRET}-nope"}},
            {"name": "inurl", "connection": {"db_url": format!("ws://deployer:{SECRET}@127.0.0.1:{}/rpc", common::free_port()), "db_ns": "app", "db": "x", "username": "deployer", "password": "${DB_SECRET}"}},
            {"name": "slashurl", "connection": {"db_url": format!("ws://deployer:{URL_SECRET}@127.0.0.1:{}/rpc", common::free_port()), "db_ns": "app", "db": "y"}}
        ],
        "plugins": [{"name": "file", "path": plugin_library("surql_file_plugin"), "config": {"events_file": events, "api_token": PLUGIN_SECRET}}]
    });
    // A strategy that tries to leak a `--set` secret through its error, the
    // log, and a plugin notification.
    std::fs::write(
        work.path().join("leak.rhai"),
        "log(`token ${options.api_token} ${options.api_key}`);\nnotify(\"leak\", #{ token: options.api_token, key: options.api_key });\nthrow `leaked ${options.api_token}`;\n",
    )
    .unwrap();
    std::fs::write(work.path().join("environments.json"), config.to_string()).unwrap();
    let m = example_migrations();
    let m = m.to_str().unwrap();
    let mut everything = String::new();
    let set_secret = format!("api_token={SET_SECRET}");
    let numeric_set = format!("api_key={NUMERIC_SECRET}");
    let runs: Vec<Vec<&str>> = vec![
        vec![
            "orchestrate",
            "deploy",
            "-e",
            "all",
            "--strategy",
            "parallel",
            "-m",
            m,
            "--connect-timeout",
            "2",
            "--health-timeout",
            "3",
        ],
        vec![
            "orchestrate",
            "deploy",
            "-e",
            "all",
            "-m",
            m,
            "--output",
            "json",
            "--report",
            "report.json",
            "--connect-timeout",
            "2",
            "--health-timeout",
            "3",
        ],
        vec![
            "orchestrate",
            "deploy",
            "-e",
            "all",
            "-m",
            m,
            "--dry-run",
            "--health-timeout",
            "3",
        ],
        vec![
            "orchestrate",
            "deploy",
            "-e",
            "good",
            "-m",
            m,
            "--strategy",
            "leak.rhai",
            "--set",
            &set_secret,
            "--set",
            &numeric_set,
            "--report",
            "leak.json",
        ],
        vec!["orchestrate", "status", "-e", "all", "-m", m, "--health-timeout", "3"],
        vec!["orchestrate", "validate", "--health-timeout", "3"],
        vec!["orchestrate", "validate", "--output", "json", "--health-timeout", "3"],
        vec![
            "migrate",
            "status",
            "--config",
            "environments.json",
            "--env",
            "wrongpass",
            "-m",
            m,
        ],
        vec![
            "migrate",
            "status",
            "--config",
            "environments.json",
            "--env",
            "inurl",
            "-m",
            m,
            "--connect-timeout",
            "2",
        ],
    ];
    for level in ["trace", "debug", "info"] {
        for args in &runs {
            let out = surql(args, work.path())
                .env("DB_SECRET", SECRET)
                .env("RUST_LOG", level)
                .output()
                .unwrap();
            everything.push_str(&text(&out));
        }
    }
    everything.push_str(&std::fs::read_to_string(work.path().join("report.json")).unwrap());
    everything.push_str(&std::fs::read_to_string(work.path().join("leak.json")).unwrap());
    everything.push_str(&std::fs::read_to_string(&events).unwrap());
    assert!(everything.contains("SUCCESS"), "the good environment deployed");
    assert!(everything.contains("cannot sign in"), "the wrong password was reported");
    assert!(
        everything.contains("leaked ***"),
        "the strategy's error was shown, masked"
    );
    assert!(
        everything.contains("\"leak\""),
        "the plugin got the script's notification"
    );
    for secret in [SECRET, URL_SECRET, PLUGIN_SECRET, SET_SECRET, NUMERIC_SECRET] {
        if let Some(at) = everything.find(secret) {
            panic!(
                "{secret} leaked: …{}…",
                &everything[at.saturating_sub(300)..(at + 100).min(everything.len())]
            );
        }
    }
    assert!(!everything.contains("eyJ"), "a session token leaked");
}

#[tokio::test]
async fn every_history_row_carries_the_deployment_id_and_actor_and_the_report_has_the_run() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    write_environments(work.path(), json!([server_env("audited", &server, 1)]));
    let m = example_migrations();
    let out = surql(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "audited",
            "-m",
            m.to_str().unwrap(),
            "--actor",
            "alice",
            "--report",
            "run.json",
        ],
        work.path(),
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(work.path().join("run.json")).unwrap()).unwrap();
    let id = report["deployment_id"].as_str().unwrap();
    assert_eq!(report["actor"], "alice");
    assert_eq!(report["results"][0]["status"], "success");
    assert_eq!(report["options"]["environments"], json!(["audited"]));
    assert!(report["started_at"].is_string() && report["completed_at"].is_string());
    let db = common::session(&server.connection("app", "audited")).await;
    let rows = run_query(&db, "SELECT deployment_id, actor FROM _migration_history;", json!({}))
        .await
        .unwrap();
    let rows = rows[0].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(row["deployment_id"], id);
        assert_eq!(row["actor"], "alice");
    }
}

/// A migration still running on the server when the operation timeout fires
/// has an unknown outcome: FAILED saying so, nothing rolled back on a guess,
/// the lock left to expire while the server may still commit. After the
/// server settles, history and schema agree, and deploying again converges.
#[tokio::test]
async fn a_timed_out_migration_is_an_unknown_outcome_not_a_rollback() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[("1_accounts.surql", FAST), ("2_slow.surql", &slow(3))]);
    write_environments(work.path(), json!([server_env("db", &server, 1)]));
    let m = migrations.path().to_str().unwrap();
    let connection = server.connection("app", "db");
    let args = deploy_json("db", m, &["--operation-timeout", "1", "--lock-ttl", "5"]);
    let out = surql(&args, work.path()).output().unwrap();
    let ended = Instant::now();
    let error = failed_with(&out, "db");
    assert!(
        error.contains("outcome unknown: 2_slow may still be running"),
        "{error}"
    );
    assert!(error.contains("nothing was rolled back"), "{error}");
    assert_eq!(status_of(&results(&out), "db")["outcome_unknown"], true);
    assert_eq!(
        applied_versions(&connection).await.unwrap(),
        ["1"],
        "1 kept, 2 not yet committed"
    );
    let left = lock_record(&connection).await.unwrap();
    assert!(left.unsettled, "the lock is left to expire, marked: {left:?}");
    // Even from this machine, where the holder is plainly gone, nobody takes it over early.
    let again = surql(&deploy_json("db", m, &[]), work.path()).output().unwrap();
    let refused = status_of(&results(&again), "db").clone();
    assert_eq!(refused["status"], "failed", "{}", text(&again));
    assert!(
        refused["error"].as_str().unwrap().contains("left to expire"),
        "{refused}"
    );

    // Past the migration's own 3 s: whether the server committed it or
    // cancelled it with the closed session, history and schema agree.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(ended.elapsed())).await;
    let versions = applied_versions(&connection).await.unwrap();
    let committed = versions.contains(&"2".to_string());
    assert_eq!(
        committed,
        tables(&connection).await.contains(&"slow".to_string()),
        "history {versions:?} and schema disagree"
    );

    // Once the lease has expired, deploying again converges.
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(ended.elapsed())).await;
    let out = surql(&deploy_json("db", m, &[]), work.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let applied_again = if committed { 0 } else { 1 };
    assert_eq!(status_of(&results(&out), "db")["migrations_applied"], applied_again);
    assert_eq!(applied_versions(&connection).await.unwrap(), ["1", "2"]);
    assert_eq!(lock_record(&connection).await, None);
}

/// A down section still running on the server when `rollback ID`'s
/// operation timeout fires: FAILED, outcome unknown, the lock left to expire
/// (marked, so nobody takes it early) while the server may still commit it.
/// The rollback takes the deployment's recorded lease (5 s here) unless
/// given one; once it has run out, retrying the rollback finishes it.
#[tokio::test]
async fn a_timed_out_rollback_is_an_unknown_outcome_and_finishes_when_run_again() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let slow_down =
        "-- migrate:up\nDEFINE TABLE slow_down SCHEMALESS;\n-- migrate:down\nSLEEP 3s;\nREMOVE TABLE slow_down;\n";
    let migrations = migrations_dir(&[("1_accounts.surql", FAST), ("2_slow_down.surql", slow_down)]);
    write_environments(work.path(), json!([server_env("db", &server, 1)]));
    let m = migrations.path().to_str().unwrap();
    let connection = server.connection("app", "db");
    let deployed = surql(&deploy_json("db", m, &["--lock-ttl", "5"]), work.path())
        .output()
        .unwrap();
    assert_eq!(deployed.status.code(), Some(0), "{}", text(&deployed));
    let id = stdout_json(&deployed)["deployment_id"].as_str().unwrap().to_string();

    let rollback = [
        "orchestrate",
        "rollback",
        &id,
        "-m",
        m,
        "--output",
        "json",
        "--operation-timeout",
        "1",
    ];
    let out = surql(&rollback, work.path()).output().unwrap();
    let ended = Instant::now();
    let error = failed_with(&out, "db");
    assert!(
        error.contains("outcome unknown: rolling back 2_slow_down may still be running"),
        "{error}"
    );
    assert!(error.contains("the lock is left to expire (--lock-ttl 5s)"), "{error}");
    assert_eq!(status_of(&results(&out), "db")["outcome_unknown"], true);
    assert_eq!(
        applied_versions(&connection).await.unwrap(),
        ["1", "2"],
        "2 not yet reverted"
    );
    let left = lock_record(&connection).await.unwrap();
    assert!(left.unsettled, "the lock is left to expire, marked: {left:?}");
    // The override is recorded with the rollback's own options.
    let rollback_id = stdout_json(&out)["deployment_id"].as_str().unwrap().to_string();
    let shown = surql(&["orchestrate", "show", &rollback_id, "--output", "json"], work.path())
        .output()
        .unwrap();
    let options = &stdout_json(&shown)["deployment"]["options"];
    assert_eq!(stdout_json(&shown)["environments"][0]["state"], "outcome_unknown");
    assert_eq!(
        (options["operation_timeout_s"].as_f64(), options["lock_ttl_s"].as_f64()),
        (Some(1.0), Some(5.0))
    );

    // Past the down section's own 3 s: whether the server committed it or
    // cancelled it with the closed session, history and schema agree.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(ended.elapsed())).await;
    let versions = applied_versions(&connection).await.unwrap();
    let reverted = !versions.contains(&"2".to_string());
    assert_eq!(
        reverted,
        !tables(&connection).await.contains(&"slow_down".to_string()),
        "history {versions:?} and schema disagree"
    );

    // Once the recorded 5 s lease has run out, retrying the rollback (a
    // rollback again, not a deploy; its recorded 1 s timeout overridden) finishes it.
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(ended.elapsed())).await;
    let retry = [
        "orchestrate",
        "retry",
        &rollback_id,
        "-m",
        m,
        "--output",
        "json",
        "--operation-timeout",
        "60",
    ];
    let out = surql(&retry, work.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let result = status_of(&results(&out), "db").clone();
    assert_eq!(
        result["migrations_rolled_back"],
        if reverted { 1 } else { 2 },
        "{result}"
    );
    assert_eq!(applied_versions(&connection).await.unwrap(), Vec::<String>::new());
    assert!(!tables(&connection).await.contains(&"account".to_string()));
    assert_eq!(lock_record(&connection).await, None);
}
