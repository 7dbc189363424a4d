//! Applying, rolling back, drift and locks on ONE real database: embedded
//! `mem://` and a real server over `ws://`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use surql::ConnectionConfig;
use surql::connection::{connect, connect_read_only, run_query};
use surql::migration::apply::{BatchStop, apply_batch};
use surql::migration::lock::{HeldLock, acquire_lock_with, mark_interrupted, with_heartbeat};
use surql::migration::script::StartClock;
use surql::migration::{
    ApplyContext, ApplyError, LockError, MigrationState, acquire_lock, applied_migrations, current_lock,
    discover_migrations, history_table_exists, migrate_down, migrate_up, plan, release_lock,
};

use common::{TestServer, example_migrations, mem_connection, migrations_dir, tables};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Two tests running `check`: `embedded` on `mem://`, `server` on a fresh
/// server process over `ws://` (namespace `ns`).
macro_rules! on_both_engines {
    ($embedded:ident, $server:ident, $check:ident, $ns:literal) => {
        #[tokio::test]
        async fn $embedded() {
            $check(mem_connection()).await;
        }

        #[tokio::test]
        async fn $server() {
            let server = TestServer::start();
            $check(server.connection($ns, "main")).await;
        }
    };
}

async fn history(connection: &ConnectionConfig) -> Vec<Value> {
    let db = connect(connection, TIMEOUT).await.unwrap();
    let rows = run_query(&db, "SELECT * FROM _migration_history ORDER BY version;", json!({}))
        .await
        .unwrap();
    rows[0].as_array().unwrap().clone()
}

async fn applies_examples_atomically_with_history(connection: ConnectionConfig) {
    let migrations = discover_migrations(example_migrations()).unwrap();
    assert_eq!(migrations.len(), 3);
    let db = connect(&connection, TIMEOUT).await.unwrap();
    let mut ctx = ApplyContext::new();
    ctx.actor = "tester".into();
    let applied = migrate_up(&db, &connection, &migrations, None, &ctx).await.unwrap();
    assert_eq!(applied.len(), 3);

    assert_eq!(
        tables(&connection).await,
        ["_migration_history", "_migration_lock", "order", "order_audit", "user"]
    );
    let rows = history(&connection).await;
    assert_eq!(rows.len(), 3);
    for (row, migration) in rows.iter().zip(&migrations) {
        assert_eq!(row["version"], migration.version.as_str());
        assert_eq!(row["name"], migration.name.as_str());
        assert_eq!(row["checksum"], migration.checksum.as_str());
        assert_eq!(row["deployment_id"], ctx.deployment_id.as_str());
        assert_eq!(row["actor"], "tester");
        assert!(row["applied_at"].as_str().unwrap().starts_with("20"), "{row}");
        assert!(row["execution_ms"].as_i64().unwrap() >= 0, "{row}");
    }
    // The lock was released.
    assert_eq!(current_lock(&db).await.unwrap(), None);
    // The schema works: the event writes the audit row, the assertion refuses bad mail.
    run_query(&db, "CREATE user:a SET email = 'a@example.com', name = 'A'; CREATE order:1 SET customer = user:a, total = 10dec; UPDATE order:1 SET status = 'paid';", json!({}))
        .await
        .unwrap();
    let audit = run_query(&db, "SELECT to_status FROM order_audit;", json!({}))
        .await
        .unwrap();
    assert_eq!(audit[0], json!([{"to_status": "paid"}]));
    assert!(
        run_query(&db, "CREATE user SET email = 'nope', name = 'B';", json!({}))
            .await
            .is_err()
    );

    // Nothing left to apply: a second run is a no-op.
    assert!(
        migrate_up(&db, &connection, &migrations, None, &ctx)
            .await
            .unwrap()
            .is_empty()
    );
}

on_both_engines!(
    embedded_applies_examples_atomically_with_history,
    server_applies_examples_atomically_with_history,
    applies_examples_atomically_with_history,
    "shop"
);

