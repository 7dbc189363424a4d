//! Real SurrealDB server processes for tests and benchmarks (`examples/bench.rs`
//! includes this file too).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use surql::ConnectionConfig;

/// The `surrealdb-test-server` binary, built by `cargo test` next to the test executables.
pub fn server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("SURQL_TEST_SERVER_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test-exe> → target/<profile>/surrealdb-test-server
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(format!("surrealdb-test-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test` from the workspace root (it builds the server)",
        path.display()
    );
    path
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real SurrealDB server process, killed on drop.
pub struct TestServer {
    pub port: u16,
    child: Child,
    storage: String,
}

impl TestServer {
    /// An in-memory server with root user `root`/`root`.
    pub fn start() -> Self {
        Self::start_with_storage("memory".into(), free_port())
    }

    /// A server storing its data in a surrealkv folder (survives restarts).
    pub fn start_persistent(dir: &Path) -> Self {
        Self::start_with_storage(format!("surrealkv://{}", dir.display()), free_port())
    }

    fn start_with_storage(storage: String, port: u16) -> Self {
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let child = Command::new(server_binary())
                .args([
                    "start",
                    "--bind",
                    &format!("127.0.0.1:{port}"),
                    "--user",
                    "root",
                    "--pass",
                    "root",
                    "--log",
                    "warn",
                    &storage,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn surrealdb-test-server");
            let mut server = TestServer {
                port,
                child,
                storage: storage.clone(),
            };
            match server.wait_healthy(Duration::from_secs(60)) {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("surrealdb-test-server did not become healthy: {last_error}");
    }

    fn wait_healthy(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}"));
            }
            if http_get(self.port, "/health").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("timed out waiting for /health".into())
    }

    /// `ws://127.0.0.1:PORT/rpc`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/rpc", self.port)
    }

    /// A root connection to `ns`/`db` over ws.
    pub fn connection(&self, ns: &str, db: &str) -> ConnectionConfig {
        ConnectionConfig::new(self.ws_url(), ns, db).with_credentials("root", "root")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (like `kill -9`).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same storage again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        *self = Self::start_with_storage(self.storage.clone(), self.port);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// User + system CPU seconds of a process so far (`self` or a pid; Linux, 0
/// elsewhere), for the benchmarks.
pub fn cpu_seconds(process: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
    // Fields after the command name: utime and stime are the 12th and 13th.
    let Some(end) = stat.rfind(')') else { return 0.0 };
    let fields: Vec<&str> = stat[end + 1..].split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
