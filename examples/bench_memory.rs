//! What a deployment costs in memory, measured where users pay it: the peak
//! resident set of the `surql` process (its rusage, read when it exits),
//! deploying the 10 benchmark migrations to N tenants on one local server
//! (parallel, 16 at once) end to end, state store included:
//!
//! - `version`: `surql --version`, the process with nothing to do;
//! - `default store`: the default, record files in `files://.surql/deployments`;
//! - `embedded store`: an embedded SurrealDB store, `--state surrealkv://.surql/kv`;
//! - `state server`: the record kept on the same server (`--state ws://…`);
//! - `dry run`: nothing recorded, nothing written.
//!
//! Prints each run's wall time, peak RSS, the highest anonymous and
//! file-backed parts of it seen while it ran (sampled from /proc), and the
//! growth per tenant between the sizes. Build the binary first, in the profile you measure:
//!
//!   cargo build --release --bin surql --example bench_memory
//!   target/release/examples/bench_memory [--sizes 10,1000,10000] [--modes default,embedded,server,dry-run]

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmarks stop at the first surprise

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[path = "../tests/it/common/server.rs"]
mod server;

#[path = "common/binary.rs"]
mod binary;

use binary::{deploy_command, surql_binary, write_tenants};

use server::TestServer;

/// What one run of the binary cost.
#[derive(Clone, Copy, Default)]
struct Cost {
    seconds: f64,
    /// Peak resident set (KiB), from rusage: heap and stacks plus the pages
    /// of the binary's code and data it touched.
    peak: u64,
    /// The highest anonymous part (KiB) seen while it ran (heap, stacks:
    /// what a container cannot reclaim), sampled from /proc every 2 ms.
    anon: u64,
    /// The highest file-backed part (KiB) seen: the binary's mapped code and
    /// read-only data, shared and clean, which the kernel can drop and re-read.
    file: u64,
}

/// Samples `pid`'s RssAnon and RssFile until `done`; their maxima in KiB.
fn sample_rss(pid: u32, done: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let (mut anon, mut file) = (0, 0);
        let field = |text: &str, name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        };
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                anon = anon.max(field(&status, "RssAnon:").unwrap_or(0));
                file = file.max(field(&status, "RssFile:").unwrap_or(0));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        (anon, file)
    })
}

/// Runs `command` to its end: its exit status and what it cost.
fn measured(command: &mut Command) -> (bool, Cost) {
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
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_rss(child.id(), done.clone());
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not waited for yet (std's `Child` is
    // not used to wait); `status` and `usage` are valid for writes.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed: {}", std::io::Error::last_os_error());
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (anon, file) = sampler.join().unwrap();
    let success = std::process::ExitStatus::from_raw(status).success();
    if !success {
        use std::io::{Read as _, Seek as _};
        let mut stderr = stderr;
        let mut text = String::new();
        let _ = stderr.rewind().and_then(|()| stderr.read_to_string(&mut text));
        eprintln!("surql failed:\n{text}");
    }
    // Linux reports ru_maxrss in KiB.
    let peak = usage.ru_maxrss as u64;
    (
        success,
        Cost {
            seconds,
            peak,
            anon,
            file,
        },
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Default,
    Embedded,
    Server,
    DryRun,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Default => "default store",
            Mode::Embedded => "embedded store",
            Mode::Server => "state server",
            Mode::DryRun => "dry run",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "default" => Mode::Default,
            "embedded" => Mode::Embedded,
            "server" => Mode::Server,
            "dry-run" => Mode::DryRun,
            other => panic!("unknown mode {other}: default, embedded, server or dry-run"),
        }
    }
}

/// One deployment of `tenants` in `mode` on a fresh server.
fn deploy(mode: Mode, tenants: usize, migrations: &Path) -> Cost {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    write_tenants(dir.path(), &server.ws_url(), tenants);
    let mut command = deploy_command(dir.path(), migrations);
    match mode {
        Mode::Default => {}
        Mode::Embedded => {
            command.args(["--state", "surrealkv://.surql/kv"]);
        }
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
    let (success, cost) = measured(&mut command);
    assert!(success, "{} of {tenants} tenants failed", mode.name());
    cost
}

fn main() {
    let mut sizes = vec![10, 1000];
    let mut modes = vec![Mode::Default, Mode::Embedded, Mode::Server, Mode::DryRun];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sizes" => sizes = args.next().unwrap().split(',').map(|n| n.parse().unwrap()).collect(),
            "--modes" => modes = args.next().unwrap().split(',').map(Mode::parse).collect(),
            other => panic!("unknown argument {other}"),
        }
    }
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench-migrations");
    let (_, idle) = measured(Command::new(surql_binary()).arg("--version"));
    let mb = |kib: u64| kib as f64 / 1024.0;
    println!(
        "surql --version: peak RSS {:.1} MB (anonymous {:.1}, file-backed {:.1})",
        mb(idle.peak),
        mb(idle.anon),
        mb(idle.file)
    );
    println!(
        "mode            tenants |  seconds | peak RSS MB | anon MB | file MB | KiB/tenant over the previous size (peak, anon)"
    );
    for mode in modes {
        let mut previous: Option<(usize, Cost)> = None;
        for &tenants in &sizes {
            let cost = deploy(mode, tenants, &migrations);
            let growth = previous
                .map(|(n, before)| {
                    let per = |now: u64, then: u64| (now as f64 - then as f64) / (tenants - n) as f64;
                    format!("{:.2}, {:.2}", per(cost.peak, before.peak), per(cost.anon, before.anon))
                })
                .unwrap_or_else(|| "-".into());
            println!(
                "{:<15} {tenants:>7} | {:>8.2} | {:>11.1} | {:>7.1} | {:>7.1} | {growth}",
                mode.name(),
                cost.seconds,
                mb(cost.peak),
                mb(cost.anon),
                mb(cost.file)
            );
            previous = Some((tenants, cost));
        }
    }
}
