//! Where surql's time goes on one tenant: the steps of a deployment timed one
//! by one, sequentially (no concurrency noise), against the floor — the same
//! up sections sent with the SDK. On the server it counts the server's CPU
//! time per step, on the embedded engine wall time. See BENCHMARKS.md.
//!
//!   cargo build --workspace && cargo run --example bench_steps -- [--engine server|embedded] [--tenants 300] [--batch] [--whole] [--only floor|surql] [--no-logging]
//!
//! The process logs as the `surql` binary does (a `tracing` subscriber at
//! `RUST_LOG`, default `warn`); `--no-logging` measures without one, as the
//! rounds before BENCHMARKS.md's fifteenth did (see `common/logging.rs`).
//!
//! `--only` runs one side, for counting its instructions under
//! `valgrind --tool=callgrind` (repeatable where wall time is not).
//!
//! `--callgrind DIR` runs the server under callgrind instead and prints the
//! server's instructions per tenant for the floor and for each step: the
//! same figures every run, where CPU time varies by a few per cent. The
//! migrations then go one per request, as on a local server (under valgrind
//! the measured round trip would batch them).
//!
//! `--whole` deploys each tenant through `MigrationCoordinator` instead of
//! calling the steps one by one: what a deployment adds beyond its steps.
//! Not under `--callgrind`: the deployment would measure valgrind's slow
//! round trip and batch its migrations.
//!
//! The migrations go one per request, or all in one request, as the engine
//! decides from the round trip (a server on this host: one per request);
//! `--batch` sends them in one request regardless.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

use std::time::{Duration, Instant};

use surql::connection::ReadOnly;
use surql::connection::{Client, ConnectionConfig, connect, select_for_write};
use surql::health::HealthCheck;
use surql::migration::ApplyContext;
use surql::migration::apply::apply_batch;
use surql::migration::history::{DEFINE_HISTORY_TABLE, READ_HISTORY};
use surql::migration::lock::{DEFINE_LOCK_TABLE, acquire_lock_with, release_lock};
use surql::migration::script::StartClock;
use surql::{EnvironmentConfig, discover_migrations};

#[path = "../tests/it/common/server.rs"]
mod server;

#[path = "common/logging.rs"]
mod logging;

#[path = "common/callgrind.rs"]
mod callgrind;

use callgrind::Callgrind;

const STEPS: [&str; 4] = [
    "health check",
    "select (creates ns/db)",
    "lock + history read",
    "10 migrations, unlock",
];

/// `--whole`: one step, the deployment through `MigrationCoordinator`.
const WHOLE: [&str; 1] = ["whole deployment"];

/// Wall time, or the server's CPU time when there is a server.
struct Clock(Option<u32>, Instant, f64);

impl Clock {
    fn start(server: Option<u32>) -> Self {
        Self(
            server,
            Instant::now(),
            server.map(|pid| server::cpu_seconds(&pid.to_string())).unwrap_or(0.0),
        )
    }
    /// Seconds since the last lap.
    fn lap(&mut self) -> f64 {
        let now = self.0.map(|pid| server::cpu_seconds(&pid.to_string())).unwrap_or(0.0);
        let spent = match self.0 {
            Some(_) => now - self.2,
            None => self.1.elapsed().as_secs_f64(),
        };
        (self.1, self.2) = (Instant::now(), now);
        spent
    }
}

