//! Plugins at fleet scale, through the real host against real local HTTP
//! servers standing in for Slack, PagerDuty and Prometheus: one approval per
//! wave carrying the plan, `approve(envs, label)` in scripts, gates that halt
//! the next wave, per-plugin event selection, Slack at 500 tenants in a
//! handful of requests, and ABI 1 plugins loaded unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use surql::connection::{Client, connect_read_only, run_query};
use surql::{
    ConnectionConfig, DeployRequest, DeploymentReport, DeploymentStatus, EnvironmentConfig, EnvironmentRegistry,
    MigrationCoordinator, PluginHost, discover_migrations,
};

use crate::common::http::Recorder;
use crate::common::{migrations_dir, plugin_library, unique};

const ACCOUNTS: &str = "-- migrate:up\nDEFINE TABLE account SCHEMALESS;\n-- migrate:down\nREMOVE TABLE account;\n";
const DROP_LEGACY: &str = "-- migrate:up\nDEFINE TABLE legacy SCHEMALESS;\n\nREMOVE TABLE legacy;\n";
/// Fails where a `poison:x` record exists.
const POISONED: &str = "-- migrate:up\nIF record::exists(poison:x) { THROW 'poisoned tenant' };\nDEFINE TABLE done SCHEMALESS;\n-- migrate:down\nREMOVE TABLE done;\n";

fn env(name: &str, approvers: &[&str]) -> EnvironmentConfig {
    let mut env = EnvironmentConfig::new(name, ConnectionConfig::new("mem://", unique(name), "main"));
    env.approvers = approvers.iter().map(|s| s.to_string()).collect();
    env
}

fn tenants(n: usize, approvers: &[&str]) -> Vec<EnvironmentConfig> {
    (0..n).map(|i| env(&format!("t{i:03}"), approvers)).collect()
}

fn host(entries: Value) -> Arc<PluginHost> {
    Arc::new(PluginHost::load(entries.as_array().unwrap(), Path::new(".")).unwrap())
}

async fn deploy(
    envs: &[EnvironmentConfig],
    plugins: Arc<PluginHost>,
    migrations: &Path,
    strategy: &str,
    tune: impl FnOnce(&mut DeployRequest),
) -> DeploymentReport {
    let mut registry = EnvironmentRegistry::new();
    for env in envs {
        registry.register(env.clone()).unwrap();
    }
    let names: Vec<&str> = envs.iter().map(|e| e.name.as_str()).collect();
    let mut request = DeployRequest::new(&names, discover_migrations(migrations).unwrap(), strategy);
    tune(&mut request);
    MigrationCoordinator::new(registry)
        .with_plugins(plugins)
        .deploy_to_environments(request)
        .await
        .unwrap()
}

