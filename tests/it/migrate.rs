//! Applying, rolling back and drift on ONE real database: embedded
//! `mem://` and a real server over `ws://`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

use std::time::Duration;

use serde_json::{Value, json};
use surql::ConnectionConfig;
use surql::connection::{Client, connect, run_query};
use surql::migration::apply::{BatchStop, apply_batch};
use surql::migration::lock::{HeldLock, mark_interrupted};
use surql::migration::script::StartClock;
use surql::migration::{
    ApplyContext, ApplyError, MigrationState, acquire_lock, applied_migrations, current_lock, discover_migrations,
    migrate_down, migrate_up, plan, release_lock,
};

use crate::common::{TestServer, example_migrations, initialise, mem_connection, migrations_dir, tables};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn history(connection: &ConnectionConfig) -> Vec<Value> {
    let db = connect(&Client::new(), connection, TIMEOUT).await.unwrap();
    let rows = run_query(&db, "SELECT * FROM _migration_history ORDER BY version;", json!({}))
        .await
        .unwrap();
    rows[0].as_array().unwrap().clone()
}

async fn applies_examples_atomically_with_history(connection: ConnectionConfig) {
    let migrations = discover_migrations(example_migrations()).unwrap();
    assert_eq!(migrations.len(), 3);
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
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
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
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
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
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
async fn locked(connection: &ConnectionConfig, owner: &str) -> (surql::connection::Db, HeldLock) {
    initialise(connection).await;
    let db = connect(&Client::new(), connection, TIMEOUT).await.unwrap();
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
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
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
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
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
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
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

/// Defence in depth behind the parser: a transaction that SurrealDB ended
/// early (here a RETURN smuggled past the parser) answers fewer statements
/// than were sent, and that is "outcome inconsistent" — an unknown outcome,
/// never "rejected", so nothing is rolled back on a guess.
async fn an_early_ended_transaction_is_outcome_inconsistent(connection: ConnectionConfig) {
    let dir = migrations_dir(&[(
        "1_three.surql",
        "-- migrate:up\nDEFINE TABLE first SCHEMALESS;\nDEFINE TABLE second SCHEMALESS;\nDEFINE TABLE third SCHEMALESS;\n",
    )]);
    let mut migration = discover_migrations(dir.path()).unwrap().remove(0);
    migration.up = "DEFINE TABLE first SCHEMALESS;\nRETURN 'early';\nDEFINE TABLE third SCHEMALESS;".into();
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
    initialise(&connection).await;
    let ctx = ApplyContext::new();
    let lock = acquire_lock(&db, &ctx.lock_owner(), Duration::from_secs(60))
        .await
        .unwrap();
    let error = surql::migration::apply_migration(&db, &migration, StartClock::of(&connection), &ctx)
        .await
        .unwrap_err();
    release_lock(&db, &lock).await.unwrap();
    assert_eq!(error.kind(), surql::connection::QueryErrorKind::Inconsistent, "{error}");
    assert!(error.outcome_unknown());
    assert!(error.to_string().contains("outcome inconsistent: 1_three"), "{error}");
    // What SurrealDB did: the statement before the RETURN committed, the history row did not.
    assert!(tables(&connection).await.contains(&"first".to_string()));
    assert_eq!(history(&connection).await.len(), 0);

    // The same behind a down section: the revert is not reported as done.
    let dir = migrations_dir(&[(
        "2_undo.surql",
        "-- migrate:up\nDEFINE TABLE undo SCHEMALESS;\n-- migrate:down\nREMOVE TABLE undo;\nDEFINE TABLE marker SCHEMALESS;\n",
    )]);
    let mut migration = discover_migrations(dir.path()).unwrap().remove(0);
    let lock = acquire_lock(&db, &ctx.lock_owner(), Duration::from_secs(60))
        .await
        .unwrap();
    surql::migration::apply_migration(&db, &migration, StartClock::of(&connection), &ctx)
        .await
        .unwrap();
    migration.down = Some("REMOVE TABLE undo;\nRETURN 'early';".into());
    let error = surql::migration::revert_migration(&db, &migration, &ctx.lock_owner())
        .await
        .unwrap_err();
    release_lock(&db, &lock).await.unwrap();
    assert!(error.to_string().contains("outcome inconsistent: 2_undo"), "{error}");
}

on_both_engines!(
    embedded_early_ended_transaction_is_outcome_inconsistent,
    server_early_ended_transaction_is_outcome_inconsistent,
    an_early_ended_transaction_is_outcome_inconsistent,
    "early"
);
