//! Shared test helpers: real SurrealDB servers, embedded databases, fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use surql::ConnectionConfig;

pub mod browser;
pub mod db;
pub mod http;
mod latency;
pub mod runs;
mod server;

/// The repository's root (the tests belong to the `surql-cli` package in `cli/`).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
}

#[allow(unused_imports)] // each test crate uses a different part
pub use {
    db::{applied_names, applied_versions, initialise, session, tables, write_environments, write_server_tenants},
    latency::LatencyProxy,
    server::{TestServer, free_port, server_binary},
};

/// A plugin cdylib built by `cargo test`/`cargo build` in this workspace, e.g. `surql_slack`.
pub fn plugin_library(crate_name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    let file = format!(
        "{}{crate_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    // deps/ holds the newest build from either `cargo build` or `cargo test`;
    // the copy next to it is only refreshed by `cargo build`.
    for dir in [deps, deps.parent().expect("target dir")] {
        if dir.join(&file).exists() {
            return dir.join(&file);
        }
    }
    panic!("{file} is missing: run `cargo test --workspace` (it builds the plugins)");
}

/// Two tests running `check`: `embedded` on `mem://`, `server` on a fresh
/// server process over `ws://` (namespace `ns`).
#[macro_export]
macro_rules! on_both_engines {
    ($embedded:ident, $server:ident, $check:ident, $ns:literal) => {
        #[tokio::test]
        async fn $embedded() {
            $check($crate::common::mem_connection()).await;
        }

        #[tokio::test]
        async fn $server() {
            let server = $crate::common::TestServer::start();
            $check(server.connection($ns, "main")).await;
        }
    };
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// A name unique within this test process (embedded `mem://` is shared per process).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::SeqCst)
    )
}

/// An embedded in-memory database of its own.
pub fn mem_connection() -> ConnectionConfig {
    ConnectionConfig::new("mem://", unique("ns"), "main")
}

/// `examples/migrations` of the repository.
pub fn example_migrations() -> PathBuf {
    crate::common::repo().join("examples/migrations")
}

/// Writes migration files into a new temporary folder.
pub fn migrations_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// Exit code, stdout and stderr of a finished command, for assertion messages.
pub fn text(output: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `surql ARGS` run to its end in `dir` (see [`surql_command`]).
pub fn run_surql(args: &[&str], dir: &Path) -> std::process::Output {
    surql_command(args, dir).output().unwrap()
}

/// A command's stdout as JSON; the whole output in the panic when it is not.
pub fn stdout_json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(output)))
}

/// Borrowed arguments for [`run_surql`].
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The `surql` binary run in `dir`, with no input and none of the caller's
/// `SURQL_*` connection variables; `SURQL_TEST_SECRET` is `root` (the test
/// servers' password) for configs that reference it.
pub fn surql_command(args: &[&str], dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_surql"));
    command
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .env("SURQL_TEST_SECRET", "root");
    for name in [
        "SURQL_DB_URL",
        "SURQL_NS",
        "SURQL_DB",
        "SURQL_USER",
        "SURQL_PASS",
        "SURQL_STATE",
        "SURQL_STATE_USER",
        "SURQL_STATE_PASS",
    ] {
        command.env_remove(name);
    }
    command
}