/// `execution_ms` times the migration's statements: on a server by its own
/// clock, embedded by this process's (see `StartClock`).
async fn execution_ms_times_the_migration(connection: ConnectionConfig) {
    let dir = migrations_dir(&[("1_slow.surql", "-- migrate:up\nDEFINE TABLE t;\nSLEEP 300ms;\n")]);
    let migrations = discover_migrations(dir.path()).unwrap();
    let db = connect(&connection, TIMEOUT).await.unwrap();
    migrate_up(&db, &connection, &migrations, None, &ApplyContext::new())
        .await
        .unwrap();
    let took = history(&connection).await[0]["execution_ms"].as_i64().unwrap();
    assert!((300..10_000).contains(&took), "execution_ms {took}");
}

on_both_engines!(
    embedded_execution_ms_times_the_migration,
    server_execution_ms_times_the_migration,
    execution_ms_times_the_migration,
    "timing"
);

const GOOD: &str = "-- migrate:up\nDEFINE TABLE first SCHEMAFULL;\n-- migrate:down\nREMOVE TABLE first;\n";
/// The second statement fails at run time (it parses): the first must not survive.
const FAILS_ON_SECOND: &str = "-- migrate:up\nDEFINE TABLE half SCHEMAFULL;\nCREATE half:1 SET x = 1;\nDEFINE TABLE never;\n-- migrate:down\nREMOVE TABLE half;\n";

async fn failing_statement_leaves_nothing(connection: ConnectionConfig) {
    let dir = migrations_dir(&[("1_first.surql", GOOD), ("2_half.surql", FAILS_ON_SECOND)]);
    let migrations = discover_migrations(dir.path()).unwrap();
    let db = connect(&connection, TIMEOUT).await.unwrap();
    let error = migrate_up(&db, &connection, &migrations, None, &ApplyContext::new())
        .await
        .unwrap_err();
    match &error {
        ApplyError::Failed {
            version,
            completed,
            error,
            ..
        } => {
            assert_eq!(version, "2");
            assert_eq!(completed.len(), 1, "the first migration committed");
            assert!(error.to_string().contains("half"), "{error}");
            // Counted in the migration's own statements, not surql's wrapping.
            assert!(error.to_string().starts_with("statement 2 failed"), "{error}");
        }
        other => panic!("unexpected error {other}"),
    }
    let tables = tables(&connection).await;
    assert!(tables.contains(&"first".to_string()));
    assert!(!tables.contains(&"half".to_string()), "half-applied: {tables:?}");
    assert!(!tables.contains(&"never".to_string()), "{tables:?}");
    let versions: Vec<Value> = history(&connection)
        .await
        .iter()
        .map(|r| r["version"].clone())
        .collect();
    assert_eq!(versions, [json!("1")]);
    assert_eq!(current_lock(&db).await.unwrap(), None, "lock released after the error");
}

on_both_engines!(
    embedded_failing_statement_leaves_nothing,
    server_failing_statement_leaves_nothing,
    failing_statement_leaves_nothing,
    "atomic"
);

const THIRD: &str = "-- migrate:up\nDEFINE TABLE third;\n-- migrate:down\nREMOVE TABLE third;\n";

/// Takes the lock as `owner` on an initialised database.
async fn locked(
    connection: &ConnectionConfig,
    owner: &str,
) -> (surrealdb::Surreal<surrealdb::engine::any::Any>, HeldLock) {
    initialise(connection).await;
    let db = connect(connection, TIMEOUT).await.unwrap();
    let lock = acquire_lock(&db, owner, Duration::from_secs(60)).await.unwrap();
    (db, lock)
}

async fn committed_versions(connection: &ConnectionConfig) -> Vec<Value> {
    history(connection).await.iter().map(|r| r["version"].clone()).collect()
}

