//! Scale benchmark: deploy 10 realistic migrations to N tenant namespaces with
//! the parallel strategy (max_concurrent 16), on one real local server and on
//! the embedded engine, beside the floor — the same statements sent with the
//! SurrealDB SDK directly at the same concurrency, without history, lock or
//! script. Then `status` over the same N. Prints wall time, environments per
//! second, peak RSS growth and the ratio surql / floor. See BENCHMARKS.md.
//!
//!   cargo build --workspace && cargo run --example bench -- [--sizes 10,100,1000] [--engines server,embedded] [--repeat 3] [--concurrency 16] [--latency-ms 0] [--no-logging]
//!
//! The process logs as the `surql` binary does (a `tracing` subscriber at
//! `RUST_LOG`, default `warn`); `--no-logging` measures without one, as the
//! rounds before BENCHMARKS.md's fifteenth did (see `common/logging.rs`).
//!
//! `--latency-ms MS` puts a proxy between client and server that delays each
//! direction by MS (a round trip costs 2 × MS), as a network would; its CPU
//! counts as this process's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

// The binary's allocator (cli/src/main.rs), so the figures are the binary's.
#[cfg(all(
    any(target_arch = "x86_64", target_arch = "x86"),
    any(target_os = "linux", target_os = "macos")
))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use surql::connection::{Client, ConnectionConfig, connect};
use surql::{DeployRequest, EnvironmentConfig, EnvironmentRegistry, MigrationCoordinator, discover_migrations};

#[path = "../tests/it/common/server.rs"]
mod server;

#[path = "common/logging.rs"]
mod logging;

#[path = "../tests/it/common/latency.rs"]
mod latency;

use latency::LatencyProxy;
use server::{TestServer, cpu_seconds};

/// Environments at once (`--concurrency`, default 16 as the issue asks).
static CONCURRENCY: AtomicUsize = AtomicUsize::new(16);

fn concurrency() -> usize {
    CONCURRENCY.load(Ordering::Relaxed)
}

/// One-way delay added to every byte between client and server
/// (`--latency-ms`), 0 for none.
static LATENCY_MS: AtomicUsize = AtomicUsize::new(0);

/// The URL to reach `server` by: directly, or through a proxy that delays
/// each direction by `--latency-ms`, as a network between them would. The
/// proxy lives as long as the process.
fn reach(server: &TestServer) -> String {
    let delay = Duration::from_millis(LATENCY_MS.load(Ordering::Relaxed) as u64);
    if delay.is_zero() {
        return server.ws_url();
    }
    let proxy = LatencyProxy::start(format!("127.0.0.1:{}", server.port), delay);
    let url = proxy.ws_url();
    std::mem::forget(proxy);
    url
}

/// Resident set size and its peak, in KiB (Linux).
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak RSS so each phase measures its own.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Phase {
    seconds: f64,
    peak_growth_kib: u64,
    /// CPU time (user + system) of this process: on the server, surql's own
    /// client-side cost; on the embedded engine, the database's work too.
    cpu_seconds: f64,
    /// CPU time of the server process (server engine only).
    server_cpu_seconds: f64,
}

impl Phase {
    fn total_cpu(&self) -> f64 {
        self.cpu_seconds + self.server_cpu_seconds
    }
}

/// Runs `work`, measuring it and the CPU of `server` (a pid) if any.
async fn measure<F: std::future::Future<Output = ()>>(server: Option<u32>, work: F) -> Phase {
    let server = server.map(|pid| pid.to_string());
    let server_cpu = || server.as_deref().map(cpu_seconds).unwrap_or(0.0);
    reset_peak();
    let (base, _) = rss();
    let started = Instant::now();
    let (cpu_before, server_before) = (cpu_seconds("self"), server_cpu());
    work.await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds("self") - cpu_before;
    let server_cpu_seconds = server_cpu() - server_before;
    let (_, peak) = rss();
    Phase {
        seconds,
        peak_growth_kib: peak.saturating_sub(base),
        cpu_seconds,
        server_cpu_seconds,
    }
}

fn connection(url: &str, ns: String) -> ConnectionConfig {
    let connection = ConnectionConfig::new(url, ns, "main");
    if url.starts_with("ws") {
        connection.with_credentials("root", "root")
    } else {
        connection
    }
}

async fn floor(url: &str, prefix: &str, n: usize, statements: &[String]) {
    // One client, as surql has: the tenants share its signed-in connections.
    let client = Client::new();
    let failures = futures::stream::iter(0..n)
        .map(|i| {
            let config = connection(url, format!("{prefix}{i}"));
            let statements = statements.to_vec();
            let client = client.clone();
            async move {
                tokio::spawn(async move {
                    let db = connect(&client, &config, Duration::from_secs(30))
                        .await
                        .expect("floor connect");
                    for sql in statements {
                        db.query(sql.as_str())
                            .await
                            .expect("floor query")
                            .check()
                            .expect("floor statement");
                    }
                })
                .await
                .unwrap()
            }
        })
        .buffer_unordered(concurrency())
        .count()
        .await;
    assert_eq!(failures, n);
}

