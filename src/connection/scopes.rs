//! Reading many tenants of one server in one request: a session that
//! switches scope with `USE`, the existing scopes, statements run in each.

use std::collections::HashMap;
use std::time::Duration;

use super::Db;
use super::client::{Client, RemoteKey};
use super::config::{AuthLevel, ConnectionConfig, ConnectionError, EndpointKind, escape_ident, scrub, sdk_address};
use super::listing::{cached_listing, fresh_listing, section_names, store_listing};
use super::pool::with_timeout;
use super::query::{Collected, QueryError, QueryErrorKind, run_collecting_errors, run_query};
use super::session::connect_unscoped;

/// Which of `configs` (all on one server, with the same root credentials)
/// have their namespace and database: namespaces from one listing cached in
/// `client`, databases from `INFO FOR NS` of each namespace not listed within
/// the last second, [`SCOPES_PER_REQUEST`] namespaces per request, each
/// request on a session of its own. Reads only.
pub async fn existing_scopes(
    client: &Client,
    configs: &[&ConnectionConfig],
    timeout: Duration,
) -> Result<Vec<Result<bool, QueryError>>, ConnectionError> {
    let Some(first) = configs.first().copied() else {
        return Ok(Vec::new());
    };
    let server = sdk_address(&first.db_url);
    let root_key = (server.clone(), None);
    // Signing in first, listing cached or not: wrong credentials fail as one by one.
    let session = connect_unscoped(client, first, timeout, false).await?;
    let listing = cached_listing(client, &root_key, async {
        let root = run_query(&session, "INFO FOR ROOT;", serde_json::json!({})).await?;
        Ok(section_names(root.first(), "namespaces"))
    });
    let namespaces = with_timeout(first, timeout, async {
        listing.await.map_err(|e| ConnectionError::Connect {
            url: first.display_url(),
            reason: scrub(&e.to_string(), first),
        })
    })
    .await?;
    // Decided once per config: a namespace noted meanwhile must not change the
    // answer between the listing below and the lookup at the end.
    let ns_exists: Vec<bool> = configs
        .iter()
        .map(|c| namespaces.contains(&c.db_ns) || client.noted(&root_key, &c.db_ns))
        .collect();

    // Databases of each namespace that exists, listed where no fresh listing is known.
    type Names = std::sync::Arc<std::collections::HashSet<String>>;
    let mut databases: HashMap<String, Result<Names, QueryError>> = HashMap::new();
    let mut to_list: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (config, _) in configs.iter().zip(&ns_exists).filter(|(_, exists)| **exists) {
        if !seen.insert(config.db_ns.as_str()) {
            continue;
        }
        match fresh_listing(client, &(server.clone(), Some(config.db_ns.clone()))).await {
            Some(names) => {
                databases.insert(config.db_ns.clone(), Ok(names));
            }
            None => to_list.push(config.db_ns.clone()),
        }
    }
    drop(session);
    // A request that fails or times out fails only its own namespaces.
    let requests = to_list.chunks(SCOPES_PER_REQUEST).map(|chunk| async move {
        let read = async {
            let session = connect_unscoped(client, first, timeout, false)
                .await
                .map_err(|e| QueryError::new(QueryErrorKind::ConnectionLost, e.to_string()))?;
            let scopes: Vec<(&str, Option<&str>)> = chunk.iter().map(|ns| (ns.as_str(), None)).collect();
            run_in_each_scope(&session, &scopes, "INFO FOR NS;").await
        };
        let infos = match tokio::time::timeout(timeout, read).await {
            Ok(Ok(infos)) => infos,
            Ok(Err(e)) => vec![Err(e); chunk.len()],
            Err(_) => vec![Err(QueryError::timed_out(timeout)); chunk.len()],
        };
        chunk.iter().zip(infos).collect::<Vec<_>>()
    });
    for answered in crate::concurrent::bounded(requests, SCOPE_REQUESTS_AT_ONCE).await {
        for (ns, info) in answered {
            let listed = info.map(|info| section_names(Some(&info.into_json_value()), "databases"));
            if let Ok(names) = &listed {
                store_listing(client, &(server.clone(), Some(ns.clone())), names.clone()).await;
            }
            databases.insert(ns.clone(), listed.map(std::sync::Arc::new));
        }
    }
    Ok(configs
        .iter()
        .zip(ns_exists)
        .map(|(config, ns_exists)| {
            if !ns_exists {
                return Ok(false);
            }
            let db_key = (server.clone(), Some(config.db_ns.clone()));
            match databases.get(&config.db_ns) {
                Some(Ok(names)) => Ok(names.contains(&config.db) || client.noted(&db_key, &config.db)),
                Some(Err(e)) => Err(e.clone()),
                None => Err(QueryError::unreadable(format!(
                    "namespace '{}' was not listed",
                    config.db_ns
                ))),
            }
        })
        .collect())
}

/// Requests of [`run_in_each_scope`] in flight per server.
pub const SCOPE_REQUESTS_AT_ONCE: usize = 8;

/// Scopes (namespace, optional database) per request of [`run_in_each_scope`]:
/// large enough that 10,000 tenants take a few dozen round trips, small
/// enough that one answer stays well under the operation timeout.
pub const SCOPES_PER_REQUEST: usize = 250;

