//! Connecting and querying, against embedded `mem://` and real server
//! processes: sign-in at every level, read-only sessions that create nothing,
//! and the one classifier of failures (rejected by the database, or an
//! outcome nobody knows).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use crate::common;

use std::time::Duration;

use serde_json::json;
use surql::ConnectionConfig;
use surql::connection::{Client, QueryErrorKind, connect, connect_read_only, run_collecting_errors, run_query};
use surql::migration::{ApplyContext, applied_migrations, discover_migrations, history_table_exists, migrate_up};

use crate::common::{TestServer, example_migrations, mem_connection};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Each way a statement fails on a real database gets its own kind, and only
/// a lost answer counts as an unknown outcome.
#[tokio::test]
async fn failures_are_classified_by_kind() {
    let connection = mem_connection();
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
    let kind_of = async |sql: &str| {
        let error = run_query(&db, sql, json!({})).await.unwrap_err();
        assert!(!error.outcome_unknown(), "{sql}: {error}");
        (error.kind(), error.statement())
    };
    assert_eq!(
        kind_of("SELEC * FROM x;").await,
        (QueryErrorKind::Rejected, None),
        "a parse error"
    );
    assert_eq!(
        kind_of("RETURN 1; THROW 'no';").await,
        (QueryErrorKind::Rejected, Some(1)),
        "a THROW in the second statement"
    );
    assert_eq!(
        kind_of("SELECT * FROM never_defined;").await.0,
        QueryErrorKind::NotFound,
        "a missing table"
    );
    assert_eq!(
        kind_of("CREATE once:1; CREATE once:1;").await,
        (QueryErrorKind::AlreadyExists, Some(1)),
        "a duplicate record"
    );

    // In a failed transaction the statement that failed is the cause; the
    // others are marked "not executed".
    let collected = run_collecting_errors(
        &db,
        "BEGIN; CREATE kept:1; THROW 'the cause'; COMMIT;",
        json!({}),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(
        collected.errors.iter().any(|e| e.kind() == QueryErrorKind::NotExecuted),
        "{:?}",
        collected.errors
    );
    let cause = surql::connection::first_cause(&collected.errors).unwrap();
    assert!(cause.message().contains("the cause"), "{cause}");
    assert_eq!(cause.kind(), QueryErrorKind::Rejected);
}

/// No answer in time, or a server that dies mid-request: the outcome is
/// unknown (the server may have committed), never "rejected".
#[tokio::test]
async fn a_lost_answer_is_an_unknown_outcome() {
    let mut server = TestServer::start();
    let connection = server.connection("lost", "main");
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();

    let timed_out = run_collecting_errors(&db, "SLEEP 2s; RETURN 1;", json!({}), Duration::from_millis(200))
        .await
        .err()
        .unwrap();
    assert_eq!(timed_out.kind(), QueryErrorKind::TimedOut, "{timed_out}");
    assert!(timed_out.outcome_unknown());

    let query = tokio::spawn(async move { run_query(&db, "SLEEP 5s; RETURN 1;", json!({})).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    let lost = query.await.unwrap().unwrap_err();
    assert!(
        lost.outcome_unknown(),
        "a dropped connection: {lost} ({:?})",
        lost.kind()
    );
}

/// The crate's error gives the documented exit codes and keeps its causes.
#[tokio::test]
async fn errors_carry_exit_codes_and_causes() {
    let usage = surql::Error::Usage("bad flag".into());
    assert_eq!(usage.exit_code(), surql::error::EXIT_USAGE);
    let plugin = surql::Error::from(surql::PluginError::Config {
        index: 0,
        message: "no name".into(),
    });
    assert_eq!(plugin.exit_code(), surql::error::EXIT_PLUGIN);

    // A migration refused on a read-only user: set-up fails with its cause kept.
    let connection = mem_connection();
    let db = connect(&Client::new(), &connection, TIMEOUT).await.unwrap();
    let failed = run_query(&db, "THROW 'deep cause';", json!({})).await.unwrap_err();
    let error = surql::Error::from(surql::migration::ApplyError::Setup {
        step: "cannot create _migration_history",
        source: failed,
    });
    assert_eq!(error.exit_code(), surql::error::EXIT_FAILURE);
    assert_eq!(error.to_string(), "cannot create _migration_history");
    let report = error.report();
    assert!(
        report.starts_with("cannot create _migration_history: ") && report.contains("deep cause"),
        "{report}"
    );
}
#[tokio::test]
async fn read_only_calls_create_nothing_on_a_server() {
    let server = TestServer::start();
    let connection = server.connection("untouched", "main");
    assert!(
        connect_read_only(&Client::new(), &connection, TIMEOUT)
            .await
            .unwrap()
            .is_none()
    );
    // With the namespace present but not the database: still nothing created.
    let other = server.connection("untouched_ns", "main");
    let db = connect(&Client::new(), &other, TIMEOUT).await.unwrap();
    assert!(!history_table_exists(&db).await.unwrap());
    assert!(applied_migrations(&db).await.unwrap().is_empty());
    let missing_db = server.connection("untouched_ns", "never");
    assert!(
        connect_read_only(&Client::new(), &missing_db, TIMEOUT)
            .await
            .unwrap()
            .is_none()
    );
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
    let db = connect(&Client::new(), &root, TIMEOUT).await.unwrap();
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
    let ns_db = connect(&Client::new(), &ns_user, TIMEOUT).await.unwrap();
    assert_eq!(
        migrate_up(&ns_db, &ns_user, &migrations, None, &ApplyContext::new())
            .await
            .unwrap()
            .len(),
        3
    );

    let mut db_user = ConnectionConfig::new(server.ws_url(), "tenant", "main").with_credentials("db_admin", "db-pass");
    db_user.auth_level = surql::AuthLevel::Database;
    let db_db = connect(&Client::new(), &db_user, TIMEOUT).await.unwrap();
    assert_eq!(
        migrate_up(&db_db, &db_user, &migrations, Some(1), &ApplyContext::new())
            .await
            .unwrap()
            .len(),
        1
    );

    let mut wrong = db_user.clone();
    wrong.password = Some("not-the-password".into());
    let error = connect(&Client::new(), &wrong, TIMEOUT).await.unwrap_err().to_string();
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
    let error = connect(&Client::new(), &connection, Duration::from_secs(2))
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
    let error = connect(
        &Client::new(),
        &ConnectionConfig::new(closed.clone(), "n", "d"),
        Duration::from_secs(2),
    )
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
    let db = connect(&Client::new(), &bare, TIMEOUT).await.unwrap();
    migrate_up(&db, &bare, &migrations, Some(1), &ApplyContext::new())
        .await
        .unwrap();
    let via_rpc = connect(&Client::new(), &server.connection("same", "main"), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(applied_migrations(&via_rpc).await.unwrap().len(), 1);
    let via_http = connect(&Client::new(), &http, TIMEOUT).await.unwrap();
    assert_eq!(applied_migrations(&via_http).await.unwrap().len(), 1);
}
