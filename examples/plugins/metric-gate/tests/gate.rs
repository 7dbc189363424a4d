//! The gate through the SDK's harness, against a real local HTTP server
//! answering as Prometheus does (and `cargo test` builds the cdylib).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::json;
use surql_metric_gate::MetricGate;
use surql_plugin_sdk::Gate;
use surql_plugin_sdk::testing::{Harness, gate_request};

/// Serves `bodies` in turn, one per connection, on 127.0.0.1.
fn prometheus(bodies: Vec<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/query?query=errors", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for body in bodies {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).unwrap();
        }
    });
    url
}

fn vector(value: &str) -> String {
    json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.7e9, value]}]}})
        .to_string()
}

#[test]
fn halts_above_the_threshold_and_without_data() {
    let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}}).to_string();
    let url = prometheus(vec![vector("0.01"), vector("0.2"), empty, vector("NaN")]);
    let gate =
        Harness::<MetricGate>::create(json!({"query_url": url, "threshold": 0.05, "metric": "error rate"})).unwrap();
    let request = gate_request("wave 2", &["t1", "t2"]);
    assert_eq!(gate.gate(&request), Ok(Gate::Continue));
    match gate.gate(&request).unwrap() {
        Gate::Halt(reason) => assert!(
            reason.contains("error rate is 0.2, above 0.05 — wave 2 waits"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(gate.gate(&request), Ok(Gate::Halt(reason)) if reason.contains("no sample")));
    // 0/0 in Prometheus is "NaN": no reading, so no go-ahead.
    assert!(matches!(gate.gate(&request), Ok(Gate::Halt(reason)) if reason.contains("no sample")));
}

#[test]
fn bad_config_is_refused_with_the_key() {
    let refused = Harness::<MetricGate>::create(json!({"threshold": 1})).err().unwrap();
    assert!(refused.contains("query_url"), "{refused}");
    let refused = Harness::<MetricGate>::create(json!({"query_url": "http://x", "threshold": "high"}))
        .err()
        .unwrap();
    assert!(refused.contains("threshold"), "{refused}");
    // SAFETY: the declaration (and its strings) are statics that live as long as the library.
    let declaration = unsafe { &*surql_metric_gate::surql_plugin_declare() };
    assert_eq!(declaration.hooks, surql_plugin_sdk::HOOK_GATE);
}