async fn created(env: &EnvironmentConfig) -> bool {
    connect_read_only(&Client::new(), &env.connection, Duration::from_secs(10))
        .await
        .unwrap()
        .is_some()
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The example file plugin: answers from `approvals.json`, logs each request.
fn file_plugin(dir: &Path, answers: Value, extra: Value) -> Value {
    std::fs::write(dir.join("approvals.json"), answers.to_string()).unwrap();
    let mut entry = json!({"name": "file", "path": plugin_library("surql_file_plugin"),
        "approval_timeout_seconds": 1, "poll_seconds": 0.1,
        "config": {"events_file": dir.join("events.jsonl"), "approvals_file": dir.join("approvals.json"),
                   "requests_file": dir.join("requests.jsonl")}});
    entry
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    entry
}

fn all_approved(envs: &[EnvironmentConfig]) -> Value {
    Value::Object(envs.iter().map(|e| (e.name.clone(), json!("approved"))).collect())
}

#[tokio::test]
async fn canary_asks_once_for_the_canary_and_once_for_the_rest_with_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_drop_legacy.surql", DROP_LEGACY)]);
    let envs = tenants(20, &["file"]);
    let plugins = host(json!([file_plugin(dir.path(), all_approved(&envs), json!({}))]));
    let mut envs = envs;
    for env in &mut envs {
        env.allow_destructive = true;
    }
    let report = deploy(&envs, plugins, migrations.path(), "canary", |_| {}).await;
    assert!(report.all_succeeded(), "{:?}", report.results);

    let requests = lines(&dir.path().join("requests.jsonl"));
    assert_eq!(requests.len(), 2, "one for the canary, one for the rest: {requests:#?}");
    let sizes: Vec<(String, usize)> = requests
        .iter()
        .map(|r| {
            (
                r["label"].as_str().unwrap().to_string(),
                r["environments"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(sizes, [("canary".to_string(), 2), ("rest".to_string(), 18)]);
    let rest = &requests[1];
    assert_eq!(rest["deployment_id"], report.deployment_id.as_str());
    assert_eq!(rest["strategy"], "canary");
    assert!(rest["actor"].as_str().is_some_and(|a| !a.is_empty()));
    let migrations: Vec<(&str, &str)> = rest["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["version"].as_str().unwrap(), m["name"].as_str().unwrap()))
        .collect();
    assert_eq!(migrations, [("1", "accounts"), ("2", "drop_legacy")]);
    assert_eq!(rest["migrations"][0]["checksum"].as_str().unwrap().len(), 64);
    assert_eq!(rest["migrations"][1]["reversible"], false);
    let destructive = &rest["destructive"][0];
    assert!(
        destructive["file"].as_str().unwrap().ends_with("2_drop_legacy.surql"),
        "{destructive}"
    );
    assert_eq!(destructive["line"], 4);
    assert_eq!(destructive["kind"], "REMOVE TABLE");
    assert_eq!(rest["irreversible"], json!(["2_drop_legacy"]));
    assert_eq!(
        rest["environments"][0]["pending"],
        json!(["1_accounts", "2_drop_legacy"])
    );
    assert!(
        rest["summary"]
            .as_str()
            .unwrap()
            .contains("rest: 2 migration(s) to 18 environment(s), 1 destructive"),
        "{rest}"
    );
}

/// Expand, then contract: the second wave would apply more, so it is asked again.
#[tokio::test]
async fn a_later_wave_of_the_same_environments_is_asked_again() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_drop_legacy.surql", DROP_LEGACY)]);
    let mut envs = tenants(3, &["file"]);
    for env in &mut envs {
        env.allow_destructive = true;
    }
    let plugins = host(json!([file_plugin(dir.path(), all_approved(&envs), json!({}))]));
    let script = dir.path().join("expand_contract.rhai");
    std::fs::write(
        &script,
        "deploy(envs, #{ label: \"expand\", to_version: \"1\" });\ndeploy(envs, #{ label: \"contract\" });\n",
    )
    .unwrap();
    let report = deploy(&envs, plugins, migrations.path(), script.to_str().unwrap(), |_| {}).await;
    assert!(report.all_succeeded(), "{:?}", report.results);
    let requests = lines(&dir.path().join("requests.jsonl"));
    let asked: Vec<(&str, &Value)> = requests
        .iter()
        .map(|r| (r["label"].as_str().unwrap(), &r["environments"][0]["pending"]))
        .collect();
    assert_eq!(
        asked,
        [
            ("expand", &json!(["1_accounts"])),
            ("contract", &json!(["2_drop_legacy"]))
        ],
        "{requests:#?}"
    );
    assert_eq!(requests[1]["destructive"][0]["kind"], "REMOVE TABLE");
}

#[tokio::test]
async fn a_denied_group_is_never_written_to() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let envs = tenants(3, &["file"]);
    let plugins = host(json!([file_plugin(dir.path(), json!({"t001": "denied"}), json!({}))]));
    let report = deploy(&envs, plugins, migrations.path(), "parallel", |_| {}).await;
    for env in &envs {
        let result = &report.results[&env.name];
        assert_eq!(result.status, DeploymentStatus::Skipped, "{result:?}");
        assert!(result.error.as_ref().unwrap().contains("t001 denied"), "{result:?}");
        assert!(
            !created(env).await,
            "{} was created although its group was denied",
            env.name
        );
    }
    assert_eq!(lines(&dir.path().join("requests.jsonl")).len(), 1);
}

#[tokio::test]
async fn a_script_asks_once_for_a_group_and_deploys_what_was_approved() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let envs = tenants(6, &["file"]);
    let plugins = host(json!([file_plugin(dir.path(), all_approved(&envs), json!({}))]));
    let script = dir.path().join("grouped.rhai");
    std::fs::write(
        &script,
        r#"
let approved = approve(envs, "all six tenants");
if approved.len() != envs.len() { throw `approved ${approved.len()}`; }
let results = deploy(approved, #{ label: "everyone", max_concurrent: 3 });
"#,
    )
    .unwrap();
    let report = deploy(&envs, plugins, migrations.path(), script.to_str().unwrap(), |_| {}).await;
    assert!(report.script_error.is_none(), "{:?}", report.script_error);
    assert!(report.all_succeeded(), "{:?}", report.results);
    let requests = lines(&dir.path().join("requests.jsonl"));
    assert_eq!(requests.len(), 1, "the wave did not ask again: {requests:#?}");
    assert_eq!(requests[0]["label"], "all six tenants");
    assert_eq!(requests[0]["environments"].as_array().unwrap().len(), 6);
}

/// A Prometheus stand-in whose error rate is `low` for the first `calls`
/// queries and high after.
fn prometheus(calls: usize) -> Recorder {
    let seen = AtomicUsize::new(0);
    Recorder::start(move |_| {
        let value = if seen.fetch_add(1, Ordering::SeqCst) < calls {
            "0.01"
        } else {
            "0.5"
        };
        let answer = json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {"job": "api"}, "value": [1.7e9, value]}]}});
        (200, answer.to_string())
    })
}

