//! Reading a database the way the tests check it: plain reads, never creating
//! the namespace or database they look at.

use std::time::Duration;

use serde_json::json;
use surql::ConnectionConfig;
use surql::connection::{Client, Db, connect, connect_read_only, run_query};

const TIMEOUT: Duration = Duration::from_secs(10);

/// oneiriq-surql's history table, with its exact DEFINE statements (the
/// Python `surql` and its Rust port write the same).
pub const ONEIRIQ_HISTORY_TABLE: &str = "
DEFINE TABLE IF NOT EXISTS _migration_history SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS version ON TABLE _migration_history TYPE string;
DEFINE FIELD IF NOT EXISTS description ON TABLE _migration_history TYPE string;
DEFINE FIELD IF NOT EXISTS applied_at ON TABLE _migration_history TYPE datetime;
DEFINE FIELD IF NOT EXISTS checksum ON TABLE _migration_history TYPE string;
DEFINE FIELD IF NOT EXISTS execution_time_ms ON TABLE _migration_history TYPE option<int>;
DEFINE INDEX IF NOT EXISTS version_idx ON TABLE _migration_history COLUMNS version UNIQUE;
";

/// A session on `connection` (creating its namespace and database), on a
/// client of its own.
pub async fn session(connection: &ConnectionConfig) -> Db {
    connect(&Client::new(), connection, TIMEOUT).await.unwrap()
}

/// Versions in `_migration_history`, oldest first; `None` when the database was never created.
pub async fn applied_versions(connection: &ConnectionConfig) -> Option<Vec<String>> {
    let db = connect_read_only(&Client::new(), connection, TIMEOUT).await.unwrap()?;
    let applied = surql::migration::applied_migrations(&db).await.unwrap();
    Some(applied.into_iter().map(|a| a.version).collect())
}

/// Names in `_migration_history`, oldest first; `None` when the database was never created.
pub async fn applied_names(connection: &ConnectionConfig) -> Option<Vec<String>> {
    let db = connect_read_only(&Client::new(), connection, TIMEOUT).await.unwrap()?;
    let applied = surql::migration::applied_migrations(&db).await.unwrap();
    Some(applied.into_iter().map(|a| a.name).collect())
}

/// Table names, sorted; empty when the database was never created.
pub async fn tables(connection: &ConnectionConfig) -> Vec<String> {
    let Some(db) = connect_read_only(&Client::new(), connection, TIMEOUT).await.unwrap() else {
        return Vec::new();
    };
    let info = run_query(&db, "INFO FOR DB;", json!({})).await.unwrap();
    let mut names: Vec<String> = info[0]["tables"].as_object().unwrap().keys().cloned().collect();
    names.sort();
    names
}

/// The rows of `_migration_history`, by version; none when the database was never created.
pub async fn history_rows(connection: &ConnectionConfig) -> Vec<serde_json::Value> {
    let Some(db) = connect_read_only(&Client::new(), connection, TIMEOUT).await.unwrap() else {
        return Vec::new();
    };
    let rows = run_query(&db, "SELECT * FROM _migration_history ORDER BY version;", json!({}))
        .await
        .unwrap();
    rows[0].as_array().cloned().unwrap_or_default()
}

/// Writes `environments.json` with these environments into `dir`.
pub fn write_environments(dir: &std::path::Path, environments: serde_json::Value) {
    std::fs::write(
        dir.join("environments.json"),
        json!({ "environments": environments }).to_string(),
    )
    .unwrap();
}

/// Writes `environments.json` with `n` environments `t0…` (zero-padded past
/// 9) on the server at `ws_url`, namespaces `{prefix}0…`, the password from
/// `${SURQL_TEST_SECRET}`.
pub fn write_server_tenants(dir: &std::path::Path, ws_url: &str, n: usize, prefix: &str) {
    let environments: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let name = if n > 10 { format!("t{i:02}") } else { format!("t{i}") };
            json!({"name": name, "connection": {"db_url": ws_url, "db_ns": format!("{prefix}{i}"), "db": "main",
                "username": "root", "password": "${SURQL_TEST_SECRET}"}})
        })
        .collect();
    write_environments(dir, serde_json::Value::Array(environments));
}

/// Creates the namespace, database and surql's tables.
pub async fn initialise(connection: &ConnectionConfig) {
    let db = surql::connection::connect(&surql::Client::new(), connection, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    surql::connection::ensure_namespace_and_database(&db, connection)
        .await
        .unwrap();
    surql::migration::ensure_history_table(&db).await.unwrap();
}
