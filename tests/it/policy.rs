//! Windows, freezes, holds and pins (environments.json) through the real
//! binary against a real SurrealDB server over ws://: what is skipped and
//! why, identical in a dry run, a simulation, a script's `plan()` and a real
//! run; what each database holds afterwards; the override of a freeze and
//! its record; `status` showing a pin. Windows and freezes are built around
//! the actual time, so they are open, closed or in force whenever this runs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::path::Path;

use chrono::{DateTime, Duration, Timelike, Utc};
use serde_json::{Value, json};

use crate::common::{TestServer, applied_versions, example_migrations, initialise, run_surql, stdout_json, text};

const ALL: [&str; 3] = ["20250101090000", "20250101090100", "20250101090200"];

fn hhmm(time: impl Timelike) -> String {
    format!("{:02}:{:02}", time.hour(), time.minute())
}

/// A window open now (every day, from an hour ago to an hour from now, UTC).
fn open_window(now: DateTime<Utc>) -> Value {
    json!({"start": hhmm(now - Duration::hours(1)), "end": hhmm(now + Duration::hours(1))})
}

/// A window closed now, in Berlin time: every day from an hour from now to
/// two hours from now. Returns it and the opening the reason must name.
fn closed_window(now: DateTime<Utc>) -> (Value, String) {
    let berlin = chrono_tz::Europe::Berlin;
    let opens = (now + Duration::hours(1)).with_timezone(&berlin);
    let opens = opens.with_second(0).unwrap().with_nanosecond(0).unwrap();
    let window = json!({"start": hhmm(opens), "end": hhmm(opens + Duration::hours(1)), "timezone": "Europe/Berlin"});
    (
        window,
        format!(
            "outside its maintenance window (opens {} Europe/Berlin)",
            opens.to_rfc3339()
        ),
    )
}

fn environment(server: &TestServer, name: &str, extra: Value) -> Value {
    let mut env = json!({
        "name": name,
        "connection": {"db_url": server.ws_url(), "db_ns": format!("pol_{name}"), "db": "main",
                       "username": "root", "password": "${SURQL_TEST_SECRET}"},
    });
    env.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    env
}

