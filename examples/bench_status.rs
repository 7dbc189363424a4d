//! `status` and `validate` of N tenants on one real local server, without the
//! deployment before them: the tenants' histories are written directly (ten
//! rows each, the checksums of `examples/bench-migrations/`), so the reads can
//! be timed again and again in seconds; `--cli` times the `surql` binary
//! instead (`orchestrate status` and `validate` with an environments.json of
//! N tenants). See BENCHMARKS.md.
//!
//!   cargo build --workspace && cargo run --example bench_status -- [--tenants 10000] [--repeat 3] [--latency-ms 0] [--raw | --cli] [--no-logging]
//!
//! The process logs as the `surql` binary does (a `tracing` subscriber at
//! `RUST_LOG`, default `warn`); `--no-logging` measures without one, as the
//! rounds before BENCHMARKS.md's fifteenth did (see `common/logging.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmarks stop at the first surprise

// The binary's allocator (cli/src/main.rs), so the figures are the binary's.
#[cfg(all(
    any(target_arch = "x86_64", target_arch = "x86"),
    any(target_os = "linux", target_os = "macos")
))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::time::{Duration, Instant};

use futures::StreamExt;

use surql::connection::{Client, ConnectionConfig, connect};
use surql::{EnvironmentConfig, EnvironmentRegistry, MigrationCoordinator, discover_migrations};

#[path = "../tests/it/common/server.rs"]
mod server;

#[path = "common/logging.rs"]
mod logging;

#[path = "../tests/it/common/latency.rs"]
mod latency;

use server::{TestServer, cpu_seconds};

fn connection(url: &str, ns: String) -> ConnectionConfig {
    ConnectionConfig::new(url, ns, "main").with_credentials("root", "root")
}

/// Writes ten history rows into each of `n` tenants, 100 tenants per request.
async fn fill(url: &str, n: usize, migrations: &[surql::Migration]) {
    let db = connect(
        &Client::new(),
        &connection(url, "tenant_0".into()),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let rows: Vec<serde_json::Value> = migrations
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": m.version, "version": m.version, "name": m.name, "checksum": m.checksum,
                "applied_at": "2026-12-01T00:00:00Z", "execution_ms": 1, "deployment_id": "bench", "actor": "bench",
            })
        })
        .collect();
    let rows = serde_json::to_string(&rows).unwrap();
    for start in (0..n).step_by(100) {
        let mut sql = String::new();
        for i in start..(start + 100).min(n) {
            sql.push_str(&format!(
                "USE NS tenant_{i} DB main; INSERT INTO _migration_history {rows};\n"
            ));
        }
        db.query(sql).await.unwrap().check().unwrap();
    }
}

#[tokio::main]
async fn main() {
    let (mut tenants, mut repeat, mut latency_ms, mut raw_only, mut cli) = (10_000usize, 3usize, 0u64, false, false);
    let mut logging_off = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-logging" => logging_off = true,
            "--tenants" => tenants = args.next().unwrap().parse().unwrap(),
            "--repeat" => repeat = args.next().unwrap().parse().unwrap(),
            "--latency-ms" => latency_ms = args.next().unwrap().parse().unwrap(),
            "--raw" => raw_only = true,
            "--cli" => cli = true,
            other => panic!("unknown argument {other}"),
        }
    }
    if !logging_off {
        logging::as_the_binary();
    }
    let migrations = discover_migrations(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bench-migrations")).unwrap();
    let server = TestServer::start();
    let started = Instant::now();
    fill(&server.ws_url(), tenants, &migrations).await;
    println!(
        "{tenants} tenants with {} history rows each written in {:.1} s",
        migrations.len(),
        started.elapsed().as_secs_f64()
    );
    if raw_only {
        raw(&server.ws_url(), tenants, &server.pid().to_string()).await;
        return;
    }
    if cli {
        time_the_binary(&server.ws_url(), tenants, repeat);
        return;
    }
    let url = if latency_ms == 0 {
        server.ws_url()
    } else {
        let proxy =
            latency::LatencyProxy::start(format!("127.0.0.1:{}", server.port), Duration::from_millis(latency_ms));
        let url = proxy.ws_url();
        std::mem::forget(proxy);
        url
    };

    let mut registry = EnvironmentRegistry::new();
    for i in 0..tenants {
        let mut env = EnvironmentConfig::new(format!("tenant_{i}"), connection(&url, format!("tenant_{i}")));
        env.tags = vec!["tenant".into()];
        registry.register(env).unwrap();
    }
    let coordinator = MigrationCoordinator::new(registry);
    let names = vec!["tag:tenant".to_string()];
    let selected: Vec<EnvironmentConfig> = coordinator.select(&names).await.unwrap().into_iter().collect();
    let refs: Vec<&EnvironmentConfig> = selected.iter().collect();
    let pid = server.pid().to_string();
    println!(
        "{:>8} | {:>8} {:>10} {:>10} | {:>10} {:>10} {:>10}",
        "round", "status s", "client cpu", "server cpu", "validate s", "client cpu", "server cpu"
    );
    for round in 0..repeat {
        // No namespace listing is reused between rounds (they are fresh for a
        // second); the coordinator's signed-in connections are.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let check = coordinator.health_check(surql::health::DEFAULT_HEALTH_TIMEOUT);
        let (cpu, server_cpu, started) = (cpu_seconds("self"), cpu_seconds(&pid), Instant::now());
        let statuses = coordinator
            .get_deployment_status(&names, &migrations, &check)
            .await
            .unwrap();
        let status = (
            started.elapsed().as_secs_f64(),
            cpu_seconds("self") - cpu,
            cpu_seconds(&pid) - server_cpu,
        );
        let clean = statuses
            .values()
            .all(|s| s.pending_count == 0 && s.health.is_healthy && s.applied_count == migrations.len());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (cpu, server_cpu, started) = (cpu_seconds("self"), cpu_seconds(&pid), Instant::now());
        let healths = check.check_environments(&refs).await;
        let validate = (
            started.elapsed().as_secs_f64(),
            cpu_seconds("self") - cpu,
            cpu_seconds(&pid) - server_cpu,
        );
        let healthy = healths.values().all(|h| h.is_healthy && h.migration_table_exists);
        println!(
            "{round:>8} | {:>8.2} {:>10.2} {:>10.2} | {:>10.2} {:>10.2} {:>10.2}{}",
            status.0,
            status.1,
            status.2,
            validate.0,
            validate.1,
            validate.2,
            if clean && healthy { "" } else { "  (NOT CLEAN)" }
        );
    }
}

