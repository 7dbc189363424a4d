//! Listening for the dashboard and the metrics endpoint, and their errors.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the dashboard or the metrics could not be served or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObserveError {
    /// The address could not be listened on (in use, say, or not permitted).
    #[error("{flag} {addr}: cannot listen there: {source}")]
    Bind {
        /// The flag that gave the address: `--listen` or `--metrics-listen`.
        flag: &'static str,
        /// The address, `host:port`, as given.
        addr: String,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// The dashboard would listen beyond loopback without a token.
    #[error(
        "--listen {addr} is beyond loopback: the dashboard needs a token there (--token or SURQL_DASHBOARD_TOKEN), checked on every request"
    )]
    TokenRequired {
        /// The `--listen` address.
        addr: String,
    },
    /// The dashboard token is shorter than 16 characters.
    #[error("--token is empty: give a token of at least 16 characters, or leave it out on loopback")]
    WeakToken,
    /// The `--metrics-file` could not be written.
    #[error("cannot write --metrics-file {}", path.display())]
    MetricsFile {
        /// The file.
        path: PathBuf,
        /// Why writing failed.
        #[source]
        source: std::io::Error,
    },
    /// The dashboard's HTTP server stopped with an error.
    #[error("the HTTP server on {addr} failed")]
    Serve {
        /// The address it listened on.
        addr: SocketAddr,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr` (`host:port`; port 0 picks a free one).
pub(super) async fn bind(flag: &'static str, addr: &str) -> Result<tokio::net::TcpListener, ObserveError> {
    let bind_error = |source| ObserveError::Bind {
        flag,
        addr: addr.to_string(),
        source,
    };
    tokio::net::TcpListener::bind(addr).await.map_err(bind_error)
}

/// Whether `addr` (`host:port`) only takes connections from this machine.
pub(super) fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_count_as_local() {
        for local in ["127.0.0.1:8080", "[::1]:8080", "localhost:80", "127.0.0.2:1"] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in ["0.0.0.0:8080", "[::]:8080", "10.0.0.5:80", "example.com:80"] {
            assert!(!is_loopback(remote), "{remote}");
        }
    }
}