async fn a_batch_stops_at_the_failing_migration(connection: ConnectionConfig) {
    let dir = migrations_dir(&[
        ("1_first.surql", GOOD),
        ("2_half.surql", FAILS_ON_SECOND),
        ("3_third.surql", THIRD),
    ]);
    let migrations = discover_migrations(dir.path()).unwrap();
    let (db, lock) = locked(&connection, "runner").await;
    let batch: Vec<_> = migrations.iter().collect();
    let outcome = apply_batch(&db, &batch, StartClock::Server, &ApplyContext::new(), &lock, true)
        .await
        .unwrap();
    assert_eq!(outcome.applied.len(), 1, "{outcome:?}");
    assert!(!outcome.released_lock, "the lock is kept for the rollback");
    assert_eq!(current_lock(&db).await.unwrap().unwrap().owner, "runner");
    match outcome.stop {
        Some(BatchStop::Failed(error)) => {
            assert!(error.to_string().starts_with("statement 2 failed"), "{error}");
            assert!(error.to_string().contains("half"), "{error}");
        }
        other => panic!("expected the second migration to fail, got {other:?}"),
    }
    let tables = tables(&connection).await;
    assert!(tables.contains(&"first".to_string()), "{tables:?}");
    assert!(!tables.contains(&"half".to_string()), "half-applied: {tables:?}");
    assert!(
        !tables.contains(&"third".to_string()),
        "ran after a failure: {tables:?}"
    );
    assert_eq!(committed_versions(&connection).await, [json!("1")]);

    // The rest of a batch that all commits: every one is reported, timed.
    let fixed_dir = migrations_dir(&[("2_half.surql", GOOD.replace("first", "second").as_str())]);
    let fixed = discover_migrations(fixed_dir.path()).unwrap();
    let batch = [&fixed[0], &migrations[2]];
    let outcome = apply_batch(&db, &batch, StartClock::Server, &ApplyContext::new(), &lock, true)
        .await
        .unwrap();
    assert_eq!(outcome.applied.len(), 2, "{outcome:?}");
    assert!(outcome.stop.is_none());
    assert!(outcome.released_lock);
    assert_eq!(
        current_lock(&db).await.unwrap(),
        None,
        "released with the last migration"
    );
    assert_eq!(
        committed_versions(&connection).await,
        [json!("1"), json!("2"), json!("3")]
    );
}

on_both_engines!(
    embedded_batch_stops_at_the_failing_migration,
    server_batch_stops_at_the_failing_migration,
    a_batch_stops_at_the_failing_migration,
    "batch"
);

