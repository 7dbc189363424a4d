//! Rollout control on embedded databases read back afterwards: failure
//! budgets, per-wave options (`to_version`, labels, rollback and health
//! policy), `plan(envs)`, what scripts see of each environment, and the waves
//! each built-in reports.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use crate::common;

use surql::{
    ConnectionConfig, DeployRequest, DeploymentReport, DeploymentStatus, EnvironmentConfig, EnvironmentRegistry,
    FailureBudget, MigrationCoordinator, discover_migrations,
};

use crate::common::{applied_versions, migrations_dir, unique};

const ACCOUNTS: &str = "-- migrate:up\nDEFINE TABLE account SCHEMALESS;\n-- migrate:down\nREMOVE TABLE account;\n";
const EMAIL: &str = "-- migrate:up\nDEFINE FIELD email ON account TYPE option<string>;\n-- migrate:down\nREMOVE FIELD email ON account;\n";
/// Contract: drops what the expand step replaced (destructive, on line 4).
const CONTRACT: &str = "-- migrate:up\nDEFINE TABLE legacy SCHEMALESS;\n\nREMOVE TABLE legacy;\n-- migrate:down\nDEFINE TABLE legacy SCHEMALESS;\n";
const FAILS: &str = "-- migrate:up\nDEFINE TABLE doomed SCHEMALESS;\nTHROW 'this migration fails everywhere';\n-- migrate:down\nREMOVE TABLE doomed;\n";

/// `n` tenants on fresh embedded databases, named `prefix-000…`.
fn tenants(prefix: &str, n: usize) -> (EnvironmentRegistry, Vec<EnvironmentConfig>) {
    let mut registry = EnvironmentRegistry::new();
    let mut envs = Vec::new();
    for i in 0..n {
        let mut env = EnvironmentConfig::new(
            format!("{prefix}-{i:03}"),
            ConnectionConfig::new("mem://", unique(prefix), "main"),
        );
        env.allow_destructive = true;
        registry.register(env.clone()).unwrap();
        envs.push(env);
    }
    (registry, envs)
}

async fn deploy(registry: EnvironmentRegistry, request: DeployRequest) -> DeploymentReport {
    MigrationCoordinator::new(registry)
        .deploy_to_environments(request)
        .await
        .unwrap()
}

fn request(dir: &tempfile::TempDir, strategy: &str) -> DeployRequest {
    DeployRequest::new(&["all"], discover_migrations(dir.path()).unwrap(), strategy)
}

/// A strategy script in a file of its own.
fn script(code: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollout.rhai");
    std::fs::write(&path, code).unwrap();
    (dir, path.display().to_string())
}

fn count(report: &DeploymentReport, status: DeploymentStatus) -> usize {
    report.results.values().filter(|r| r.status == status).count()
}

#[tokio::test]
async fn a_spent_failure_budget_leaves_the_rest_untouched() {
    let (registry, envs) = tenants("budget", 100);
    let dir = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_fails.surql", FAILS)]);
    let mut request = request(&dir, "parallel");
    request.options.max_concurrent = 4;
    request.options.max_failures = Some(FailureBudget::Count(3));
    let report = deploy(registry, request).await;

    // Once 3 failed no environment starts; at most the 4 − 1 others running finish.
    let attempted = 100 - count(&report, DeploymentStatus::Skipped);
    assert!((3..=6).contains(&attempted), "{attempted} attempted");
    assert_eq!(count(&report, DeploymentStatus::Success), 0);
    let skipped: Vec<&EnvironmentConfig> = envs
        .iter()
        .filter(|e| report.results[&e.name].status == DeploymentStatus::Skipped)
        .collect();
    for env in &skipped {
        let reason = report.results[&env.name].error.clone().unwrap();
        assert!(reason.starts_with("failure budget spent: 3 of 3 failed ("), "{reason}");
        assert_eq!(
            applied_versions(&env.connection).await,
            None,
            "{} was touched",
            env.name
        );
    }
    // The attempted ones rolled back their first migration.
    for env in envs.iter().filter(|e| report.results[&e.name].is_failure()) {
        assert_eq!(report.results[&env.name].status, DeploymentStatus::RolledBack);
        assert_eq!(applied_versions(&env.connection).await.unwrap(), Vec::<String>::new());
    }
    assert_eq!(report.waves.len(), 1);
    assert_eq!(
        (report.waves[0].label.as_str(), report.waves[0].max_failures),
        ("all", Some(3))
    );
}

