//! `migrate import` reads other tools' projects as those tools read them —
//! surrealdb-migrations' sub-folders (tags, `old` left out by default) and
//! schema order, oneiriq-surql's Python strings and its empty migrations —
//! and what it writes applies and adopts on real SurrealDB (embedded
//! `mem://`, and a server over `ws://` for the batched path). The fixtures
//! under `tests/fixtures/import/` are written from each tool's documented
//! behaviour and its own templates.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use surql::connection::{Db, run_query};
use surql::migration::import::{ImportReport, import};
use surql::migration::{ApplyContext, adopt, applied_migrations, migrate_down, migrate_up, plan};

use crate::common::{TestServer, run_surql, strs, text};

fn fixture(name: &str) -> PathBuf {
    crate::common::repo().join("tests/fixtures/import").join(name)
}

/// Names relative to `base`, sorted.
fn relative(paths: &[(PathBuf, String)], base: &Path) -> Vec<String> {
    let mut names: Vec<String> = paths
        .iter()
        .map(|(p, _)| p.strip_prefix(base).unwrap().display().to_string())
        .collect();
    names.sort();
    names
}

fn written(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn read(out: &Path, name: &str) -> String {
    std::fs::read_to_string(out.join(name)).unwrap()
}

async fn fresh_db() -> (surql::ConnectionConfig, Db) {
    let connection = common::mem_connection();
    let db = common::session(&connection).await;
    (connection, db)
}

/// Pending and drifted migrations of `migrations` on `db`: both empty when status is clean.
async fn not_clean(db: &Db, migrations: &[surql::Migration]) -> Vec<String> {
    let applied = applied_migrations(db).await.unwrap();
    plan(migrations, &applied)
        .rows
        .iter()
        .filter(|row| {
            !matches!(
                row.state,
                surql::migration::MigrationState::Applied | surql::migration::MigrationState::Baseline
            )
        })
        .map(|row| format!("{} {:?}", row.version, row.state))
        .collect()
}

/// `import --from format` of the fixture `name` into a new folder.
fn imported(format: &str, name: &str) -> (tempfile::TempDir, ImportReport) {
    let out = tempfile::tempdir().unwrap();
    let report = import(format, &fixture(name), out.path()).unwrap();
    (out, report)
}

#[test]
fn surrealdb_migrations_sub_folders_are_read_and_old_files_are_named_not_dropped() {
    let project = fixture("surrealdb-migrations/tagged");
    let (out, report) = imported("surrealdb-migrations", "surrealdb-migrations/tagged");
    assert_eq!(
        written(out.path()),
        [
            "0_schemas_and_events.surql",
            "20231201120000_addadmin.surql",
            "20231202090000_addpost.surql",
            "20231203100000_nothing.surql"
        ],
        "{report:?}"
    );
    assert_eq!(
        relative(&report.skipped, &project),
        [
            "migrations/old/20231130_000000_Legacy.surql",
            "schemas/archive.old.surql",
            "schemas/old/legacy.surql"
        ]
    );
    assert!(
        report.skipped.iter().all(|(_, why)| why.contains("tagged `old`")),
        "{report:?}"
    );
    assert_eq!(
        relative(&report.left_out, &project),
        ["migrations/definitions/_initial.json"]
    );

    // A migration in a sub-folder, with its down file from a deeper one.
    let post = read(out.path(), "20231202090000_addpost.surql");
    assert!(
        post.contains("-- migrate:up\nCREATE post SET title = 'Hello';")
            && post.contains("-- migrate:down\nDELETE post;"),
        "{post}"
    );
    // Schemas from every sub-folder but old/, then events; the view after the table it reads.
    let schemas = read(out.path(), "0_schemas_and_events.surql");
    let at = |needle: &str| {
        schemas
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle} in {schemas}"))
    };
    assert!(!schemas.contains("legacy") && !schemas.contains("archive"), "{schemas}");
    assert!(
        at("-- schemas/user.surql") < at("-- schemas/active_users.surql"),
        "{schemas}"
    );
    assert!(
        at("-- schemas/v2/post.surql") < at("-- schemas/active_users.surql"),
        "{schemas}"
    );
    assert!(
        at("-- schemas/active_users.surql") < at("-- events/blog/publish_post.surql"),
        "{schemas}"
    );
    // An empty migration is an explicit no-op.
    let nothing = read(out.path(), "20231203100000_nothing.surql");
    assert!(
        nothing.contains("-- migrate:up\n-- surql:empty (imported empty migration: nothing to apply)"),
        "{nothing}"
    );
    assert!(
        !nothing.contains("-- migrate:down"),
        "the tool has no down file for it: {nothing}"
    );
}

