//! `ConnectionConfig`: where a database lives and how to sign in; URL
//! handling and redaction, so no message ever shows a password.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default time allowed to reach a server and sign in.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Who the credentials belong to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
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
#[non_exhaustive]
pub enum EndpointKind {
    /// In-process datastore (`mem://`, `surrealkv://`).
    Embedded,
    /// A server over WebSocket or HTTP.
    Remote,
}

/// Why a connection could not be made. Messages name the URL without credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    #[error(
        "unsupported database url '{url}': use mem://, surrealkv://PATH, ws://HOST:PORT, wss://, http:// or https://"
    )]
    /// The URL's scheme is none surql speaks.
    UnsupportedUrl {
        /// The URL, credentials removed.
        url: String,
    },
    #[error("cannot connect to {url}: {reason}")]
    /// The endpoint refused or failed the connection.
    Connect {
        /// The URL, credentials removed.
        url: String,
        /// What the client reported.
        reason: String,
    },
    #[error("cannot connect to {url}: no answer within {}s", timeout.as_secs_f64())]
    /// The endpoint did not answer within the connect timeout.
    Timeout {
        /// The URL, credentials removed.
        url: String,
        /// The connect timeout that passed.
        timeout: Duration,
    },
    #[error("cannot sign in to {url} as {level:?} user '{user}': {reason}")]
    /// The credentials were refused.
    SignIn {
        /// The URL, credentials removed.
        url: String,
        /// The level signed in at.
        level: AuthLevel,
        /// The user name (never the password).
        user: String,
        /// What the server answered.
        reason: String,
    },
    #[error("{url}: a password is set but no username")]
    /// A password without a user name: surql would not know who to sign in as.
    PasswordWithoutUser {
        /// The URL, credentials removed.
        url: String,
    },
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

    /// The server, without scheme, credentials or path: `db1.internal:8000`;
    /// for an embedded store its URL (`mem://`, `surrealkv://path`). What a
    /// strategy may group environments by.
    pub fn host(&self) -> String {
        if self.endpoint_kind().ok() != Some(EndpointKind::Remote) {
            return self.db_url.clone();
        }
        let rest = self
            .db_url
            .split_once("://")
            .map_or(self.db_url.as_str(), |(_, rest)| rest);
        let authority = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        authority.split('/').next().unwrap_or(authority).to_ascii_lowercase()
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
    // Embedded URLs are paths, where `@` is just a character.
    if matches!(
        scheme.to_ascii_lowercase().as_str(),
        "mem" | "surrealkv" | "rocksdb" | "files"
    ) {
        return url.to_string();
    }
    // The last `@`: a password may contain `/` and `@` (SurrealDB paths do not).
    match rest.rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// The URL handed to the SDK: the guide's `ws://host:8000/rpc` form and the bare
/// `ws://host:8000` name the same server (the SDK appends `/rpc` itself).
pub(super) fn sdk_address(url: &str) -> String {
    if endpoint_kind(url).ok() != Some(EndpointKind::Remote) {
        return url.to_string();
    }
    let trimmed = url.trim_end_matches('/');
    trimmed.strip_suffix("/rpc").unwrap_or(trimmed).to_string()
}

/// Which database `config` reaches, whatever the spelling of its URL: the
/// server (scheme `ws`/`http` and `wss`/`https` alike, `/rpc` and a trailing
/// `/` dropped, host lowercased), namespace and database. Two environments
/// with one identity are one database.
pub fn database_identity(config: &ConnectionConfig) -> String {
    let address = sdk_address(&config.db_url);
    let server = match address.split_once("://") {
        Some((scheme, rest)) if endpoint_kind(&config.db_url).ok() == Some(EndpointKind::Remote) => {
            let secure = matches!(scheme.to_ascii_lowercase().as_str(), "wss" | "https");
            let host = rest.split('@').next_back().unwrap_or(rest).to_ascii_lowercase();
            format!("{}://{host}", if secure { "tls" } else { "plain" })
        }
        _ => address,
    };
    format!("{server} {}/{}", config.db_ns, config.db)
}

/// Removes the password (and the raw URL, which may embed it) from a message.
pub fn scrub(message: &str, config: &ConnectionConfig) -> String {
    let mut out = message.replace(&config.db_url, &config.display_url());
    if let Some(password) = config.password.as_deref().filter(|p| !p.is_empty()) {
        out = out.replace(password, "***");
    }
    out
}

/// Quotes an identifier for SurrealQL with backticks.
pub fn escape_ident(ident: &str) -> String {
    format!("`{}`", ident.replace('\\', "\\\\").replace('`', "\\`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_are_redacted() {
        assert_eq!(redact_url("ws://root:hunter2@db:8000/rpc"), "ws://***@db:8000/rpc");
        assert_eq!(redact_url("ws://db:8000/rpc"), "ws://db:8000/rpc");
        assert_eq!(redact_url("surrealkv://data/x@y"), "surrealkv://data/x@y");
        assert_eq!(
            redact_url("wss://deployer:pa/ss@w0rd@db:8000/rpc"),
            "wss://***@db:8000/rpc"
        );
    }

    #[test]
    fn the_host_never_carries_credentials() {
        let host = |url: &str| ConnectionConfig::new(url, "n", "d").host();
        assert_eq!(host("ws://root:p@ss/w@DB1.internal:8000/rpc"), "db1.internal:8000");
        assert_eq!(host("wss://db2:443"), "db2:443");
        assert_eq!(host("mem://"), "mem://");
        assert_eq!(host("surrealkv://.surql/data"), "surrealkv://.surql/data");
    }

    #[test]
    fn rpc_suffix_and_bare_host_name_the_same_server() {
        assert_eq!(sdk_address("ws://h:8000/rpc"), "ws://h:8000");
        assert_eq!(sdk_address("ws://h:8000/"), "ws://h:8000");
        assert_eq!(sdk_address("ws://h:8000"), "ws://h:8000");
        assert_eq!(sdk_address("mem://"), "mem://");
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