fn metric_gate(server: &Recorder) -> Value {
    json!({"name": "error-rate", "path": plugin_library("surql_metric_gate"),
           "config": {"query_url": format!("{}/api/v1/query?query=errors", server.url), "threshold": 0.05, "metric": "error rate"}})
}

#[tokio::test]
async fn a_gate_halts_the_next_wave_and_its_environments_are_never_touched() {
    let server = prometheus(1);
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let envs = tenants(6, &[]);
    let report = deploy(
        &envs,
        host(json!([metric_gate(&server)])),
        migrations.path(),
        "rolling",
        |r| {
            r.options.batch_size = 2;
        },
    )
    .await;
    let statuses: Vec<DeploymentStatus> = envs.iter().map(|e| report.results[&e.name].status).collect();
    assert_eq!(
        statuses,
        [
            DeploymentStatus::Success,
            DeploymentStatus::Success,
            DeploymentStatus::Skipped,
            DeploymentStatus::Skipped,
            DeploymentStatus::Skipped,
            DeploymentStatus::Skipped
        ]
    );
    let halted = report.results["t002"].error.clone().unwrap();
    assert!(
        halted.contains("halted by gate 'error-rate' before batch 2/3: error rate is 0.5, above 0.05"),
        "{halted}"
    );
    for env in &envs[2..] {
        assert!(!created(env).await, "{} was touched after the halt", env.name);
    }
    assert_eq!(server.requests().len(), 2, "asked before each wave that could start");

    // A script asks the gate itself and sees the halt.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("gated.rhai");
    std::fs::write(
        &script,
        r#"
let g = gate(envs, "pre-flight");
if !g.halted { throw "expected a halt"; }
log(`halted by ${g.gate}: ${g.reason}`);
"#,
    )
    .unwrap();
    let busy = prometheus(0);
    let envs = tenants(2, &[]);
    let report = deploy(
        &envs,
        host(json!([metric_gate(&busy)])),
        migrations.path(),
        script.to_str().unwrap(),
        |_| {},
    )
    .await;
    assert!(report.script_error.is_none(), "{:?}", report.script_error);
    for env in &envs {
        let result = &report.results[&env.name];
        assert_eq!(result.status, DeploymentStatus::Skipped);
        assert!(
            result.error.as_ref().unwrap().contains("before pre-flight"),
            "{result:?}"
        );
    }
}

fn pagerduty(server: &Recorder) -> Value {
    json!({"name": "pagerduty", "path": plugin_library("surql_pagerduty"),
           "config": {"routing_key": "pd-routing-key", "events_url": format!("{}/v2", server.url),
                      "api_token": "pd-api-token", "service_id": "PSVC1", "api_url": server.url}})
}

