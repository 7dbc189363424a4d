//! Plugins loaded through the real host: the example file plugin, Slack and
//! PagerDuty against a recording HTTP server on 127.0.0.1, ABI mismatch,
//! panics, hangs, and secrets kept out of every payload and output.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use surql::PluginHost;
use surql::connection::{Client, connect_read_only, run_query};
use surql::{
    ConnectionConfig, DeployRequest, DeploymentReport, DeploymentStatus, EnvironmentConfig, EnvironmentRegistry,
    MigrationCoordinator, discover_migrations,
};

use crate::common::http::Recorder;
use crate::common::{example_migrations, plugin_library, unique};

const TOKEN: &str = "xoxb-secret-token-123";
const ROUTING_KEY: &str = "pd-routing-key-456";
const PD_TOKEN: &str = "pd-api-token-789";

fn env(name: &str, approvers: &[&str]) -> EnvironmentConfig {
    let mut env = EnvironmentConfig::new(name, ConnectionConfig::new("mem://", unique(name), "main"));
    env.approvers = approvers.iter().map(|s| s.to_string()).collect();
    env
}

fn host(entries: Value) -> Arc<PluginHost> {
    Arc::new(PluginHost::load(entries.as_array().unwrap(), Path::new(".")).unwrap())
}

async fn deploy(envs: &[EnvironmentConfig], plugins: Arc<PluginHost>, strategy: &str) -> DeploymentReport {
    let mut registry = EnvironmentRegistry::new();
    for env in envs {
        registry.register(env.clone()).unwrap();
    }
    let names: Vec<&str> = envs.iter().map(|e| e.name.as_str()).collect();
    let request = DeployRequest::new(&names, discover_migrations(example_migrations()).unwrap(), strategy);
    MigrationCoordinator::new(registry)
        .with_plugins(plugins)
        .deploy_to_environments(request)
        .await
        .unwrap()
}

async fn applied(env: &EnvironmentConfig) -> Option<usize> {
    let db = connect_read_only(&Client::new(), &env.connection, Duration::from_secs(10))
        .await
        .unwrap()?;
    Some(surql::migration::applied_migrations(&db).await.unwrap().len())
}

fn file_plugin(dir: &Path, extra: Value) -> Value {
    let mut config = json!({"events_file": dir.join("events.jsonl"), "approvals_file": dir.join("approvals.json")});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"name": "file", "path": plugin_library("surql_file_plugin"), "config": config,
           "approval_timeout_seconds": 1, "poll_seconds": 0.1})
}

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn file_plugin_receives_every_notification_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = host(json!([file_plugin(dir.path(), json!({}))]));
    let envs = [env("alpha", &[]), env("beta", &[])];
    let report = deploy(&envs, plugins, "parallel").await;
    assert!(report.all_succeeded());
    let events = events(dir.path());
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names.first(), Some(&"deployment_started"));
    assert_eq!(names.last(), Some(&"deployment_finished"));
    assert_eq!(names.iter().filter(|n| **n == "environment_finished").count(), 2);
    for event in &events {
        assert_eq!(event["deployment_id"], report.deployment_id.as_str());
    }
    let started = &events[0];
    assert_eq!(started["strategy"], "parallel");
    assert_eq!(started["environments"], json!(["alpha", "beta"]));
    let finished = events.last().unwrap();
    assert_eq!(finished["success"], 2);
    assert_eq!(finished["results"][0]["status"], "success");
    assert_eq!(finished["results"][0]["migrations_applied"], 3);
}