fn registry(url: &str, prefix: &str, n: usize) -> EnvironmentRegistry {
    let mut registry = EnvironmentRegistry::new();
    for i in 0..n {
        let mut env = EnvironmentConfig::new(format!("{prefix}{i}"), connection(url, format!("{prefix}{i}")));
        env.tags = vec!["tenant".into()];
        registry.register(env).unwrap();
    }
    registry
}

struct Round {
    floor: Phase,
    surql: Phase,
    status: Phase,
    validate: Phase,
    ok: bool,
    /// The round trip surql measured to the server (it batches from 1 ms).
    round_trip: Option<Duration>,
}

/// One measurement of floor, surql and status at size `n`.
async fn one_round(
    engine: &str,
    n: usize,
    round: usize,
    migrations: &[surql::Migration],
    statements: &[String],
) -> Round {
    let run = format!("{}_{round}", std::process::id());
    let floor_prefix = format!("floor_{run}_{n}_");
    let surql_prefix = format!("tenant_{run}_{n}_");
    // Every phase gets a fresh database: a server of its own, or an embedded
    // store of its own (`mem://NAME` opens a separate one), so no phase pays
    // for another's data or its background clean-up.
    let floor_phase = async || {
        if engine == "server" {
            let server = TestServer::start();
            let url = reach(&server);
            measure(Some(server.pid()), floor(&url, &floor_prefix, n, statements)).await
        } else {
            measure(
                None,
                floor(&format!("mem://floor-{run}-{n}"), &floor_prefix, n, statements),
            )
            .await
        }
    };
    // Odd rounds measure the floor last, so neither side always goes first
    // (a warmed machine or a grown heap favours whichever runs second).
    let floor_first = round.is_multiple_of(2);
    let early_floor = if floor_first { Some(floor_phase().await) } else { None };
    let server = (engine == "server").then(TestServer::start);
    let url = match &server {
        Some(server) => reach(server),
        None => format!("mem://surql-{run}-{n}"),
    };

    let registry = registry(&url, &surql_prefix, n);
    let coordinator = Arc::new(MigrationCoordinator::new(registry));
    let mut request = DeployRequest::new(&["tag:tenant"], migrations.to_vec(), "parallel");
    request.options.max_concurrent = concurrency();
    let c = coordinator.clone();
    let mut ok = true;
    let server_pid = server.as_ref().map(|s| s.pid());
    let surql_phase = measure(server_pid, async {
        let report = c.deploy_to_environments(request).await.unwrap();
        ok = report.all_succeeded();
        if !ok {
            let failed = report
                .results
                .values()
                .find(|r| r.status != surql::DeploymentStatus::Success)
                .unwrap();
            eprintln!("not all succeeded, e.g. {}: {:?}", failed.environment, failed.error);
        }
    })
    .await;

    let names = vec!["tag:tenant".to_string()];
    let check = coordinator.health_check(surql::health::DEFAULT_HEALTH_TIMEOUT);
    let mut status_ok = true;
    let status_phase = measure(server_pid, async {
        let statuses = coordinator
            .get_deployment_status(&names, migrations, &check)
            .await
            .unwrap();
        if let Some(bad) = statuses.values().find(|s| s.pending_count != 0 || !s.health.is_healthy) {
            eprintln!("status not clean, e.g. {}: {:?}", bad.environment, bad.health.error);
            status_ok = false;
        }
    })
    .await;
    ok &= status_ok;

    // `validate`: the health of every environment (the same reads as status).
    let selected: Vec<EnvironmentConfig> = coordinator.select(&names).await.unwrap().into_iter().collect();
    let refs: Vec<&EnvironmentConfig> = selected.iter().collect();
    let mut validate_ok = true;
    let validate_phase = measure(server_pid, async {
        let statuses = check.check_environments(&refs).await;
        if let Some(bad) = statuses.values().find(|s| !s.is_healthy || !s.migration_table_exists) {
            eprintln!("validate not clean, e.g. {}: {:?}", bad.environment, bad.error);
            validate_ok = false;
        }
    })
    .await;
    ok &= validate_ok;
    let round_trip = surql::connection::round_trip(coordinator.client(), &connection(&url, format!("{surql_prefix}0")));
    // Nothing of surql's side runs while the floor is measured after it.
    drop(server);
    drop((coordinator, c, check, selected));
    surql::connection::close_embedded(&connection(&url, String::new())).await;
    let floor_phase = match early_floor {
        Some(phase) => phase,
        None => floor_phase().await,
    };

    Round {
        floor: floor_phase,
        surql: surql_phase,
        status: status_phase,
        validate: validate_phase,
        ok,
        round_trip,
    }
}

