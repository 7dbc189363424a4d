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
    test_binary(
        "SURQL_TEST_SERVER_BIN",
        "surrealdb-test-server",
        "run the tests with `cargo test` from the workspace root (it builds the server)",
    )
}

/// The SurrealDB 4.0 beta server (`tools/surrealdb4-test-server`, a
/// workspace of its own), built into the same target directory.
pub fn server4_binary() -> PathBuf {
    test_binary(
        "SURQL_TEST_SERVER4_BIN",
        "surrealdb4-test-server",
        "build it first with `cargo build --locked --manifest-path tools/surrealdb4-test-server/Cargo.toml` (.ci/run does)",
    )
}

/// `$variable` when set, else `name` beside the test executables, which must exist.
fn test_binary(variable: &str, name: &str, how_to_build: &str) -> PathBuf {
    if let Ok(path) = std::env::var(variable) {
        return PathBuf::from(path);
    }
    let path = beside_tests(name);
    assert!(path.exists(), "{} is missing: {how_to_build}", path.display());
    path
}

/// target/<profile>/deps/<test-exe> → target/<profile>/NAME
fn beside_tests(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
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
    binary: PathBuf,
}

impl TestServer {
    /// An in-memory server with root user `root`/`root`.
    pub fn start() -> Self {
        Self::start_with_storage(server_binary(), "memory".into(), free_port())
    }

    /// An in-memory SurrealDB 4.0 beta server with root user `root`/`root`.
    pub fn start_v4() -> Self {
        Self::start_with_storage(server4_binary(), "memory".into(), free_port())
    }

    /// A 4.0 beta server that denies the `version` RPC method (the 3.3.5
    /// SDK then skips its version check: what its wire does with 4.x).
    pub fn start_v4_denying_version() -> Self {
        Self::start_with_storage(server4_binary(), "--deny-rpc=version memory".into(), free_port())
    }

    /// An in-memory server run by `binary` (a wrapper such as the one
    /// `examples/common/callgrind.rs` writes).
    pub fn start_binary(binary: PathBuf) -> Self {
        Self::start_with_storage(binary, "memory".into(), free_port())
    }

    /// A server storing its data in a surrealkv folder (survives restarts).
    pub fn start_persistent(dir: &Path) -> Self {
        Self::start_with_storage(server_binary(), format!("surrealkv://{}", dir.display()), free_port())
    }

    fn start_with_storage(binary: PathBuf, storage: String, port: u16) -> Self {
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let child = Command::new(&binary)
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
                ])
                // Flags before the storage path (the path has no spaces).
                .args(storage.split(' '))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
            let mut server = TestServer {
                port,
                child,
                storage: storage.clone(),
                binary: binary.clone(),
            };
            match server.wait_healthy(Duration::from_secs(60)) {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("{} did not become healthy: {last_error}", binary.display());
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

    /// What `GET /version` answers: `surrealdb-3.3.5`, `surrealdb-4.0.0-beta.1`.
    pub fn version(&self) -> String {
        let response = http_get(self.port, "/version").unwrap_or_default();
        response.split("\r\n\r\n").nth(1).unwrap_or_default().trim().to_string()
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
        *self = Self::start_with_storage(self.binary.clone(), self.storage.clone(), self.port);
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