/// Times the statements of the reads sent raw, 250 tenants per request, 8
/// requests at once, each request as statements of their own or as one
/// transaction (`--raw`).
async fn raw(url: &str, n: usize, pid: &str) {
    type Statements = Box<dyn Fn(usize) -> String>;
    let variants: Vec<(&str, Statements)> = vec![
        (
            "USE NS; INFO FOR NS",
            Box::new(|i| format!("USE NS tenant_{i}; INFO FOR NS;\n")),
        ),
        (
            "USE NS DB; SELECT * (10 rows)",
            Box::new(|i| format!("USE NS tenant_{i} DB main; SELECT * FROM _migration_history:..;\n")),
        ),
        (
            "USE NS DB; SELECT 1 row",
            Box::new(|i| format!("USE NS tenant_{i} DB main; SELECT * FROM _migration_history:⟨0001⟩;\n")),
        ),
        ("USE NS; 1", Box::new(|i| format!("USE NS tenant_{i}; 1;\n"))),
    ];
    for (label, make) in &variants {
        for txn in [false, true] {
            let started = Instant::now();
            let (cpu, server_cpu) = (cpu_seconds("self"), cpu_seconds(pid));
            let chunks: Vec<(usize, usize)> = (0..n).step_by(250).map(|s| (s, (s + 250).min(n))).collect();
            // One client: every request after the first reuses its sign-ins.
            let client = Client::new();
            futures::stream::iter(chunks)
                .map(|(s, e)| {
                    let mut sql = String::new();
                    if txn {
                        sql.push_str("BEGIN;\n");
                    }
                    for i in s..e {
                        sql.push_str(&make(i));
                    }
                    if txn {
                        sql.push_str("COMMIT;\n");
                    }
                    let (url, client) = (url.to_string(), client.clone());
                    async move {
                        let db = connect(&client, &connection(&url, "tenant_0".into()), Duration::from_secs(30))
                            .await
                            .unwrap();
                        let mut r = db.query(sql).await.unwrap();
                        let errors = r.take_errors();
                        assert!(errors.is_empty(), "{:?}", errors.values().next());
                    }
                })
                .buffer_unordered(8)
                .count()
                .await;
            println!(
                "{label:<40} txn {txn:<5} {:>6.2} s  client {:>5.2}  server {:>5.2}",
                started.elapsed().as_secs_f64(),
                cpu_seconds("self") - cpu,
                cpu_seconds(pid) - server_cpu
            );
        }
    }
}

/// Times `surql orchestrate status -e all` and `validate` as a user runs
/// them (`--cli`): the built binary, an environments.json of `n` tenants.
fn time_the_binary(url: &str, n: usize, repeat: usize) {
    // target/<profile>/examples/bench_status → target/<profile>/surql
    let exe = std::env::current_exe().unwrap();
    let surql = exe.parent().and_then(std::path::Path::parent).unwrap().join("surql");
    let dir = std::env::temp_dir().join(format!("surql-bench-status-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let environments: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({"name": format!("tenant-{i}"), "connection": {"db_url": url, "db_ns": format!("tenant_{i}"),
                "db": "main", "username": "root", "password": "root"}})
        })
        .collect();
    let config = serde_json::json!({ "environments": environments });
    std::fs::write(dir.join("environments.json"), config.to_string()).unwrap();
    let migrations = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bench-migrations");
    println!(
        "{:>8} | {:>8} {:>8} | {:>10} {:>8}",
        "round", "status s", "json", "validate s", "json"
    );
    let status = ["status", "-e", "all", "-m", migrations];
    let validate = ["validate", "-e", "all"];
    let json = ["--output", "json"];
    for round in 0..repeat {
        let mut times = Vec::new();
        for command in [
            status.to_vec(),
            [&status[..], &json].concat(),
            validate.to_vec(),
            [&validate[..], &json].concat(),
        ] {
            std::thread::sleep(Duration::from_millis(1100));
            let started = Instant::now();
            let out = std::process::Command::new(&surql)
                .arg("orchestrate")
                .args(&command)
                .current_dir(&dir)
                .output()
                .unwrap();
            times.push(started.elapsed().as_secs_f64());
            assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        }
        println!(
            "{round:>8} | {:>8.2} {:>8.2} | {:>10.2} {:>8.2}",
            times[0], times[1], times[2], times[3]
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
