//! The migration lock on ONE real database, embedded `mem://` and a real
//! server over `ws://`: exclusive, expiring, kept by its heartbeat, and never
//! left behind by a failed batch.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use crate::common;

use std::time::Duration;

use serde_json::json;
use surql::ConnectionConfig;
use surql::connection::{Client, connect, run_query};
use surql::migration::lock::{acquire_lock_with, with_heartbeat};
use surql::migration::{
    ApplyContext, LockError, acquire_lock, current_lock, discover_migrations, migrate_up, release_lock,
};

use crate::common::{TestServer, applied_versions, example_migrations, initialise, mem_connection};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn lock_is_exclusive_and_expires(connection: ConnectionConfig) {
    initialise(&connection).await;
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
    let other = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
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
    assert_eq!(applied_versions(&connection).await.unwrap_or_default().len(), 0);
    release_lock(&db, &held).await.unwrap();

    // An expired lease is taken over.
    acquire_lock(&db, "crashed@ci", Duration::from_millis(200))
        .await
        .unwrap();
    // Refused until the 200 ms lease lapses, then taken (within a deadline).
    let waiting = std::time::Instant::now();
    let taken = loop {
        match acquire_lock(&other, "bob@ci", Duration::from_secs(60)).await {
            Ok(taken) => break taken,
            Err(held) => assert!(
                waiting.elapsed() < Duration::from_secs(10),
                "the expired lease was never taken: {held}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        waiting.elapsed() >= Duration::from_millis(150),
        "taken before the lease lapsed"
    );
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
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
    // Conflicts the first time it runs only, like a DEFINE racing another runner.
    let conflicts_once = "DEFINE TABLE IF NOT EXISTS once SCHEMALESS; \
        LET $first = !record::exists(once:marker); UPSERT once:marker; \
        IF $first { THROW 'Transaction conflict: simulated write conflict' };";
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
    let always = "THROW 'Transaction conflict: simulated write conflict';";
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
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
    let other = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
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
                let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
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
        assert_eq!(applied_versions(&connection).await.unwrap_or_default().len(), 3);
    }
}

/// Every write proves, inside its own transaction, that the lock is still
/// this run's: after another runner took the lease over, a lone migration
/// and a revert write nothing.
#[tokio::test]
async fn writes_after_the_lease_was_taken_over_change_nothing() {
    use surql::migration::apply::{BatchStop, apply_batch};
    use surql::migration::script::StartClock;
    let connection = mem_connection();
    initialise(&connection).await;
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
    let dir = common::migrations_dir(&[(
        "1_t.surql",
        "-- migrate:up\nDEFINE TABLE taken SCHEMALESS;\n-- migrate:down\nREMOVE TABLE taken;\n",
    )]);
    let migrations = discover_migrations(dir.path()).unwrap();
    let ours = acquire_lock(&db, "alice@ci", Duration::from_secs(60)).await.unwrap();
    // The lease lapsed and bob took the lock.
    run_query(&db, "DELETE _migration_lock:current;", json!({}))
        .await
        .unwrap();
    let theirs = acquire_lock(&db, "bob@ci", Duration::from_secs(60)).await.unwrap();

    // Both clocks: on a server's the guard is folded into the LET of the
    // start time, and must still stop the transaction.
    for clock in [StartClock::Shared, StartClock::Server] {
        let outcome = apply_batch(&db, &[&migrations[0]], clock, &ApplyContext::new(), &ours, false)
            .await
            .unwrap();
        assert!(
            matches!(outcome.stop, Some(BatchStop::Stopped)),
            "{clock:?}: {:?}",
            outcome.stop
        );
        assert!(outcome.applied.is_empty());
        assert_eq!(applied_versions(&connection).await.unwrap_or_default().len(), 0);
        assert!(!common::tables(&connection).await.contains(&"taken".to_string()));
    }

    // Applied under bob's lock, a revert by alice is refused and changes nothing.
    let outcome = apply_batch(
        &db,
        &[&migrations[0]],
        StartClock::Shared,
        &ApplyContext::new(),
        &theirs,
        false,
    )
    .await
    .unwrap();
    assert_eq!(outcome.applied.len(), 1);
    let error = surql::migration::revert_migration(&db, &migrations[0], &ours.owner)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no longer held by this run"), "{error}");
    assert_eq!(applied_versions(&connection).await.unwrap(), ["1"]);
    assert!(common::tables(&connection).await.contains(&"taken".to_string()));
    release_lock(&db, &theirs).await.unwrap();
}

/// A lock whose holder shares this host's name but lives in another pid
/// namespace (another container) is never taken over early, even when its
/// pid does not exist here; the same holder in this pid namespace, with its
/// process gone, is.
#[tokio::test]
async fn a_live_lock_of_another_container_is_never_taken_over() {
    let server = TestServer::start();
    let connection = server.connection("containers", "main");
    initialise(&connection).await;
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    let here = ApplyContext::new()
        .lock_owner()
        .replace(&format!(" pid {} ", std::process::id()), &format!(" pid {gone} "));
    let other_container = here.replace(" pidns pid:", " pidns pid:9");
    let plant = async |owner: &str| {
        run_query(
            &db,
            "DELETE _migration_lock:current; CREATE _migration_lock:current SET owner = $owner, acquired_at = time::now(), expires_at = time::now() + 1m;",
            json!({ "owner": owner }),
        )
        .await
        .unwrap();
    };
    plant(&other_container).await;
    match acquire_lock(&db, "me@ci", Duration::from_secs(60)).await {
        Err(LockError::Held(info)) => assert_eq!(info.owner, other_container),
        other => panic!("took over another container's live lock: {other:?}"),
    }
    plant(&here).await;
    let taken = acquire_lock(&db, "me@ci", Duration::from_secs(60)).await.unwrap();
    assert_eq!(current_lock(&db).await.unwrap().unwrap().owner, "me@ci");
    release_lock(&db, &taken).await.unwrap();
}

/// On an embedded store the lock is proven in this process, without a read
/// per migration: a takeover after the lease lapsed waits for the migration
/// in flight, and the old holder's next migration writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_takeover_waits_for_the_migration_in_flight() {
    use surql::migration::apply::{BatchStop, apply_batch};
    use surql::migration::script::StartClock;
    let connection = mem_connection();
    initialise(&connection).await;
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
    let other = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
    let dir = common::migrations_dir(&[
        (
            "1_slow.surql",
            "-- migrate:up\nSLEEP 1500ms;\nDEFINE TABLE slow SCHEMALESS;\n",
        ),
        ("2_next.surql", "-- migrate:up\nDEFINE TABLE next SCHEMALESS;\n"),
    ]);
    let migrations = discover_migrations(dir.path()).unwrap();
    let context = ApplyContext::new();
    // No heartbeat: the lease lapses while migration 1 runs.
    let ours = acquire_lock(&db, "alice@ci", Duration::from_millis(200)).await.unwrap();
    let first = async {
        let outcome = apply_batch(&db, &[&migrations[0]], StartClock::Shared, &context, &ours, false).await;
        (outcome, std::time::Instant::now())
    };
    let takeover = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let theirs = acquire_lock(&other, "bob@ci", Duration::from_secs(60)).await.unwrap();
        (theirs, std::time::Instant::now())
    };
    let ((first, first_done), (theirs, taken_at)) = tokio::join!(first, takeover);
    assert_eq!(
        first.unwrap().applied.len(),
        1,
        "migration 1 commits under alice's lock"
    );
    assert!(
        taken_at >= first_done,
        "bob took the lock while alice's migration was still running"
    );
    let second = apply_batch(&db, &[&migrations[1]], StartClock::Shared, &context, &ours, false)
        .await
        .unwrap();
    assert!(matches!(second.stop, Some(BatchStop::Stopped)), "{:?}", second.stop);
    assert!(!common::tables(&connection).await.contains(&"next".to_string()));
    assert_eq!(current_lock(&db).await.unwrap().unwrap().owner, "bob@ci");
    release_lock(&other, &theirs).await.unwrap();
}
