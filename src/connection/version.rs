//! The SurrealDB version of the server an environment is on, learned once
//! per pooled connection (the SDK asks it anyway when it connects) and for
//! the embedded engine once per process.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use surrealdb::Surreal;
use surrealdb::engine::any::Any;

/// A SurrealDB server's version, as it reports it (`3.3.5`,
/// `4.0.0-beta.1`): what `status`, plans, `show` and scripts
/// (`env.server_version`) name, and what a migration's
/// `-- migrate:requires surrealdb >= N` is checked against.
/// Shared text: 10,000 tenants of one server hold one copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerVersion(Arc<str>);

impl Serialize for ServerVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ServerVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("'{text}' is not a SurrealDB version")))
    }
}

impl ServerVersion {
    /// From what a server reports: `surrealdb-4.0.0-beta.1` or `4.0.0-beta.1`.
    /// `None` unless it starts with a major version number.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix("surrealdb-").unwrap_or(text);
        let major = text.split('.').next()?;
        (!major.is_empty() && major.bytes().all(|b| b.is_ascii_digit())).then(|| Self(text.into()))
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

/// The SurrealDB linked into this process, which every embedded store
/// (`mem://`, `surrealkv://`) runs: the workspace pins it exactly (a test
/// checks this against what the engine answers).
const EMBEDDED_ENGINE: &str = "3.3.5";

/// The embedded engine's version, known without opening a store.
pub(super) fn embedded() -> Option<ServerVersion> {
    ServerVersion::parse(EMBEDDED_ENGINE)
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

    #[tokio::test]
    async fn the_embedded_engine_is_the_version_named() {
        let db = surrealdb::engine::any::connect("mem://").await.unwrap();
        assert_eq!(ask(&db).await, embedded());
    }
}