#[tokio::test]
async fn plugin_approvals_approve_deny_and_time_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("approvals.json"),
        r#"{"yes": "approved", "no": "denied"}"#,
    )
    .unwrap();
    let plugins = host(json!([file_plugin(dir.path(), json!({}))]));
    let envs = [env("yes", &["file"]), env("no", &["file"]), env("later", &["file"])];
    let started = std::time::Instant::now();
    // One deployment each: the plugin answers once for a wave's group.
    let mut report = deploy(&envs[..1], plugins.clone(), "parallel").await;
    for environment in &envs[1..] {
        let one = deploy(std::slice::from_ref(environment), plugins.clone(), "parallel").await;
        report.results.extend(one.results);
    }
    assert_eq!(report.results["yes"].status, DeploymentStatus::Success);
    assert_eq!(report.results["no"].status, DeploymentStatus::Skipped);
    assert!(
        report.results["no"]
            .error
            .as_ref()
            .unwrap()
            .contains("denied by 'file'")
    );
    let later = &report.results["later"];
    assert_eq!(later.status, DeploymentStatus::Skipped);
    assert!(later.error.as_ref().unwrap().contains("approval pending"), "{later:?}");
    assert!(
        later.error.as_ref().unwrap().contains("no answer within 1s"),
        "{later:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it polled until the timeout"
    );
    assert_eq!(applied(&envs[0]).await, Some(3));
    assert_eq!(applied(&envs[1]).await, None, "denied: never touched");
    assert_eq!(applied(&envs[2]).await, None, "timed out: never touched");
}

#[tokio::test]
async fn script_notifications_reach_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("s.rhai"),
        "deploy(envs);\nnotify(\"smoke_test\", #{ passed: true, envs: envs });\n",
    )
    .unwrap();
    let mut registry = EnvironmentRegistry::new();
    let e = env("gamma", &[]);
    registry.register(e.clone()).unwrap();
    let mut request = DeployRequest::new(&["gamma"], discover_migrations(example_migrations()).unwrap(), "s.rhai");
    request.strategy_dir = work.path().to_path_buf();
    let report = MigrationCoordinator::new(registry)
        .with_plugins(host(json!([file_plugin(dir.path(), json!({}))])))
        .deploy_to_environments(request)
        .await
        .unwrap();
    assert!(report.script_error.is_none(), "{:?}", report.script_error);
    let custom: Vec<Value> = events(dir.path())
        .into_iter()
        .filter(|e| e["event"] == "smoke_test")
        .collect();
    assert_eq!(
        custom,
        [
            json!({"event": "smoke_test", "deployment_id": report.deployment_id, "data": {"passed": true, "envs": ["gamma"]}})
        ]
    );
}

fn slack_server(reaction: &'static str, by: &'static str) -> Recorder {
    let polls = Arc::new(AtomicUsize::new(0));
    Recorder::start(move |request| match request.path() {
        "/api/chat.postMessage" => (
            200,
            json!({"ok": true, "channel": "C42", "ts": "1700000000.000100"}).to_string(),
        ),
        "/api/reactions.get" => {
            // No reaction on the first poll, then the configured one.
            let reactions = if polls.fetch_add(1, Ordering::SeqCst) == 0 {
                json!([])
            } else {
                json!([{"name": reaction, "users": [by], "count": 1}])
            };
            (
                200,
                json!({"ok": true, "type": "message", "message": {"reactions": reactions}}).to_string(),
            )
        }
        "/api/chat.update" => (200, json!({"ok": true}).to_string()),
        "/webhook" => (200, "ok".to_string()),
        _ => (404, json!({"ok": false, "error": "unknown_method"}).to_string()),
    })
}

fn slack_plugin(server: &Recorder) -> Value {
    json!({"name": "slack", "path": plugin_library("surql_slack"), "poll_seconds": 0.1, "approval_timeout_seconds": 5,
           "config": {"webhook_url": format!("{}/webhook", server.url), "bot_token": TOKEN, "channel": "#deploys",
                      "approvers": ["U_LEAD"], "api_base_url": format!("{}/api", server.url)}})
}

