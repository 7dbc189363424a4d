//! Connecting to any SurrealDB endpoint: `mem://`, `surrealkv://path`, `ws(s)://`,
//! `http(s)://`. Knows nothing about migrations.
//!
//! Embedded endpoints are opened once per process and shared: a second
//! `connect` to the same `mem://` or `surrealkv://` URL gets a new session on
//! the same datastore (two opens of one surrealkv folder would fight over its
//! file lock, and two `mem://` opens would be two different databases).

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use surrealdb::Surreal;
use surrealdb::engine::any::Any;
use surrealdb::opt::auth::{Database, Namespace, Root};

/// Default time allowed to reach a server and sign in.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Who the credentials belong to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthLevel {
    /// A root user (`DEFINE USER ... ON ROOT`).
    #[default]
    Root,
    /// A namespace user of `db_ns`.
    Namespace,
    /// A database user of `db_ns`/`db`.
    Database,
}

/// Where one database lives and how to sign in to it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// `mem://`, `surrealkv://path`, `ws://host:8000[/rpc]`, `wss://…`, `http(s)://…`.
    pub db_url: String,
    /// Namespace.
    pub db_ns: String,
    /// Database.
    pub db: String,
    /// User name; remote endpoints sign in when it is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password; never printed (see the `Debug` impl and [`ConnectionConfig::display_url`]).
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// Level of the user: `root` (default), `namespace` or `database`.
    #[serde(default)]
    pub auth_level: AuthLevel,
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("db_url", &self.display_url())
            .field("db_ns", &self.db_ns)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("auth_level", &self.auth_level)
            .finish()
    }
}

/// The kind of endpoint a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// In-process datastore (`mem://`, `surrealkv://`).
    Embedded,
    /// A server over WebSocket or HTTP.
    Remote,
}

/// Why a connection could not be made. Messages name the URL without credentials.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(
        "unsupported database url '{url}': use mem://, surrealkv://PATH, ws://HOST:PORT, wss://, http:// or https://"
    )]
    UnsupportedUrl { url: String },
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot connect to {url}: no answer within {}s", timeout.as_secs_f64())]
    Timeout { url: String, timeout: Duration },
    #[error("cannot sign in to {url} as {level:?} user '{user}': {reason}")]
    SignIn {
        url: String,
        level: AuthLevel,
        user: String,
        reason: String,
    },
    #[error("{url}: a password is set but no username")]
    PasswordWithoutUser { url: String },
}

impl ConnectionConfig {
    /// A config with no credentials (embedded endpoints need none).
    pub fn new(db_url: impl Into<String>, db_ns: impl Into<String>, db: impl Into<String>) -> Self {
        Self {
            db_url: db_url.into(),
            db_ns: db_ns.into(),
            db: db.into(),
            username: None,
            password: None,
            auth_level: AuthLevel::Root,
        }
    }

    /// Adds credentials.
    pub fn with_credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// The URL with any `user:password@` part removed, safe for messages.
    pub fn display_url(&self) -> String {
        redact_url(&self.db_url)
    }

    /// Embedded or remote; an error for any other scheme.
    pub fn endpoint_kind(&self) -> Result<EndpointKind, ConnectionError> {
        endpoint_kind(&self.db_url)
    }
}

/// Classifies a URL by scheme.
pub fn endpoint_kind(url: &str) -> Result<EndpointKind, ConnectionError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("mem" | "memory" | "surrealkv") => Ok(EndpointKind::Embedded),
        Some(s @ ("ws" | "wss" | "http" | "https")) if url.len() > s.len() + 3 => Ok(EndpointKind::Remote),
        _ => Err(ConnectionError::UnsupportedUrl { url: redact_url(url) }),
    }
}

/// Removes `user:password@` from a URL so it can be shown.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// The URL handed to the SDK: the guide's `ws://host:8000/rpc` form and the bare
/// `ws://host:8000` name the same server (the SDK appends `/rpc` itself).
fn sdk_address(url: &str) -> String {
    if endpoint_kind(url).ok() != Some(EndpointKind::Remote) {
        return url.to_string();
    }
    let trimmed = url.trim_end_matches('/');
    trimmed.strip_suffix("/rpc").unwrap_or(trimmed).to_string()
}

