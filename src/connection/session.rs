//! Sessions: connecting for writing, reading without creating anything,
//! selecting a namespace and database (and creating them).

use std::time::Duration;

use super::client::Client;
use super::config::{AuthLevel, ConnectionConfig, ConnectionError, EndpointKind, escape_ident, scrub};
use super::listing::{database_exists, namespace_exists, note_namespace};
use super::pool::{evict, open_session, with_timeout};
use super::query::{CONFLICT_ATTEMPTS, QueryError, conflict_backoff};
use super::{Db, Timeouts};

/// Opens a session on `config`'s endpoint (on a connection pooled in
/// `client`), signs in, and selects the namespace and database. SurrealDB 3
/// creates a missing namespace or database when a session selects it, so
/// only writers call this; readers use [`connect_read_only`].
pub async fn connect(
    client: &Client,
    config: &ConnectionConfig,
    timeouts: impl Into<Timeouts>,
) -> Result<Db, ConnectionError> {
    let timeouts = timeouts.into();
    with_timeout(config, timeouts.connect, async {
        let mut fresh = false;
        loop {
            let db = Db::new(client, open_session(client, config).await?, timeouts.operation).of_database(config);
            match select(&db, config, false).await {
                Ok(()) => {
                    // Selecting may have created the namespace.
                    note_namespace(client, config);
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
    client: &Client,
    config: &ConnectionConfig,
    timeouts: impl Into<Timeouts>,
) -> Result<Option<Db>, ConnectionError> {
    Ok(match open_read_only(client, config, timeouts).await? {
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
/// [`open_read_only`], for writing (noted in the session's client).
pub async fn select_for_write(db: &Db, config: &ConnectionConfig, timeout: Duration) -> Result<(), ConnectionError> {
    with_timeout(config, timeout, async {
        select(db, config, false).await?;
        note_namespace(db.client(), config);
        Ok(())
    })
    .await
}

/// [`connect_read_only`], keeping the session when nothing exists yet.
pub async fn open_read_only(
    client: &Client,
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
    match with_timeout(config, timeouts.connect, read_only_session(client, config, timeouts)).await {
        // A stale pooled connection (its server restarted): once more, fresh.
        Err(ConnectionError::Connect { .. }) if config.endpoint_kind()? == EndpointKind::Remote => {
            evict(client, config);
            with_timeout(config, timeouts.connect, read_only_session(client, config, timeouts)).await
        }
        other => other,
    }
}

async fn read_only_session(
    client: &Client,
    config: &ConnectionConfig,
    timeouts: Timeouts,
) -> Result<ReadOnly, ConnectionError> {
    {
        let db = Db::new(client, open_session(client, config).await?, timeouts.operation).of_database(config);
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
    client: &Client,
    config: &ConnectionConfig,
    timeouts: impl Into<Timeouts>,
    with_namespace: bool,
) -> Result<Db, ConnectionError> {
    let timeouts = timeouts.into();
    with_timeout(config, timeouts.connect, async {
        let db = Db::new(client, open_session(client, config).await?, timeouts.operation);
        if with_namespace {
            select(&db, config, true).await?;
        }
        Ok(db)
    })
    .await
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
        evict(db.client(), config);
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