#[tokio::test]
async fn slack_approves_on_a_check_mark_from_an_allowed_user() {
    let server = slack_server("white_check_mark", "U_LEAD");
    let envs = [env("production", &["slack"])];
    let report = deploy(&envs, host(json!([slack_plugin(&server)])), "sequential").await;
    assert_eq!(
        report.results["production"].status,
        DeploymentStatus::Success,
        "{:?}",
        report.results
    );

    let requests = server.requests();
    let posts: Vec<_> = requests
        .iter()
        .filter(|r| r.path() == "/api/chat.postMessage")
        .collect();
    let question = posts
        .iter()
        .find(|r| r.json()["text"].as_str().unwrap().contains("asks to deploy"))
        .expect("question posted");
    assert_eq!(
        question.header("Authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(question.json()["channel"], "#deploys");
    let text = question.json()["text"].as_str().unwrap().to_string();
    assert!(text.contains("*production*"), "{text}");
    assert!(text.contains("3 migration(s) to 1 environment(s)"), "{text}");
    assert!(text.contains("• `20250101090000_create_users`"), "{text}");
    let polls: Vec<_> = requests.iter().filter(|r| r.path() == "/api/reactions.get").collect();
    assert!(polls.len() >= 2, "polled until the reaction came");
    assert!(polls[0].target.contains("channel=C42") && polls[0].target.contains("timestamp=1700000000.000100"));
    assert_eq!(posts.len(), 2, "asked once, and one message for the deployment");

    // With a bot token, the deployment is one message, updated in place.
    let live = posts
        .iter()
        .find(|r| r.json()["text"].as_str().unwrap().contains(":rocket:"))
        .expect("the deployment's message");
    assert!(
        live.json()["text"]
            .as_str()
            .unwrap()
            .contains("0 of 1 environments done")
    );
    let updates: Vec<String> = requests
        .iter()
        .filter(|r| r.path() == "/api/chat.update")
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        updates
            .last()
            .unwrap()
            .contains("(sequential) finished: 1 success, 0 failed"),
        "{updates:?}"
    );
    assert!(
        requests.iter().all(|r| r.path() != "/webhook"),
        "no webhook messages besides"
    );
    // The token travels only in the Authorization header, never in a body.
    assert!(requests.iter().all(|r| !r.body.contains(TOKEN)));
}

#[tokio::test]
async fn slack_denies_on_a_cross_and_ignores_other_users() {
    let server = slack_server("x", "U_LEAD");
    let envs = [env("production", &["slack"])];
    let report = deploy(&envs, host(json!([slack_plugin(&server)])), "sequential").await;
    let result = &report.results["production"];
    assert_eq!(result.status, DeploymentStatus::Skipped);
    assert!(
        result.error.as_ref().unwrap().contains("denied in Slack by U_LEAD"),
        "{result:?}"
    );
    assert_eq!(applied(&envs[0]).await, None);

    let stranger = slack_server("white_check_mark", "U_SOMEONE_ELSE");
    let mut plugin = slack_plugin(&stranger);
    plugin["approval_timeout_seconds"] = json!(0.5);
    let envs = [env("production", &["slack"])];
    let report = deploy(&envs, host(json!([plugin])), "sequential").await;
    assert_eq!(report.results["production"].status, DeploymentStatus::Skipped);
    assert!(
        report.results["production"]
            .error
            .as_ref()
            .unwrap()
            .contains("approval pending")
    );
}

fn pagerduty_server(open_incidents: Value) -> Recorder {
    Recorder::start(move |request| match request.path() {
        "/v2/enqueue" | "/v2/change/enqueue" => (
            202,
            json!({"status": "success", "message": "Event processed"}).to_string(),
        ),
        "/incidents" => (
            200,
            json!({"incidents": open_incidents.clone(), "limit": 25, "more": false}).to_string(),
        ),
        _ => (404, "{}".to_string()),
    })
}

fn pagerduty_plugin(server: &Recorder) -> Value {
    json!({"name": "pagerduty", "path": plugin_library("surql_pagerduty"),
           "config": {"routing_key": ROUTING_KEY, "events_url": format!("{}/v2", server.url),
                      "api_token": PD_TOKEN, "service_id": "PSVC1", "api_url": server.url}})
}

#[tokio::test]
async fn pagerduty_triggers_on_failure_resolves_on_success_and_sends_change_events() {
    let server = pagerduty_server(json!([]));
    let plugins = host(json!([pagerduty_plugin(&server)]));
    let failing = env("payments", &[]);
    // An existing `user` table makes the first example migration fail there.
    let db = common::session(&failing.connection).await;
    run_query(&db, "DEFINE TABLE user SCHEMALESS;", json!({}))
        .await
        .unwrap();
    let report = deploy(std::slice::from_ref(&failing), plugins.clone(), "sequential").await;
    assert_eq!(report.results["payments"].status, DeploymentStatus::Failed);

    let requests = server.requests();
    let trigger = requests
        .iter()
        .find(|r| r.path() == "/v2/enqueue")
        .expect("alert sent")
        .json();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], "surql-payments");
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(trigger["payload"]["severity"], "error");
    assert!(
        trigger["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("payments failed")
    );
    let change = requests
        .iter()
        .find(|r| r.path() == "/v2/change/enqueue")
        .expect("change event")
        .json();
    assert!(
        change["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("0 success, 1 failed"),
        "{change}"
    );
    assert_eq!(
        change["payload"]["custom_details"]["deployment_id"],
        report.deployment_id.as_str()
    );

    // Fix the environment: the next successful deployment resolves the alert.
    run_query(&db, "REMOVE TABLE user;", json!({})).await.unwrap();
    let report = deploy(std::slice::from_ref(&failing), plugins, "sequential").await;
    assert_eq!(report.results["payments"].status, DeploymentStatus::Success);
    let resolve = server
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/v2/enqueue")
        .map(|r| r.json())
        .find(|b| b["event_action"] == "resolve")
        .expect("resolve sent");
    assert_eq!(resolve["dedup_key"], "surql-payments");
}

#[tokio::test]
async fn pagerduty_gate_denies_while_incidents_are_open() {
    let server = pagerduty_server(
        json!([{"id": "Q1", "incident_number": 1234, "title": "DB latency", "status": "acknowledged"}]),
    );
    let envs = [env("production", &["pagerduty"])];
    let report = deploy(&envs, host(json!([pagerduty_plugin(&server)])), "sequential").await;
    let result = &report.results["production"];
    assert_eq!(result.status, DeploymentStatus::Skipped);
    assert!(
        result
            .error
            .as_ref()
            .unwrap()
            .contains("1 open PagerDuty incident(s) on service PSVC1: #1234 DB latency"),
        "{result:?}"
    );
    assert_eq!(applied(&envs[0]).await, None);
    let query = server
        .requests()
        .into_iter()
        .find(|r| r.path() == "/incidents")
        .unwrap();
    assert_eq!(
        query.header("Authorization"),
        Some(format!("Token token={PD_TOKEN}").as_str())
    );
    assert!(
        query.target.contains("service_ids%5B%5D=PSVC1") || query.target.contains("service_ids[]=PSVC1"),
        "{}",
        query.target
    );
    assert!(query.target.contains("triggered") && query.target.contains("acknowledged"));

    let quiet = pagerduty_server(json!([]));
    let envs = [env("production", &["pagerduty"])];
    let report = deploy(&envs, host(json!([pagerduty_plugin(&quiet)])), "sequential").await;
    assert_eq!(report.results["production"].status, DeploymentStatus::Success);
}

fn load_error(entry: Value) -> String {
    match PluginHost::load(&[entry], Path::new(".")) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_plugins_are_refused_with_clear_errors() {
    let wrong = plugin_library("surql_test_wrong_abi_plugin");
    let error = load_error(json!({"name": "old", "path": wrong}));
    assert!(error.contains(&wrong.display().to_string()), "{error}");
    assert!(
        error.contains("ABI version 999") && error.contains("(1 to 2)"),
        "{error}"
    );

    let error = load_error(json!({"name": "gone", "path": "/nonexistent/libnothing.so"}));
    assert!(
        error.contains("plugin 'gone'") && error.contains("no such file"),
        "{error}"
    );

    // A real shared library that is not a surql plugin.
    let not_plugin = plugin_library("surql_file_plugin").with_file_name("libnot_a_plugin.so");
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .iter()
    .find(|p| Path::new(p).exists())
    .expect("libm");
    std::fs::copy(libm, &not_plugin).unwrap();
    let error = load_error(json!({"name": "m", "path": not_plugin}));
    assert!(error.contains("does not export `surql_plugin_declare`"), "{error}");

    let misbehaving = plugin_library("surql_test_misbehaving_plugin");
    let error = load_error(json!({"name": "bad", "path": misbehaving, "config": {"create": "fail"}}));
    assert!(error.contains("create failed: create failed on purpose"), "{error}");
    let error = load_error(json!({"name": "bad", "path": misbehaving, "config": {"create": "panic"}}));
    assert!(error.contains("plugin panicked: create exploded on purpose"), "{error}");
}

/// A declaration with a null function slot is refused at load with the
/// file and the slot named: no call through it, no panic, no crash.
#[test]
fn a_declaration_with_a_null_slot_is_refused_at_load() {
    let null_slot = plugin_library("surql_test_null_slot_plugin");
    let error = load_error(json!({"name": "holey", "path": null_slot}));
    assert_eq!(
        error,
        format!(
            "plugin 'holey' ({}): its declaration has no `call` function (a null slot); rebuild it with surql-plugin-sdk's declare_plugin!",
            null_slot.display()
        )
    );
}

/// A duration the host or a plugin could not wait for (negative, zero, or
/// so large the clock would overflow) is refused at load time, naming the key.
#[test]
fn impossible_durations_are_refused_with_the_key() {
    let file_plugin = plugin_library("surql_file_plugin");
    for (key, value) in [
        ("timeout_seconds", json!(1e300)),
        ("timeout_seconds", json!(0)),
        ("poll_seconds", json!(-1)),
        ("approval_timeout_seconds", json!(1e12)),
    ] {
        let mut entry = json!({"name": "f", "path": file_plugin, "config": {"events_file": "/dev/null"}});
        entry[key] = value.clone();
        let error = load_error(entry);
        assert!(
            error.contains(&format!("plugins[0]: {key} must be")) && error.contains("seconds"),
            "{key} = {value}: {error}"
        );
    }
    for library in ["surql_slack", "surql_pagerduty"] {
        for bad in [json!(-1), json!(1e300), json!("soon")] {
            let entry = json!({"name": "p", "path": plugin_library(library), "config": {"timeout_seconds": bad}});
            let error = load_error(entry);
            assert!(
                error.contains("config.timeout_seconds must be") && !error.contains("panicked"),
                "{library} timeout_seconds = {bad}: {error}"
            );
        }
    }
}

#[tokio::test]
async fn a_panicking_or_hanging_approver_fails_only_its_environment() {
    let misbehaving = plugin_library("surql_test_misbehaving_plugin");
    let plugins = host(json!([
        {"name": "boom", "path": misbehaving, "config": {"approve": "panic", "notify": "panic"}},
        {"name": "stuck", "path": misbehaving, "config": {"approve": "hang"}, "timeout_seconds": 0.5},
    ]));
    let envs = [
        env("exploding", &["boom"]),
        env("hanging", &["stuck"]),
        env("fine", &[]),
    ];
    let report = deploy(&envs, plugins, "parallel").await;
    let exploding = &report.results["exploding"];
    assert_eq!(exploding.status, DeploymentStatus::Failed);
    assert!(
        exploding
            .error
            .as_ref()
            .unwrap()
            .contains("plugin panicked: approve exploded on purpose"),
        "{exploding:?}"
    );
    let hanging = &report.results["hanging"];
    assert_eq!(hanging.status, DeploymentStatus::Failed);
    assert!(
        hanging.error.as_ref().unwrap().contains("no answer within 0.5s"),
        "{hanging:?}"
    );
    assert_eq!(
        report.results["fine"].status,
        DeploymentStatus::Success,
        "the run goes on"
    );
    assert_eq!(applied(&envs[0]).await, None);
    assert_eq!(applied(&envs[1]).await, None);
    assert_eq!(applied(&envs[2]).await, Some(3));
}

#[test]
fn cli_refuses_to_start_when_a_plugin_does_not_load_and_keeps_secrets_out() {
    let work = tempfile::tempdir().unwrap();
    let config = json!({
        "environments": [{"name": "dev", "connection": {"db_url": "surrealkv://data/dev", "db_ns": "n", "db": "d"}}],
        "plugins": [{"name": "old", "path": plugin_library("surql_test_wrong_abi_plugin"), "config": {"token": "${SECRET_TOKEN}"}}]
    });
    std::fs::write(work.path().join("environments.json"), config.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_surql"))
        .args([
            "orchestrate",
            "deploy",
            "-e",
            "all",
            "-m",
            example_migrations().to_str().unwrap(),
        ])
        .current_dir(work.path())
        .env("SECRET_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ABI version 999"), "{stderr}");
    assert!(!work.path().join("data").exists(), "an environment was touched");

    // A full run with Slack over the CLI: the token appears in no output.
    let server = slack_server("white_check_mark", "U_LEAD");
    let mut slack = slack_plugin(&server);
    slack["config"]["bot_token"] = json!("${SECRET_TOKEN}");
    let config = json!({
        "environments": [{"name": "prod", "approvers": ["slack"], "connection": {"db_url": "surrealkv://data/prod", "db_ns": "n", "db": "d"}}],
        "plugins": [slack]
    });
    std::fs::write(work.path().join("environments.json"), config.to_string()).unwrap();
    for output in ["table", "json"] {
        let out = Command::new(env!("CARGO_BIN_EXE_surql"))
            .args([
                "orchestrate",
                "deploy",
                "-e",
                "all",
                "-m",
                example_migrations().to_str().unwrap(),
                "--output",
                output,
            ])
            .current_dir(work.path())
            .env("SECRET_TOKEN", TOKEN)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{all}");
        assert!(!all.contains(TOKEN), "token leaked in {output} output");
    }
    assert!(server.requests().iter().all(|r| !r.body.contains(TOKEN)));
}

/// The library's `configure_environments` reads a file the way the CLI does:
/// `discover` templates become environments and plugins are loaded (a bare
/// plugin path relative to the file's folder), so a deploy through it
/// reaches every discovered tenant and notifies the plugin.
#[tokio::test]
async fn configure_environments_expands_discovery_and_loads_plugins() {
    let server = common::TestServer::start();
    let root = surql::connection::connect(
        &surql::Client::new(),
        &server.connection("setup", "main"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    surql::connection::run_query(
        &root,
        "DEFINE NAMESPACE tenant_a; DEFINE NAMESPACE tenant_b;",
        json!({}),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let library = plugin_library("surql_file_plugin");
    let local_copy = dir.path().join(library.file_name().unwrap());
    std::fs::copy(&library, &local_copy).unwrap();
    let mut plugin = file_plugin(dir.path(), json!({}));
    plugin["path"] = json!(local_copy.file_name().unwrap().to_str().unwrap());
    let config = json!({
        "environments": [{"name": "tenant-{ns}", "tags": ["tenant"],
            "discover": {"connection": {"db_url": server.ws_url(), "db": "main", "username": "root", "password": "root"},
                         "namespaces": "tenant_*"}}],
        "plugins": [plugin],
    });
    let path = dir.path().join("environments.json");
    std::fs::write(&path, config.to_string()).unwrap();

    let coordinator = surql::configure_environments(&path).await.unwrap();
    assert_eq!(
        coordinator.registry().names(),
        vec!["tenant-tenant_a".to_string(), "tenant-tenant_b".to_string()]
    );
    let migrations = surql::discover_migrations(common::example_migrations()).unwrap();
    let report = coordinator
        .deploy_to_environments(DeployRequest::new(&["tag:tenant"], migrations, "parallel"))
        .await
        .unwrap();
    assert!(report.all_succeeded(), "{:?}", report.results);
    for name in ["tenant-tenant_a", "tenant-tenant_b"] {
        let env = coordinator.registry().get(name).unwrap();
        assert_eq!(applied(env).await, Some(3), "{name}");
    }
    let finished = events(dir.path()).into_iter().last().unwrap();
    assert_eq!(finished["event"], "deployment_finished");
    assert_eq!(finished["success"], 2);
}

/// A notifier that hangs on every call, over 300 environments: progress
/// notifications are dropped once its queue is full (with a warning), and
/// the end of the run waits at most its flush deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notifier_hanging_on_300_environments_adds_at_most_its_flush_deadline() {
    let misbehaving = plugin_library("surql_test_misbehaving_plugin");
    let plugins = host(
        json!([{"name": "stuck", "path": misbehaving, "config": {"notify": "hang"},
                               "timeout_seconds": 2, "flush_timeout_seconds": 1}]),
    );
    let envs: Vec<EnvironmentConfig> = (0..300).map(|i| env(&format!("t{i}"), &[])).collect();
    let mut registry = EnvironmentRegistry::new();
    for env in &envs {
        registry.register(env.clone()).unwrap();
    }
    let names: Vec<&str> = envs.iter().map(|e| e.name.as_str()).collect();
    let mut request = DeployRequest::new(&names, discover_migrations(example_migrations()).unwrap(), "parallel");
    request.options.max_concurrent = 16;
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let coordinator = MigrationCoordinator::new(registry)
        .with_plugins(plugins)
        .with_events(surql::EventSink::new(sender));
    let started = std::time::Instant::now();
    let report = coordinator.deploy_to_environments(request).await.unwrap();
    let elapsed = started.elapsed();
    drop(coordinator);
    assert!(report.all_succeeded());
    // Delivering each of the 302 notifications would take 2 s: ten minutes.
    assert!(
        elapsed < Duration::from_secs(60),
        "the hung notifier held the run for {elapsed:?}"
    );
    let mut logs = Vec::new();
    while let Some(event) = receiver.recv().await {
        if let surql::Event::Log { message } = event {
            logs.push(message);
        }
    }
    let logs = logs.join("\n");
    assert!(logs.contains("plugin 'stuck' falls behind"), "{logs}");
    assert!(logs.contains("not delivered within its flush deadline of 1s"), "{logs}");
}

/// `surql orchestrate deploy -e a` of the example migrations in `dir`.
fn deploy_a(dir: &Path) -> std::process::Output {
    common::surql_command(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "a",
            "-m",
            example_migrations().to_str().unwrap(),
        ],
        dir,
    )
    .output()
    .unwrap()
}

/// `create` that never returns fails the load within the plugin's timeout
/// (exit 4 from the CLI), and a plugin is destroyed when the host is done.
#[test]
fn a_hanging_create_fails_the_load_and_plugins_are_destroyed_at_the_end() {
    let work = tempfile::tempdir().unwrap();
    let misbehaving = plugin_library("surql_test_misbehaving_plugin");
    common::write_environments(
        work.path(),
        json!([{"name": "a", "connection": {"db_url": "mem://", "db_ns": "a", "db": "a"}}]),
    );
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("environments.json")).unwrap()).unwrap();
    config["plugins"] =
        json!([{"name": "stuck", "path": misbehaving, "config": {"create": "hang"}, "timeout_seconds": 1}]);
    std::fs::write(work.path().join("environments.json"), config.to_string()).unwrap();
    let started = std::time::Instant::now();
    let out = deploy_a(work.path());
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!(
        out.status.code(),
        Some(surql::error::EXIT_PLUGIN),
        "{}",
        common::text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("create gave no answer within 1s"),
        "{}",
        common::text(&out)
    );

    // Destroyed when the last handle goes: after a run, and in the CLI.
    let destroyed = work.path().join("destroyed");
    let entry = json!([{"name": "ok", "path": misbehaving, "config": {"destroyed_file": destroyed}}]);
    drop(host(entry.clone()));
    assert_eq!(std::fs::read_to_string(&destroyed).unwrap(), "destroyed");
    std::fs::remove_file(&destroyed).unwrap();
    config["plugins"] = entry;
    std::fs::write(work.path().join("environments.json"), config.to_string()).unwrap();
    let out = deploy_a(work.path());
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    assert_eq!(std::fs::read_to_string(&destroyed).unwrap(), "destroyed");
}

/// A bare library name in `path` is the file beside environments.json, even
/// when surql runs from that folder: never a search of the system's paths.
#[test]
fn a_bare_plugin_name_is_the_file_beside_the_config() {
    let work = tempfile::tempdir().unwrap();
    let library = plugin_library("surql_file_plugin");
    let bare = library.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::copy(&library, work.path().join(&bare)).unwrap();
    let events = work.path().join("events.jsonl");
    let config = json!({
        "environments": [{"name": "a", "connection": {"db_url": "mem://", "db_ns": "a", "db": "a"}}],
        "plugins": [{"name": "file", "path": bare, "config": {"events_file": events}}],
    });
    std::fs::write(work.path().join("environments.json"), config.to_string()).unwrap();
    let out = deploy_a(work.path());
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    assert!(
        std::fs::read_to_string(&events)
            .unwrap()
            .contains("deployment_finished")
    );
}
