//! `surql migrate …` through the real binary, reading the databases afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;
use surql::ConnectionConfig;
use surql::connection::run_query;

use crate::common::{TestServer, example_migrations, migrations_dir, text};

fn surql(args: &[&str], dir: &Path) -> Output {
    common::surql_command(args, dir).output().unwrap()
}

async fn query(connection: &ConnectionConfig, sql: &str) -> Vec<serde_json::Value> {
    let db = common::session(connection).await;
    run_query(&db, sql, json!({})).await.unwrap()
}

fn server_args<'a>(server_url: &'a str, ns: &'a str, migrations: &'a str) -> Vec<&'a str> {
    vec![
        "--db-url", server_url, "--ns", ns, "--db", "main", "--user", "root", "--pass", "root", "-m", migrations,
    ]
}

#[tokio::test]
async fn up_status_down_over_ws() {
    let server = TestServer::start();
    let url = server.ws_url();
    let work = tempfile::tempdir().unwrap();
    let examples = example_migrations();
    let examples = examples.to_str().unwrap();
    let connection = server.connection("cli", "main");

    // --steps 0 only creates the history table.
    let out = surql(
        &[
            &["migrate", "up", "--steps", "0"][..],
            &server_args(&url, "cli", examples),
        ]
        .concat(),
        work.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let info = query(&connection, "INFO FOR DB;").await;
    let tables: Vec<&String> = info[0]["tables"].as_object().unwrap().keys().collect();
    assert_eq!(tables, ["_migration_history"], "{}", info[0]);

    // --dry-run prints the SurrealQL and writes nothing.
    let out = surql(
        &[&["migrate", "up", "--dry-run"][..], &server_args(&url, "cli", examples)].concat(),
        work.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("DEFINE TABLE user SCHEMAFULL") && stdout.contains("BEGIN TRANSACTION"),
        "{stdout}"
    );
    assert!(stdout.contains("3 migration(s) would be applied"), "{stdout}");
    assert_eq!(
        query(&connection, "SELECT * FROM _migration_history;").await[0],
        json!([])
    );

    let out = surql(
        &[
            &["migrate", "up", "--steps", "2"][..],
            &server_args(&url, "cli", examples),
        ]
        .concat(),
        work.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = surql(
        &[&["migrate", "status"][..], &server_args(&url, "cli", examples)].concat(),
        work.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains("create_orders") && stdout.contains("applied"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 applied, 1 pending, 0 drifted or missing"),
        "{stdout}"
    );

    let out = surql(
        &[&["migrate", "up"][..], &server_args(&url, "cli", examples)].concat(),
        work.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        query(
            &connection,
            "SELECT VALUE version FROM _migration_history ORDER BY version;"
        )
        .await[0]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // down defaults to one step; --dry-run writes nothing.
    let out = surql(
        &[
            &["migrate", "down", "--dry-run"][..],
            &server_args(&url, "cli", examples),
        ]
        .concat(),
        work.path(),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("REMOVE EVENT order_status_changed"),
        "{}",
        text(&out)
    );
    assert_eq!(
        query(&connection, "SELECT VALUE version FROM _migration_history;").await[0]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let out = surql(
        &[&["migrate", "down"][..], &server_args(&url, "cli", examples)].concat(),
        work.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let info = query(&connection, "INFO FOR DB;").await;
    assert!(info[0]["tables"].get("order_audit").is_none(), "{}", info[0]);
    assert!(info[0]["tables"].get("order").is_some(), "{}", info[0]);

    // The password never appears in any output.
    for args in [vec!["migrate", "status"], vec!["migrate", "up", "--dry-run"]] {
        let out = surql(&[&args[..], &server_args(&url, "cli", examples)].concat(), work.path());
        let all = text(&out);
        assert!(!all.contains("--pass") && !all.contains(" root\n"), "{all}");
    }
}

#[tokio::test]
async fn failures_exit_non_zero_with_the_reason_on_stderr() {
    let work = tempfile::tempdir().unwrap();
    let db_path = work.path().join("data");
    let url = format!("surrealkv://{}", db_path.display());
    let bad = migrations_dir(&[
        (
            "1_ok.surql",
            "-- migrate:up\nDEFINE TABLE ok;\n-- migrate:down\nREMOVE TABLE ok;\n",
        ),
        (
            "2_broken.surql",
            "-- migrate:up\nDEFINE TABLE half;\nCREATE half:1;\nCREATE half:1;\n",
        ),
    ]);
    let args = [
        "--db-url",
        &url,
        "--ns",
        "t",
        "--db",
        "main",
        "-m",
        bad.path().to_str().unwrap(),
    ];
    let out = surql(&[&["migrate", "up"][..], &args].concat(), work.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("migration 2_broken failed and was not applied"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("applied 1_ok"),
        "{}",
        text(&out)
    );
    // Status reads the same on-disk database afterwards: 1 applied, 2 pending.
    let out = surql(&[&["migrate", "status"][..], &args].concat(), work.path());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 applied, 1 pending"),
        "{}",
        text(&out)
    );

    // Parse errors name file and line and touch nothing.
    let unparsable = migrations_dir(&[("1_bad.surql", "-- migrate:up\nDEFINE TABLE x;\nDEFINE TABLEX y;\n")]);
    let fresh = format!("surrealkv://{}", work.path().join("fresh").display());
    let out = surql(
        &[
            "migrate",
            "up",
            "--db-url",
            &fresh,
            "--ns",
            "t",
            "--db",
            "m",
            "-m",
            unparsable.path().to_str().unwrap(),
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1_bad.surql:3:"),
        "{}",
        text(&out)
    );
    assert!(
        !work.path().join("fresh").exists(),
        "a database was created despite the parse error"
    );

    // validate: parse check alone, then drift against the database.
    let out = surql(
        &["migrate", "validate", "-m", unparsable.path().to_str().unwrap()],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    std::fs::write(
        bad.path().join("1_ok.surql"),
        "-- migrate:up\nDEFINE TABLE ok SCHEMALESS;\n",
    )
    .unwrap();
    std::fs::remove_file(bad.path().join("2_broken.surql")).unwrap();
    let out = surql(&[&["migrate", "validate"][..], &args].concat(), work.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1_ok was changed after it was applied"),
        "{}",
        text(&out)
    );
    let out = surql(&[&["migrate", "up"][..], &args].concat(), work.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("drift"), "{}", text(&out));

    // Missing connection settings are a usage error.
    let out = surql(&["migrate", "status", "-m", bad.path().to_str().unwrap()], work.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--db-url"),
        "{}",
        text(&out)
    );
}

#[test]
fn create_writes_a_timestamped_file_with_both_sections() {
    let work = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = surql(&["migrate", "create", "add_users", "-m", "db/migrations"], work.path());
        assert!(out.status.success(), "{}", text(&out));
    }
    let mut files: Vec<String> = std::fs::read_dir(work.path().join("db/migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "two creates give two versions: {files:?}");
    for file in &files {
        let (version, rest) = file.split_once('_').unwrap();
        assert_eq!(version.len(), 14, "{file}");
        assert!(version.bytes().all(|b| b.is_ascii_digit()), "{file}");
        assert_eq!(rest, "add_users.surql");
        let body = std::fs::read_to_string(work.path().join("db/migrations").join(file)).unwrap();
        assert!(
            body.contains("-- migrate:up") && body.contains("-- migrate:down"),
            "{body}"
        );
    }
    let out = surql(&["migrate", "create", "bad name"], work.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[tokio::test]
async fn connection_from_environment_variables_and_config_file() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let examples = example_migrations();
    let out = Command::new(env!("CARGO_BIN_EXE_surql"))
        .args(["migrate", "up", "--steps", "1", "-m", examples.to_str().unwrap()])
        .current_dir(work.path())
        .env("SURQL_DB_URL", server.ws_url())
        .env("SURQL_NS", "fromenv")
        .env("SURQL_DB", "main")
        .env("SURQL_USER", "root")
        .env("SURQL_PASS", "root")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let rows = query(
        &server.connection("fromenv", "main"),
        "SELECT VALUE name FROM _migration_history;",
    )
    .await;
    assert_eq!(rows[0], json!(["create_users"]));

    let config = json!({"environments": [{
        "name": "staging",
        "connection": {"db_url": server.ws_url(), "db_ns": "fromconfig", "db": "main",
                       "username": "root", "password": "${SURQL_TEST_PASSWORD}"}
    }]});
    std::fs::write(work.path().join("envs.json"), config.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_surql"))
        .args([
            "migrate",
            "up",
            "--config",
            "envs.json",
            "--env",
            "staging",
            "-m",
            examples.to_str().unwrap(),
        ])
        .current_dir(work.path())
        .env("SURQL_TEST_PASSWORD", "root")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let rows = query(
        &server.connection("fromconfig", "main"),
        "SELECT VALUE name FROM _migration_history;",
    )
    .await;
    assert_eq!(rows[0].as_array().unwrap().len(), 3);

    // An unset variable is a usage error naming it and the environment.
    let out = surql(
        &[
            "migrate",
            "status",
            "--config",
            "envs.json",
            "--env",
            "staging",
            "-m",
            examples.to_str().unwrap(),
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SURQL_TEST_PASSWORD") && stderr.contains("staging"),
        "{stderr}"
    );
}

/// Durations surql could not wait for are refused by the argument parser,
/// naming the flag, never by a panic later.
#[test]
fn impossible_durations_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    for (flag, value) in [
        ("--operation-timeout", "NaN"),
        ("--connect-timeout", "inf"),
        ("--lock-ttl", "1e300"),
        ("--lock-ttl", "0"),
        // A timeout of zero in all but name.
        ("--operation-timeout", "1e-300"),
    ] {
        let out = surql(
            &[
                "migrate", "status", "--db-url", "mem://", "--ns", "a", "--db", "b", flag, value,
            ],
            dir,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains("number of seconds"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A lease shorter than the floor could lapse while a migration runs.
    for command in [
        &["migrate", "up", "--db-url", "mem://", "--ns", "a", "--db", "b"][..],
        &["orchestrate", "deploy", "-e", "all"],
    ] {
        let out = surql(&[command, &["--lock-ttl", "0.001"]].concat(), dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--lock-ttl") && stderr.contains("below the floor of 5s"),
            "{stderr}"
        );
    }
    let out = surql(&["orchestrate", "deploy", "-e", "all", "--health-timeout=-1"], dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--health-timeout") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// An operator removes a lock whose holder is gone: the command names the
/// holder, refuses to guess without a terminal unless `--yes`, and removes
/// exactly that lock.
#[tokio::test]
async fn unlock_names_the_holder_and_needs_a_yes() {
    let server = common::TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let connection = server.connection("locked", "main");
    let plant = async || {
        query(
            &connection,
            "DEFINE TABLE IF NOT EXISTS _migration_lock SCHEMALESS; CREATE _migration_lock:current SET owner = 'ghost@elsewhere pid 7 deployment d', acquired_at = time::now(), expires_at = time::now() + 1h;",
        )
        .await;
    };
    plant().await;
    let url = server.ws_url();
    let target = [
        "--db-url",
        url.as_str(),
        "--ns",
        "locked",
        "--db",
        "main",
        "--user",
        "root",
        "--pass",
        "root",
    ];
    let out = surql(&[&["migrate", "unlock"][..], &target].concat(), work.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("locked by ghost@elsewhere pid 7") && stderr.contains("--yes"),
        "{stderr}"
    );
    let still = query(&connection, "SELECT VALUE owner FROM _migration_lock;").await;
    assert_eq!(still[0], json!(["ghost@elsewhere pid 7 deployment d"]));

    let out = surql(&[&["migrate", "unlock", "--yes"][..], &target].concat(), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed the lock held by ghost@elsewhere"));
    assert_eq!(
        query(&connection, "SELECT VALUE owner FROM _migration_lock;").await[0],
        json!([])
    );

    // The same for environments of a config file.
    plant().await;
    common::write_environments(
        work.path(),
        json!([{"name": "db", "connection": {"db_url": url, "db_ns": "locked", "db": "main", "username": "root", "password": "root"}}]),
    );
    let out = surql(&["orchestrate", "unlock", "-e", "db", "--yes"], work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("db: removed the lock held by ghost@elsewhere"));
    let out = surql(&["orchestrate", "unlock", "-e", "db", "--yes"], work.path());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("db: not locked"),
        "{}",
        text(&out)
    );
}

/// A top-level RETURN is refused at file:line:col with exit 2 and nothing
/// touched; a file with a byte-order mark is applied like any other.
#[tokio::test]
async fn a_top_level_return_is_refused_and_a_byte_order_mark_is_accepted() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let url = server.ws_url();
    let returning = migrations_dir(&[(
        "1_half.surql",
        "-- migrate:up\nDEFINE TABLE first SCHEMALESS;\nRETURN 'early';\nDEFINE TABLE second SCHEMALESS;\n",
    )]);
    let args = |dir: &Path| {
        server_args(&url, "ret", dir.to_str().unwrap())
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let run = |dir: &Path| {
        let args = args(dir);
        let args: Vec<&str> = ["migrate", "up"]
            .into_iter()
            .chain(args.iter().map(String::as_str))
            .collect();
        surql(&args, work.path())
    };
    let out = run(returning.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1_half.surql:3:1: up section: RETURN is not allowed"),
        "{stderr}"
    );
    let namespaces = query(&server.connection("other", "main"), "INFO FOR ROOT;").await;
    assert!(
        namespaces[0]["namespaces"].get("ret").is_none(),
        "nothing created: {namespaces:?}"
    );

    let with_mark = migrations_dir(&[(
        "1_marked.surql",
        "\u{feff}-- migrate:up\nDEFINE TABLE marked SCHEMALESS;\n-- migrate:down\nREMOVE TABLE marked;\n",
    )]);
    let out = run(with_mark.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        common::applied_versions(&server.connection("ret", "main"))
            .await
            .unwrap(),
        ["1"]
    );
    assert!(
        common::tables(&server.connection("ret", "main"))
            .await
            .contains(&"marked".to_string())
    );
}

/// `migrate up` on one database fits the files to its server as a
/// deployment does: on SurrealDB 3.3.5 a migration that requires 4 is passed
/// over (saying so), and one with a clause only 4 understands is refused
/// before anything is applied, naming file:line and the version.
#[test]
fn migrate_up_fits_the_files_to_the_server_version() {
    let work = tempfile::tempdir().unwrap();
    let migrations = migrations_dir(&[
        ("1_a.surql", "-- migrate:up\nDEFINE TABLE a;\n"),
        (
            "2_b.surql",
            "-- migrate:requires surrealdb >= 4\n-- migrate:up\nDEFINE TABLE b;\n",
        ),
        (
            "3_c.surql",
            "-- migrate:up\nDEFINE FIELD x ON a TYPE int MIGRATE EXISTING ROWS AS x0 USING 0;\n",
        ),
    ]);
    let m = migrations.path().to_str().unwrap();
    let database = ["-m", m, "--db-url", "surrealkv://./db", "--ns", "a", "--db", "b"];
    let args = [&["migrate", "up"][..], &database].concat();
    let out = surql(&args, work.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("3_c.surql:2") && said.contains("SurrealDB 3.3.5") && said.contains("nothing was applied"),
        "{said}"
    );
    let status = surql(&[&["migrate", "status"][..], &database].concat(), work.path());
    assert!(
        text(&status).contains("0 applied"),
        "refused before anything ran: {}",
        text(&status)
    );

    std::fs::remove_file(migrations.path().join("3_c.surql")).unwrap();
    let out = surql(&args, work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("applied 1_a") && !said.contains("applied 2_b"), "{said}");
    assert!(said.contains("passed over: 2_b requires SurrealDB >= 4"), "{said}");
}
