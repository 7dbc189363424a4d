//! Connections shared by every environment: embedded datastores opened once
//! per process, and a few signed-in connections per server and credentials
//! (pooled in a [`Client`]) on which each environment gets a session of its
//! own; sign-in; round trips.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use surrealdb::Surreal;
use surrealdb::engine::any::Any;
use surrealdb::opt::auth::{Database, Namespace, Root};

use super::client::{Client, Pooled, RemoteKey};
use super::config::{AuthLevel, ConnectionConfig, ConnectionError, EndpointKind, scrub, sdk_address};

/// Process-wide on purpose, not a client's: an embedded store can be opened
/// only once per process (two opens of one surrealkv folder would fight over
/// its file lock, and two `mem://` opens would be two different databases).
static EMBEDDED: LazyLock<tokio::sync::Mutex<HashMap<String, Surreal<Any>>>> =
    LazyLock::new(|| tokio::sync::Mutex::new(HashMap::new()));

/// Embedded datastores run on a runtime of their own that lives as long as the
/// process (as `EMBEDDED` does, whichever client opened them), so a datastore opened by one caller's runtime (each `#[tokio::test]`
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

/// Why an embedded datastore did not open.
#[derive(Debug, thiserror::Error)]
enum EmbeddedError {
    #[error(transparent)]
    Runtime(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Open(#[from] surrealdb::Error),
}

async fn open_embedded(address: &str) -> Result<Surreal<Any>, EmbeddedError> {
    let mut map = EMBEDDED.lock().await;
    if let Some(db) = map.get(address) {
        // A clone is a new session on the same datastore.
        return Ok(db.clone());
    }
    let owned = address.to_string();
    // surql runs no live queries: without notifications the engine does not
    // allocate its 15,000-slot notification channel.
    let capabilities = surrealdb::opt::capabilities::Capabilities::new().with_live_query_notifications(false);
    let config = surrealdb::opt::Config::new().capabilities(capabilities);
    let db = EMBEDDED_RUNTIME
        .spawn(async move { surrealdb::engine::any::connect((owned, config)).await })
        .await??;
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

/// Connects and signs in (a remote server's connection pooled in `client`);
/// selects nothing.
pub(super) async fn open_session(client: &Client, config: &ConnectionConfig) -> Result<Surreal<Any>, ConnectionError> {
    let kind = config.endpoint_kind()?;
    let address = sdk_address(&config.db_url);
    match kind {
        EndpointKind::Embedded => open_embedded(&address).await.map_err(|error| ConnectionError::Connect {
            url: config.display_url(),
            reason: scrub(&error.to_string(), config),
        }),
        EndpointKind::Remote => open_remote(client, config, &address).await,
    }
}

/// Rebuilt before tokens (1 hour by default in SurrealDB) run out.
const POOLED_FOR: Duration = Duration::from_secs(30 * 60);

/// Forgets `client`'s pooled connections of `config` (after an authentication failure).
pub(super) fn evict(client: &Client, config: &ConnectionConfig) {
    client.evict(&RemoteKey::of(config, &sdk_address(&config.db_url)));
}

async fn open_remote(
    client: &Client,
    config: &ConnectionConfig,
    address: &str,
) -> Result<Surreal<Any>, ConnectionError> {
    let slot = client.remote_slot(RemoteKey::of(config, address));
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
    record_round_trip(client, address, &base).await;
    *pooled = Some(Pooled {
        base: base.clone(),
        created: std::time::Instant::now(),
    });
    Ok(base.clone())
}

/// Times the cheapest request (`version`) on a new pooled connection, best of
/// three, before the deployment loads the server; notes the version it
/// answers (nothing when the server denies the request).
async fn record_round_trip(client: &Client, address: &str, base: &Surreal<Any>) {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let Ok(version) = base.version().await else {
            return;
        };
        best = best.min(started.elapsed());
        if let Some(version) = super::ServerVersion::parse(&version.to_string()) {
            client.note_server_version(address, version);
        }
    }
    client.note_round_trip(address, best);
}

/// The version of `config`'s server as `client` learned it when it
/// connected there (for an embedded store, the engine's once one was
/// opened); `None` before that. Sends nothing.
pub fn known_server_version(client: &Client, config: &ConnectionConfig) -> Option<super::ServerVersion> {
    match config.endpoint_kind().ok()? {
        EndpointKind::Embedded => super::version::embedded(),
        EndpointKind::Remote => client.server_version_at(&sdk_address(&config.db_url)),
    }
}

/// The SurrealDB version of `config`'s server (for an embedded store, the
/// engine linked into this process), connecting through `client` if it has
/// no connection there yet. `Ok(None)` when the server denies the `version`
/// request.
pub async fn server_version(
    client: &Client,
    config: &ConnectionConfig,
    timeout: Duration,
) -> Result<Option<super::ServerVersion>, ConnectionError> {
    // The engine linked into this process: no store is opened for it.
    if config.endpoint_kind()? == EndpointKind::Embedded {
        return Ok(super::version::embedded());
    }
    let address = sdk_address(&config.db_url);
    if let Some(known) = client.server_version_at(&address) {
        return Ok(Some(known));
    }
    with_timeout(config, timeout, async {
        let session = open_session(client, config).await?;
        let asked = match client.server_version_at(&address) {
            Some(known) => Some(known),
            None => super::version::ask(&session).await,
        };
        if let Some(version) = &asked {
            client.note_server_version(&address, version.clone());
        }
        Ok(asked)
    })
    .await
}

/// The round-trip time to `config`'s server, once `client` made a
/// connection to it; `None` for the embedded engine.
pub fn round_trip(client: &Client, config: &ConnectionConfig) -> Option<Duration> {
    if config.endpoint_kind().ok()? != EndpointKind::Remote {
        return None;
    }
    client.round_trip_to(&sdk_address(&config.db_url))
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

/// How many measurements "recent" means.
const RECENT_SAMPLES: usize = 3;

/// Times one cheapest request (`version`) to `config`'s server on a session
/// of `client`'s pooled connection, and remembers it as recent in `client`
/// (while a deployment watches the server, `--max-server-latency-ms`); a
/// failure or no answer within `timeout` counts as `timeout`. `None` for the
/// embedded engine.
pub async fn probe_round_trip(client: &Client, config: &ConnectionConfig, timeout: Duration) -> Option<Duration> {
    if config.endpoint_kind().ok()? != EndpointKind::Remote {
        return None;
    }
    let started = std::time::Instant::now();
    let answered = tokio::time::timeout(timeout, async {
        let session = open_session(client, config).await.ok()?;
        session.version().await.ok()
    })
    .await;
    let took = match answered {
        Ok(Some(_)) => started.elapsed(),
        _ => timeout,
    };
    client.note_recent(config.host(), took, RECENT_SAMPLES);
    Some(took)
}

/// The median of the recent round trips `client` probed to `config`'s
/// server (see [`probe_round_trip`]); `None` until one was measured.
pub fn recent_round_trip(client: &Client, config: &ConnectionConfig) -> Option<Duration> {
    recent_round_trip_to(client, &config.host())
}

/// [`recent_round_trip`] by the server's `host:port` (what scripts see as `env.host`).
pub fn recent_round_trip_to(client: &Client, host: &str) -> Option<Duration> {
    let mut samples = client.recent_to(host);
    samples.sort();
    samples.get(samples.len() / 2).copied()
}