/// The imported project applies on a fresh database, where plain name
/// order (the view before `user`) fails.
#[tokio::test]
async fn an_imported_surrealdb_migrations_project_applies_on_a_fresh_database() {
    let (out, _) = imported("surrealdb-migrations", "surrealdb-migrations/tagged");
    let migrations = surql::discover_migrations(out.path()).unwrap();
    let (connection, db) = fresh_db().await;
    let applied = migrate_up(&db, &connection, &migrations, None, &ApplyContext::new())
        .await
        .unwrap();
    assert_eq!(applied.len(), 4);
    assert!(not_clean(&db, &migrations).await.is_empty());
    let counted = run_query(&db, "SELECT * FROM active_users;", json!({})).await.unwrap();
    assert_eq!(counted[0][0]["total"], 1, "the view saw the admin: {counted:?}");

    // The same statements in plain name order do not apply.
    let schemas = fixture("surrealdb-migrations/tagged/schemas");
    let in_name_order = ["active_users.surql", "user.surql"]
        .map(|f| std::fs::read_to_string(schemas.join(f)).unwrap())
        .join("\n");
    let (_, other) = fresh_db().await;
    let results = surql::connection::run_collecting_errors(&other, &in_name_order, json!({}), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(!results.errors.is_empty(), "name order applied: the test shows nothing");
}

/// What surrealdb-migrations leaves on a database after applying the
/// project: its schemas and events, the migrations' data, and one
/// `script_migration` row per migration, the empty one included.
const SMIG_DATABASE: &str = "
DEFINE TABLE OVERWRITE script_migration SCHEMAFULL PERMISSIONS FOR select FULL FOR create, update, delete NONE;
DEFINE FIELD OVERWRITE script_name ON script_migration TYPE string;
DEFINE FIELD OVERWRITE executed_at ON script_migration TYPE datetime VALUE time::now() READONLY;
DEFINE FIELD OVERWRITE checksum ON script_migration TYPE option<string>;
DEFINE TABLE user SCHEMAFULL;
DEFINE FIELD name ON user TYPE string;
DEFINE TABLE OVERWRITE active_users AS SELECT count() AS total, name FROM user GROUP BY name;
DEFINE TABLE OVERWRITE post SCHEMALESS;
CREATE user SET name = 'admin';
CREATE post SET title = 'Hello';
CREATE script_migration SET script_name = '20231201_120000_AddAdmin';
CREATE script_migration SET script_name = '20231202_090000_AddPost';
CREATE script_migration SET script_name = '20231203_100000_Nothing', checksum = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
";

#[tokio::test]
async fn a_surrealdb_migrations_history_with_an_empty_migration_is_adopted() {
    let (out, _) = imported("surrealdb-migrations", "surrealdb-migrations/tagged");
    let migrations = surql::discover_migrations(out.path()).unwrap();
    let (connection, db) = fresh_db().await;
    run_query(&db, SMIG_DATABASE, json!({})).await.unwrap();
    let adopted = adopt::adopt(&db, &migrations, &ApplyContext::new()).await.unwrap();
    let ids: Vec<String> = adopted.iter().map(|r| r.id()).collect();
    assert_eq!(
        ids,
        [
            "0_schemas_and_events",
            "20231201120000_addadmin",
            "20231202090000_addpost",
            "20231203100000_nothing"
        ]
    );
    assert!(not_clean(&db, &migrations).await.is_empty());
    let applied = migrate_up(&db, &connection, &migrations, None, &ApplyContext::new())
        .await
        .unwrap();
    assert!(applied.is_empty(), "{applied:?}");
    let users = run_query(&db, "SELECT count() FROM user GROUP ALL;", json!({}))
        .await
        .unwrap();
    assert_eq!(users[0][0]["count"], 1, "nothing ran again");
}

#[tokio::test]
async fn a_project_with_schemas_and_no_migrations_folder_is_imported() {
    let (out, report) = imported("surrealdb-migrations", "surrealdb-migrations/schemas-only");
    assert!(report.skipped.is_empty() && report.left_out.is_empty(), "{report:?}");
    assert_eq!(written(out.path()), ["0_schemas_and_events.surql"]);
    let migrations = surql::discover_migrations(out.path()).unwrap();
    let (connection, db) = fresh_db().await;
    migrate_up(&db, &connection, &migrations, None, &ApplyContext::new())
        .await
        .unwrap();
    assert!(common::tables(&connection).await.contains(&"user".to_string()));
    let nothing = tempfile::tempdir().unwrap();
    let error = import("surrealdb-migrations", nothing.path(), out.path()).unwrap_err();
    assert!(
        error.to_string().contains("no migrations/, schemas/ or events/ folder"),
        "{error}"
    );
}

#[test]
fn oneiriq_files_are_read_as_its_tools_read_them() {
    let (out, report) = imported("oneiriq", "oneiriq");
    assert_eq!(
        written(out.path()),
        [
            "20260102120000_create_user_table.surql",
            "20260103090000_backfill.surql",
            "20260104100000_python_strings.surql",
            "20260105110000_custom_data_migration.surql"
        ],
        "{report:?}"
    );
    assert_eq!(
        relative(&report.skipped, &fixture("oneiriq")),
        ["20260106_120000_computed.py"]
    );
    assert!(report.skipped[0].1.contains("f-string"), "{report:?}");
    assert_eq!(relative(&report.left_out, &fixture("oneiriq")), ["__init__.py"]);

    // Python's own values (checked with CPython) of the literals in the fixture.
    let strings = read(out.path(), "20260104100000_python_strings.surql");
    for statement in [
        "DEFINE FIELD phone ON TABLE user TYPE string\n      ASSERT $value = /^\\d{3}-\\d{4}$/;",
        "DEFINE FIELD note ON TABLE user TYPE string DEFAULT \"tab:\tquote:' x41:A u00e9:é octal:A\";",
        "DEFINE FIELD code ON TABLE user TYPE string ASSERT $value = /^\\w+\\.\\d$/;",
        "DEFINE FIELD nick ON TABLE user TYPE option<string>;",
    ] {
        assert!(strings.contains(statement), "{statement}\nnot in\n{strings}");
    }
    // The templates of both tools' `create`: sections present, no statements.
    for blank in [
        "20260103090000_backfill.surql",
        "20260105110000_custom_data_migration.surql",
    ] {
        let text = read(out.path(), blank);
        assert!(
            text.contains("-- migrate:up\n-- surql:empty (imported empty migration: nothing to apply)")
                && text.contains("-- migrate:down\n-- surql:empty (imported empty migration: nothing to undo)"),
            "{text}"
        );
    }
}

/// A database oneiriq-surql migrated with all four files, the two empty
/// ones included (after its history table).
const ONEIRIQ_DATABASE: &str = "
DEFINE TABLE user SCHEMAFULL;
DEFINE FIELD email ON TABLE user TYPE string;
DEFINE FIELD phone ON TABLE user TYPE string ASSERT $value = /^\\d{3}-\\d{4}$/;
CREATE _migration_history SET version = '20260102_120000', description = 'Create user table', applied_at = d'2026-01-02T12:00:00Z', checksum = 'a', execution_time_ms = 4;
CREATE _migration_history SET version = '20260103_090000', description = 'Backfill', applied_at = d'2026-01-03T09:00:00Z', checksum = 'b', execution_time_ms = 0;
CREATE _migration_history SET version = '20260104_100000', description = 'Python strings', applied_at = d'2026-01-04T10:00:00Z', checksum = 'c', execution_time_ms = 3;
CREATE _migration_history SET version = '20260105_110000', description = 'Custom data migration', applied_at = d'2026-01-05T11:00:00Z', checksum = 'd', execution_time_ms = 0;
";

#[tokio::test]
async fn an_oneiriq_history_with_empty_migrations_is_adopted_and_they_apply_and_roll_back() {
    let (out, _) = imported("oneiriq", "oneiriq");
    let migrations = surql::discover_migrations(out.path()).unwrap();
    let (connection, db) = fresh_db().await;
    let database = format!("{}{ONEIRIQ_DATABASE}", common::db::ONEIRIQ_HISTORY_TABLE);
    run_query(&db, &database, json!({})).await.unwrap();
    let adopted = adopt::adopt(&db, &migrations, &ApplyContext::new()).await.unwrap();
    assert_eq!(adopted.len(), 4, "{adopted:?}");
    assert!(not_clean(&db, &migrations).await.is_empty());
    let ctx = ApplyContext::new();
    assert!(
        migrate_up(&db, &connection, &migrations, None, &ctx)
            .await
            .unwrap()
            .is_empty()
    );
    // The empty migration rolls back (nothing to undo) and applies again,
    // recorded like any other.
    let reverted = migrate_down(&db, &migrations, 1, &ctx).await.unwrap();
    assert_eq!(reverted[0].version, "20260105110000");
    assert_eq!(not_clean(&db, &migrations).await, ["20260105110000 Pending"]);
    let applied = migrate_up(&db, &connection, &migrations, None, &ctx).await.unwrap();
    assert_eq!(applied[0].version, "20260105110000");
    assert!(not_clean(&db, &migrations).await.is_empty());
}

/// Through the binary: the import names what it left out and skipped, and a
/// server applies the empty migrations in one batched request.
#[tokio::test]
async fn the_cli_names_every_file_and_a_server_applies_empty_migrations_in_a_batch() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let out_dir = work.path().join("migrations");
    let m = out_dir.to_str().unwrap();
    let source = fixture("oneiriq");
    let out = run_surql(
        &[
            "migrate",
            "import",
            "--from",
            "oneiriq",
            source.to_str().unwrap(),
            "--out",
            m,
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(1), "the computed one: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("left out ") && stdout.contains("__init__.py: starts with `_`"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("4 converted, 1 skipped (1 left out, as the tool itself does)"),
        "{}",
        text(&out)
    );
    let url = server.ws_url();
    let target = format!("--db-url {url} --ns emptyimport --db main --user root --pass root -m {m}");
    let with = |command: &[&str]| -> Vec<String> {
        command
            .iter()
            .copied()
            .chain(target.split_whitespace())
            .map(String::from)
            .collect()
    };
    let out = run_surql(&strs(&with(&["migrate", "up"])), work.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        common::applied_versions(&server.connection("emptyimport", "main"))
            .await
            .unwrap(),
        ["20260102120000", "20260103090000", "20260104100000", "20260105110000"]
    );
    let out = run_surql(&strs(&with(&["migrate", "status"])), work.path());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("4 applied, 0 pending"),
        "{}",
        text(&out)
    );
}
