//! A TCP proxy that delays each direction, standing in for a network between
//! surql and a server on 127.0.0.1 (tests and `examples/bench.rs`).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Forwards 127.0.0.1:`port` to an upstream address with `delay` added each
/// way (a round trip costs 2 × delay). Runs on a thread and runtime of its
/// own, so a test that blocks its own runtime does not stall it; stops when
/// dropped.
pub struct LatencyProxy {
    pub port: u16,
    _stop: tokio::sync::oneshot::Sender<()>,
    /// The delay each way, in microseconds: changeable while it runs.
    delay_us: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl LatencyProxy {
    pub fn start(upstream: String, delay: Duration) -> Self {
        let delay_us = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(delay.as_micros() as u64));
        let shared = delay_us.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let accept = async {
                    while let Ok((client, _)) = listener.accept().await {
                        let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                            continue;
                        };
                        let _ = (client.set_nodelay(true), server.set_nodelay(true));
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        tokio::spawn(delayed(client_read, server_write, shared.clone()));
                        tokio::spawn(delayed(server_read, client_write, shared.clone()));
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime closes every forwarded connection.
        });
        Self {
            port,
            _stop: stop,
            delay_us,
        }
    }

    /// From now on, each chunk waits `delay` each way.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_us
            .store(delay.as_micros() as u64, std::sync::atomic::Ordering::SeqCst);
    }

    /// `ws://127.0.0.1:PORT/rpc` through the proxy.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/rpc", self.port)
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read; chunks stay
/// pipelined, so the delay is latency, not a bandwidth limit.
async fn delayed(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay_us: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((read_at, chunk)) = receiver.recv().await {
            let delay = Duration::from_micros(delay_us.load(std::sync::atomic::Ordering::SeqCst));
            tokio::time::sleep_until((read_at + delay).into()).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buffer).await {
        if n == 0 || sender.send((Instant::now(), buffer[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(sender);
    let _ = writer.await;
}
