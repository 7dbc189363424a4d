//! Sessions: connecting for writing, reading without creating anything, the
//! namespace and database listings behind that, and reading many scopes of
//! one server in one request.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use super::config::{AuthLevel, ConnectionConfig, ConnectionError, EndpointKind, escape_ident, scrub, sdk_address};
use super::pool::{RemoteKey, evict, open_session, with_timeout};
use super::query::{
    CONFLICT_ATTEMPTS, Collected, QueryError, QueryErrorKind, conflict_backoff, run_collecting_errors, run_query,
};
use super::{Db, Timeouts};

/// Opens a session on `config`'s endpoint, signs in, and selects the namespace
/// and database. SurrealDB 3 creates a missing namespace or database when a
/// session selects it, so only writers call this; readers use [`connect_read_only`].
pub async fn connect(config: &ConnectionConfig, timeouts: impl Into<Timeouts>) -> Result<Db, ConnectionError> {
    let timeouts = timeouts.into();
    with_timeout(config, timeouts.connect, async {
        let mut fresh = false;
        loop {
            let db = Db::new(open_session(config).await?, timeouts.operation).of_database(config);
            match select(&db, config, false).await {
                Ok(()) => {
                    // Selecting may have created the namespace.
                    note_namespace(config);
                    return Ok(db);
                }
                // A pooled connection whose server restarted or went away
                // fails at its first command (`select` evicted it): once
                // more, on a fresh connection.
                Err(ConnectionError::Connect { .. }) if !fresh && config.endpoint_kind()? == EndpointKind::Remote => {
                    fresh = true;
                }
                Err(error) => return Err(error),
            }
        }
    })
    .await
}

/// Like [`connect`], but never creates anything: `Ok(None)` when the namespace
/// or database does not exist yet (nothing was ever applied there).
pub async fn connect_read_only(
    config: &ConnectionConfig,
    timeouts: impl Into<Timeouts>,
) -> Result<Option<Db>, ConnectionError> {
    Ok(match open_read_only(config, timeouts).await? {
        ReadOnly::Selected(db) => Some(db),
        ReadOnly::Missing(_) => None,
    })
}

/// A read-only session.
#[non_exhaustive]
pub enum ReadOnly {
    /// Namespace and database exist and are selected.
    Selected(Db),
    /// They do not exist yet; the signed-in session (if one was opened) can
    /// still be used to create them with [`select_for_write`].
    Missing(Option<Db>),
}

/// Selects (and so creates) the namespace and database on a session opened by
/// [`open_read_only`], for writing.
pub async fn select_for_write(db: &Db, config: &ConnectionConfig, timeout: Duration) -> Result<(), ConnectionError> {
    with_timeout(config, timeout, async {
        select(db, config, false).await?;
        note_namespace(config);
        Ok(())
    })
    .await
}

/// [`connect_read_only`], keeping the session when nothing exists yet.
pub async fn open_read_only(
    config: &ConnectionConfig,
    timeouts: impl Into<Timeouts>,
) -> Result<ReadOnly, ConnectionError> {
    let timeouts = timeouts.into();
    // Opening a surrealkv store creates its folder: a store that is not there
    // yet has nothing applied, and reading must not create it.
    if let Some(path) = config.db_url.strip_prefix("surrealkv://")
        && !std::path::Path::new(path).exists()
    {
        return Ok(ReadOnly::Missing(None));
    }
    match with_timeout(config, timeouts.connect, read_only_session(config, timeouts)).await {
        // A stale pooled connection (its server restarted): once more, fresh.
        Err(ConnectionError::Connect { .. }) if config.endpoint_kind()? == EndpointKind::Remote => {
            evict(config);
            with_timeout(config, timeouts.connect, read_only_session(config, timeouts)).await
        }
        other => other,
    }
}

async fn read_only_session(config: &ConnectionConfig, timeouts: Timeouts) -> Result<ReadOnly, ConnectionError> {
    {
        let db = Db::new(open_session(config).await?, timeouts.operation).of_database(config);
        let failed = |e: QueryError| ConnectionError::Connect {
            url: config.display_url(),
            reason: scrub(&e.to_string(), config),
        };
        let remote_user = config.endpoint_kind()? == EndpointKind::Remote && config.username.is_some();
        let level = if remote_user {
            config.auth_level
        } else {
            AuthLevel::Root
        };
        if level == AuthLevel::Root && !namespace_exists(&db, config).await.map_err(failed)? {
            return Ok(ReadOnly::Missing(Some(db)));
        }
        if level != AuthLevel::Database {
            select(&db, config, true).await?;
            if !database_exists(&db, config).await.map_err(failed)? {
                return Ok(ReadOnly::Missing(Some(db)));
            }
        }
        select(&db, config, false).await?;
        Ok(ReadOnly::Selected(db))
    }
}