#[tokio::test]
async fn pagerduty_halts_the_next_wave_on_an_open_incident_and_carries_the_plan() {
    // The incident opens once the first wave has been let through.
    let asked = AtomicUsize::new(0);
    let server = Recorder::start(move |request| match request.path() {
        "/incidents" => {
            let incidents = match asked.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => json!([]),
                _ => json!([{"incident_number": 77, "title": "checkout errors", "status": "triggered"}]),
            };
            (200, json!({"incidents": incidents}).to_string())
        }
        _ => (202, json!({"status": "success"}).to_string()),
    });
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let envs = tenants(4, &["pagerduty"]);
    let report = deploy(
        &envs,
        host(json!([pagerduty(&server)])),
        migrations.path(),
        "rolling",
        |r| {
            r.options.batch_size = 2;
        },
    )
    .await;
    assert_eq!(report.results["t000"].status, DeploymentStatus::Success);
    let halted = &report.results["t002"];
    assert_eq!(halted.status, DeploymentStatus::Skipped);
    assert!(
        halted.error.as_ref().unwrap().contains("halted by gate 'pagerduty' before batch 2/2: 1 open PagerDuty incident(s) on service PSVC1: #77 checkout errors"),
        "{halted:?}"
    );
    let change = server
        .requests()
        .into_iter()
        .find(|r| r.path() == "/v2/change/enqueue" && r.body.contains("approval requested"))
        .expect("the approval as a change event")
        .json();
    let details = &change["payload"]["custom_details"];
    assert_eq!(details["label"], "batch 1/2");
    assert_eq!(details["migrations"][0]["name"], "accounts");
    assert_eq!(details["environments"].as_array().unwrap().len(), 2);
}

fn slack(server: &Recorder, bot: bool) -> Value {
    let mut config =
        json!({"webhook_url": format!("{}/webhook", server.url), "api_base_url": format!("{}/api", server.url)});
    if bot {
        config["bot_token"] = json!("xoxb-test-token");
        config["channel"] = json!("#deploys");
    }
    json!({"name": "slack", "path": plugin_library("surql_slack"), "config": config})
}

