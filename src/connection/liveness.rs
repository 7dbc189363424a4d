//! The watchdog's probe: noticing in seconds that a server stopped answering
//! while a long query waits on it.

use std::time::Duration;

use super::config::{ConnectionConfig, EndpointKind};

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
    fn socket_addresses_come_from_urls() {
        assert_eq!(socket_address("ws://h:8000/rpc").as_deref(), Some("h:8000"));
        assert_eq!(
            socket_address("wss://u:p@db.example.com/rpc").as_deref(),
            Some("db.example.com:443")
        );
        assert_eq!(socket_address("http://10.0.0.1").as_deref(), Some("10.0.0.1:80"));
    }
}