#[tokio::test]
async fn a_script_sets_a_percentage_budget_per_wave() {
    let (registry, _) = tenants("percent", 20);
    let dir = migrations_dir(&[("1_fails.surql", FAILS)]);
    let (_script_dir, path) =
        script("deploy(envs, #{ max_concurrent: 1, max_failure_percent: 10, label: \"all at 10%\" });\n");
    let report = deploy(registry, request(&dir, &path)).await;
    // 10 % of 20 is 2: one at a time, exactly two fail and 18 are never started.
    assert_eq!(count(&report, DeploymentStatus::Failed), 2);
    assert_eq!(count(&report, DeploymentStatus::Skipped), 18);
    assert_eq!(report.waves[0].max_failures, Some(2));
    assert_eq!(report.waves[0].label, "all at 10%");
}

#[tokio::test]
async fn expand_then_contract_in_two_waves_of_one_script() {
    let (registry, envs) = tenants("expand", 3);
    let dir = migrations_dir(&[
        ("1_accounts.surql", ACCOUNTS),
        ("2_email.surql", EMAIL),
        ("3_contract.surql", CONTRACT),
    ]);
    let (_script_dir, path) = script(
        r#"
let expanded = deploy(envs, #{ to_version: "2", label: "expand" });
if !all_succeeded(expanded) { throw "expand failed"; }
for p in plan(envs) {
    if p.pending != ["3_contract"] { throw `after expand, ${p.environment} has ${p.pending} pending`; }
    if p.destructive.len() != 1 || p.destructive[0].line != 4 { throw `destructive: ${p.destructive}`; }
    if p.destructive[0].kind != "REMOVE TABLE" { throw `kind: ${p.destructive[0].kind}`; }
}
deploy(envs, #{ label: "contract" });
"#,
    );
    let report = deploy(registry, request(&dir, &path)).await;
    assert!(report.script_error.is_none(), "{:?}", report.script_error);
    for env in &envs {
        let result = &report.results[&env.name];
        assert_eq!(result.status, DeploymentStatus::Success, "{result:?}");
        assert_eq!(result.migrations_applied, 3);
        assert_eq!(applied_versions(&env.connection).await.unwrap(), ["1", "2", "3"]);
    }
    let labels: Vec<(&str, Option<&str>)> = report
        .waves
        .iter()
        .map(|w| (w.label.as_str(), w.to_version.as_deref()))
        .collect();
    assert_eq!(labels, [("expand", Some("2")), ("contract", None)]);
}

#[tokio::test]
async fn plan_reads_without_writing_and_scripts_see_where_each_environment_is() {
    let (registry, envs) = tenants("plan", 2);
    let dir = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("3_contract.surql", CONTRACT)]);
    let namespace = &envs[0].connection.db_ns;
    let (_script_dir, path) = script(&format!(
        r#"
let p = plan(envs);
if p.len() != 2 || p[0].pending != ["1_accounts", "3_contract"] {{ throw `plan: ${{p}}`; }}
if p[0].irreversible != [] || p[0].approval_required || p[0].blocked != () {{ throw `plan: ${{p[0]}}`; }}
if envs[0].namespace != "{namespace}" || envs[0].database != "main" || envs[0].host != "mem://" {{
    throw `env: ${{envs[0].host}} ${{envs[0].namespace}} ${{envs[0].database}}`;
}}
skip(envs, "only planned");
"#
    ));
    let report = deploy(registry, request(&dir, &path)).await;
    assert!(report.script_error.is_none(), "{:?}", report.script_error);
    assert_eq!(count(&report, DeploymentStatus::Skipped), 2);
    for env in &envs {
        assert_eq!(
            applied_versions(&env.connection).await,
            None,
            "plan() created {}",
            env.name
        );
    }
}