fn slack_server() -> Recorder {
    Recorder::start(|request| match request.path() {
        "/api/chat.postMessage" => (200, json!({"ok": true, "channel": "C1", "ts": "1.0001"}).to_string()),
        "/api/chat.update" => (200, json!({"ok": true}).to_string()),
        _ => (200, "ok".to_string()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_reports_500_tenants_in_a_handful_of_requests_naming_every_failure() {
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_poisoned.surql", POISONED)]);
    let envs = tenants(500, &[]);
    // Five waves of 100 that go on whatever fails.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("waves.rhai");
    std::fs::write(
        &script,
        "for wave in chunks(envs, 100) { deploy(wave, #{ max_concurrent: 32 }); }",
    )
    .unwrap();
    for bot in [true, false] {
        let server = slack_server();
        let envs: Vec<EnvironmentConfig> = envs
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.connection.db = if bot { "bot".into() } else { "hook".into() };
                e
            })
            .collect();
        // Every 25th tenant fails: 20 of them.
        for env in envs.iter().step_by(25) {
            let db = crate::common::session(&env.connection).await;
            run_query(&db, "CREATE poison:x;", json!({})).await.unwrap();
        }
        let plugins = host(json!([slack(&server, bot)]));
        let report = deploy(&envs, plugins, migrations.path(), script.to_str().unwrap(), |_| {}).await;
        let failed: Vec<&String> = report
            .results
            .values()
            .filter(|r| r.is_failure())
            .map(|r| &r.environment)
            .collect();
        assert_eq!(failed.len(), 20, "{bot}");
        let requests = server.requests();
        assert!(
            requests.len() <= 10,
            "{} requests reached Slack (bot: {bot})",
            requests.len()
        );
        let last = requests.last().unwrap().json();
        let summary = last["text"].as_str().unwrap();
        assert!(
            summary.contains("finished: 480 success, 0 failed, 20 rolled back"),
            "{summary}"
        );
        for name in failed {
            assert!(summary.contains(&format!("*{name}*")), "{name} missing from {summary}");
        }
        let paths: Vec<&str> = requests.iter().map(|r| r.path()).collect();
        if bot {
            assert_eq!(paths[0], "/api/chat.postMessage", "{paths:?}");
            assert!(paths[1..].iter().all(|p| *p == "/api/chat.update"), "{paths:?}");
        } else {
            assert!(paths.iter().all(|p| *p == "/webhook"), "{paths:?}");
            assert_eq!(paths.len(), 6, "one per wave and the summary: {paths:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_tenants_approved_in_slack_are_one_question() {
    let server = Recorder::start(|request| match request.path() {
        "/api/chat.postMessage" => (200, json!({"ok": true, "channel": "C1", "ts": "7.0001"}).to_string()),
        "/api/reactions.get" => (
            200,
            json!({"ok": true, "message": {"reactions": [{"name": "white_check_mark", "users": ["U_LEAD"]}]}})
                .to_string(),
        ),
        _ => (200, json!({"ok": true}).to_string()),
    });
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let envs = tenants(300, &["slack"]);
    let mut plugin = slack(&server, true);
    plugin["config"]["approvers"] = json!(["U_LEAD"]);
    plugin["events"] = json!(["deployment_finished"]);
    let report = deploy(&envs, host(json!([plugin])), migrations.path(), "parallel", |r| {
        r.options.max_concurrent = 32;
    })
    .await;
    assert!(
        report.all_succeeded(),
        "{:?}",
        report.results.values().find(|r| r.status != DeploymentStatus::Success)
    );
    let questions: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.path() == "/api/chat.postMessage")
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .filter(|text| text.contains("asks to deploy"))
        .collect();
    assert_eq!(questions.len(), 1, "{questions:#?}");
    assert!(questions[0].contains("(300 environments)"), "{}", questions[0]);
    assert!(
        questions[0].contains("t000, t001") && questions[0].contains("and 280 more"),
        "{}",
        questions[0]
    );
    assert!(questions[0].contains("• `1_accounts`"), "{}", questions[0]);
}

/// The person at the terminal: counts the questions, approves.
struct CountingPerson(std::sync::Mutex<Vec<surql::ApprovalRequest>>);

impl surql::Approver for CountingPerson {
    fn approve(&self, request: &surql::ApprovalRequest) -> surql::ApprovalDecision {
        self.0.lock().unwrap().push(request.clone());
        surql::ApprovalDecision::Approved
    }
}

#[tokio::test]
async fn the_prompt_asks_once_per_group() {
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let mut envs = tenants(10, &[]);
    for env in &mut envs {
        env.require_approval = true;
    }
    let mut registry = EnvironmentRegistry::new();
    for env in &envs {
        registry.register(env.clone()).unwrap();
    }
    let person = Arc::new(CountingPerson(std::sync::Mutex::default()));
    let mut request = DeployRequest::new(&["all"], discover_migrations(migrations.path()).unwrap(), "canary");
    request.options.approvals.interactive = true;
    let report = MigrationCoordinator::new(registry)
        .with_approver(person.clone())
        .deploy_to_environments(request)
        .await
        .unwrap();
    assert!(report.all_succeeded(), "{:?}", report.results);
    let asked = person.0.lock().unwrap();
    let groups: Vec<(&str, usize)> = asked.iter().map(|r| (r.label.as_str(), r.environments.len())).collect();
    assert_eq!(groups, [("canary", 1), ("rest", 9)]);
    assert_eq!(asked[1].migrations[0].name, "accounts");
}

#[tokio::test]
async fn a_plugin_receives_only_the_events_it_selects() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let envs = tenants(3, &[]);
    let plugins = host(json!([file_plugin(
        dir.path(),
        json!({}),
        json!({"events": ["wave_finished", "deployment_finished"]})
    )]));
    let report = deploy(&envs, plugins, migrations.path(), "sequential", |_| {}).await;
    assert!(report.all_succeeded());
    let names: Vec<String> = lines(&dir.path().join("events.jsonl"))
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["wave_finished", "wave_finished", "wave_finished", "deployment_finished"]
    );
}

#[tokio::test]
async fn an_abi_1_plugin_loads_unchanged_and_is_asked_once_per_environment() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("v1.jsonl");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let envs = tenants(3, &["old"]);
    let plugins = host(
        json!([{"name": "old", "path": plugin_library("surql_test_abi_v1_plugin"),
                               "config": {"log_file": log}}]),
    );
    assert_eq!(plugins.get("old").unwrap().loaded.abi_version, 1);
    assert!(plugins.gates().is_empty(), "ABI 1 had no gate: its flag is ignored");
    let report = deploy(&envs, plugins, migrations.path(), "parallel", |_| {}).await;
    assert!(report.all_succeeded(), "{:?}", report.results);
    let calls = lines(&log);
    let mut asked: Vec<&str> = calls
        .iter()
        .filter(|c| c["hook"] == "approve")
        .map(|c| c["payload"]["environment"].as_str().unwrap())
        .collect();
    asked.sort();
    assert_eq!(asked, ["t000", "t001", "t002"], "one request per environment");
    assert!(
        calls
            .iter()
            .any(|c| c["hook"] == "notify" && c["payload"]["event"] == "deployment_finished")
    );
}
