//! Adopting databases whose schema was made another way, through the real
//! binary on a real server: `migrate baseline` and `orchestrate baseline`
//! record what is already there (marked baseline, nothing run), refuse a
//! history that goes beyond, and the next deploy applies only what is new.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use crate::common;

use serde_json::{Value, json};
use surql::connection::run_query;

use crate::common::{TestServer, applied_versions, migrations_dir, run_surql, strs, text};

const ACCOUNTS: &str = "-- migrate:up\nDEFINE TABLE account SCHEMALESS;\n-- migrate:down\nREMOVE TABLE account;\n";
const EMAIL: &str =
    "-- migrate:up\nDEFINE FIELD email ON account TYPE string;\n-- migrate:down\nREMOVE FIELD email ON account;\n";
const ORDERS: &str = "-- migrate:up\nDEFINE TABLE orders SCHEMALESS;\n-- migrate:down\nREMOVE TABLE orders;\n";

/// `command` against `ns`/main on the server at `url` as root, migrations from `migrations`.
fn against(command: &[&str], url: &str, ns: &str, migrations: &str) -> Vec<String> {
    let target = [
        "--db-url", url, "--ns", ns, "--db", "main", "--user", "root", "--pass", "root", "-m", migrations,
    ];
    command.iter().chain(target.iter()).map(|s| s.to_string()).collect()
}

