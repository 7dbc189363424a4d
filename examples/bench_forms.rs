//! What each form of a statement costs the server, in instructions: the
//! test server runs under `valgrind --tool=callgrind`, fresh tenants send
//! the labelled requests of a file in order, and the counts after each are
//! printed per tenant (BENCHMARKS.md, fourteenth round). Each figure holds
//! a request's own overhead: compare it with a bare one (`RETURN 1`).
//!
//!   cargo build --workspace && cargo run --example bench_forms -- examples/bench-forms/row.surql /tmp/cg [--tenants 10]
//!
//! A file is `## label` lines, each followed by the SurrealQL of one
//! request. Parameters bound: `$owner`, `$surql_owner`, `$surql_version`,
//! `$surql_name`, `$surql_checksum`, `$surql_deployment_id`, `$surql_actor`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

use std::time::Duration;

use surql::connection::{Client, connect, run_query};

#[path = "../tests/it/common/server.rs"]
mod server;

#[path = "common/callgrind.rs"]
mod callgrind;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let file = args.next().expect("FILE of `## label` requests");
    let dir = std::path::PathBuf::from(args.next().expect("DIR for callgrind's output"));
    let tenants: usize = match (args.next().as_deref(), args.next()) {
        (Some("--tenants"), Some(n)) => n.parse().expect("--tenants N"),
        (None, _) => 10,
        (other, _) => panic!("unknown argument {other:?}"),
    };
    let requests = labelled_requests(&std::fs::read_to_string(&file).unwrap());
    let callgrind = callgrind::Callgrind::new(&dir);
    let server = server::TestServer::start_binary(callgrind.wrapper(&server::server_binary()));
    let pid = server.pid();
    let client = Client::new();
    let vars = serde_json::json!({
        "owner": "bench", "surql_owner": "bench", "surql_version": "0001", "surql_name": "n",
        "surql_checksum": "c", "surql_deployment_id": "d", "surql_actor": "a"
    });
    // The first round warms the server up; the second is counted.
    for round in 0..2 {
        let dump = |label: &str| {
            if round == 1 {
                callgrind.dump(pid, label);
            }
        };
        for i in 0..tenants {
            dump("between tenants");
            let config = server.connection(&format!("t{round}_{i}"), "main");
            let db = connect(&client, &config, Duration::from_secs(60)).await.unwrap();
            dump("connect");
            for (label, sql) in &requests {
                run_query(&db, sql, vars.clone())
                    .await
                    .unwrap_or_else(|e| panic!("{label}: {e}"));
                dump(label);
            }
        }
    }
    let totals = callgrind.totals(pid);
    println!("server instructions per tenant (callgrind, millions; each holds a request's own overhead)");
    for label in std::iter::once("connect").chain(requests.iter().map(|(label, _)| label.as_str())) {
        let total = totals.get(label).copied().unwrap_or(0);
        println!("  {label:<32} {:>8.3}", total as f64 / 1e6 / tenants as f64);
    }
}

/// `## label` lines, each followed by its request.
fn labelled_requests(text: &str) -> Vec<(String, String)> {
    let mut requests: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        match (line.strip_prefix("## "), requests.last_mut()) {
            (Some(label), _) => requests.push((label.trim().to_string(), String::new())),
            (None, Some((_, sql))) => {
                sql.push_str(line);
                sql.push('\n');
            }
            (None, None) => {}
        }
    }
    requests
}