static EMBEDDED: LazyLock<tokio::sync::Mutex<HashMap<String, Surreal<Any>>>> =
    LazyLock::new(|| tokio::sync::Mutex::new(HashMap::new()));

/// Embedded datastores run on a runtime of their own that lives as long as the
/// process, so a datastore opened by one caller's runtime (each `#[tokio::test]`
/// has one) keeps working after that runtime is gone.
static EMBEDDED_RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("surql-embedded")
        // SurrealDB's parser and executor recurse deeply.
        .thread_stack_size(8 * 1024 * 1024)
        .enable_all()
        .build()
        .expect("cannot start the embedded SurrealDB runtime")
});

async fn open_embedded(address: &str) -> Result<Surreal<Any>, String> {
    let mut map = EMBEDDED.lock().await;
    if let Some(db) = map.get(address) {
        // A clone is a new session on the same datastore.
        return Ok(db.clone());
    }
    let owned = address.to_string();
    let db = EMBEDDED_RUNTIME
        .spawn(async move { surrealdb::engine::any::connect(owned).await })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    map.insert(address.to_string(), db.clone());
    Ok(db)
}

/// Opens a session on `config`'s endpoint, signs in, and selects the namespace
/// and database. SurrealDB 3 creates a missing namespace or database when a
/// session selects it, so only writers call this; readers use [`connect_read_only`].
pub async fn connect(config: &ConnectionConfig, timeout: Duration) -> Result<Surreal<Any>, ConnectionError> {
    with_timeout(config, timeout, async {
        let db = open_session(config).await?;
        select(&db, config, false).await?;
        // Selecting may have created the namespace.
        note_namespace(config);
        Ok(db)
    })
    .await
}

/// Like [`connect`], but never creates anything: `Ok(None)` when the namespace
/// or database does not exist yet (nothing was ever applied there).
pub async fn connect_read_only(
    config: &ConnectionConfig,
    timeout: Duration,
) -> Result<Option<Surreal<Any>>, ConnectionError> {
    Ok(match open_read_only(config, timeout).await? {
        ReadOnly::Selected(db) => Some(db),
        ReadOnly::Missing(_) => None,
    })
}

/// A read-only session.
pub enum ReadOnly {
    /// Namespace and database exist and are selected.
    Selected(Surreal<Any>),
    /// They do not exist yet; the signed-in session (if one was opened) can
    /// still be used to create them with [`select_for_write`].
    Missing(Option<Surreal<Any>>),
}

/// Selects (and so creates) the namespace and database on a session opened by
/// [`open_read_only`], for writing.
pub async fn select_for_write(
    db: &Surreal<Any>,
    config: &ConnectionConfig,
    timeout: Duration,
) -> Result<(), ConnectionError> {
    with_timeout(config, timeout, async {
        select(db, config, false).await?;
        note_namespace(config);
        Ok(())
    })
    .await
}

/// [`connect_read_only`], keeping the session when nothing exists yet.
pub async fn open_read_only(config: &ConnectionConfig, timeout: Duration) -> Result<ReadOnly, ConnectionError> {
    // Opening a surrealkv store creates its folder: a store that is not there
    // yet has nothing applied, and reading must not create it.
    if let Some(path) = config.db_url.strip_prefix("surrealkv://")
        && !std::path::Path::new(path).exists()
    {
        return Ok(ReadOnly::Missing(None));
    }
    with_timeout(config, timeout, async {
        let db = open_session(config).await?;
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
    })
    .await
}

