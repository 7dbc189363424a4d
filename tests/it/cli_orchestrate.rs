//! `surql orchestrate …` through the real binary: three real SurrealDB server
//! processes over ws://, one of them failing, read back afterwards; the
//! embedded default config; JSON output; dry runs; validate and status.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

use crate::common;

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use surql::connection::run_query;

use crate::common::{TestServer, applied_names, example_migrations, text};

fn surql(args: &[&str], dir: &Path) -> Output {
    common::surql_command(args, dir).output().unwrap()
}

fn json_output(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(output)))
}

fn write_config(dir: &Path, servers: &[&TestServer], extra: impl Fn(usize) -> Value) {
    let environments: Vec<Value> = servers
        .iter()
        .enumerate()
        .map(|(i, server)| {
            let mut env = json!({
                "name": format!("db{}", i + 1),
                "connection": {"db_url": server.ws_url(), "db_ns": "app", "db": "main",
                               "username": "root", "password": "${SURQL_TEST_SECRET}"},
                "priority": i + 1,
                "tags": ["replica"]
            });
            env.as_object_mut()
                .unwrap()
                .extend(extra(i).as_object().unwrap().clone());
            env
        })
        .collect();
    std::fs::write(
        dir.join("environments.json"),
        json!({ "environments": environments }).to_string(),
    )
    .unwrap();
}

