//! Connections shared by every environment: embedded datastores opened once
//! per process, and a few signed-in connections per server and credentials
//! on which each environment gets a session of its own.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use surrealdb::Surreal;
use surrealdb::engine::any::Any;
use surrealdb::opt::auth::{Database, Namespace, Root};

use super::config::{AuthLevel, ConnectionConfig, ConnectionError, EndpointKind, scrub, sdk_address};

static EMBEDDED: LazyLock<tokio::sync::Mutex<HashMap<String, Surreal<Any>>>> =
    LazyLock::new(|| tokio::sync::Mutex::new(HashMap::new()));

/// Embedded datastores run on a runtime of their own that lives as long as the
/// process, so a datastore opened by one caller's runtime (each `#[tokio::test]`
/// has one) keeps working after that runtime is gone.
#[allow(clippy::expect_used)] // no threads for the embedded engine: nothing can run, nothing was touched
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

/// Forgets the embedded datastore at `config`'s address: it closes once its
/// last session is dropped, and another process may open it (a long-running
/// reader such as the dashboard must not hold a deployment's store).
pub async fn close_embedded(config: &ConnectionConfig) {
    if config.endpoint_kind().ok() == Some(EndpointKind::Embedded) {
        EMBEDDED.lock().await.remove(&sdk_address(&config.db_url));
    }
}

pub(super) async fn with_timeout<T>(
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
pub(super) async fn open_session(config: &ConnectionConfig) -> Result<Surreal<Any>, ConnectionError> {
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
pub(super) struct RemoteKey {
    address: String,
    username: Option<String>,
    password: Option<String>,
    level: AuthLevel,
    scope: (String, String),
}

impl RemoteKey {
    pub(super) fn of(config: &ConnectionConfig, address: &str) -> Self {
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
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry((key, index))
        .or_default()
        .clone()
}

/// Forgets the pooled connections of `config` (after an authentication failure).
pub(super) fn evict(config: &ConnectionConfig) {
    let key = RemoteKey::of(config, &sdk_address(&config.db_url));
    REMOTE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    let mut known = ROUND_TRIPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
    ROUND_TRIPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&address)
        .copied()
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

/// The last few round trips measured to each server while a deployment
/// watches it (`--max-server-latency-ms`), newest last.
static RECENT: LazyLock<std::sync::Mutex<HashMap<String, std::collections::VecDeque<Duration>>>> =
    LazyLock::new(Default::default);

/// How many measurements "recent" means.
const RECENT_SAMPLES: usize = 3;

/// Times one cheapest request (`version`) to `config`'s server on a session
/// of its pooled connection, and remembers it as recent; a failure or no
/// answer within `timeout` counts as `timeout`. `None` for the embedded engine.
pub async fn probe_round_trip(config: &ConnectionConfig, timeout: Duration) -> Option<Duration> {
    if config.endpoint_kind().ok()? != EndpointKind::Remote {
        return None;
    }
    let started = std::time::Instant::now();
    let answered = tokio::time::timeout(timeout, async {
        let session = open_session(config).await.ok()?;
        session.version().await.ok()
    })
    .await;
    let took = match answered {
        Ok(Some(_)) => started.elapsed(),
        _ => timeout,
    };
    let mut recent = RECENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let samples = recent.entry(config.host()).or_default();
    samples.push_back(took);
    while samples.len() > RECENT_SAMPLES {
        samples.pop_front();
    }
    Some(took)
}

/// The median of the recent round trips to `config`'s server (see
/// [`probe_round_trip`]); `None` until one was measured.
pub fn recent_round_trip(config: &ConnectionConfig) -> Option<Duration> {
    recent_round_trip_to(&config.host())
}

/// [`recent_round_trip`] by the server's `host:port` (what scripts see as `env.host`).
pub fn recent_round_trip_to(host: &str) -> Option<Duration> {
    let recent = RECENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut samples: Vec<Duration> = recent.get(host)?.iter().copied().collect();
    samples.sort();
    samples.get(samples.len() / 2).copied()
}