#[tokio::test]
async fn per_wave_options_are_checked() {
    let dir = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    for (call, expected) in [
        (
            "deploy(envs, #{ max_failures: 0 })",
            "max_failures must be an integer of at least 1",
        ),
        (
            "deploy(envs, #{ max_failure_percent: 150 })",
            "max_failure_percent must be a number above 0",
        ),
        ("deploy(envs, #{ max_failures: 1, max_failure_percent: 5 })", "not both"),
        (
            "deploy(envs, #{ to_version: \"9\" })",
            "to_version '9' is not the version of any migration",
        ),
        (
            "deploy(envs, #{ auto_rollback: \"yes\" })",
            "auto_rollback must be true or false",
        ),
        ("deploy(envs, #{ speed: 3 })", "unknown option 'speed'"),
    ] {
        let (registry, envs) = tenants("options", 1);
        let (_script_dir, path) = script(&format!("{call};\n"));
        let report = deploy(registry, request(&dir, &path)).await;
        let error = report.script_error.as_ref().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains(expected), "{call}: {error}");
        assert_eq!(applied_versions(&envs[0].connection).await, None);
    }
}

#[tokio::test]
async fn a_wave_can_keep_what_it_applied() {
    let (registry, envs) = tenants("keep", 1);
    let dir = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_fails.surql", FAILS)]);
    let (_script_dir, path) = script("deploy(envs, #{ auto_rollback: false, verify_health: false });\n");
    let report = deploy(registry, request(&dir, &path)).await;
    let result = &report.results[&envs[0].name];
    assert_eq!(result.status, DeploymentStatus::Failed);
    assert!(result.error.as_deref().unwrap().contains("were kept"), "{result:?}");
    assert_eq!(applied_versions(&envs[0].connection).await.unwrap(), ["1"]);
}

#[tokio::test]
async fn each_built_in_labels_its_waves_in_a_dry_run() {
    let dir = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    for (strategy, expected) in [
        ("parallel", vec!["all"]),
        (
            "sequential",
            vec!["step 1/5", "step 2/5", "step 3/5", "step 4/5", "step 5/5"],
        ),
        ("rolling", vec!["batch 1/3", "batch 2/3", "batch 3/3"]),
        ("canary", vec!["canary", "rest"]),
    ] {
        let (registry, envs) = tenants("waves", 5);
        let mut request = request(&dir, strategy);
        request.options.dry_run = true;
        request.options.batch_size = 2;
        request.options.max_concurrent = 3;
        request.options.canary_percent = 20.0;
        let report = deploy(registry, request).await;
        let labels: Vec<&str> = report.waves.iter().map(|w| w.label.as_str()).collect();
        assert_eq!(labels, expected, "{strategy}");
        let deployed: usize = report.waves.iter().map(|w| w.environments.len()).sum();
        assert_eq!(deployed, 5, "{strategy}: every environment in one wave");
        if strategy == "canary" {
            assert_eq!(report.waves[0].environments, [envs[0].name.clone()]);
            assert_eq!(report.waves[1].max_concurrent, 3);
        }
        for env in &envs {
            assert_eq!(applied_versions(&env.connection).await, None);
        }
    }
}

/// `environments.json` in `dir` with `n` embedded tenants `tenant00…`, tagged `tenant`.
fn write_tenants(dir: &std::path::Path, n: usize) {
    let environments: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({"name": format!("tenant{i:02}"), "tags": ["tenant"],
                "connection": {"db_url": "mem://", "db_ns": format!("t{i}"), "db": "main"}})
        })
        .collect();
    common::write_environments(dir, serde_json::Value::Array(environments));
}