#[tokio::main]
async fn main() {
    let (mut engine, mut tenants) = ("server".to_string(), 300usize);
    let mut force_batch = false;
    let mut only: Option<String> = None;
    let mut callgrind: Option<std::path::PathBuf> = None;
    let mut whole = false;
    let mut logging_off = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-logging" => logging_off = true,
            "--engine" => engine = args.next().expect("--engine server|embedded"),
            "--tenants" => tenants = args.next().and_then(|n| n.parse().ok()).expect("--tenants N"),
            "--batch" => force_batch = true,
            "--whole" => whole = true,
            "--only" => only = Some(args.next().expect("--only floor|surql")),
            "--callgrind" => callgrind = Some(args.next().expect("--callgrind DIR").into()),
            other => panic!("unknown argument {other}"),
        }
    }
    if !logging_off {
        logging::as_the_binary();
    }
    assert!(
        only.as_deref().is_none_or(|side| side == "floor" || side == "surql"),
        "--only floor|surql"
    );
    assert!(
        !(whole && callgrind.is_some()),
        "--whole under --callgrind would batch (valgrind slows the round trip)"
    );
    let under_callgrind = callgrind.as_deref().map(Callgrind::new);
    let server = (engine == "server").then(|| match &under_callgrind {
        Some(callgrind) => server::TestServer::start_binary(callgrind.wrapper(&server::server_binary())),
        None => server::TestServer::start(),
    });
    let url = server
        .as_ref()
        .map(|s| s.ws_url())
        .unwrap_or_else(|| "mem://bench-steps".into());
    let pid = server.as_ref().map(|s| s.pid());
    let connection = |ns: String| match &server {
        Some(server) => server.connection(&ns, "main"),
        None => ConnectionConfig::new(&url, ns, "main"),
    };
    let migrations = discover_migrations(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bench-migrations")).unwrap();
    let context = ApplyContext::new();
    let clock = StartClock::of(&connection(String::new()));
    let timeout = Duration::from_secs(30);

    // One client for every round, as one deployment has: the floor's
    // connections and the health checks' are signed in to once.
    let client = Client::new();
    let check = HealthCheck::new().with_client(client.clone());
    // The first round warms up; the second is reported.
    for round in 0..2 {
        // Under callgrind each dump holds what the server did since the last.
        let dump = |label: &str| {
            if let (Some(callgrind), Some(pid), 1) = (&under_callgrind, pid, round) {
                callgrind.dump(pid, label);
            }
        };
        dump("before");
        let run = |side: &str| only.as_deref().is_none_or(|o| o == side);
        let mut floor = Clock::start(pid);
        for i in (0..tenants).filter(|_| run("floor")) {
            let db = connect(&client, &connection(format!("floor_{round}_{i}")), timeout)
                .await
                .unwrap();
            for m in &migrations {
                db.query(m.up.as_str()).await.unwrap().check().unwrap();
            }
        }
        let floor = floor.lap();
        dump("floor");

        let mut steps = [0.0; STEPS.len()];
        if whole && run("surql") {
            let mut registry = surql::EnvironmentRegistry::new();
            for i in 0..tenants {
                let env = EnvironmentConfig::new(format!("t{round}_{i}"), connection(format!("tenant_{round}_{i}")));
                registry.register(env).unwrap();
            }
            let coordinator = surql::MigrationCoordinator::new(registry);
            for i in 0..tenants {
                let name = format!("t{round}_{i}");
                let request = surql::DeployRequest::new(&[name.as_str()], migrations.clone(), "parallel");
                let mut clock_ = Clock::start(pid);
                let report = coordinator.deploy_to_environments(request).await.unwrap();
                steps[0] += clock_.lap();
                dump("step0");
                assert!(report.all_succeeded(), "{name} did not deploy");
            }
        }
        for i in (0..tenants).filter(|_| run("surql") && !whole) {
            let environment = EnvironmentConfig::new(format!("t{i}"), connection(format!("tenant_{round}_{i}")));
            let mut clock_ = Clock::start(pid);
            let inspection = check.inspect(&environment).await;
            steps[0] += clock_.lap();
            dump("step0");
            let ReadOnly::Missing(Some(db)) = inspection.session else {
                panic!("tenant_{round}_{i} is not a fresh tenant")
            };
            select_for_write(&db, &environment.connection, timeout).await.unwrap();
            steps[1] += clock_.lap();
            dump("step1");
            let setup = format!("{DEFINE_HISTORY_TABLE}{DEFINE_LOCK_TABLE}");
            let (lock, _) = acquire_lock_with(&db, "bench", Duration::from_secs(300), &setup, READ_HISTORY)
                .await
                .unwrap();
            steps[2] += clock_.lap();
            dump("step2");
            // As the engine does: one request for all when the server is a
            // round trip away, and the last request releases the lock.
            let all: Vec<_> = migrations.iter().collect();
            let far = surql::connection::round_trip(&client, &environment.connection)
                .is_some_and(|rtt| rtt >= surql::migration::apply::BATCH_FROM_ROUND_TRIP);
            let batch_size = if force_batch || (far && under_callgrind.is_none()) {
                all.len()
            } else {
                1
            };
            let batches = all.chunks(batch_size).count();
            let mut released = false;
            for (number, batch) in all.chunks(batch_size).enumerate() {
                let outcome = apply_batch(&db, batch, clock, &context, &lock, number + 1 == batches)
                    .await
                    .unwrap();
                assert!(outcome.stop.is_none(), "{:?}", outcome.stop);
                released = outcome.released_lock;
            }
            if !released {
                release_lock(&db, &lock).await.unwrap();
            }
            steps[3] += clock_.lap();
            dump("step3");
        }
        if round == 1 {
            let per_tenant = |seconds: f64| seconds * 1e3 / tenants as f64;
            let what = if pid.is_some() { "server CPU" } else { "wall time" };
            let total: f64 = steps.iter().sum();
            println!("{engine}, {tenants} fresh tenants one after another; {what} in ms per tenant");
            println!("{:<24} {:>7.3}", "floor (connect + 10 ups)", per_tenant(floor));
            let names: &[&str] = if whole { &WHOLE } else { &STEPS };
            for (name, seconds) in names.iter().zip(steps) {
                println!("  {name:<22} {:>7.3}", per_tenant(seconds));
            }
            println!("{:<24} {:>7.3}  ratio {:.2}", "surql", per_tenant(total), total / floor);
        }
    }
    if let Some(callgrind) = &under_callgrind {
        let names: &[&str] = if whole { &WHOLE } else { &STEPS };
        report(
            callgrind,
            names,
            tenants,
            pid.expect("--callgrind needs --engine server"),
        );
    }
}

/// The server's instructions per tenant: the floor and each step.
fn report(callgrind: &Callgrind, steps: &[&str], tenants: usize, pid: u32) {
    let by_label = callgrind.totals(pid);
    let per_tenant = |label: &str| by_label.get(label).copied().unwrap_or(0) as f64 / 1e6 / tenants as f64;
    println!("server instructions per tenant (callgrind, millions)");
    println!("{:<24} {:>7.2}", "floor (connect + 10 ups)", per_tenant("floor"));
    let mut total = 0.0;
    for (i, step) in steps.iter().enumerate() {
        let spent = per_tenant(&format!("step{i}"));
        total += spent;
        println!("  {step:<22} {spent:>7.2}");
    }
    println!(
        "{:<24} {:>7.2}  ratio {:.3}",
        "surql",
        total,
        total / per_tenant("floor")
    );
}