/// Signs in without selecting a database (and selecting the namespace only
/// when `with_namespace`): for listing namespaces or databases. Creates nothing
/// when the namespace exists.
pub async fn connect_unscoped(
    config: &ConnectionConfig,
    timeout: Duration,
    with_namespace: bool,
) -> Result<Surreal<Any>, ConnectionError> {
    with_timeout(config, timeout, async {
        let db = open_session(config).await?;
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

async fn namespace_exists(db: &Surreal<Any>, config: &ConnectionConfig) -> Result<bool, QueryError> {
    let key = (sdk_address(&config.db_url), None);
    let names = cached_listing(&key, async {
        let root = run_query(db, "INFO FOR ROOT;", serde_json::json!({})).await?;
        Ok(section_names(root.first(), "namespaces"))
    })
    .await?;
    Ok(names.contains(&config.db_ns) || noted(&key, &config.db_ns))
}

/// Whether `config`'s database exists; `db` has its namespace selected.
async fn database_exists(db: &Surreal<Any>, config: &ConnectionConfig) -> Result<bool, QueryError> {
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
    let failed = |e: QueryError| ConnectionError::Connect {
        url: first.display_url(),
        reason: scrub(&e.to_string(), first),
    };
    let server = sdk_address(&first.db_url);
    let root_key = (server.clone(), None);
    // Signing in first, listing cached or not: wrong credentials fail as one by one.
    let session = connect_unscoped(first, timeout, false).await?;
    let namespaces = cached_listing(&root_key, async {
        let root = run_query(&session, "INFO FOR ROOT;", serde_json::json!({})).await?;
        Ok(section_names(root.first(), "namespaces"))
    })
    .await
    .map_err(failed)?;
    let ns_exists = |ns: &str| namespaces.contains(ns) || noted(&root_key, ns);

    // Databases of each namespace that exists, listed where no fresh listing is known.
    type Names = std::sync::Arc<std::collections::HashSet<String>>;
    let mut databases: HashMap<String, Result<Names, QueryError>> = HashMap::new();
    let mut to_list: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for config in configs {
        if !ns_exists(&config.db_ns) || !seen.insert(config.db_ns.as_str()) {
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
    let requests = to_list.chunks(SCOPES_PER_REQUEST).map(|chunk| async move {
        let session = connect_unscoped(first, timeout, false).await?;
        let scopes: Vec<(&str, Option<&str>)> = chunk.iter().map(|ns| (ns.as_str(), None)).collect();
        let infos = run_in_each_scope(&session, &scopes, "INFO FOR NS;")
            .await
            .map_err(failed)?;
        Ok::<_, ConnectionError>(chunk.iter().zip(infos).collect::<Vec<_>>())
    });
    for answered in crate::concurrent::bounded(requests, SCOPE_REQUESTS_AT_ONCE).await {
        for (ns, info) in answered? {
            let listed = info.map(|info| section_names(Some(&info), "databases"));
            if let Ok(names) = &listed {
                store_listing(&(server.clone(), Some(ns.clone())), names.clone()).await;
            }
            databases.insert(ns.clone(), listed.map(std::sync::Arc::new));
        }
    }
    Ok(configs
        .iter()
        .map(|config| {
            if !ns_exists(&config.db_ns) {
                return Ok(false);
            }
            let db_key = (server.clone(), Some(config.db_ns.clone()));
            match &databases[&config.db_ns] {
                Ok(names) => Ok(names.contains(&config.db) || noted(&db_key, &config.db)),
                Err(e) => Err(e.clone()),
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
/// user `USE` creates a missing namespace or database. Where a `USE` fails,
/// the statement after it ran in the previous scope, so its result is
/// discarded and the scope gets the `USE` error. `Err` when the request as a
/// whole did not complete.
pub async fn run_in_each_scope(
    db: &Surreal<Any>,
    scopes: &[(&str, Option<&str>)],
    statement: &str,
) -> Result<Vec<Result<serde_json::Value, QueryError>>, QueryError> {
    if scopes.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = String::with_capacity(scopes.len() * (statement.len() + 48));
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
    let Collected {
        mut response, errors, ..
    } = run_collecting_errors(db, &sql, serde_json::json!({}), operation_timeout()).await?;
    let errors: HashMap<usize, String> = errors.into_iter().collect();
    let mut results = Vec::with_capacity(scopes.len());
    for i in 0..scopes.len() {
        let (use_index, index) = (2 * i, 2 * i + 1);
        let result = if let Some(message) = errors.get(&use_index) {
            Err(QueryError::Statement {
                index: 0,
                message: message.clone(),
            })
        } else if let Some(message) = errors.get(&index) {
            Err(QueryError::Statement {
                index: 0,
                message: message.clone(),
            })
        } else {
            response
                .take::<surrealdb::types::Value>(index)
                .map(surrealdb::types::Value::into_json_value)
                .map_err(|e| QueryError::Statement {
                    index: 0,
                    message: e.to_string(),
                })
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

async fn with_timeout<T>(
    config: &ConnectionConfig,
    timeout: Duration,
    attempt: impl Future<Output = Result<T, ConnectionError>>,
) -> Result<T, ConnectionError> {
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(ConnectionError::Timeout {
            url: config.display_url(),
            timeout,
        }),
    }
}

/// Connects and signs in; selects nothing.
async fn open_session(config: &ConnectionConfig) -> Result<Surreal<Any>, ConnectionError> {
    let kind = config.endpoint_kind()?;
    let address = sdk_address(&config.db_url);
    match kind {
        EndpointKind::Embedded => open_embedded(&address)
            .await
            .map_err(|reason| ConnectionError::Connect {
                url: config.display_url(),
                reason: scrub(&reason, config),
            }),
        EndpointKind::Remote => open_remote(config, &address).await,
    }
}

/// Which pooled connection a config may share: same server, same credentials,
/// and for namespace/database users the same namespace/database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RemoteKey {
    address: String,
    username: Option<String>,
    password: Option<String>,
    level: AuthLevel,
    scope: (String, String),
}

impl RemoteKey {
    fn of(config: &ConnectionConfig, address: &str) -> Self {
        let scope = match config.auth_level {
            AuthLevel::Root => (String::new(), String::new()),
            AuthLevel::Namespace => (config.db_ns.clone(), String::new()),
            AuthLevel::Database => (config.db_ns.clone(), config.db.clone()),
        };
        Self {
            address: address.to_string(),
            username: config.username.clone(),
            password: config.password.clone(),
            level: config.auth_level,
            scope,
        }
    }
}

/// A connection signed in once; every `connect` is a new session on it that
/// replays only an `authenticate` with the sign-in's token. A sign-in makes the
/// server verify a password hash (tens of milliseconds); at 1,000 tenants on
/// one server that was most of a deployment's time.
struct Pooled {
    base: Surreal<Any>,
    created: std::time::Instant,
}

/// Rebuilt before tokens (1 hour by default in SurrealDB) run out.
const POOLED_FOR: Duration = Duration::from_secs(30 * 60);

type RemoteSlot = std::sync::Arc<tokio::sync::Mutex<Option<Pooled>>>;

/// Connections per server and credentials. The SDK serves all sessions of one
/// connection through one socket and one router task; with 16 environments
/// at once a single connection queues them.
pub const CONNECTIONS_PER_SERVER: usize = 4;

static REMOTE: LazyLock<std::sync::Mutex<HashMap<(RemoteKey, usize), RemoteSlot>>> =
    LazyLock::new(|| std::sync::Mutex::new(HashMap::new()));

/// The pooled connections of a key are used in turn.
fn remote_slot(key: RemoteKey) -> RemoteSlot {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % CONNECTIONS_PER_SERVER;
    REMOTE
        .lock()
        .expect("connection pool poisoned")
        .entry((key, index))
        .or_default()
        .clone()
}

/// Forgets the pooled connections of `config` (after an authentication failure).
fn evict(config: &ConnectionConfig) {
    let key = RemoteKey::of(config, &sdk_address(&config.db_url));
    REMOTE
        .lock()
        .expect("connection pool poisoned")
        .retain(|(pooled, _), _| *pooled != key);
}

async fn open_remote(config: &ConnectionConfig, address: &str) -> Result<Surreal<Any>, ConnectionError> {
    let slot = remote_slot(RemoteKey::of(config, address));
    // One sign-in per key even when many environments connect at once.
    let mut pooled = slot.lock().await;
    if let Some(existing) = pooled.as_ref().filter(|p| p.created.elapsed() < POOLED_FOR) {
        return Ok(existing.base.clone());
    }
    let base = surrealdb::engine::any::connect(address)
        .await
        .map_err(|e| ConnectionError::Connect {
            url: config.display_url(),
            reason: scrub(&e.to_string(), config),
        })?;
    if let Some(token) = sign_in(&base.clone(), config).await? {
        base.authenticate(token).await.map_err(|e| ConnectionError::SignIn {
            url: config.display_url(),
            level: config.auth_level,
            user: config.username.clone().unwrap_or_default(),
            reason: scrub(&e.to_string(), config),
        })?;
    }
    record_round_trip(address, &base).await;
    *pooled = Some(Pooled {
        base: base.clone(),
        created: std::time::Instant::now(),
    });
    Ok(base.clone())
}

/// Round-trip times of the servers this process connected to, by address.
static ROUND_TRIPS: LazyLock<std::sync::Mutex<HashMap<String, Duration>>> = LazyLock::new(Default::default);

/// Times the cheapest request (`version`) on a new pooled connection, best of
/// three, before the deployment loads the server.
async fn record_round_trip(address: &str, base: &Surreal<Any>) {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        if base.version().await.is_err() {
            return;
        }
        best = best.min(started.elapsed());
    }
    let mut known = ROUND_TRIPS.lock().expect("round trips poisoned");
    let entry = known.entry(address.to_string()).or_insert(best);
    *entry = (*entry).min(best);
}

/// The round-trip time to `config`'s server, once a connection to it was
/// made; `None` for the embedded engine.
pub fn round_trip(config: &ConnectionConfig) -> Option<Duration> {
    if config.endpoint_kind().ok()? != EndpointKind::Remote {
        return None;
    }
    let address = sdk_address(&config.db_url);
    ROUND_TRIPS.lock().expect("round trips poisoned").get(&address).copied()
}

/// True for errors SurrealDB says can be retried (a write conflict between
/// two runners creating the same namespace, table or lock at once).
pub fn is_retryable(message: &str) -> bool {
    message.contains("can be retried") || message.contains("Transaction conflict")
}

/// Attempts for idempotent operations that hit a retryable conflict.
const CONFLICT_ATTEMPTS: u32 = 8;

async fn conflict_backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt + 1))).await;
}

/// Selects the namespace, and the database unless `namespace_only`.
async fn select(db: &Surreal<Any>, config: &ConnectionConfig, namespace_only: bool) -> Result<(), ConnectionError> {
    let mut attempt = 0;
    let result = loop {
        // Selecting may create the namespace/database, which can conflict.
        let result = if namespace_only {
            db.use_ns(&config.db_ns).await.map(|_| ())
        } else {
            db.use_ns(&config.db_ns).use_db(&config.db).await.map(|_| ())
        };
        match result {
            Err(e) if is_retryable(&e.to_string()) && attempt + 1 < CONFLICT_ATTEMPTS => {
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

/// Signs `db` in; returns the token (none without a user).
async fn sign_in(
    db: &Surreal<Any>,
    config: &ConnectionConfig,
) -> Result<Option<surrealdb::opt::auth::Token>, ConnectionError> {
    let Some(username) = config.username.clone() else {
        if config.password.is_some() {
            return Err(ConnectionError::PasswordWithoutUser {
                url: config.display_url(),
            });
        }
        return Ok(None);
    };
    let password = config.password.clone().unwrap_or_default();
    let result = match config.auth_level {
        AuthLevel::Root => {
            db.signin(Root {
                username: username.clone(),
                password,
            })
            .await
        }
        AuthLevel::Namespace => {
            db.signin(Namespace {
                namespace: config.db_ns.clone(),
                username: username.clone(),
                password,
            })
            .await
        }
        AuthLevel::Database => {
            db.signin(Database {
                namespace: config.db_ns.clone(),
                database: config.db.clone(),
                username: username.clone(),
                password,
            })
            .await
        }
    };
    result.map(Some).map_err(|e| ConnectionError::SignIn {
        url: config.display_url(),
        level: config.auth_level,
        user: username,
        reason: scrub(&e.to_string(), config),
    })
}

/// Removes the password (and the raw URL, which may embed it) from a message.
pub fn scrub(message: &str, config: &ConnectionConfig) -> String {
    let mut out = message.replace(&config.db_url, &config.display_url());
    if let Some(password) = config.password.as_deref().filter(|p| !p.is_empty()) {
        out = out.replace(password, "***");
    }
    out
}

/// Creates the namespace and database if they are missing. Only commands that
/// write call this; read-only commands never create anything.
pub async fn ensure_namespace_and_database(
    db: &Surreal<Any>,
    config: &ConnectionConfig,
) -> Result<(), surrealdb::Error> {
    if let Some(sql) = namespace_and_database_sql(config) {
        let mut attempt = 0;
        loop {
            match db.query(sql.as_str()).await.and_then(|r| r.check()) {
                Err(e) if is_retryable(&e.to_string()) && attempt + 1 < CONFLICT_ATTEMPTS => {
                    conflict_backoff(attempt).await;
                    attempt += 1;
                }
                other => {
                    other?;
                    break;
                }
            }
        }
    }
    Ok(())
}

/// [`run_query`] for idempotent statements (`DEFINE … IF NOT EXISTS`, a
/// delete of one's own record), retried on write conflicts.
pub async fn run_idempotent(
    db: &Surreal<Any>,
    sql: &str,
    vars: serde_json::Value,
) -> Result<Vec<serde_json::Value>, QueryError> {
    let mut attempt = 0;
    loop {
        match run_query(db, sql, vars.clone()).await {
            Err(e) if is_retryable(&e.to_string()) && attempt + 1 < CONFLICT_ATTEMPTS => {
                conflict_backoff(attempt).await;
                attempt += 1;
            }
            other => return other,
        }
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

/// Default time one query (one migration's transaction included) may take.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(300);

static OPERATION_TIMEOUT_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(DEFAULT_OPERATION_TIMEOUT.as_millis() as u64);

/// Sets how long any one query may take before it fails (process-wide): a
/// server that accepts connections but never answers must not hang a run.
pub fn set_operation_timeout(timeout: Duration) {
    OPERATION_TIMEOUT_MS.store(timeout.as_millis().max(1) as u64, std::sync::atomic::Ordering::Relaxed);
}

/// The current per-query timeout.
pub fn operation_timeout() -> Duration {
    Duration::from_millis(OPERATION_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed))
}

/// A query that failed, as a whole or in one statement.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    /// The request did not complete (connection lost, timeout, protocol error).
    #[error("{0}")]
    Transport(String),
    /// A statement returned an error; `index` counts statements from 0.
    #[error("statement {} failed: {message}", index + 1)]
    Statement { index: usize, message: String },
}

/// SurrealDB marks every other statement of a failed transaction with this text;
/// the statement that really failed carries the useful message.
const NOT_EXECUTED: &str = "not executed due to a failed transaction";

/// Runs `sql` with `vars` (a JSON object) and returns each statement's result
/// as JSON. Any statement error fails the whole call: a clean return of the
/// request proves nothing on its own.
pub async fn run_query(
    db: &Surreal<Any>,
    sql: &str,
    vars: serde_json::Value,
) -> Result<Vec<serde_json::Value>, QueryError> {
    let mut response = run_checked(db, sql, vars).await?;
    let count = response.num_statements();
    let mut results = Vec::with_capacity(count);
    for index in 0..count {
        let value: surrealdb::types::Value = response.take(index).map_err(|e| QueryError::Statement {
            index,
            message: e.to_string(),
        })?;
        results.push(value.into_json_value());
    }
    Ok(results)
}

/// [`run_query`] for statements whose results nobody reads (a migration's
/// own statements): errors are checked, results are not converted.
pub async fn run_statements(db: &Surreal<Any>, sql: &str, vars: serde_json::Value) -> Result<(), QueryError> {
    run_checked(db, sql, vars).await.map(|_| ())
}

async fn run_checked(
    db: &Surreal<Any>,
    sql: &str,
    vars: serde_json::Value,
) -> Result<surrealdb::IndexedResults, QueryError> {
    let Collected { response, errors, .. } = run_collecting_errors(db, sql, vars, operation_timeout()).await?;
    if let Some((index, message)) = first_cause(&errors) {
        return Err(QueryError::Statement {
            index: *index,
            message: message.clone(),
        });
    }
    Ok(response)
}

/// The error that explains the others (sorted by index): the first one that
/// is not a follow-on of a failed transaction, else the first.
pub fn first_cause(errors: &[(usize, String)]) -> Option<&(usize, String)> {
    errors
        .iter()
        .find(|(_, message)| !is_follow_on_error(message))
        .or(errors.first())
}

/// A response with its statement errors taken out.
pub struct Collected {
    /// The results of the statements that did not fail.
    pub response: surrealdb::IndexedResults,
    /// (index, message) of every failed statement, in statement order.
    pub errors: Vec<(usize, String)>,
    /// How many statements ran, failed ones included.
    pub statements: usize,
}

/// Runs `sql` within `timeout` and collects every statement's error; only a
/// request that did not complete is an `Err`.
pub async fn run_collecting_errors(
    db: &Surreal<Any>,
    sql: &str,
    vars: impl surrealdb::types::SurrealValue,
    timeout: Duration,
) -> Result<Collected, QueryError> {
    let mut response = match tokio::time::timeout(timeout, db.query(sql).bind(vars)).await {
        Ok(response) => response.map_err(|e| QueryError::Transport(e.to_string()))?,
        Err(_) => {
            return Err(QueryError::Transport(format!(
                "no answer within {}s (operation timeout; set it with --operation-timeout)",
                timeout.as_secs_f64()
            )));
        }
    };
    let statements = response.num_statements();
    let mut errors: Vec<(usize, String)> = response
        .take_errors()
        .into_iter()
        .map(|(index, error)| (index, error.to_string()))
        .collect();
    errors.sort_by_key(|(index, _)| *index);
    Ok(Collected {
        response,
        errors,
        statements,
    })
}

/// True for the error SurrealDB gives the statements of a transaction that
/// did not fail themselves but were not executed (or committed) because
/// another statement of it failed.
pub fn is_follow_on_error(message: &str) -> bool {
    message.contains(NOT_EXECUTED)
        || message.contains("not executed due to a cancelled transaction")
        || message.contains("transaction was aborted due to a prior error")
}

/// Resolves once a remote endpoint stops answering (two failed probes a
/// second apart); never for embedded endpoints. Raced against long queries so
/// a server that died is noticed in seconds, not after the operation timeout
/// (the SDK keeps waiting for a dead socket).
pub async fn wait_until_unreachable(config: &ConnectionConfig) -> String {
    let address = match config.endpoint_kind() {
        Ok(EndpointKind::Remote) => socket_address(&config.db_url),
        _ => None,
    };
    let Some(address) = address else {
        return std::future::pending().await;
    };
    let plaintext = config.db_url.starts_with("ws://") || config.db_url.starts_with("http://");
    let mut failures = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let answered = tokio::time::timeout(Duration::from_secs(2), probe(&address, plaintext)).await;
        match answered {
            Ok(true) => failures = 0,
            _ => failures += 1,
        }
        if failures >= 2 {
            return format!("connection lost: {} stopped answering", config.display_url());
        }
    }
}

/// One liveness probe. Over plain text it asks for `/health` and takes any
/// HTTP answer but a gateway's 502/503/504 as alive: a load balancer or proxy
/// in front of a dead server still accepts connections. Over TLS it can only
/// check that connections are accepted.
async fn probe(address: &str, plaintext: bool) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return false;
    };
    if !plaintext {
        return true;
    }
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    // "HTTP/1.1 200"
    read == head.len() && head.starts_with(b"HTTP/") && !matches!(&head[9..12], b"502" | b"503" | b"504")
}

/// `host:port` of a ws/http URL (default ports 80/443).
fn socket_address(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map(|(_, a)| a).unwrap_or(authority);
    if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
    {
        return Some(authority.to_string());
    }
    let port = if matches!(scheme, "wss" | "https") { 443 } else { 80 };
    Some(format!("{authority}:{port}"))
}

/// Quotes an identifier for SurrealQL with backticks.
pub fn escape_ident(ident: &str) -> String {
    format!("`{}`", ident.replace('\\', "\\\\").replace('`', "\\`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener answering every connection with `answer` (or closing it at
    /// once when `None`); its address.
    async fn answering(answer: Option<&'static str>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 256];
                let _ = stream.read(&mut request).await;
                if let Some(answer) = answer {
                    let _ = stream.write_all(answer.as_bytes()).await;
                }
            }
        });
        address
    }

    #[tokio::test]
    async fn the_liveness_probe_takes_any_http_answer_but_a_gateways_error() {
        let healthy = answering(Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")).await;
        assert!(probe(&healthy, true).await);
        // A reverse proxy that does not route /health: the server is alive.
        let not_routed = answering(Some("HTTP/1.1 404 Not Found\r\n\r\n")).await;
        assert!(probe(&not_routed, true).await);
        // A proxy in front of a dead server accepts the connection, then says so.
        for gateway in [
            "HTTP/1.1 502 Bad Gateway\r\n\r\n",
            "HTTP/1.1 503 Service Unavailable\r\n\r\n",
        ] {
            let dead_behind = answering(Some(gateway)).await;
            assert!(!probe(&dead_behind, true).await, "{gateway}");
        }
        let hangs_up = answering(None).await;
        assert!(!probe(&hangs_up, true).await);
        // Over TLS only the connection can be checked.
        assert!(probe(&hangs_up, false).await);
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        };
        assert!(!probe(&closed, true).await);
    }

    #[test]
    fn urls_with_credentials_are_redacted() {
        assert_eq!(redact_url("ws://root:hunter2@db:8000/rpc"), "ws://***@db:8000/rpc");
        assert_eq!(redact_url("ws://db:8000/rpc"), "ws://db:8000/rpc");
        assert_eq!(redact_url("surrealkv://data/x@y"), "surrealkv://data/x@y");
    }

    #[test]
    fn rpc_suffix_and_bare_host_name_the_same_server() {
        assert_eq!(sdk_address("ws://h:8000/rpc"), "ws://h:8000");
        assert_eq!(sdk_address("ws://h:8000/"), "ws://h:8000");
        assert_eq!(sdk_address("ws://h:8000"), "ws://h:8000");
        assert_eq!(sdk_address("mem://"), "mem://");
    }

    #[test]
    fn socket_addresses_come_from_urls() {
        assert_eq!(socket_address("ws://h:8000/rpc").as_deref(), Some("h:8000"));
        assert_eq!(
            socket_address("wss://u:p@db.example.com/rpc").as_deref(),
            Some("db.example.com:443")
        );
        assert_eq!(socket_address("http://10.0.0.1").as_deref(), Some("10.0.0.1:80"));
    }

    #[test]
    fn only_known_schemes_are_accepted() {
        for ok in [
            "mem://",
            "surrealkv://x",
            "ws://h:1",
            "wss://h",
            "http://h",
            "https://h",
        ] {
            assert!(endpoint_kind(ok).is_ok(), "{ok}");
        }
        for bad in ["postgres://h", "localhost:8000", "ws://", "rocksdb://x"] {
            assert!(endpoint_kind(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = ConnectionConfig::new("ws://u:pw1@h:1", "n", "d").with_credentials("u", "s3cret");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("pw1"), "{shown}");
    }
}