/// The CLI: `--max-failures` for a built-in, and a dry run's `waves` in JSON
/// and on the terminal.
#[test]
fn the_cli_takes_a_failure_budget_and_shows_the_waves_of_a_dry_run() {
    let work = tempfile::tempdir().unwrap();
    write_tenants(work.path(), 12);
    let failing = migrations_dir(&[("1_fails.surql", FAILS)]);
    let run = |args: &[&str], migrations: &tempfile::TempDir| {
        let mut all = vec!["orchestrate", "deploy", "-e", "tag:tenant", "-m"];
        all.push(migrations.path().to_str().unwrap());
        all.extend_from_slice(args);
        common::surql_command(&all, work.path()).output().unwrap()
    };

    let out = run(
        &[
            "--strategy",
            "parallel",
            "--max-concurrent",
            "2",
            "--max-failures",
            "2",
            "--output",
            "json",
        ],
        &failing,
    );
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = doc["results"].as_array().unwrap();
    let skipped = results.iter().filter(|r| r["status"] == "skipped").count();
    assert!((9..=10).contains(&skipped), "at most 2 + 2 − 1 attempted: {doc}");
    for result in results.iter().filter(|r| r["status"] == "skipped") {
        let reason = result["error"].as_str().unwrap_or_default();
        assert!(reason.starts_with("failure budget spent: 2 of 2 failed ("), "{reason}");
    }

    let out = run(&["--max-failures", "0"], &failing);
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--max-failures"),
        "{}",
        common::text(&out)
    );

    let fine = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let out = run(
        &[
            "--strategy",
            "rolling",
            "--batch-size",
            "5",
            "--max-failures",
            "20%",
            "--dry-run",
            "--output",
            "json",
        ],
        &fine,
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let waves = doc["waves"].as_array().unwrap();
    let labels: Vec<&str> = waves.iter().map(|w| w["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["batch 1/3", "batch 2/3", "batch 3/3"]);
    assert_eq!(waves[0]["environments"].as_array().unwrap().len(), 5);
    assert_eq!(waves[0]["max_concurrent"], 5);
    assert_eq!(waves[0]["max_failures"], 1, "20% of 5");
    assert_eq!(waves[2]["environments"].as_array().unwrap().len(), 2);

    let out = run(&["--strategy", "canary", "--dry-run"], &fine);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("The rollout (canary)"), "{stdout}");
    assert!(
        stdout.contains("canary") && stdout.contains("rest") && stdout.contains("11: tenant01"),
        "{stdout}"
    );
}

/// A wave going on after a `to_version` one finishes its environments a
/// second time; the progress still counts each once.
#[test]
fn progress_counts_each_environment_once_across_expand_and_contract() {
    let work = tempfile::tempdir().unwrap();
    write_tenants(work.path(), 25);
    std::fs::write(
        work.path().join("expand.rhai"),
        "deploy(envs, #{ to_version: \"1\", label: \"expand\" });\ndeploy(envs, #{ label: \"contract\" });\n",
    )
    .unwrap();
    let migrations = migrations_dir(&[("1_accounts.surql", ACCOUNTS), ("2_email.surql", EMAIL)]);
    let m = migrations.path().to_str().unwrap();
    let args = [
        "orchestrate",
        "deploy",
        "-e",
        "all",
        "-m",
        m,
        "--strategy",
        "expand.rhai",
        "--output",
        "json",
    ];
    let out = common::surql_command(&args, work.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("progress: 25/25 environments done").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("26/25") && !stderr.contains("50/25"), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["migrations_applied"] == 2),
        "{doc}"
    );
}

const VERIFIED_ACCOUNTS: &str = "-- migrate:up\nDEFINE TABLE account SCHEMAFULL;\nDEFINE FIELD email ON account TYPE option<string>;\nDEFINE INDEX account_email ON account FIELDS email UNIQUE;\n-- migrate:down\nREMOVE TABLE account;\n-- migrate:verify\nLET $indexes = (INFO FOR TABLE account).indexes;\nRETURN $indexes.account_email != NONE;\nRETURN count(SELECT id FROM account WHERE email = NONE) == 0;\n";