/// One migration per request (a server on this host, the embedded engine):
/// the last one's request releases the lock, but only once it committed.
async fn a_lone_migration_releases_the_lock_once_it_committed(connection: ConnectionConfig) {
    let dir = migrations_dir(&[("1_half.surql", FAILS_ON_SECOND), ("2_first.surql", GOOD)]);
    let migrations = discover_migrations(dir.path()).unwrap();
    let (db, lock) = locked(&connection, "runner").await;
    let outcome = apply_batch(
        &db,
        &[&migrations[0]],
        StartClock::of(&connection),
        &ApplyContext::new(),
        &lock,
        true,
    )
    .await
    .unwrap();
    assert!(outcome.applied.is_empty());
    match outcome.stop {
        Some(BatchStop::Failed(error)) => assert!(error.to_string().starts_with("statement 2 failed"), "{error}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(!outcome.released_lock);
    assert_eq!(
        current_lock(&db).await.unwrap().unwrap().owner,
        "runner",
        "kept for the rollback"
    );

    let outcome = apply_batch(
        &db,
        &[&migrations[1]],
        StartClock::of(&connection),
        &ApplyContext::new(),
        &lock,
        true,
    )
    .await
    .unwrap();
    assert_eq!(outcome.applied.len(), 1);
    assert!(outcome.released_lock);
    assert_eq!(current_lock(&db).await.unwrap(), None);
    assert_eq!(committed_versions(&connection).await, [json!("2")]);
}

on_both_engines!(
    embedded_lone_migration_releases_the_lock_once_it_committed,
    server_lone_migration_releases_the_lock_once_it_committed,
    a_lone_migration_releases_the_lock_once_it_committed,
    "lone"
);

#[tokio::test]
async fn a_batch_stops_when_interrupted_or_when_the_lock_changes_hands() {
    let server = TestServer::start();
    let connection = server.connection("guard", "main");
    let dir = migrations_dir(&[("1_first.surql", GOOD), ("2_third.surql", THIRD)]);
    let migrations = discover_migrations(dir.path()).unwrap();
    let batch: Vec<_> = migrations.iter().collect();

    // Marked interrupted (Ctrl-C): not even the first begins.
    let (db, lock) = locked(&connection, "runner").await;
    mark_interrupted(&db, &lock).await.unwrap();
    let outcome = apply_batch(&db, &batch, StartClock::Server, &ApplyContext::new(), &lock, true)
        .await
        .unwrap();
    assert!(outcome.applied.is_empty(), "{outcome:?}");
    assert!(matches!(outcome.stop, Some(BatchStop::Stopped)), "{outcome:?}");
    assert_eq!(committed_versions(&connection).await, Vec::<Value>::new());

    // Another runner holds the lock: nothing begins either.
    release_lock(&db, &lock).await.unwrap();
    acquire_lock(&db, "someone-else", Duration::from_secs(60))
        .await
        .unwrap();
    let outcome = apply_batch(&db, &batch, StartClock::Server, &ApplyContext::new(), &lock, true)
        .await
        .unwrap();
    assert!(outcome.applied.is_empty(), "{outcome:?}");
    assert!(matches!(outcome.stop, Some(BatchStop::Stopped)), "{outcome:?}");
    assert!(!tables(&connection).await.contains(&"first".to_string()));
    assert_eq!(
        current_lock(&db).await.unwrap().unwrap().owner,
        "someone-else",
        "not released"
    );
}

async fn rolls_back_newest_first(connection: ConnectionConfig) {
    let migrations = discover_migrations(example_migrations()).unwrap();
    let db = connect(&connection, TIMEOUT).await.unwrap();
    let ctx = ApplyContext::new();
    migrate_up(&db, &connection, &migrations, None, &ctx).await.unwrap();

    let reverted = migrate_down(&db, &migrations, 2, &ctx).await.unwrap();
    let order: Vec<&str> = reverted.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(order, ["audit_order_status", "create_orders"]);
    assert_eq!(
        tables(&connection).await,
        ["_migration_history", "_migration_lock", "user"]
    );
    assert_eq!(history(&connection).await.len(), 1);

    migrate_down(&db, &migrations, 5, &ctx).await.unwrap();
    assert_eq!(tables(&connection).await, ["_migration_history", "_migration_lock"]);
    assert!(history(&connection).await.is_empty());
    // And forward again.
    assert_eq!(
        migrate_up(&db, &connection, &migrations, None, &ctx)
            .await
            .unwrap()
            .len(),
        3
    );
}

on_both_engines!(
    embedded_rolls_back_newest_first,
    server_rolls_back_newest_first,
    rolls_back_newest_first,
    "rollback"
);

#[tokio::test]
async fn down_without_down_section_refuses_before_running() {
    let connection = mem_connection();
    let dir = migrations_dir(&[
        ("1_first.surql", GOOD),
        ("2_oneway.surql", "-- migrate:up\nDEFINE TABLE oneway;\n"),
    ]);
    let migrations = discover_migrations(dir.path()).unwrap();
    let db = connect(&connection, TIMEOUT).await.unwrap();
    migrate_up(&db, &connection, &migrations, None, &ApplyContext::new())
        .await
        .unwrap();
    let error = migrate_down(&db, &migrations, 2, &ApplyContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ApplyError::NoDownSection(ref id) if id == "2_oneway"),
        "{error}"
    );
    assert_eq!(history(&connection).await.len(), 2, "nothing rolled back");
}

#[tokio::test]
async fn drift_is_reported_and_up_refuses() {
    let connection = mem_connection();
    let dir = migrations_dir(&[("1_first.surql", GOOD)]);
    let db = connect(&connection, TIMEOUT).await.unwrap();
    let migrations = discover_migrations(dir.path()).unwrap();
    migrate_up(&db, &connection, &migrations, None, &ApplyContext::new())
        .await
        .unwrap();

    // Edit the applied file and add a new one.
    std::fs::write(
        dir.path().join("1_first.surql"),
        GOOD.replace("first SCHEMAFULL", "first SCHEMALESS"),
    )
    .unwrap();
    std::fs::write(dir.path().join("2_next.surql"), "-- migrate:up\nDEFINE TABLE next;\n").unwrap();
    let migrations = discover_migrations(dir.path()).unwrap();
    let applied = applied_migrations(&db).await.unwrap();
    let states: Vec<MigrationState> = plan(&migrations, &applied).rows.iter().map(|r| r.state).collect();
    assert_eq!(states, [MigrationState::Drifted, MigrationState::Pending]);
    let error = migrate_up(&db, &connection, &migrations, None, &ApplyContext::new())
        .await
        .unwrap_err();
    assert!(matches!(error, ApplyError::Drift(_)), "{error}");
    assert!(
        !tables(&connection).await.contains(&"next".to_string()),
        "up ran despite drift"
    );

    // A file that disappeared is "missing".
    std::fs::remove_file(dir.path().join("1_first.surql")).unwrap();
    let migrations = discover_migrations(dir.path()).unwrap();
    let states: Vec<MigrationState> = plan(&migrations, &applied).rows.iter().map(|r| r.state).collect();
    assert_eq!(states, [MigrationState::Missing, MigrationState::Pending]);
    assert!(
        migrate_up(&db, &connection, &migrations, None, &ApplyContext::new())
            .await
            .is_err()
    );
}

/// Creates the namespace, database and surql's tables.
async fn initialise(connection: &ConnectionConfig) {
    let db = connect(connection, TIMEOUT).await.unwrap();
    surql::connection::ensure_namespace_and_database(&db, connection)
        .await
        .unwrap();
    surql::migration::ensure_history_table(&db).await.unwrap();
}

async fn lock_is_exclusive_and_expires(connection: ConnectionConfig) {
    initialise(&connection).await;
    let db = connect(&connection, TIMEOUT).await.unwrap();
    let other = connect(&connection, TIMEOUT).await.unwrap();
    let held = acquire_lock(&db, "alice@ci", Duration::from_secs(60)).await.unwrap();
    match acquire_lock(&other, "bob@ci", Duration::from_secs(60))
        .await
        .unwrap_err()
    {
        LockError::Held(info) => {
            assert_eq!(info.owner, "alice@ci");
            let message = LockError::Held(info.clone()).to_string();
            assert!(message.starts_with("locked by alice@ci since 20"), "{message}");
            assert!(message.contains(", expires 20"), "{message}");
        }
        other => panic!("unexpected {other}"),
    }
    // While it is held, migrate_up refuses and applies nothing.
    let migrations = discover_migrations(example_migrations()).unwrap();
    let error = migrate_up(&other, &connection, &migrations, None, &ApplyContext::new())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("locked by alice@ci"), "{error}");
    assert!(history(&connection).await.is_empty());
    release_lock(&db, &held).await.unwrap();

    // An expired lease is taken over.
    acquire_lock(&db, "crashed@ci", Duration::from_millis(200))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = acquire_lock(&other, "bob@ci", Duration::from_secs(60)).await.unwrap();
    assert_eq!(current_lock(&db).await.unwrap().unwrap().owner, "bob@ci");
    release_lock(&other, &taken).await.unwrap();
}

