//! Listening for the dashboard and the metrics endpoint, and their errors.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the dashboard or the metrics could not be served or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObserveError {
    #[error("{flag} {addr}: cannot listen there: {source}")]
    Bind {
        flag: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--listen {addr} is beyond loopback: the dashboard needs a token there (--token or SURQL_DASHBOARD_TOKEN), checked on every request"
    )]
    TokenRequired { addr: String },
    #[error("--token is empty: give a token of at least 16 characters, or leave it out on loopback")]
    WeakToken,
    #[error("cannot write --metrics-file {}", path.display())]
    MetricsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server on {addr} failed")]
    Serve {
        addr: SocketAddr,
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
