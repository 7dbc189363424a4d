//! The SurrealDB version of the server an environment is on, learned once
//! per pooled connection (the SDK asks it anyway when it connects) and for
//! the embedded engine once per process.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use surrealdb::Surreal;
use surrealdb::engine::any::Any;

/// A SurrealDB server's version, as it reports it (`3.3.5`,
/// `4.0.0-beta.1`): what `status`, plans, `show` and scripts
/// (`env.server_version`) name, and what a migration's
/// `-- migrate:requires surrealdb >= N` is checked against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServerVersion(String);

impl ServerVersion {
    /// From what a server reports: `surrealdb-4.0.0-beta.1` or `4.0.0-beta.1`.
    /// `None` unless it starts with a major version number.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix("surrealdb-").unwrap_or(text);
        let major = text.split('.').next()?;
        (!major.is_empty() && major.bytes().all(|b| b.is_ascii_digit())).then(|| Self(text.to_string()))
    }

    /// The major version (3 for `3.3.5`, 4 for `4.0.0-beta.1`).
    pub fn major(&self) -> u64 {
        self.0
            .split('.')
            .next()
            .and_then(|major| major.parse().ok())
            .unwrap_or_default()
    }

    /// The version as the server reports it, without the `surrealdb-` prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What `connection` answers to the `version` request; `None` when the server
/// denies it (its operator chose not to tell).
pub(super) async fn ask(connection: &Surreal<Any>) -> Option<ServerVersion> {
    let version = connection.version().await.ok()?;
    ServerVersion::parse(&version.to_string())
}

/// The embedded engine's version: the same for every embedded store of the
/// process (the SurrealDB linked into it).
static EMBEDDED_VERSION: OnceLock<Option<ServerVersion>> = OnceLock::new();

pub(super) async fn note_embedded(connection: &Surreal<Any>) {
    if EMBEDDED_VERSION.get().is_none() {
        let version = ask(connection).await;
        EMBEDDED_VERSION.get_or_init(|| version);
    }
}

pub(super) fn embedded() -> Option<ServerVersion> {
    EMBEDDED_VERSION.get().cloned().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_as_servers_report_them() {
        let v4 = ServerVersion::parse("surrealdb-4.0.0-beta.1").unwrap();
        assert_eq!((v4.as_str(), v4.major()), ("4.0.0-beta.1", 4));
        let v3 = ServerVersion::parse("3.3.5").unwrap();
        assert_eq!((v3.to_string().as_str(), v3.major()), ("3.3.5", 3));
        assert_eq!(ServerVersion::parse("surrealdb-"), None);
        assert_eq!(ServerVersion::parse("latest"), None);
    }
}