#[tokio::main]
async fn main() {
    let mut sizes = vec![10usize, 100, 1000];
    let mut engines = vec!["server".to_string(), "embedded".to_string()];
    let mut repeat = 1usize;
    let mut logging_off = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-logging" => logging_off = true,
            "--sizes" => sizes = args.next().unwrap().split(',').map(|s| s.parse().unwrap()).collect(),
            "--engines" => engines = args.next().unwrap().split(',').map(str::to_string).collect(),
            "--repeat" => repeat = args.next().unwrap().parse().unwrap(),
            "--concurrency" => CONCURRENCY.store(args.next().unwrap().parse().unwrap(), Ordering::Relaxed),
            "--latency-ms" => LATENCY_MS.store(args.next().unwrap().parse().unwrap(), Ordering::Relaxed),
            other => panic!("unknown argument {other}"),
        }
    }
    if !logging_off {
        logging::as_the_binary();
    }
    let migrations = discover_migrations(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bench-migrations")).unwrap();
    let statements: Vec<String> = migrations.iter().map(|m| m.up.clone()).collect();
    println!(
        "{} migrations, parallel strategy, max_concurrent {}; times in seconds (median of {repeat}); ratios: median of each round's surql / floor; memory = peak RSS growth of this process (max); cpu = CPU time of this process and the server",
        migrations.len(),
        concurrency()
    );
    println!(
        "{:<9} {:>5} | {:>8} {:>8} {:>7} | {:>7} {:>7} {:>7} | {:>8} {:>8} | {:>9} {:>10} {:>9} | {:>8} {:>10}",
        "engine",
        "N",
        "surql s",
        "floor s",
        "ratio",
        "cpu s",
        "floor",
        "ratio",
        "envs/s",
        "floor/s",
        "mem KiB",
        "KiB/env",
        "floor KiB",
        "status s",
        "validate s"
    );
    for engine in &engines {
        for &n in &sizes {
            let mut rounds = Vec::new();
            for round in 0..repeat {
                let r = one_round(engine, n, round, &migrations, &statements).await;
                // Each round on its own line: rounds differ by more than the
                // medians show.
                eprintln!(
                    "  round {round}: surql {:.2} s, floor {:.2} s, ratio {:.3}; cpu surql {:.2}+{:.2} s, floor {:.2}+{:.2} s (this process + server)",
                    r.surql.seconds,
                    r.floor.seconds,
                    r.surql.seconds / r.floor.seconds,
                    r.surql.cpu_seconds,
                    r.surql.server_cpu_seconds,
                    r.floor.cpu_seconds,
                    r.floor.server_cpu_seconds
                );
                rounds.push(r);
            }
            let ok = rounds.iter().all(|r| r.ok);
            let median = |pick: &dyn Fn(&Round) -> f64| {
                let mut values: Vec<f64> = rounds.iter().map(pick).collect();
                values.sort_by(|a, b| a.partial_cmp(b).unwrap());
                values[values.len() / 2]
            };
            let floor_phase = Phase {
                seconds: median(&|r| r.floor.seconds),
                peak_growth_kib: rounds.iter().map(|r| r.floor.peak_growth_kib).max().unwrap_or(0),
                cpu_seconds: median(&|r| r.floor.cpu_seconds),
                server_cpu_seconds: median(&|r| r.floor.server_cpu_seconds),
            };
            let surql_phase = Phase {
                seconds: median(&|r| r.surql.seconds),
                peak_growth_kib: rounds.iter().map(|r| r.surql.peak_growth_kib).max().unwrap_or(0),
                cpu_seconds: median(&|r| r.surql.cpu_seconds),
                server_cpu_seconds: median(&|r| r.surql.server_cpu_seconds),
            };
            let status_phase = Phase {
                seconds: median(&|r| r.status.seconds),
                peak_growth_kib: 0,
                cpu_seconds: 0.0,
                server_cpu_seconds: 0.0,
            };

            println!(
                "{:<9} {:>5} | {:>8.2} {:>8.2} {:>7.2} | {:>7.2} {:>7.2} {:>7.2} | {:>8.1} {:>8.1} | {:>9} {:>10.1} {:>9} | {:>8.2} {:>10.2}{}",
                engine,
                n,
                surql_phase.seconds,
                floor_phase.seconds,
                median(&|r| r.surql.seconds / r.floor.seconds),
                surql_phase.total_cpu(),
                floor_phase.total_cpu(),
                median(&|r| r.surql.total_cpu() / r.floor.total_cpu()),
                n as f64 / surql_phase.seconds,
                n as f64 / floor_phase.seconds,
                surql_phase.peak_growth_kib,
                surql_phase.peak_growth_kib as f64 / n as f64,
                floor_phase.peak_growth_kib,
                status_phase.seconds,
                median(&|r| r.validate.seconds),
                if ok { "" } else { "  (FAILURES)" }
            );
            if engine == "server" {
                let round_trip = rounds.iter().filter_map(|r| r.round_trip).min().unwrap_or_default();
                println!(
                    "{:>15} | cpu of this process {:.2} s (floor {:.2}), of the server {:.2} s (floor {:.2}); round trip {:.2} ms ({})",
                    "",
                    surql_phase.cpu_seconds,
                    floor_phase.cpu_seconds,
                    surql_phase.server_cpu_seconds,
                    floor_phase.server_cpu_seconds,
                    round_trip.as_secs_f64() * 1e3,
                    if round_trip >= surql::migration::apply::BATCH_FROM_ROUND_TRIP {
                        "migrations batched"
                    } else {
                        "one migration per request"
                    }
                );
            }
        }
    }
}
