//! What seeing a rollout costs: the `surql` binary deploys the 10 benchmark
//! migrations to N tenants on a real local server (parallel, 16 at once,
//! the default embedded state store), end to end, three ways — plain; with
//! `--metrics-listen` and `--metrics-file`; and with those plus OTLP traces
//! sent to a local OTLP/HTTP receiver — alternating, each on a fresh server.
//! Prints each run, the medians and the ratio to the plain run.
//!
//!   cargo build --workspace && cargo run --example bench_observe -- [--tenants 1000] [--repeat 3]

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmarks stop at the first surprise

use std::time::Instant;

#[path = "../tests/it/common/server.rs"]
mod server;

#[path = "common/binary.rs"]
mod binary;

use binary::{deploy_command, write_tenants};

#[path = "../tests/it/common/http.rs"]
#[allow(dead_code)] // the benchmark only counts the requests
mod http;

use server::TestServer;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Metrics,
    MetricsAndTraces,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Metrics => "metrics",
            Mode::MetricsAndTraces => "metrics+traces",
        }
    }
}

/// Seconds one deployment of `tenants` takes in `mode`, and the trace requests received.
fn run(mode: Mode, tenants: usize) -> (f64, usize) {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    write_tenants(dir.path(), &server.ws_url(), tenants);
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench-migrations");
    let receiver = http::Recorder::start(|_| (200, String::new()));
    let mut command = deploy_command(dir.path(), &migrations);
    if mode != Mode::Plain {
        let file = dir.path().join("surql.prom");
        command.args([
            "--metrics-listen",
            "127.0.0.1:0",
            "--metrics-file",
            file.to_str().unwrap(),
        ]);
    }
    if mode == Mode::MetricsAndTraces {
        command.env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url);
    }
    let started = Instant::now();
    let out = command.output().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let traces = receiver.requests().iter().filter(|r| r.path() == "/v1/traces").count();
    assert_eq!(traces > 0, mode == Mode::MetricsAndTraces, "trace requests: {traces}");
    (seconds, traces)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let (mut tenants, mut repeat) = (1000, 3);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tenants" => tenants = args.next().unwrap().parse().unwrap(),
            "--repeat" => repeat = args.next().unwrap().parse().unwrap(),
            other => panic!("unknown argument {other}"),
        }
    }
    let modes = [Mode::Plain, Mode::Metrics, Mode::MetricsAndTraces];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for round in 1..=repeat {
        for (i, mode) in modes.iter().enumerate() {
            let (seconds, traces) = run(*mode, tenants);
            println!(
                "round {round} {:<15} {tenants} tenants {seconds:.2}s ({traces} OTLP requests)",
                mode.name()
            );
            times[i].push(seconds);
        }
    }
    let plain = median(&mut times[0].clone());
    for (i, mode) in modes.iter().enumerate() {
        let m = median(&mut times[i]);
        println!(
            "median {:<15} {m:.2}s  {:.1} tenants/s  ratio to plain {:.3}",
            mode.name(),
            tenants as f64 / m,
            m / plain
        );
    }
}
