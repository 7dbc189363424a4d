//! A session on one database together with the settings it was opened with,
//! so two coordinators in one process can wait differently.

use std::time::Duration;

use surrealdb::Surreal;
use surrealdb::engine::any::Any;

use super::Client;
use super::config::DEFAULT_CONNECT_TIMEOUT;

/// Default time one query (one migration's transaction included) may take.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(300);

/// How long surql waits: to connect and sign in, and for any one query (a
/// server that accepts connections but never answers must not hang a run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To connect and sign in.
    pub connect: Duration,
    /// For any one request to be answered.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: DEFAULT_CONNECT_TIMEOUT,
            operation: DEFAULT_OPERATION_TIMEOUT,
        }
    }
}

/// A connect timeout alone keeps the default operation timeout.
impl From<Duration> for Timeouts {
    fn from(connect: Duration) -> Self {
        Self {
            connect,
            ..Self::default()
        }
    }
}

/// A signed-in session. Derefs to the SDK's client for anything surql does
/// not wrap; queries through [`super::run_query`] and friends use its
/// operation timeout. It carries the [`Client`] it was opened through, whose
/// caches it reads and fills.
#[derive(Debug, Clone)]
pub struct Db {
    session: Surreal<Any>,
    client: Client,
    operation_timeout: Duration,
    embedded: Option<std::sync::Arc<str>>,
    server_version: Option<super::ServerVersion>,
}

impl Db {
    pub(super) fn new(client: &Client, session: Surreal<Any>, operation_timeout: Duration) -> Self {
        Self {
            session,
            client: client.clone(),
            operation_timeout: operation_timeout.max(Duration::from_millis(1)),
            embedded: None,
            server_version: None,
        }
    }

    /// The client this session was opened through (its pooled connection and caches).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The session of `config`'s database: names it when the store is
    /// embedded (open in this process only, see [`Db::embedded_database`]).
    pub(super) fn of_database(mut self, config: &super::ConnectionConfig) -> Self {
        let address = super::config::sdk_address(&config.db_url);
        if config.endpoint_kind().ok() == Some(super::EndpointKind::Embedded) {
            self.embedded = Some(format!("{address}\u{0}{}\u{0}{}", config.db_ns, config.db).into());
            self.server_version = super::version::embedded();
        } else {
            self.server_version = self.client.server_version_at(&address);
        }
        self
    }

    /// The SurrealDB version of the server this session is on (for an
    /// embedded store, the engine linked into this process); `None` when
    /// the server denies the `version` request.
    pub fn server_version(&self) -> Option<&super::ServerVersion> {
        self.server_version.as_ref()
    }

    /// The same session with another operation timeout.
    pub fn with_operation_timeout(self, operation_timeout: Duration) -> Self {
        Self {
            operation_timeout: operation_timeout.max(Duration::from_millis(1)),
            ..self
        }
    }

    /// For a database of an embedded store (`mem://`, `surrealkv://`), which
    /// only this process can open: a name unique to it within the process.
    /// `None` for a server, which other processes share.
    pub fn embedded_database(&self) -> Option<&str> {
        self.embedded.as_deref()
    }

    /// How long one query on this session may take.
    pub fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }
}

impl std::ops::Deref for Db {
    type Target = Surreal<Any>;

    fn deref(&self) -> &Surreal<Any> {
        &self.session
    }
}