/// The results of a report, by environment.
fn results(doc: &Value) -> serde_json::Map<String, Value> {
    let list = doc["results"].as_array().unwrap_or_else(|| panic!("no results: {doc}"));
    list.iter()
        .map(|r| (r["environment"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

fn status_of(doc: &Value, name: &str) -> (String, String) {
    let result = &results(doc)[name];
    assert!(result.is_object(), "no result for {name}: {doc}");
    (
        result["status"].as_str().unwrap_or_default().to_string(),
        result["error"].as_str().unwrap_or_default().to_string(),
    )
}

/// held, closed, frozen, open and pinned: the reasons each must get.
struct Fleet {
    work: tempfile::TempDir,
    closed_reason: String,
    frozen_reason: String,
}

fn fleet(server: &TestServer) -> Fleet {
    let now = Utc::now();
    let (closed, closed_reason) = closed_window(now);
    let freeze_end = (now + Duration::hours(1)).with_nanosecond(0).unwrap();
    let environments = json!([
        environment(
            server,
            "held",
            json!({"hold": "incident 42", "window": open_window(now)})
        ),
        environment(server, "closed", json!({"window": closed})),
        environment(
            server,
            "frozen",
            json!({"tags": ["production"], "window": open_window(now)})
        ),
        environment(server, "open", json!({"window": open_window(now)})),
        environment(server, "pinned", json!({"pin_version": ALL[1]})),
    ]);
    let freezes = json!([
        {"start": (now - Duration::hours(1)).to_rfc3339(), "end": freeze_end.to_rfc3339(),
         "reason": "year-end", "environments": "tag:production"},
        // Over, and one in the future: neither counts.
        {"start": (now - Duration::hours(3)).to_rfc3339(), "end": (now - Duration::hours(2)).to_rfc3339(),
         "reason": "past", "environments": "all"},
        {"start": (now + Duration::hours(2)).to_rfc3339(), "end": (now + Duration::hours(3)).to_rfc3339(),
         "reason": "future", "environments": "all"},
        // Matching no environment is fine.
        {"start": (now - Duration::hours(1)).to_rfc3339(), "end": freeze_end.to_rfc3339(),
         "reason": "nobody", "environments": "tag:nothing-has-it"},
    ]);
    let work = tempfile::tempdir().unwrap();
    let config = json!({"environments": environments, "freezes": freezes});
    std::fs::write(work.path().join("environments.json"), config.to_string()).unwrap();
    Fleet {
        work,
        closed_reason,
        frozen_reason: format!("frozen until {}: year-end", freeze_end.to_rfc3339()),
    }
}

fn surql(args: &[&str], dir: &Path) -> std::process::Output {
    let migrations = example_migrations();
    let mut all: Vec<&str> = args.to_vec();
    if args[0] == "orchestrate" && args[1] != "show" || args[0] == "strategy" {
        all.extend(["-m", migrations.to_str().unwrap()]);
    }
    run_surql(&all, dir)
}

/// The three environments the policy skips, with their reasons.
fn assert_skipped_with_reasons(doc: &Value, fleet: &Fleet, context: &str) {
    assert_eq!(
        status_of(doc, "held"),
        ("skipped".into(), "held: incident 42".into()),
        "{context}: {doc}"
    );
    assert_eq!(
        status_of(doc, "closed"),
        ("skipped".into(), fleet.closed_reason.clone()),
        "{context}: {doc}"
    );
    assert_eq!(
        status_of(doc, "frozen"),
        ("skipped".into(), fleet.frozen_reason.clone()),
        "{context}: {doc}"
    );
    assert_eq!(status_of(doc, "open").0, "success", "{context}: {doc}");
    assert_eq!(status_of(doc, "pinned").0, "success", "{context}: {doc}");
}

#[tokio::test]
async fn holds_windows_freezes_and_pins_through_the_binary() {
    let server = TestServer::start();
    let fleet = fleet(&server);
    let dir = fleet.work.path();
    let all = ["-e", "all", "--strategy", "parallel", "--output", "json"];
    let connection = |name: &str| server.connection(&format!("pol_{name}"), "main");

    // A dry run decides exactly as the real run will, and writes nothing.
    let out = surql(&[&["orchestrate", "deploy", "--dry-run"][..], &all].concat(), dir);
    let doc = stdout_json(&out);
    assert_skipped_with_reasons(&doc, &fleet, "dry run");
    assert_eq!(
        results(&doc)["open"]["plan"]["pending"].as_array().unwrap().len(),
        3,
        "{doc}"
    );
    let pinned_plan = &results(&doc)["pinned"]["plan"]["pending"];
    assert_eq!(pinned_plan.as_array().unwrap().len(), 2, "pinned at the second: {doc}");
    for name in ["held", "closed", "frozen", "open", "pinned"] {
        assert_eq!(
            applied_versions(&connection(name)).await,
            None,
            "dry run created {name}"
        );
    }

    // So does a simulation.
    let out = surql(
        &["strategy", "simulate", "parallel", "-e", "all", "--output", "json"],
        dir,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc = stdout_json(&out);
    assert_skipped_with_reasons(&doc, &fleet, "simulation");
    assert_eq!(results(&doc)["pinned"]["migrations_applied"], 2, "{doc}");

    // The real run: the skipped ones are never connected to (their databases
    // are never created); the pinned one stops at its pin.
    let out = surql(&[&["orchestrate", "deploy"][..], &all].concat(), dir);
    assert_eq!(
        out.status.code(),
        Some(1),
        "not every environment succeeded: {}",
        text(&out)
    );
    let doc = stdout_json(&out);
    assert_skipped_with_reasons(&doc, &fleet, "deploy");
    // This process lists a server's namespaces at most once a second: the
    // dry run's checks above listed them before the deploy created some.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for name in ["held", "closed", "frozen"] {
        assert_eq!(applied_versions(&connection(name)).await, None, "{name} was touched");
    }
    assert_eq!(applied_versions(&connection("open")).await.unwrap(), ALL);
    assert_eq!(applied_versions(&connection("pinned")).await.unwrap(), ALL[..2]);

    // Deploying again gives the pinned one nothing more.
    let out = surql(&["orchestrate", "deploy", "-e", "pinned", "--output", "json"], dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(results(&stdout_json(&out))["pinned"]["migrations_applied"], 0);
    assert_eq!(applied_versions(&connection("pinned")).await.unwrap(), ALL[..2]);

    // `status` shows the pin, and nothing pending up to it.
    let out = surql(&["orchestrate", "status", "-e", "pinned,open", "--output", "json"], dir);
    let doc = stdout_json(&out);
    let pinned = &doc["environments"][0];
    assert_eq!(
        (&pinned["pinned"], &pinned["pending_count"]),
        (&json!(ALL[1]), &json!(0)),
        "{doc}"
    );
    assert_eq!(doc["environments"][1]["pinned"], Value::Null, "{doc}");
    let out = surql(&["orchestrate", "status", "-e", "pinned"], dir);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(&format!("0 (pinned at {})", ALL[1])), "{}", text(&out));

    // Overriding the freeze deploys the frozen one, says so, and records who
    // and why; a hold is not a freeze and stays.
    let out = surql(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "frozen,held",
            "--strategy",
            "parallel",
            "--override-freeze",
            "hotfix INC-7",
            "--actor",
            "alice",
            "--deployment-id",
            "override-1",
        ],
        dir,
    );
    assert_eq!(out.status.code(), Some(1), "held is still skipped: {}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "frozen: {}; deploying anyway: freeze overridden by alice: hotfix INC-7",
            fleet.frozen_reason
        )),
        "{said}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // the listing, as above
    assert_eq!(applied_versions(&connection("frozen")).await.unwrap(), ALL);
    assert_eq!(applied_versions(&connection("held")).await, None);
    let out = surql(&["orchestrate", "show", "override-1", "--output", "json"], dir);
    let shown = stdout_json(&out);
    assert_eq!(
        shown["deployment"]["options"]["override_freeze"],
        json!({"by": "alice", "reason": "hotfix INC-7"}),
        "{shown}"
    );
    let out = surql(
        &["orchestrate", "deploy", "-e", "frozen", "--override-freeze", " "],
        dir,
    );
    assert_eq!(out.status.code(), Some(2), "an override needs a reason: {}", text(&out));
}

#[tokio::test]
async fn a_script_sees_the_policy_in_plan_and_envs_and_templates_pass_it_on() {
    let server = TestServer::start();
    let fleet = fleet(&server);
    let dir = fleet.work.path();
    // Two tenants found by a template with a closed window and a pin.
    for tenant in ["pol_tpl_a", "pol_tpl_b"] {
        initialise(&server.connection(tenant, "main")).await;
    }
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("environments.json")).unwrap()).unwrap();
    let (closed, closed_reason) = closed_window(Utc::now());
    config["environments"].as_array_mut().unwrap().push(json!({
        "name": "tenant-{ns}",
        "discover": {"connection": {"db_url": server.ws_url(), "db": "main", "username": "root",
                                    "password": "${SURQL_TEST_SECRET}", "auth_level": "root"},
                     "namespaces": "pol_tpl_*"},
        "window": closed, "pin_version": ALL[0], "hold": "tenant migration"
    }));
    std::fs::write(dir.join("environments.json"), config.to_string()).unwrap();
    let script = r#"
        for p in plan(envs) {
            print(`plan ${p.environment}: skipped=${p.skipped} pending=${p.pending.len()}`);
        }
        for e in envs {
            print(`env ${e.name}: window_open=${e.window_open} opens=${e.window_opens} held=${e.held} frozen=${e.frozen} pin=${e.pin_version}`);
        }
        deploy(envs);
    "#;
    std::fs::write(dir.join("policy.rhai"), script).unwrap();
    let out = surql(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "all",
            "--strategy",
            "policy.rhai",
            "--output",
            "json",
        ],
        dir,
    );
    let said = text(&out);
    let doc = stdout_json(&out);
    assert_skipped_with_reasons(&doc, &fleet, "script");
    for line in [
        "plan held: skipped=held: incident 42 pending=0".to_string(),
        format!("plan closed: skipped={} pending=3", fleet.closed_reason),
        format!("plan frozen: skipped={} pending=3", fleet.frozen_reason),
        "plan open: skipped= pending=3".to_string(),
        "plan pinned: skipped= pending=2".to_string(),
        "env held: window_open=true opens= held=incident 42 frozen= pin=".to_string(),
        "env frozen: window_open=true opens= held= frozen=year-end pin=".to_string(),
        format!("env pinned: window_open=true opens= held= frozen= pin={}", ALL[1]),
        format!(
            "env tenant-pol_tpl_a: window_open=false opens={}",
            &closed_reason
                ["outside its maintenance window (opens ".len()..closed_reason.len() - " Europe/Berlin)".len()]
        ),
        format!("held=tenant migration frozen= pin={}", ALL[0]),
    ] {
        assert!(said.contains(&line), "missing `{line}`:\n{said}");
    }
    // The template's hold, not its window, decides (hold first); neither tenant was touched further.
    for tenant in ["tenant-pol_tpl_a", "tenant-pol_tpl_b"] {
        assert_eq!(
            status_of(&doc, tenant),
            ("skipped".into(), "held: tenant migration".into()),
            "{doc}"
        );
    }
    assert_eq!(
        applied_versions(&server.connection("pol_tpl_a", "main")).await.unwrap(),
        Vec::<String>::new()
    );

    // A pin no migration has is refused before anything runs, naming the environment.
    config["environments"][4]["pin_version"] = json!("20990101000000");
    std::fs::write(dir.join("environments.json"), config.to_string()).unwrap();
    let out = surql(&["orchestrate", "deploy", "-e", "open,pinned"], dir);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("environment 'pinned': pin_version '20990101000000' is not the version of any migration"),
        "{}",
        text(&out)
    );
    // `open` was deployed by the first run only; nothing ran now either way.
    assert_eq!(
        applied_versions(&server.connection("pol_open", "main")).await.unwrap(),
        ALL
    );
}