on_both_engines!(
    embedded_lock_is_exclusive_and_expires,
    server_lock_is_exclusive_and_expires,
    lock_is_exclusive_and_expires,
    "locks"
);

/// The lock is taken in one batch with set-up statements; each statement is
/// its own transaction, so a set-up statement can conflict with another
/// runner while our CREATE commits. The lock is then ours, not "held".
async fn a_conflict_beside_a_committed_create_keeps_the_lock(connection: ConnectionConfig) {
    initialise(&connection).await;
    let db = connect(&connection, TIMEOUT).await.unwrap();
    // Conflicts the first time it runs only, like a DEFINE racing another runner.
    let conflicts_once = "DEFINE TABLE IF NOT EXISTS once SCHEMALESS; \
        LET $first = !record::exists(once:marker); UPSERT once:marker; \
        IF $first { THROW 'simulated write conflict' };";
    let (held, read) = acquire_lock_with(
        &db,
        "alice@ci",
        Duration::from_secs(60),
        conflicts_once,
        "RETURN 'after';",
    )
    .await
    .unwrap();
    assert_eq!(read, Some(json!("after")), "the read under the lock still runs");
    assert_eq!(current_lock(&db).await.unwrap().unwrap().owner, "alice@ci");
    release_lock(&db, &held).await.unwrap();

    // A set-up that keeps failing: an error, and our lock is not left behind.
    let always = "THROW 'simulated write conflict';";
    let error = acquire_lock_with(&db, "alice@ci", Duration::from_secs(60), always, "")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("simulated write conflict"), "{error}");
    assert_eq!(current_lock(&db).await.unwrap(), None);

    // A read under the lock that fails: an error, and the lock is released.
    let error = acquire_lock_with(&db, "alice@ci", Duration::from_secs(60), "", "THROW 'unreadable';")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("unreadable"), "{error}");
    assert_eq!(current_lock(&db).await.unwrap(), None);
}

