//! A deployment split across runners: three `surql` processes, each with
//! its shard of 30 tenants, one deployment id and one state server, cover
//! every tenant exactly once; `show` tells the deployment as a whole.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use crate::common;

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::{TestServer, applied_versions, migrations_dir, stdout_json, strs, text};

const ACCOUNTS: &str =
    "-- migrate:up\nDEFINE TABLE IF NOT EXISTS account SCHEMALESS;\n-- migrate:down\nREMOVE TABLE account;\n";
const EMAIL: &str = "-- migrate:up\nDEFINE FIELD email ON account TYPE option<string>;\n-- migrate:down\nREMOVE FIELD email ON account;\n";

/// `orchestrate deploy -e all` of `migrations`, parallel, JSON, recorded
/// in the state store on `server` under deployment id `id`, then `extra`.
fn sharded_deploy(migrations: &str, server: &str, id: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "orchestrate",
        "deploy",
        "-e",
        "all",
        "-m",
        migrations,
        "--strategy",
        "parallel",
        "--output",
        "json",
        "--deployment-id",
        id,
    ];
    args.extend(["--state", server, "--state-user", "root", "--state-pass", "root"]);
    args.extend_from_slice(extra);
    args.into_iter().map(str::to_string).collect()
}

#[tokio::test]
async fn three_shards_cover_thirty_tenants_exactly_once() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &server.ws_url(), 30, "shard");
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_email.surql", EMAIL)]);
    let m = migrations.path().to_str().unwrap();
    let url = server.ws_url();
    let state = ["--state", url.as_str(), "--state-user", "root", "--state-pass", "root"];
    let deploy = sharded_deploy(m, &url, "release-42", &[]);
    let deploy = strs(&deploy);

    // Shard 0 by flag; 1 and 2 as a Kubernetes Indexed Job runs them.
    let runners: Vec<std::process::Child> = (0..3)
        .map(|index| {
            let mut args = deploy.clone();
            let shard = format!("{index}/3");
            let mut command = if index == 0 {
                args.extend(["--shard", shard.as_str()]);
                common::surql_command(&args, work.path())
            } else {
                args.extend(["--shards", "3"]);
                let mut command = common::surql_command(&args, work.path());
                command.env("JOB_COMPLETION_INDEX", index.to_string());
                command
            };
            command
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut covered: Vec<String> = Vec::new();
    for runner in runners {
        let out = runner.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let report = stdout_json(&out);
        assert_eq!(report["deployment_id"], "release-42");
        let results = report["results"].as_array().unwrap();
        assert!(
            !results.is_empty() && results.len() < 30,
            "a shard deployed a part: {report}"
        );
        for result in results {
            assert_eq!(result["status"], "success", "{report}");
            covered.push(result["environment"].as_str().unwrap().to_string());
        }
    }
    let unique: BTreeSet<&String> = covered.iter().collect();
    assert_eq!(covered.len(), 30, "each tenant once: {covered:?}");
    assert_eq!(unique.len(), 30, "each tenant once: {covered:?}");
    for i in 0..30 {
        let versions = applied_versions(&server.connection(&format!("shard{i}"), "main"))
            .await
            .unwrap();
        assert_eq!(versions, ["1", "2"], "tenant {i}");
    }

    // One deployment, shown as a whole.
    let show = [&["orchestrate", "show", "release-42", "--output", "json"][..], &state].concat();
    let out = common::surql_command(&show, work.path()).output().unwrap();
    let shown = stdout_json(&out);
    let deployment = &shown["deployment"];
    assert_eq!(deployment["state"], "finished", "{shown}");
    assert_eq!(
        deployment["counts"],
        json!({"success": 30, "failed": 0, "rolled_back": 0, "skipped": 0}),
        "{shown}"
    );
    assert_eq!(deployment["selection"].as_array().unwrap().len(), 30);
    let shards: Vec<&str> = deployment["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shard"].as_str().unwrap())
        .collect();
    assert_eq!(shards, ["0/3", "1/3", "2/3"]);
    let environments = shown["environments"].as_array().unwrap();
    assert_eq!(environments.len(), 30);
    assert!(environments.iter().all(|e| e["state"] == "success"), "{shown}");
    let list = [&["orchestrate", "deployments", "--output", "json"][..], &state].concat();
    let listed = stdout_json(&common::surql_command(&list, work.path()).output().unwrap());
    assert_eq!(listed["deployments"].as_array().unwrap().len(), 1, "{listed}");

    // The same shard again is refused; a shard needs the shared id.
    let again = [&deploy[..], &["--shard", "1/3"]].concat();
    let out = common::surql_command(&again, work.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("release-42 shard 1/3 is recorded already"),
        "{}",
        text(&out)
    );
    let out = common::surql_command(
        &["orchestrate", "deploy", "-e", "all", "-m", m, "--shard", "1/3"],
        work.path(),
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs --deployment-id"),
        "{}",
        text(&out)
    );
}