/// Adds an email field and checks every account has one.
const EMAILS_CHECKED: &str = "-- migrate:up\nDEFINE TABLE IF NOT EXISTS account SCHEMALESS;\nDEFINE FIELD IF NOT EXISTS email ON account TYPE option<string>;\n-- migrate:down\nREMOVE FIELD email ON account;\n-- migrate:verify\nRETURN count(SELECT id FROM account WHERE email = NONE) == 0;\n";

#[tokio::test]
async fn a_failed_verify_section_rolls_the_canary_back() {
    let (registry, envs) = tenants("verify", 4);
    // The canary already holds an account without an email: its check fails.
    let db = surql::connection::connect(
        &surql::Client::new(),
        &envs[0].connection,
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    surql::connection::run_query(&db, "CREATE account:legacy SET name = 'old';", serde_json::json!({}))
        .await
        .unwrap();
    let dir = migrations_dir(&[("1_emails.surql", EMAILS_CHECKED)]);
    let mut request = request(&dir, "canary");
    request.options.canary_percent = 25.0;
    let report = deploy(registry, request).await;

    let canary = &report.results[&envs[0].name];
    assert_eq!(canary.status, DeploymentStatus::RolledBack, "{canary:?}");
    for env in &envs[1..] {
        let result = &report.results[&env.name];
        assert_eq!(result.status, DeploymentStatus::Skipped);
        assert!(result.error.as_deref().unwrap().contains("canary verification failed"));
        assert_eq!(applied_versions(&env.connection).await, None);
    }
    assert_eq!(
        applied_versions(&envs[0].connection).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn verify_names_the_statement_that_did_not_hold() {
    let (registry, envs) = tenants("verifymap", 2);
    let dir = migrations_dir(&[("1_accounts.surql", VERIFIED_ACCOUNTS)]);
    let (_script_dir, path) = script(
        r#"
deploy(envs);
let before = verify(envs);
if !all_succeeded(before) { throw `verified before: ${before}`; }
"#,
    );
    let report = deploy(registry.clone(), request(&dir, &path)).await;
    assert!(report.script_error.is_none(), "{:?}", report.script_error);
    // A row without an email breaks the second check on one tenant.
    let db = surql::connection::connect(
        &surql::Client::new(),
        &envs[1].connection,
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    surql::connection::run_query(&db, "CREATE account:nobody;", serde_json::json!({}))
        .await
        .unwrap();
    let (_script_dir, path) = script(
        r#"
let checks = verify(envs);
if !checks[0].ok || checks[1].ok { throw `checks: ${checks}`; }
if checks[1].line != 10 || checks[1].migration != "1_accounts" { throw `where: ${checks[1]}`; }
if !checks[1].file.ends_with("1_accounts.surql") { throw `file: ${checks[1].file}`; }
if !checks[1].error.contains("answered false") { throw `error: ${checks[1].error}`; }
skip(envs, "verified only");
"#,
    );
    let report = deploy(registry, request(&dir, &path)).await;
    assert!(report.script_error.is_none(), "{:?}", report.script_error);
}

/// `surql migrate verify` and `surql orchestrate verify` on a real server:
/// exit 0 while the checks hold, 1 naming the file and line once one does not.
#[tokio::test]
async fn verify_commands_run_the_checks_on_demand() {
    let server = common::TestServer::start();
    let url = server.ws_url();
    let work = tempfile::tempdir().unwrap();
    let dir = migrations_dir(&[("1_accounts.surql", VERIFIED_ACCOUNTS)]);
    let m = dir.path().to_str().unwrap();
    let database = [
        "--db-url", &url, "--ns", "verified", "--db", "main", "--user", "root", "--pass", "root", "-m", m,
    ];
    let run = |args: &[&str]| common::surql_command(args, work.path()).output().unwrap();
    let out = run(&[&["migrate", "up"][..], &database].concat());
    assert!(out.status.success(), "{}", common::text(&out));
    let out = run(&[&["migrate", "verify"][..], &database].concat());
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));

    common::write_environments(
        work.path(),
        serde_json::json!([{"name": "db", "connection": {"db_url": url, "db_ns": "verified", "db": "main",
            "username": "root", "password": "${SURQL_TEST_SECRET}"}}]),
    );
    let orchestrate = ["orchestrate", "verify", "-e", "db", "-m", m, "--output", "json"];
    let out = run(&orchestrate);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));

    let db = surql::connection::connect(
        &surql::Client::new(),
        &server.connection("verified", "main"),
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    surql::connection::run_query(&db, "CREATE account:nobody;", serde_json::json!({}))
        .await
        .unwrap();
    let out = run(&[&["migrate", "verify"][..], &database].concat());
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1_accounts.surql:10") && stderr.contains("answered false"),
        "{stderr}"
    );
    let out = run(&orchestrate);
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failure = &doc["environments"][0]["failure"];
    assert_eq!(
        (failure["line"].as_u64(), failure["migration"].as_str()),
        (Some(10), Some("1_accounts")),
        "{doc}"
    );
}