on_both_engines!(
    embedded_conflict_beside_a_committed_create_keeps_the_lock,
    server_conflict_beside_a_committed_create_keeps_the_lock,
    a_conflict_beside_a_committed_create_keeps_the_lock,
    "conflict"
);

#[tokio::test]
async fn a_heartbeat_keeps_the_lease_and_notices_when_it_is_lost() {
    let connection = mem_connection();
    initialise(&connection).await;
    let db = connect(&connection, TIMEOUT).await.unwrap();
    let other = connect(&connection, TIMEOUT).await.unwrap();
    let lease = Duration::from_millis(300);
    let held = acquire_lock(&db, "alice@ci", lease).await.unwrap();
    let taken = with_heartbeat(&db, &held, async |heartbeat| {
        tokio::time::sleep(lease * 3).await;
        // Renewed: still alice's, not expired, and bob is refused.
        match acquire_lock(&other, "bob@ci", lease).await.unwrap_err() {
            LockError::Held(info) => assert_eq!(info.owner, "alice@ci"),
            other => panic!("unexpected {other}"),
        }
        heartbeat.check().unwrap();

        // Taken from under it (as after a long outage): the heartbeat says so.
        run_query(&other, "DELETE _migration_lock:current;", json!({}))
            .await
            .unwrap();
        let taken = acquire_lock(&other, "bob@ci", Duration::from_secs(60)).await.unwrap();
        tokio::time::sleep(lease).await;
        let lost = heartbeat.check().unwrap_err().to_string();
        assert!(lost.contains("lock was lost") && lost.contains("bob@ci"), "{lost}");
        taken
    })
    .await;
    assert_eq!(current_lock(&db).await.unwrap().unwrap().owner, "bob@ci");
    release_lock(&other, &taken).await.unwrap();
}

/// Four runners race for a fresh database, on several fresh servers: the
/// conflicts of that race are rare, and each must end as "locked by".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runners_apply_each_migration_once() {
    let migrations = discover_migrations(example_migrations()).unwrap();
    for _ in 0..8 {
        let server = TestServer::start();
        let connection = server.connection("race", "main");
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let connection = connection.clone();
            let migrations = migrations.clone();
            tasks.push(tokio::spawn(async move {
                let db = connect(&connection, TIMEOUT).await.unwrap();
                migrate_up(&db, &connection, &migrations, None, &ApplyContext::new()).await
            }));
        }
        let mut applied = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(steps) => applied += steps.len(),
                Err(e) => assert!(e.to_string().contains("locked by"), "{e}"),
            }
        }
        assert_eq!(applied, 3);
        assert_eq!(history(&connection).await.len(), 3);
    }
}

#[tokio::test]
async fn read_only_calls_create_nothing_on_a_server() {
    let server = TestServer::start();
    let connection = server.connection("untouched", "main");
    assert!(connect_read_only(&connection, TIMEOUT).await.unwrap().is_none());
    // With the namespace present but not the database: still nothing created.
    let other = server.connection("untouched_ns", "main");
    let db = connect(&other, TIMEOUT).await.unwrap();
    assert!(!history_table_exists(&db).await.unwrap());
    assert!(applied_migrations(&db).await.unwrap().is_empty());
    let missing_db = server.connection("untouched_ns", "never");
    assert!(connect_read_only(&missing_db, TIMEOUT).await.unwrap().is_none());
    let ns_info = run_query(&db, "INFO FOR NS;", json!({})).await.unwrap();
    assert!(ns_info[0]["databases"].get("never").is_none(), "{}", ns_info[0]);
    let root = db;
    let info = run_query(&root, "INFO FOR ROOT;", json!({})).await.unwrap();
    assert!(info[0]["namespaces"].get("untouched").is_none(), "{}", info[0]);
}