/// Runs one read-only `statement` in each scope in ONE request: `USE NS …
/// [DB …]; statement;` per scope. Only for scopes known to exist: for a root
/// user `USE` creates a missing namespace or database. The request is one
/// read transaction (SurrealDB 3.3.5 spends about a third less server time on
/// its statements than on as many transactions of their own, BENCHMARKS.md);
/// when any statement fails, a failed transaction fails them all, so the
/// request is sent again without one to tell each scope its own answer.
/// There, where a `USE` fails, the statement after it ran in the previous
/// scope, so its result is discarded and the scope gets the `USE` error.
/// `Err` when the request as a whole did not complete.
pub async fn run_in_each_scope(
    db: &Db,
    scopes: &[(&str, Option<&str>)],
    statement: &str,
) -> Result<Vec<Result<surrealdb::types::Value, QueryError>>, QueryError> {
    if scopes.is_empty() {
        return Ok(Vec::new());
    }
    let sql = in_each_scope_sql(scopes, statement);
    let together = run_collecting_errors(db, &sql, serde_json::json!({}), db.operation_timeout()).await?;
    if together.errors.is_empty() {
        return take_scope_results(together, scopes.len(), 1);
    }
    let one_by_one = &sql[BEGIN.len()..sql.len() - COMMIT.len()];
    let alone = run_collecting_errors(db, one_by_one, serde_json::json!({}), db.operation_timeout()).await?;
    take_scope_results(alone, scopes.len(), 0)
}

/// Runs one read-only `statement` in each scope in ONE transaction, scopes
/// NOT known to exist included: `Ok(None)` unless every statement
/// succeeded. For a root user `USE` creates a missing namespace or database,
/// but inside a transaction whose statement then fails (SurrealDB 3 refuses
/// to read an undefined table, and a database just created has none) that is
/// rolled back with the rest; only the server's internal id counter may have
/// moved on (it reserves ids in transactions of its own). So for a statement
/// that reads a table, success means every scope existed and no namespace or
/// database was created; saves asking which exist first (`INFO FOR NS` of
/// every namespace, a quarter of the time of `status` of 10,000 tenants,
/// BENCHMARKS.md).
pub async fn run_in_every_scope_or_none(
    db: &Db,
    scopes: &[(&str, Option<&str>)],
    table_statement: &str,
) -> Result<Option<Vec<surrealdb::types::Value>>, QueryError> {
    if scopes.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let sql = in_each_scope_sql(scopes, table_statement);
    let answer = run_collecting_errors(db, &sql, serde_json::json!({}), db.operation_timeout()).await?;
    if !answer.errors.is_empty() {
        return Ok(None);
    }
    let values = take_scope_results(answer, scopes.len(), 1)?;
    Ok(values.into_iter().collect::<Result<Vec<_>, _>>().ok())
}

const BEGIN: &str = "BEGIN TRANSACTION;\n";
const COMMIT: &str = "COMMIT TRANSACTION;\n";

/// `BEGIN; USE NS … [DB …]; statement; …; COMMIT;`
fn in_each_scope_sql(scopes: &[(&str, Option<&str>)], statement: &str) -> String {
    let mut sql = String::with_capacity(scopes.len() * (statement.len() + 48) + 32);
    sql.push_str(BEGIN);
    for (ns, database) in scopes {
        sql.push_str("USE NS ");
        sql.push_str(&escape_ident(ns));
        if let Some(database) = database {
            sql.push_str(" DB ");
            sql.push_str(&escape_ident(database));
        }
        sql.push_str("; ");
        sql.push_str(statement);
        sql.push('\n');
    }
    sql.push_str(COMMIT);
    sql
}

/// Each scope's value from an answer of [`run_in_each_scope`] whose first
/// `USE` is statement `first`.
fn take_scope_results(
    answer: Collected,
    scopes: usize,
    first: usize,
) -> Result<Vec<Result<surrealdb::types::Value, QueryError>>, QueryError> {
    let Collected {
        mut response, errors, ..
    } = answer;
    let errors: HashMap<usize, QueryError> = errors
        .into_iter()
        .map(|error| (error.statement().unwrap_or_default(), error))
        .collect();
    let mut results = Vec::with_capacity(scopes);
    for i in 0..scopes {
        let (use_index, index) = (first + 2 * i, first + 2 * i + 1);
        // A failed `USE` means the statement ran in the previous scope: its error wins.
        let result = if let Some(error) = errors.get(&use_index).or_else(|| errors.get(&index)) {
            Err(error.clone().at_statement(0))
        } else {
            response
                .take::<surrealdb::types::Value>(index)
                .map_err(|e| QueryError::from_sdk(&e).at_statement(0))
        };
        results.push(result);
    }
    Ok(results)
}

/// True when many environments of `config`'s server can be read through one
/// session that switches scope with `USE`: a root user of a remote server.
/// (Embedded stores answer in microseconds; other users may not switch.)
pub fn reads_many_scopes(config: &ConnectionConfig) -> bool {
    config.endpoint_kind().ok() == Some(EndpointKind::Remote)
        && config.username.is_some()
        && config.auth_level == AuthLevel::Root
}

/// Environments that may share one session of [`reads_many_scopes`]: same
/// server, same credentials.
pub fn shared_session_key(config: &ConnectionConfig) -> impl std::hash::Hash + Eq + use<> {
    RemoteKey::of(config, &sdk_address(&config.db_url))
}