/// Signs in without selecting a database (and selecting the namespace only
/// when `with_namespace`): for listing namespaces or databases. Creates nothing
/// when the namespace exists.
pub async fn connect_unscoped(
    config: &ConnectionConfig,
    timeouts: impl Into<Timeouts>,
    with_namespace: bool,
) -> Result<Db, ConnectionError> {
    let timeouts = timeouts.into();
    with_timeout(config, timeouts.connect, async {
        let db = Db::new(open_session(config).await?, timeouts.operation);
        if with_namespace {
            select(&db, config, true).await?;
        }
        Ok(db)
    })
    .await
}

/// Names listed by `INFO FOR ROOT` (namespaces) or `INFO FOR NS` (databases)
/// and when.
type Listing = (std::time::Instant, std::sync::Arc<std::collections::HashSet<String>>);

type ListingSlot = std::sync::Arc<tokio::sync::Mutex<Option<Listing>>>;

/// What a listing lists: the namespaces of a server (`None`), or the
/// databases of one of its namespaces.
type ListingKey = (String, Option<String>);

static LISTINGS: LazyLock<std::sync::Mutex<HashMap<ListingKey, ListingSlot>>> =
    LazyLock::new(|| std::sync::Mutex::new(HashMap::new()));

const LISTING_FRESH_FOR: Duration = Duration::from_secs(1);

/// Names this process selected for writing (and so created), per listing: a
/// listing taken just before such a write must not hide it.
static NOTED: LazyLock<std::sync::Mutex<HashMap<ListingKey, std::collections::HashSet<String>>>> =
    LazyLock::new(|| std::sync::Mutex::new(HashMap::new()));

fn noted(key: &ListingKey, name: &str) -> bool {
    NOTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(key)
        .is_some_and(|names| names.contains(name))
}

/// Remembers that `config`'s namespace and database exist (a writer selected them).
fn note_namespace(config: &ConnectionConfig) {
    let server = sdk_address(&config.db_url);
    let mut noted = NOTED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    noted
        .entry((server.clone(), None))
        .or_default()
        .insert(config.db_ns.clone());
    noted
        .entry((server, Some(config.db_ns.clone())))
        .or_default()
        .insert(config.db.clone());
}

fn listing_slot(key: &ListingKey) -> ListingSlot {
    LISTINGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(key.clone())
        .or_default()
        .clone()
}

/// A listing taken at most once a second per key: with 10,000 tenants,
/// listing for every tenant made each check O(N). One caller lists while the
/// others wait for its answer. A name created since the listing is seen as
/// missing (uninitialised) for at most that second; writers re-read the
/// history under the lock anyway, and this process's own writes are noted.
async fn cached_listing<F>(
    key: &ListingKey,
    list: F,
) -> Result<std::sync::Arc<std::collections::HashSet<String>>, QueryError>
where
    F: Future<Output = Result<std::collections::HashSet<String>, QueryError>>,
{
    let slot = listing_slot(key);
    let mut listing = slot.lock().await;
    if let Some((_, names)) = listing.as_ref().filter(|(at, _)| at.elapsed() < LISTING_FRESH_FOR) {
        return Ok(names.clone());
    }
    let names = std::sync::Arc::new(list.await?);
    *listing = Some((std::time::Instant::now(), names.clone()));
    Ok(names)
}

/// A fresh listing, if one was taken within the last second.
async fn fresh_listing(key: &ListingKey) -> Option<std::sync::Arc<std::collections::HashSet<String>>> {
    let slot = listing_slot(key);
    let listing = slot.lock().await;
    listing
        .as_ref()
        .filter(|(at, _)| at.elapsed() < LISTING_FRESH_FOR)
        .map(|(_, names)| names.clone())
}

async fn store_listing(key: &ListingKey, names: std::collections::HashSet<String>) {
    *listing_slot(key).lock().await = Some((std::time::Instant::now(), std::sync::Arc::new(names)));
}