#[tokio::test]
async fn signs_in_as_root_namespace_and_database_user() {
    let server = TestServer::start();
    let root = server.connection("tenant", "main");
    let db = connect(&root, TIMEOUT).await.unwrap();
    surql::connection::ensure_namespace_and_database(&db, &root)
        .await
        .unwrap();
    run_query(
        &db,
        "DEFINE USER ns_admin ON NAMESPACE PASSWORD 'ns-pass' ROLES OWNER; DEFINE USER db_admin ON DATABASE PASSWORD 'db-pass' ROLES OWNER;",
        json!({}),
    )
    .await
    .unwrap();
    let migrations = discover_migrations(example_migrations()).unwrap();

    let mut ns_user =
        ConnectionConfig::new(server.ws_url(), "tenant", "second").with_credentials("ns_admin", "ns-pass");
    ns_user.auth_level = surql::AuthLevel::Namespace;
    let ns_db = connect(&ns_user, TIMEOUT).await.unwrap();
    assert_eq!(
        migrate_up(&ns_db, &ns_user, &migrations, None, &ApplyContext::new())
            .await
            .unwrap()
            .len(),
        3
    );

    let mut db_user = ConnectionConfig::new(server.ws_url(), "tenant", "main").with_credentials("db_admin", "db-pass");
    db_user.auth_level = surql::AuthLevel::Database;
    let db_db = connect(&db_user, TIMEOUT).await.unwrap();
    assert_eq!(
        migrate_up(&db_db, &db_user, &migrations, Some(1), &ApplyContext::new())
            .await
            .unwrap()
            .len(),
        1
    );

    let mut wrong = db_user.clone();
    wrong.password = Some("not-the-password".into());
    let error = connect(&wrong, TIMEOUT).await.unwrap_err().to_string();
    assert!(
        error.contains("cannot sign in") && error.contains(&server.ws_url()),
        "{error}"
    );
    assert!(!error.contains("not-the-password"), "{error}");
}

#[tokio::test]
async fn unreachable_server_fails_fast_without_the_password() {
    // A socket that accepts nothing useful: connections hang until our timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "ws://root:url-secret@127.0.0.1:{}/rpc",
        silent.local_addr().unwrap().port()
    );
    let connection = ConnectionConfig::new(url, "n", "d").with_credentials("root", "hunter2");
    let started = std::time::Instant::now();
    let error = connect(&connection, Duration::from_secs(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(error.contains("127.0.0.1"), "{error}");
    assert!(!error.contains("hunter2") && !error.contains("url-secret"), "{error}");

    // A closed port answers at once.
    let closed = format!("ws://127.0.0.1:{}", common::free_port());
    let error = connect(&ConnectionConfig::new(closed.clone(), "n", "d"), Duration::from_secs(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(&closed), "{error}");
}

#[tokio::test]
async fn bare_host_and_rpc_urls_reach_the_same_server() {
    let server = TestServer::start();
    let bare = ConnectionConfig::new(format!("ws://127.0.0.1:{}", server.port), "same", "main")
        .with_credentials("root", "root");
    let http = ConnectionConfig::new(format!("http://127.0.0.1:{}", server.port), "same", "main")
        .with_credentials("root", "root");
    let migrations = discover_migrations(example_migrations()).unwrap();
    let db = connect(&bare, TIMEOUT).await.unwrap();
    migrate_up(&db, &bare, &migrations, Some(1), &ApplyContext::new())
        .await
        .unwrap();
    let via_rpc = connect(&server.connection("same", "main"), TIMEOUT).await.unwrap();
    assert_eq!(applied_migrations(&via_rpc).await.unwrap().len(), 1);
    let via_http = connect(&http, TIMEOUT).await.unwrap();
    assert_eq!(applied_migrations(&via_http).await.unwrap().len(), 1);
}