/// A shard's runner killed part-way (a pod Kubernetes starts again): the
/// same command continues that shard under the same id, keeping the
/// tenants it finished untouched, and every migration is applied once.
#[tokio::test]
async fn a_killed_shard_run_again_continues_where_it_stopped() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &server.ws_url(), 24, "again");
    let slow = "-- migrate:up\nDEFINE TABLE slow SCHEMALESS;\nSLEEP 150ms;\n-- migrate:down\nREMOVE TABLE slow;\n";
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_slow.surql", slow)]);
    let m = migrations.path().to_str().unwrap();
    let url = server.ws_url();
    let shard = |index: &str| sharded_deploy(m, &url, "job-7", &["--max-concurrent", "1", "--shard", index]);
    let first = shard("0/2");
    let first = strs(&first);
    let mut child = common::surql_command(&first, work.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed part-way: once two of its tenants are recorded.
    let show: Vec<String> = [
        "orchestrate",
        "show",
        "job-7",
        "--output",
        "json",
        "--state",
        &url,
        "--state-user",
        "root",
        "--state-pass",
        "root",
    ]
    .map(str::to_string)
    .to_vec();
    common::runs::wait_for_record(&show, work.path(), |shown| {
        common::runs::count_in(shown, "success") >= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let mine: Vec<usize> = (0..24)
        .filter(|i| surql::Shard::new(0, 2).unwrap().contains(&format!("t{i:02}")))
        .collect();
    let mut done_before = Vec::new();
    for &i in &mine {
        let history = common::db::history_rows(&server.connection(&format!("again{i}"), "main")).await;
        if history.len() == 2 {
            done_before.push((i, history));
        }
    }
    assert!(
        !done_before.is_empty() && done_before.len() < mine.len(),
        "killed part-way: {done_before:?}"
    );

    let out = common::surql_command(&first, work.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("continuing deployment job-7 shard 0/2"),
        "{}",
        text(&out)
    );
    assert_eq!(stdout_json(&out)["deployment_id"], "job-7");
    for (i, history) in &done_before {
        let now = common::db::history_rows(&server.connection(&format!("again{i}"), "main")).await;
        assert_eq!(&now, history, "tenant {i} finished before the kill was touched again");
    }
    let second = shard("1/2");
    let out = common::surql_command(&strs(&second), work.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for i in 0..24 {
        let rows = common::db::history_rows(&server.connection(&format!("again{i}"), "main")).await;
        let versions: Vec<&str> = rows.iter().map(|r| r["version"].as_str().unwrap()).collect();
        assert_eq!(versions, ["1", "2"], "tenant {i}");
        assert!(
            rows.iter().all(|r| r["deployment_id"] == "job-7"),
            "tenant {i}: {rows:?}"
        );
    }
    let state = ["--state", url.as_str(), "--state-user", "root", "--state-pass", "root"];
    let show = [&["orchestrate", "show", "job-7", "--output", "json"][..], &state].concat();
    let shown = stdout_json(&common::surql_command(&show, work.path()).output().unwrap());
    assert_eq!(shown["deployment"]["state"], "finished", "{shown}");
    assert_eq!(
        shown["deployment"]["counts"],
        json!({"success": 24, "failed": 0, "rolled_back": 0, "skipped": 0}),
        "{shown}"
    );
}

/// The Kubernetes example's command line is one this `surql` takes: run as
/// the Job's pod 1 would (a dry run over embedded tenants), it plans its shard.
#[test]
fn the_kubernetes_example_runs_as_a_shard() {
    let yaml =
        std::fs::read_to_string(crate::common::repo().join("examples/kubernetes/surql-indexed-job.yaml")).unwrap();
    let args: Vec<String> = yaml
        .lines()
        .skip_while(|line| line.trim() != "args:")
        .skip(1)
        .take_while(|line| line.trim_start().starts_with("- "))
        .map(|line| {
            let item = line.trim_start().trim_start_matches("- ");
            let item = item.split(" #").next().unwrap().trim();
            item.trim_matches('"').to_string()
        })
        .collect();
    assert!(args.contains(&"--shards".to_string()), "{args:?}");
    let work = tempfile::tempdir().unwrap();
    let tenants: Vec<Value> = (0..9)
        .map(|i| {
            json!({"name": format!("tenant-{i}"), "tags": ["tenant"],
            "connection": {"db_url": "mem://", "db_ns": format!("k{i}"), "db": "main"}})
        })
        .collect();
    common::write_environments(work.path(), Value::Array(tenants));
    std::fs::create_dir(work.path().join("migrations")).unwrap();
    std::fs::write(work.path().join("migrations/1_accounts.surql"), ACCOUNTS).unwrap();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--dry-run");
    let out = common::surql_command(&args, work.path())
        .env("JOB_COMPLETION_INDEX", "1")
        .env("SURQL_DEPLOYMENT_ID", "surql-release-42")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = stdout_json(&out);
    assert_eq!(report["deployment_id"], "surql-release-42");
    let planned: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["environment"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..9)
        .map(|i| format!("tenant-{i}"))
        .filter(|name| surql::Shard::new(1, 3).unwrap().contains(name))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(planned, expected, "pod 1 plans its third");
}