/// `orchestrate deploy -e all` (parallel) of `migrations`, which succeeds: its results.
fn deploy_all(dir: &std::path::Path, migrations: &str) -> Vec<Value> {
    let deploy = [
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
    ];
    let out = run_surql(&deploy, dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["results"].as_array().unwrap().clone()
}

/// The schema of migrations 1 and 2, made by hand (as another tool would have).
async fn made_by_hand(server: &TestServer, ns: &str) {
    let db = common::session(&server.connection(ns, "main")).await;
    run_query(
        &db,
        "DEFINE TABLE account SCHEMALESS; DEFINE FIELD email ON account TYPE string;",
        json!({}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn migrate_baseline_records_what_is_there_and_up_applies_only_what_is_new() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    made_by_hand(&server, "legacy").await;
    let migrations = migrations_dir(&[
        ("1_accounts.surql", ACCOUNTS),
        ("2_email.surql", EMAIL),
        ("3_orders.surql", ORDERS),
    ]);
    let m = migrations.path().to_str().unwrap();
    let url = server.ws_url();
    let with = |command: &[&str]| against(command, &url, "legacy", m);

    let out = run_surql(&strs(&with(&["migrate", "baseline", "2", "--dry-run"])), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("would record 2 migration(s)") && stdout.contains("1_accounts") && stdout.contains("2_email"),
        "{stdout}"
    );
    assert!(
        !common::tables(&server.connection("legacy", "main"))
            .await
            .contains(&"_migration_history".to_string()),
        "the dry run wrote"
    );

    let out = run_surql(&strs(&with(&["migrate", "baseline", "2"])), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = common::db::history_rows(&server.connection("legacy", "main")).await;
    let marked: Vec<(&str, bool, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["version"].as_str().unwrap(),
                r["baseline"] == true,
                r["execution_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(marked, [("1", true, 0), ("2", true, 0)]);

    let out = run_surql(&strs(&with(&["migrate", "status"])), work.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("baseline").count(), 2, "{stdout}");
    assert!(stdout.contains("2 applied, 1 pending"), "{stdout}");

    // Up applies only the new migration: the baselined ones' statements
    // would fail on the existing schema if they ran.
    let out = run_surql(&strs(&with(&["migrate", "up"])), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        applied_versions(&server.connection("legacy", "main")).await.unwrap(),
        ["1", "2", "3"]
    );
    assert!(
        common::tables(&server.connection("legacy", "main"))
            .await
            .contains(&"orders".to_string())
    );

    // A baseline never goes past the history.
    let out = run_surql(&strs(&with(&["migrate", "baseline", "1"])), work.path());
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("history already goes beyond 1: 3_orders"),
        "{}",
        text(&out)
    );
    let out = run_surql(&strs(&with(&["migrate", "baseline", "9"])), work.path());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no migration has version '9'"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn orchestrate_baseline_records_each_environment_and_refuses_one_that_went_further() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &server.ws_url(), 3, "fleet");
    let migrations = migrations_dir(&[
        ("1_accounts.surql", ACCOUNTS),
        ("2_email.surql", EMAIL),
        ("3_orders.surql", ORDERS),
    ]);
    let m = migrations.path().to_str().unwrap();
    made_by_hand(&server, "fleet0").await;
    made_by_hand(&server, "fleet1").await;
    let out = run_surql(&["orchestrate", "deploy", "-e", "t2", "-m", m], work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let baseline = [
        "orchestrate",
        "baseline",
        "-e",
        "all",
        "--version",
        "2",
        "-m",
        m,
        "--output",
        "json",
    ];
    let out = run_surql(&[&baseline[..], &["--dry-run"]].concat(), work.path());
    let planned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        planned["environments"][0]["recorded"],
        json!(["1_accounts", "2_email"]),
        "{planned}"
    );
    assert!(
        !common::tables(&server.connection("fleet0", "main"))
            .await
            .contains(&"_migration_history".to_string()),
        "the dry run wrote"
    );

    let out = run_surql(&baseline, work.path());
    assert_eq!(out.status.code(), Some(1), "t2 is refused: {}", text(&out));
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcome = |name: &str| {
        done["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["environment"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(outcome("t0")["recorded"], json!(["1_accounts", "2_email"]));
    assert_eq!(outcome("t1")["recorded"], json!(["1_accounts", "2_email"]));
    assert!(
        outcome("t2")["error"]
            .as_str()
            .unwrap()
            .contains("history already goes beyond 2: 3_orders"),
        "{done}"
    );
    let out = run_surql(
        &["orchestrate", "status", "-e", "t0", "-m", m, "--output", "json"],
        work.path(),
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["environments"][0]["baseline_count"], 2, "{status}");
    assert_eq!(status["environments"][0]["pending_count"], 1, "{status}");

    for result in deploy_all(work.path(), m) {
        let expected = if result["environment"] == "t2" { 0 } else { 1 };
        assert_eq!(result["migrations_applied"], expected, "only what is new: {result}");
    }
}

/// oneiriq-surql's Rust port, as its generator writes a file.
const ONEIRIQ_RUST: &str = "-- @metadata\n-- version: 20260102_120000\n-- description: Create user table\n-- author: surql\n-- depends_on: \n-- @up\nDEFINE TABLE user SCHEMAFULL;\nDEFINE FIELD email ON TABLE user TYPE string;\n-- @down\nREMOVE FIELD email ON TABLE user;\nREMOVE TABLE user;\n";
/// Its Python original, as its generator writes a file.
const ONEIRIQ_PYTHON: &str = "\"\"\"Migration: Create orders\n\nAuthor: surql\n\"\"\"\n\n\ndef up() -> list[str]:\n  \"\"\"Apply migration (forward).\"\"\"\n  return [\n    'DEFINE TABLE orders SCHEMAFULL;',\n    'DEFINE FIELD total ON TABLE orders TYPE number;',\n  ]\n\n\ndef down() -> list[str]:\n  \"\"\"Rollback migration (backward).\"\"\"\n  return [\n    'REMOVE TABLE orders;',\n  ]\n\n\nmetadata = {\n  'version': '20260103_090000',\n  'description': 'Create orders',\n  'author': 'surql',\n  'depends_on': [],\n}\n";
/// A Python migration that computes its statements: not convertible.
const ONEIRIQ_COMPUTED: &str = "TABLES = ['a', 'b']\n\ndef up() -> list[str]:\n  return [f'DEFINE TABLE {t};' for t in TABLES]\n\ndef down() -> list[str]:\n  return []\n\nmetadata = {'version': '20260104_100000', 'description': 'Computed'}\n";
const INVOICES: &str = "-- migrate:up\nDEFINE TABLE invoice SCHEMALESS;\n-- migrate:down\nREMOVE TABLE invoice;\n";

/// A database as oneiriq-surql leaves it, after its history table: the
/// schema of its two migrations, and the rows each port writes.
const ONEIRIQ_DATABASE: &str = "
DEFINE TABLE user SCHEMAFULL;
DEFINE FIELD email ON TABLE user TYPE string;
DEFINE TABLE orders SCHEMAFULL;
DEFINE FIELD total ON TABLE orders TYPE number;
CREATE _migration_history:⟨20260102_120000⟩ SET version = '20260102_120000', description = 'Create user table', applied_at = <datetime> '2026-01-02T12:00:00.123456789+00:00', checksum = '9242c02a071db19cde7b06cb45882dc7212912ac0c15b33dfbaf4544816bbe67', execution_time_ms = 42;
CREATE type::record('_migration_history', '20260103_090000') SET version = '20260103_090000', description = 'Create orders', applied_at = <datetime> '2026-01-03T09:00:00.5+00:00', checksum = 'd9d12780db1eb0cad444168e0cf0910db6ec402403559393392650cc9010bc14', execution_time_ms = 17;
";

/// [`ONEIRIQ_DATABASE`] after oneiriq-surql's history table.
fn oneiriq_database() -> String {
    format!("{}{ONEIRIQ_DATABASE}", common::db::ONEIRIQ_HISTORY_TABLE)
}

fn oneiriq_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("20260102_120000_create_user_table.surql", ONEIRIQ_RUST),
        ("20260103_090000_create_orders.py", ONEIRIQ_PYTHON),
        ("20260104_100000_computed.py", ONEIRIQ_COMPUTED),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[tokio::test]
async fn oneiriq_files_are_imported_and_its_history_adopted_then_only_new_migrations_deploy() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let db = common::session(&server.connection("oneiriq", "main")).await;
    run_query(&db, &oneiriq_database(), json!({})).await.unwrap();
    let url = server.ws_url();
    let out_dir = work.path().join("migrations");
    let m = out_dir.to_str().unwrap();
    let with = |command: &[&str]| against(command, &url, "oneiriq", m);

    // Before adoption: stopped, naming the tool and the commands.
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = run_surql(&strs(&with(&["migrate", "status"])), work.path());
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("oneiriq-surql")
            && stderr.contains("surql migrate import --from oneiriq")
            && stderr.contains("surql migrate adopt"),
        "{stderr}"
    );

    // Import: two converted, the computed one reported by name, nothing half-written.
    let source = oneiriq_files();
    let out = run_surql(
        &[
            "migrate",
            "import",
            "--from",
            "oneiriq",
            source.path().to_str().unwrap(),
            "--out",
            m,
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(1), "one was skipped: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 converted, 1 skipped"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("20260104_100000_computed.py: up() returns something other than string literals"),
        "{}",
        text(&out)
    );
    let mut written: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "20260102120000_create_user_table.surql",
            "20260103090000_create_orders.surql"
        ]
    );
    let users = std::fs::read_to_string(out_dir.join("20260102120000_create_user_table.surql")).unwrap();
    assert!(
        users.contains("-- migrate:up\nDEFINE TABLE user SCHEMAFULL;")
            && users.contains("-- migrate:down\nREMOVE FIELD email"),
        "{users}"
    );
    std::fs::write(out_dir.join("20260105000000_add_invoices.surql"), INVOICES).unwrap();

    // A dry run of the adoption changes nothing.
    let out = run_surql(&strs(&with(&["migrate", "adopt", "--dry-run"])), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("would adopt 2 migration(s)"),
        "{}",
        text(&out)
    );
    assert!(
        !common::tables(&server.connection("oneiriq", "main"))
            .await
            .contains(&"_migration_history_oneiriq".to_string())
    );

    let out = run_surql(&strs(&with(&["migrate", "adopt"])), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = common::db::history_rows(&server.connection("oneiriq", "main")).await;
    let adopted: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["version"].as_str().unwrap(),
                r["name"].as_str().unwrap(),
                r["applied_at"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(adopted.len(), 2, "{rows:?}");
    assert_eq!((adopted[0].0, adopted[0].1), ("20260102120000", "create_user_table"));
    assert!(
        adopted[0].2.starts_with("2026-01-02T12:00:00.123456789"),
        "original applied_at kept: {rows:?}"
    );
    assert!(adopted[1].2.starts_with("2026-01-03T09:00:00.5"), "{rows:?}");
    let kept = query_rows(
        &server,
        "SELECT version, execution_time_ms FROM _migration_history_oneiriq ORDER BY version;",
    )
    .await;
    assert_eq!(
        kept,
        json!([{"version": "20260102_120000", "execution_time_ms": 42}, {"version": "20260103_090000", "execution_time_ms": 17}])
    );

    // Adopted: status is clean, and up applies only what is truly new.
    let out = run_surql(&strs(&with(&["migrate", "up"])), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        applied_versions(&server.connection("oneiriq", "main")).await.unwrap(),
        ["20260102120000", "20260103090000", "20260105000000"]
    );
    let out = run_surql(&strs(&with(&["migrate", "adopt"])), work.path());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to adopt"),
        "{}",
        text(&out)
    );
}

async fn query_rows(server: &TestServer, sql: &str) -> Value {
    let db = common::session(&server.connection("oneiriq", "main")).await;
    run_query(&db, sql, json!({})).await.unwrap()[0].clone()
}

/// The same adoption on the embedded engine, through the library, then a
/// deployment that applies only what is new.
#[tokio::test]
async fn oneiriq_history_is_adopted_on_the_embedded_engine() {
    let connection = surql::ConnectionConfig::new("mem://", common::unique("oneiriq"), "main");
    let db = common::session(&connection).await;
    run_query(&db, &oneiriq_database(), json!({})).await.unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let report = surql::migration::import::import("oneiriq", oneiriq_files().path(), out_dir.path()).unwrap();
    assert_eq!((report.converted.len(), report.skipped.len()), (2, 1));
    std::fs::write(out_dir.path().join("20260105000000_add_invoices.surql"), INVOICES).unwrap();
    let migrations = surql::discover_migrations(out_dir.path()).unwrap();
    let refused = surql::migration::applied_migrations(&db).await.unwrap_err().to_string();
    assert!(refused.contains("oneiriq-surql"), "{refused}");
    let mut registry = surql::EnvironmentRegistry::new();
    registry
        .register(surql::EnvironmentConfig::new("legacy", connection.clone()))
        .unwrap();
    let before = surql::MigrationCoordinator::new(registry)
        .deploy_to_environments(surql::DeployRequest::new(&["legacy"], migrations.clone(), "sequential"))
        .await
        .unwrap();
    let stopped = &before.results["legacy"];
    assert_eq!(stopped.status, surql::DeploymentStatus::Failed, "{stopped:?}");
    let why = stopped.error.as_deref().unwrap();
    assert!(
        why.contains("oneiriq-surql") && why.contains("surql orchestrate adopt"),
        "{why}"
    );
    let adopted = surql::migration::adopt::adopt(&db, &migrations, &surql::migration::ApplyContext::new())
        .await
        .unwrap();
    assert_eq!(adopted.len(), 2);
    let mut registry = surql::EnvironmentRegistry::new();
    registry
        .register(surql::EnvironmentConfig::new("legacy", connection.clone()))
        .unwrap();
    let report = surql::MigrationCoordinator::new(registry)
        .deploy_to_environments(surql::DeployRequest::new(&["legacy"], migrations, "sequential"))
        .await
        .unwrap();
    assert_eq!(report.results["legacy"].migrations_applied, 1, "{:?}", report.results);
    assert_eq!(report.results["legacy"].status, surql::DeploymentStatus::Success);
}

/// A surrealdb-migrations project, as its scaffold and `create` make it.
fn surrealdb_migrations_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in [
        ("schemas/script_migration.surql", SCRIPT_MIGRATION),
        ("schemas/post.surql", "DEFINE TABLE OVERWRITE post SCHEMALESS;\n"),
        (
            "migrations/20231201_120002_AddPost.surql",
            "CREATE post SET title = 'Hello world!', content = 'This is my first post!';\n",
        ),
        ("migrations/down/20231201_120002_AddPost.surql", "DELETE post;\n"),
    ] {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// surrealdb-migrations' own definition of its history table (the scaffold's schemas/script_migration.surql).
const SCRIPT_MIGRATION: &str = "DEFINE TABLE OVERWRITE script_migration SCHEMAFULL\n    PERMISSIONS\n        FOR select FULL\n        FOR create, update, delete NONE;\n\nDEFINE FIELD OVERWRITE script_name ON script_migration TYPE string;\nDEFINE FIELD OVERWRITE executed_at ON script_migration TYPE datetime VALUE time::now() READONLY;\nDEFINE FIELD OVERWRITE checksum ON script_migration TYPE option<string>;\n";

#[tokio::test]
async fn a_surrealdb_migrations_project_is_imported_and_its_history_adopted() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let db = common::session(&server.connection("smig0", "main")).await;
    // What that tool leaves: its schemas, the migration's data, its row.
    let prepared = format!(
        "{SCRIPT_MIGRATION}\nDEFINE TABLE OVERWRITE post SCHEMALESS;\nCREATE post SET title = 'Hello world!', content = 'This is my first post!';\nCREATE script_migration SET script_name = '20231201_120002_AddPost', checksum = '742add6313b4e055d79a9df3651b00b6593ecea8f0c1f7637b3d1f4516e4593f' RETURN NONE;"
    );
    run_query(&db, &prepared, json!({})).await.unwrap();
    let project = surrealdb_migrations_project();
    let out_dir = work.path().join("migrations");
    let m = out_dir.to_str().unwrap();
    let out = run_surql(
        &[
            "migrate",
            "import",
            "--from",
            "surrealdb-migrations",
            project.path().to_str().unwrap(),
            "--out",
            m,
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut written: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["0_schemas_and_events.surql", "20231201120002_addpost.surql"]);
    let post = std::fs::read_to_string(out_dir.join("20231201120002_addpost.surql")).unwrap();
    assert!(post.contains("-- migrate:down\nDELETE post;"), "{post}");
    std::fs::write(
        out_dir.join("20240101000000_add_comment.surql"),
        "-- migrate:up\nDEFINE TABLE comment SCHEMALESS;\n",
    )
    .unwrap();

    // Before adoption, deploying stops, naming the tool and the commands.
    common::write_server_tenants(work.path(), &server.ws_url(), 1, "smig");
    let out = run_surql(
        &["orchestrate", "deploy", "-e", "t0", "-m", m, "--output", "json"],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let error = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        error.contains("surrealdb-migrations") && error.contains("surql orchestrate adopt"),
        "{error}"
    );
    let out = run_surql(
        &["orchestrate", "status", "-e", "t0", "-m", m, "--output", "json"],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("script_migration"),
        "{}",
        text(&out)
    );
    let out = run_surql(
        &strs(&against(&["migrate", "status"], &server.ws_url(), "smig0", m)),
        work.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("surql migrate import --from surrealdb-migrations"),
        "{}",
        text(&out)
    );

    let url = server.ws_url();
    let with = |command: &[&str]| against(command, &url, "smig0", m);
    let out = run_surql(&strs(&with(&["migrate", "adopt"])), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows = common::db::history_rows(&server.connection("smig0", "main")).await;
    let adopted: Vec<(&str, bool)> = rows
        .iter()
        .map(|r| (r["version"].as_str().unwrap(), r["baseline"] == true))
        .collect();
    assert_eq!(adopted, [("0", true), ("20231201120002", false)], "{rows:?}");
    assert_eq!(rows[1]["adopted_from"], "surrealdb-migrations");
    assert_eq!(rows[1]["original_version"], "20231201_120002_AddPost");

    let out = run_surql(&strs(&with(&["migrate", "up"])), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        applied_versions(&server.connection("smig0", "main")).await.unwrap(),
        ["0", "20231201120002", "20240101000000"]
    );
    let posts = run_query(
        &db,
        "SELECT count() FROM post GROUP ALL; SELECT count() FROM script_migration GROUP ALL;",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(posts[0][0]["count"], 1, "the imported migration did not run again");
    assert_eq!(posts[1][0]["count"], 1, "surrealdb-migrations' table is left as it was");
}

/// `orchestrate adopt` over a fleet that oneiriq-surql migrated, then one
/// deployment that applies only what is new everywhere.
#[tokio::test]
async fn a_fleet_is_adopted_with_orchestrate_adopt() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    common::write_server_tenants(work.path(), &server.ws_url(), 2, "legacyfleet");
    for i in 0..2 {
        let db = common::session(&server.connection(&format!("legacyfleet{i}"), "main")).await;
        run_query(&db, &oneiriq_database(), json!({})).await.unwrap();
    }
    let out_dir = work.path().join("migrations");
    let report = surql::migration::import::import("oneiriq", oneiriq_files().path(), &out_dir).unwrap();
    assert_eq!(report.converted.len(), 2);
    std::fs::write(out_dir.join("20260105000000_add_invoices.surql"), INVOICES).unwrap();
    let m = out_dir.to_str().unwrap();

    let adopt = ["orchestrate", "adopt", "-e", "all", "-m", m, "--output", "json"];
    let out = run_surql(&[&adopt[..], &["--dry-run"]].concat(), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let planned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        planned["environments"][0]["recorded"],
        json!(["20260102120000_create_user_table", "20260103090000_create_orders"]),
        "{planned}"
    );
    let out = run_surql(&adopt, work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for result in deploy_all(work.path(), m) {
        assert_eq!(result["migrations_applied"], 1, "only the new one: {result}");
    }
    let out = run_surql(&adopt, work.path());
    assert_eq!(out.status.code(), Some(1), "adopted already: {}", text(&out));
}
