//! What a deployment costs in memory, measured where users pay it: the peak
//! resident set of the `surql` process (its rusage, read when it exits),
//! deploying the 10 benchmark migrations to N tenants on one local server
//! (parallel, 16 at once) end to end, state store included:
//!
//! - `version`: `surql --version`, the process with nothing to do;
//! - `embedded store`: the default, `surrealkv://.surql/state`;
//! - `state server`: the record kept on the same server (`--state ws://…`);
//! - `dry run`: nothing recorded, nothing written.
//!
//! Prints each run's wall time and peak RSS, and the growth per tenant
//! between the sizes. Build the binary first, in the profile you measure:
//!
//!   cargo build --release --bin surql --example bench_memory
//!   target/release/examples/bench_memory [--sizes 10,1000,10000] [--modes embedded,server,dry-run]

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmarks stop at the first surprise

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[path = "../tests/it/common/server.rs"]
mod server;

use server::TestServer;

/// The `surql` binary built beside this example (`target/<profile>/surql`).
fn surql_binary() -> PathBuf {
    let example = std::env::current_exe().unwrap();
    let profile_dir = example.parent().and_then(|d| d.parent()).unwrap();
    let binary = profile_dir.join("surql");
    assert!(
        binary.exists(),
        "build it first: cargo build --bin surql ({})",
        binary.display()
    );
    binary
}

/// Runs `command` to its end: its exit status, wall seconds and peak RSS in KiB.
fn measured(command: &mut Command) -> (bool, f64, u64) {
    use std::os::unix::process::ExitStatusExt as _;
    let started = Instant::now();
    // A file, not a pipe: nothing reads stderr until the process has ended.
    let stderr = tempfile::tempfile().unwrap();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below, which reports its rusage
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(stderr.try_clone().unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not waited for yet (std's `Child` is
    // not used to wait); `status` and `usage` are valid for writes.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed: {}", std::io::Error::last_os_error());
    let seconds = started.elapsed().as_secs_f64();
    let success = std::process::ExitStatus::from_raw(status).success();
    if !success {
        use std::io::{Read as _, Seek as _};
        let mut stderr = stderr;
        let mut text = String::new();
        let _ = stderr.rewind().and_then(|()| stderr.read_to_string(&mut text));
        eprintln!("surql failed:\n{text}");
    }
    // Linux reports ru_maxrss in KiB.
    (success, seconds, usage.ru_maxrss as u64)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Embedded,
    Server,
    DryRun,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Embedded => "embedded store",
            Mode::Server => "state server",
            Mode::DryRun => "dry run",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "embedded" => Mode::Embedded,
            "server" => Mode::Server,
            "dry-run" => Mode::DryRun,
            other => panic!("unknown mode {other}: embedded, server or dry-run"),
        }
    }
}

/// One deployment of `tenants` in `mode` on a fresh server: seconds and peak RSS (KiB).
fn deploy(mode: Mode, tenants: usize, migrations: &Path) -> (f64, u64) {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let environments: Vec<serde_json::Value> = (0..tenants)
        .map(|i| {
            serde_json::json!({ "name": format!("t{i:05}"), "connection": { "db_url": server.ws_url(),
                "db_ns": format!("bench{i}"), "db": "main", "username": "root", "password": "root" } })
        })
        .collect();
    std::fs::write(
        dir.path().join("environments.json"),
        serde_json::json!({ "environments": environments }).to_string(),
    )
    .unwrap();
    let mut command = Command::new(surql_binary());
    command.current_dir(dir.path()).args([
        "orchestrate",
        "deploy",
        "-e",
        "all",
        "-m",
        migrations.to_str().unwrap(),
        "--strategy",
        "parallel",
        "--max-concurrent",
        "16",
        "--output",
        "json",
    ]);
    match mode {
        Mode::Embedded => {}
        Mode::Server => {
            command.args([
                "--state",
                &server.ws_url(),
                "--state-user",
                "root",
                "--state-pass",
                "root",
            ]);
        }
        Mode::DryRun => {
            command.arg("--dry-run");
        }
    }
    let (success, seconds, peak) = measured(&mut command);
    assert!(success, "{} of {tenants} tenants failed", mode.name());
    (seconds, peak)
}

fn main() {
    let mut sizes = vec![10, 1000];
    let mut modes = vec![Mode::Embedded, Mode::Server, Mode::DryRun];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sizes" => sizes = args.next().unwrap().split(',').map(|n| n.parse().unwrap()).collect(),
            "--modes" => modes = args.next().unwrap().split(',').map(Mode::parse).collect(),
            other => panic!("unknown argument {other}"),
        }
    }
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench-migrations");
    let (_, _, idle) = measured(Command::new(surql_binary()).arg("--version"));
    println!("surql --version: peak RSS {:.1} MB", idle as f64 / 1024.0);
    println!("mode            tenants |  seconds | peak RSS MB | KiB/tenant over the previous size");
    for mode in modes {
        let mut previous: Option<(usize, u64)> = None;
        for &tenants in &sizes {
            let (seconds, peak) = deploy(mode, tenants, &migrations);
            let growth = previous
                .map(|(n, kib)| format!("{:.2}", (peak as f64 - kib as f64) / (tenants - n) as f64))
                .unwrap_or_else(|| "-".into());
            println!(
                "{:<15} {tenants:>7} | {seconds:>8.2} | {:>11.1} | {growth}",
                mode.name(),
                peak as f64 / 1024.0
            );
            previous = Some((tenants, peak));
        }
    }
}