#[tokio::test]
async fn strategies_import_helpers_from_their_lib_folder_only() {
    let dir = migrations_dir(&[("1_accounts.surql", ACCOUNTS)]);
    let strategies = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(strategies.path().join("lib/shared")).unwrap();
    std::fs::write(
        strategies.path().join("lib/halves.rhai"),
        "fn first_half(envs) { envs.extract(0, envs.len() / 2) }\nfn broken() {\n    let x = 1;\n    x.no_such_method()\n}\n",
    )
    .unwrap();
    std::fs::write(
        strategies.path().join("lib/shared/labels.rhai"),
        "fn wave(n) { `wave ${n}` }\n",
    )
    .unwrap();
    std::fs::write(strategies.path().join("secret.rhai"), "fn x() { 1 }\n").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("evil.rhai"), "fn x() { 1 }\n").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        outside.path().join("evil.rhai"),
        strategies.path().join("lib/link.rhai"),
    )
    .unwrap();
    let run = |name: &str, code: &str| {
        let path = strategies.path().join(name);
        std::fs::write(&path, code).unwrap();
        let (registry, envs) = tenants("modules", 4);
        let request = request(&dir, path.to_str().unwrap());
        async move { (deploy(registry, request).await, envs) }
    };

    let (report, envs) = run(
        "halves.rhai",
        "import \"lib/halves\" as h;\nimport \"lib/shared/labels\" as l;\ndeploy(h::first_half(envs), #{ label: l::wave(1) });\nskip(envs, \"second half later\");\n",
    )
    .await;
    assert!(report.script_error.is_none(), "{:?}", report.script_error);
    assert_eq!(report.waves[0].label, "wave 1");
    assert_eq!(count(&report, DeploymentStatus::Success), 2);
    assert_eq!(applied_versions(&envs[0].connection).await.unwrap(), ["1"]);
    assert_eq!(applied_versions(&envs[3].connection).await, None);

    for (import, expected) in [
        ("../secret", "imported as \"lib/NAME\""),
        ("lib/../secret", "imported as \"lib/NAME\""),
        ("/etc/passwd", "imported as \"lib/NAME\""),
        ("lib/missing", "does not exist"),
        #[cfg(unix)]
        ("lib/link", "leads out of the lib folder"),
    ] {
        let (report, envs) = run("bad.rhai", &format!("import \"{import}\" as m;\ndeploy(envs);\n")).await;
        let error = report.script_error.as_ref().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains(expected), "{import}: {error}");
        assert!(error.contains("bad.rhai:1:"), "{import}: {error}");
        assert_eq!(count(&report, DeploymentStatus::Skipped), 4);
        assert_eq!(applied_versions(&envs[0].connection).await, None);
    }

    // A fault inside a module is shown where it is.
    let (report, _) = run("faulty.rhai", "import \"lib/halves\" as h;\nh::broken();\n").await;
    let error = report.script_error.unwrap().to_string();
    assert!(error.contains("halves.rhai:4:"), "{error}");
    assert!(error.contains("x.no_such_method()"), "{error}");
}