#[test]
fn config_errors_name_the_file_the_field_and_the_environment_with_the_fix() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("environments.json");
    let load = |config: Value| {
        std::fs::write(&path, config.to_string()).unwrap();
        surql::load_environments_file(&path)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let env = |extra: Value| {
        let mut env = json!({"name": "prod", "connection": {"db_url": "mem://", "db_ns": "p", "db": "main"}});
        env.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"environments": [env]})
    };
    let window = |w: Value| env(json!({"window": w}));
    for (config, wanted) in [
        (
            window(json!({"days": ["sat", "sundy"], "start": "22:00", "end": "04:00"})),
            "environments[0] ('prod').window: days: 'sundy' is not a day",
        ),
        (
            window(json!({"start": "10pm", "end": "04:00"})),
            "start '10pm' is not a time of day: write HH:MM",
        ),
        (
            window(json!({"start": "22:00", "end": "04:00", "timezone": "Europe/Berlim"})),
            "'Europe/Berlim' is not an IANA time zone: write e.g. \"Europe/Berlin\"",
        ),
        (
            env(json!({"hold": " "})),
            "environments[0] ('prod').hold: give the reason it is held",
        ),
        (
            env(json!({"pin_version": ""})),
            "environments[0] ('prod').pin_version: give a migration version",
        ),
        (
            json!({"environments": [], "freezes": [{"start": "2026-12-21T00:00:00Z", "end": "2026-12-20T00:00:00Z", "reason": "x"}]}),
            "freezes[0]: end '2026-12-20T00:00:00Z' is not after start",
        ),
        (
            json!({"environments": [], "freezes": [{"start": "2026-12-20", "end": "2026-12-21T00:00:00Z", "reason": "x"}]}),
            "start '2026-12-20' is not an RFC 3339 time",
        ),
        (
            json!({"environments": [], "freezes": [{"start": "2026-12-20T00:00:00Z", "end": "2026-12-21T00:00:00Z"}]}),
            "reason",
        ),
    ] {
        let error = load(config).unwrap_err();
        assert!(error.contains("environments.json: "), "{error}");
        assert!(error.contains(wanted), "wanted `{wanted}` in: {error}");
    }
    // A window on a template is checked too, with the template's name.
    let template = json!({"environments": [{"name": "t-{ns}",
        "discover": {"connection": {"db_url": "ws://127.0.0.1:1", "db": "main"}, "namespaces": "t_*"},
        "window": {"start": "22:00", "end": "22:00"}}]});
    let error = load(template).unwrap_err();
    assert!(error.contains("environments[0] ('t-{ns}')"), "{error}");
    // Every key at once loads.
    let ok = json!({"environments": [{"name": "prod", "connection": {"db_url": "mem://", "db_ns": "p", "db": "main"},
        "window": {"days": ["sat", "sun"], "start": "22:00", "end": "04:00", "timezone": "Europe/Berlin"},
        "hold": "INC-1", "pin_version": "20250101090000"}],
        "freezes": [{"start": "2026-12-20T00:00:00+01:00", "end": "2027-01-02T00:00:00+01:00",
                     "reason": "year-end", "environments": "tag:production"}]});
    load(ok).unwrap();
}