/// The keys of one section (`namespaces`, `databases`) of an `INFO FOR …` result.
fn section_names(info: Option<&serde_json::Value>, section: &str) -> std::collections::HashSet<String> {
    info.and_then(|v| v.get(section))
        .and_then(|v| v.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

async fn namespace_exists(db: &Db, config: &ConnectionConfig) -> Result<bool, QueryError> {
    let key = (sdk_address(&config.db_url), None);
    let names = cached_listing(&key, async {
        let root = run_query(db, "INFO FOR ROOT;", serde_json::json!({})).await?;
        Ok(section_names(root.first(), "namespaces"))
    })
    .await?;
    Ok(names.contains(&config.db_ns) || noted(&key, &config.db_ns))
}

/// Whether `config`'s database exists; `db` has its namespace selected.
async fn database_exists(db: &Db, config: &ConnectionConfig) -> Result<bool, QueryError> {
    let key = (sdk_address(&config.db_url), Some(config.db_ns.clone()));
    let names = cached_listing(&key, async {
        let info = run_query(db, "INFO FOR NS;", serde_json::json!({})).await?;
        Ok(section_names(info.first(), "databases"))
    })
    .await?;
    Ok(names.contains(&config.db) || noted(&key, &config.db))
}

/// Which of `configs` (all on one server, with the same root credentials)
/// have their namespace and database: namespaces from one cached listing,
/// databases from `INFO FOR NS` of each namespace not listed within the last
/// second, [`SCOPES_PER_REQUEST`] namespaces per request, each request on a
/// session of its own. Reads only.
pub async fn existing_scopes(
    configs: &[&ConnectionConfig],
    timeout: Duration,
) -> Result<Vec<Result<bool, QueryError>>, ConnectionError> {
    let Some(first) = configs.first().copied() else {
        return Ok(Vec::new());
    };
    let server = sdk_address(&first.db_url);
    let root_key = (server.clone(), None);
    // Signing in first, listing cached or not: wrong credentials fail as one by one.
    let session = connect_unscoped(first, timeout, false).await?;
    let listing = cached_listing(&root_key, async {
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
        .map(|c| namespaces.contains(&c.db_ns) || noted(&root_key, &c.db_ns))
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
        match fresh_listing(&(server.clone(), Some(config.db_ns.clone()))).await {
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
            let session = connect_unscoped(first, timeout, false)
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
                store_listing(&(server.clone(), Some(ns.clone())), names.clone()).await;
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
                Some(Ok(names)) => Ok(names.contains(&config.db) || noted(&db_key, &config.db)),
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

/// Selects the namespace, and the database unless `namespace_only`.
async fn select(db: &Db, config: &ConnectionConfig, namespace_only: bool) -> Result<(), ConnectionError> {
    let mut attempt = 0;
    let result = loop {
        // Selecting may create the namespace/database, which can conflict.
        let result = if namespace_only {
            db.use_ns(&config.db_ns).await.map(|_| ())
        } else {
            db.use_ns(&config.db_ns).use_db(&config.db).await.map(|_| ())
        };
        match result {
            Err(e) if QueryError::from_sdk(&e).is_retryable() && attempt + 1 < CONFLICT_ATTEMPTS => {
                conflict_backoff(attempt).await;
                attempt += 1;
            }
            other => break other,
        }
    };
    result.map_err(|e| {
        // A session that cannot even select may sit on a stale pooled connection.
        evict(config);
        ConnectionError::Connect {
            url: config.display_url(),
            reason: scrub(&e.to_string(), config),
        }
    })
}

/// Creates the namespace and database if they are missing. Only commands that
/// write call this; read-only commands never create anything.
pub async fn ensure_namespace_and_database(db: &Db, config: &ConnectionConfig) -> Result<(), QueryError> {
    match namespace_and_database_sql(config) {
        Some(sql) => super::query::run_idempotent(db, &sql, serde_json::json!({}))
            .await
            .map(|_| ()),
        None => Ok(()),
    }
}

/// The SurrealQL that creates the namespace and database if missing (none
/// for a database user, who cannot define its own database).
pub fn namespace_and_database_sql(config: &ConnectionConfig) -> Option<String> {
    match config.auth_level {
        AuthLevel::Root => Some(format!(
            "DEFINE NAMESPACE IF NOT EXISTS {ns}; USE NS {ns}; DEFINE DATABASE IF NOT EXISTS {db}; USE NS {ns} DB {db};",
            ns = escape_ident(&config.db_ns),
            db = escape_ident(&config.db)
        )),
        AuthLevel::Namespace => Some(format!(
            "DEFINE DATABASE IF NOT EXISTS {db}; USE DB {db};",
            db = escape_ident(&config.db)
        )),
        AuthLevel::Database => None,
    }
}