#[tokio::test]
async fn sequential_over_three_servers_with_one_failing() {
    let servers = [TestServer::start(), TestServer::start(), TestServer::start()];
    let work = tempfile::tempdir().unwrap();
    write_config(work.path(), &servers.iter().collect::<Vec<_>>(), |_| json!({}));
    // db2 already has a `user` table: the first example migration fails there.
    let db2 = servers[1].connection("app", "main");
    let db = common::session(&db2).await;
    run_query(&db, "DEFINE TABLE user SCHEMALESS;", json!({}))
        .await
        .unwrap();

    let examples = example_migrations();
    let out = surql(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "tag:replica",
            "-m",
            examples.to_str().unwrap(),
            "--output",
            "json",
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc = json_output(&out);
    assert_eq!(doc["strategy"], "sequential");
    assert!(doc["deployment_id"].as_str().unwrap().len() > 10);
    let results = doc["results"].as_array().unwrap();
    let statuses: Vec<&str> = results.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["success", "failed", "skipped"], "{doc:#}");
    assert_eq!(results[0]["migrations_applied"], 3);
    assert!(
        results[1]["error"]
            .as_str()
            .unwrap()
            .contains("20250101090000_create_users"),
        "{doc:#}"
    );
    for key in [
        "environment",
        "status",
        "migrations_applied",
        "duration_seconds",
        "error",
        "started_at",
        "completed_at",
    ] {
        assert!(results[0].get(key).is_some(), "missing {key}");
    }
    let all = text(&out);
    assert!(!all.contains("\"root\""), "password leaked: {all}");

    // Read every database afterwards.
    assert_eq!(
        applied_names(&servers[0].connection("app", "main")).await.unwrap(),
        ["create_users", "create_orders", "audit_order_status"]
    );
    assert_eq!(
        applied_names(&db2).await.unwrap(),
        Vec::<String>::new(),
        "db2: nothing applied"
    );
    assert_eq!(
        applied_names(&servers[2].connection("app", "main")).await,
        None,
        "db3 never touched"
    );

    // status and validate show it.
    let out = surql(
        &["orchestrate", "status", "-e", "all", "-m", examples.to_str().unwrap()],
        work.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("20250101090200") && stdout.contains("uninitialised"),
        "{}",
        text(&out)
    );
    let out = surql(&["orchestrate", "validate"], work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("All environments validated"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn unreachable_environment_is_failed_and_validate_says_so() {
    let servers = [TestServer::start(), TestServer::start()];
    let work = tempfile::tempdir().unwrap();
    write_config(work.path(), &servers.iter().collect::<Vec<_>>(), |_| json!({}));
    let examples = example_migrations();
    let mut dead = servers;
    dead[1].kill();
    let out = surql(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "db1,db2",
            "--strategy",
            "parallel",
            "-m",
            examples.to_str().unwrap(),
            "--output",
            "json",
            "--health-timeout",
            "3",
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc = json_output(&out);
    assert_eq!(doc["results"][0]["status"], "success");
    assert_eq!(doc["results"][1]["status"], "failed");
    assert!(
        doc["results"][1]["error"].as_str().unwrap().contains("unhealthy"),
        "{doc:#}"
    );
    let out = surql(&["orchestrate", "validate", "--health-timeout", "3"], work.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Unhealthy"),
        "{}",
        text(&out)
    );
}

#[test]
fn embedded_default_config_deploys_dev_staging_and_approved_production() {
    let work = tempfile::tempdir().unwrap();
    let root = crate::common::repo();
    std::fs::copy(root.join("environments.json"), work.path().join("environments.json")).unwrap();
    let examples = example_migrations();
    let m = examples.to_str().unwrap();

    // Dry run: a plan, nothing written.
    let out = surql(
        &["orchestrate", "deploy", "-e", "all", "-m", m, "--dry-run"],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("production — 3 pending (SurrealDB 3.3.5), approval required"),
        "{stdout}"
    );
    assert!(stdout.contains("DEFINE TABLE user SCHEMAFULL"), "{stdout}");
    assert!(!work.path().join(".surql").exists(), "dry run created databases");

    // Without approval (no terminal here) production is skipped and untouched.
    let out = surql(&["orchestrate", "deploy", "-e", "all", "-m", m], work.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("SKIPPED") && stdout.contains("approval required"),
        "{stdout}"
    );
    assert!(work.path().join(".surql/data/staging").exists());
    assert!(
        !work.path().join(".surql/data/production").exists(),
        "production touched"
    );

    let out = surql(
        &["orchestrate", "deploy", "-e", "all", "-m", m, "--approve", "production"],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 success"), "{stdout}");

    // Unknown environment: the guide's message and the known names.
    let out = surql(&["orchestrate", "deploy", "-e", "prod", "-m", m], work.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Environment 'prod' not found in registry") && stderr.contains("production"),
        "{stderr}"
    );

    // A bad canary percentage is refused before anything runs.
    let out = surql(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "all",
            "-m",
            m,
            "--strategy",
            "canary",
            "--canary-percent",
            "0",
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn large_deployments_print_a_summary_with_failures_first() {
    let work = tempfile::tempdir().unwrap();
    let mut environments: Vec<serde_json::Value> = (0..30)
        .map(|i| {
            json!({"name": format!("tenant{i:02}"), "tags": ["tenant"],
                        "connection": {"db_url": "mem://", "db_ns": format!("t{i}"), "db": "main"}})
        })
        .collect();
    environments[17]["allow_destructive"] = json!(false);
    std::fs::write(
        work.path().join("environments.json"),
        json!({ "environments": environments }).to_string(),
    )
    .unwrap();
    let migrations = common::migrations_dir(&[
        (
            "1_accounts.surql",
            "-- migrate:up\nDEFINE TABLE account;\n-- migrate:down\nREMOVE TABLE account;\n",
        ),
        ("2_cleanup.surql", "-- migrate:up\nDELETE account WHERE stale = true;\n"),
    ]);
    let m = migrations.path().to_str().unwrap();
    let out = surql(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "tag:tenant",
            "--strategy",
            "parallel",
            "--max-concurrent",
            "8",
            "-m",
            m,
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("30 environment(s): 29 success, 1 failed"), "{stdout}");
    assert!(stdout.contains("tenant17") && stdout.contains("FAILED"), "{stdout}");
    assert!(
        !stdout.contains("tenant03"),
        "successes are not listed one by one: {stdout}"
    );
    assert!(stderr.contains("[tenant17] FAILED"), "{stderr}");
    assert!(stderr.contains("progress: 30/30 environments done"), "{stderr}");
    assert!(
        !stderr.contains("applied 1_accounts"),
        "no line per migration at scale: {stderr}"
    );

    let out = surql(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "tag:tenant",
            "-m",
            m,
            "--output",
            "json",
            "--dry-run",
        ],
        work.path(),
    );
    let doc = json_output(&out);
    assert_eq!(
        doc["results"].as_array().unwrap().len(),
        30,
        "json has every environment"
    );
}

/// Two selected names for one database (an alias, or a discovery template
/// overlapping a listed entry) are refused before anything runs: exit 2,
/// naming both, nothing created.
#[tokio::test]
async fn two_names_for_one_database_are_refused_before_anything_runs() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let rpc = server.ws_url();
    let http = format!("http://127.0.0.1:{}/", server.port);
    let root =
        |url: &str, ns: &str| json!({"db_url": url, "db_ns": ns, "db": "main", "username": "root", "password": "root"});
    common::write_environments(
        work.path(),
        json!([
            {"name": "primary", "connection": root(&rpc, "app")},
            {"name": "alias", "connection": root(&http, "app")},
        ]),
    );
    let m = example_migrations();
    let out = surql(
        &["orchestrate", "deploy", "-e", "all", "-m", m.to_str().unwrap()],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'primary' and 'alias' are the same database"),
        "{stderr}"
    );
    assert!(!stderr.contains("root@") && !stderr.contains(":root"), "{stderr}");

    // A discovery template that also finds a listed tenant.
    let setup = common::session(&server.connection("setup", "main")).await;
    run_query(
        &setup,
        "DEFINE NAMESPACE tenant_a; DEFINE NAMESPACE tenant_b;",
        json!({}),
    )
    .await
    .unwrap();
    let config = json!({"environments": [
        {"name": "acme", "connection": root(&server.ws_url(), "tenant_a")},
        {"name": "t-{ns}", "discover": {"connection": {"db_url": server.ws_url(), "db": "main", "username": "root", "password": "root"}, "namespaces": "tenant_*"}},
    ]});
    std::fs::write(work.path().join("environments.json"), config.to_string()).unwrap();
    let out = surql(
        &["orchestrate", "deploy", "-e", "all", "-m", m.to_str().unwrap()],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("'acme' and 't-tenant_a' are the same database"),
        "{}",
        text(&out)
    );
    let namespaces = run_query(&setup, "INFO FOR ROOT;", json!({})).await.unwrap();
    let names: Vec<&String> = namespaces[0]["namespaces"].as_object().unwrap().keys().collect();
    assert!(!names.contains(&&"app".to_string()), "created {names:?}");
    assert_eq!(
        run_query(&setup, "USE NS tenant_a; INFO FOR NS;", json!({}))
            .await
            .unwrap()[1]["databases"],
        json!({}),
        "nothing created in tenant_a"
    );
}

/// A pending version older than the newest applied one is refused unless
/// `--allow-out-of-order`; an applied migration whose file is gone blocks a
/// deploy unless `--allow-missing`, and `status` names it.
#[tokio::test]
async fn out_of_order_and_missing_migrations_are_refused_unless_allowed() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_environments(
        work.path(),
        json!([{"name": "db", "connection": {"db_url": server.ws_url(), "db_ns": "order", "db": "main", "username": "root", "password": "root"}}]),
    );
    let file = |name: &str| {
        (
            format!("{name}.surql"),
            format!("-- migrate:up\nDEFINE TABLE t{name} SCHEMALESS;\n-- migrate:down\nREMOVE TABLE t{name};\n"),
        )
    };
    let migrations = work.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    let add = |name: &str| {
        let (path, text) = file(name);
        std::fs::write(migrations.join(path), text).unwrap();
    };
    let m = migrations.to_str().unwrap();
    let deploy = |extra: &[&str]| {
        let args = [
            &["orchestrate", "deploy", "-e", "db", "-m", m, "--output", "json"][..],
            extra,
        ]
        .concat();
        let out = surql(&args, work.path());
        let result = json_output(&out)["results"][0].clone();
        (out.status.code(), result)
    };
    let connection = server.connection("order", "main");
    add("1_a");
    add("3_c");
    assert_eq!(deploy(&[]).0, Some(0));
    add("2_b");
    let (code, result) = deploy(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(result["status"], "failed");
    let error = result["error"].as_str().unwrap();
    assert!(
        error.contains("out of order: 2_b is older than the newest applied migration 3_c")
            && error.contains("--allow-out-of-order"),
        "{error}"
    );
    assert_eq!(common::applied_versions(&connection).await.unwrap(), ["1", "3"]);
    let (code, result) = deploy(&["--allow-out-of-order"]);
    assert_eq!(
        (code, result["migrations_applied"].clone()),
        (Some(0), json!(1)),
        "{result}"
    );
    assert_eq!(common::applied_versions(&connection).await.unwrap(), ["1", "2", "3"]);

    // 3_c's file is gone: status reports it, deploy refuses, --allow-missing goes on.
    std::fs::remove_file(migrations.join("3_c.surql")).unwrap();
    add("4_d");
    let status = surql(
        &["orchestrate", "status", "-e", "db", "-m", m, "--output", "json"],
        work.path(),
    );
    assert_eq!(status.status.code(), Some(1));
    assert_eq!(
        json_output(&status)["environments"][0]["drift"],
        json!(["3_c (missing)"])
    );
    let (code, result) = deploy(&[]);
    assert_eq!(code, Some(1));
    let error = result["error"].as_str().unwrap();
    assert!(
        error.contains("3_c is applied but its file is missing") && error.contains("--allow-missing"),
        "{error}"
    );
    assert_eq!(common::applied_versions(&connection).await.unwrap(), ["1", "2", "3"]);
    let (code, result) = deploy(&["--allow-missing"]);
    assert_eq!(
        (code, result["migrations_applied"].clone()),
        (Some(0), json!(1)),
        "{result}"
    );
    assert_eq!(
        common::applied_versions(&connection).await.unwrap(),
        ["1", "2", "3", "4"]
    );
}
