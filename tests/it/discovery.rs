//! Tenant discovery: templates in environments.json expand into one
//! environment per namespace or database found on a real server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

use std::time::Duration;

use serde_json::json;
use surql::connection::{Client, connect_read_only, run_query};

use crate::common::{TestServer, example_migrations, run_surql};

#[tokio::test]
async fn templates_expand_to_matching_namespaces_and_databases() {
    let server = TestServer::start();
    let root = crate::common::session(&server.connection("setup", "main")).await;
    run_query(
        &root,
        "DEFINE NAMESPACE tenant_acme; DEFINE NAMESPACE tenant_globex; DEFINE NAMESPACE internal;
         USE NS shards; DEFINE DATABASE shard_1; DEFINE DATABASE shard_2; DEFINE DATABASE archive;",
        json!({}),
    )
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let config = json!({"environments": [
        {"name": "tenant-{ns}", "tags": ["tenant"], "priority": 5,
         "discover": {"connection": {"db_url": server.ws_url(), "db": "main", "username": "root", "password": "root"},
                      "namespaces": "tenant_*"}},
        {"name": "{db}", "tags": ["shard"],
         "discover": {"connection": {"db_url": server.ws_url(), "db_ns": "shards", "username": "root", "password": "root"},
                      "databases": "shard_?"}},
        {"name": "nothing-{ns}", "discover": {"connection": {"db_url": server.ws_url(), "db": "main", "username": "root", "password": "root"},
                      "namespaces": "nobody_*"}}
    ]});
    std::fs::write(work.path().join("environments.json"), config.to_string()).unwrap();

    let out = run_surql(&["orchestrate", "validate"], work.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for name in ["tenant-tenant_acme", "tenant-tenant_globex", "shard_1", "shard_2"] {
        assert!(stdout.contains(name), "{name} missing: {stdout}");
    }
    assert!(!stdout.contains("internal") && !stdout.contains("archive"), "{stdout}");
    assert!(
        stderr.contains("discovered 2 environment(s) for 'tenant-{ns}'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("discovered 0 environment(s) for 'nothing-{ns}'"),
        "{stderr}"
    );

    let out = run_surql(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "tag:tenant,tag:shard",
            "--strategy",
            "parallel",
            "-m",
            example_migrations().to_str().unwrap(),
            "--output",
            "json",
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["results"].as_array().unwrap().len(), 4);
    for (ns, db) in [
        ("tenant_acme", "main"),
        ("tenant_globex", "main"),
        ("shards", "shard_1"),
        ("shards", "shard_2"),
    ] {
        let db = connect_read_only(&Client::new(), &server.connection(ns, db), Duration::from_secs(10))
            .await
            .unwrap()
            .expect("deployed");
        assert_eq!(
            surql::migration::applied_migrations(&db).await.unwrap().len(),
            3,
            "{ns}"
        );
    }
    // Discovery created nothing: the unmatched namespace has no database.
    assert!(
        connect_read_only(
            &Client::new(),
            &server.connection("internal", "main"),
            Duration::from_secs(10)
        )
        .await
        .unwrap()
        .is_none()
    );
}

#[test]
fn bad_templates_are_refused_with_their_path() {
    let work = tempfile::tempdir().unwrap();
    for (template, expected) in [
        (
            json!({"name": "fixed", "discover": {"connection": {"db_url": "mem://", "db": "m"}, "namespaces": "t_*"}}),
            "must contain {ns}",
        ),
        (
            json!({"name": "t-{ns}", "discover": {"connection": {"db_url": "mem://"}, "namespaces": "t_*"}}),
            "discover.connection.db",
        ),
        (
            json!({"name": "t-{ns}", "discover": {"connection": {"db_url": "mem://", "db": "m"}}}),
            "exactly one of",
        ),
        (
            json!({"name": "t-{ns}", "discover": {"connection": {"db_url": "mem://", "db": "m"}, "namespaces": "*", "extra": 1}}),
            "extra",
        ),
        (
            json!({"name": "t-{ns}", "hold": " ", "discover": {"connection": {"db_url": "mem://", "db": "m"}, "namespaces": "*"}}),
            "give the reason it is held",
        ),
    ] {
        let config = json!({"environments": [{"name": "plain", "connection": {"db_url": "mem://", "db_ns": "a", "db": "b"}}, template]});
        std::fs::write(work.path().join("environments.json"), config.to_string()).unwrap();
        let out = run_surql(&["orchestrate", "validate"], work.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("environments[1]") && stderr.contains(expected),
            "{expected}: {stderr}"
        );
    }
}

/// A discovery server that is down stops the deployment before anything is
/// touched: the environment listed beside the template is not deployed, and
/// the error names the template and the server, without its password.
#[tokio::test]
async fn an_unreachable_discovery_server_stops_the_run_before_anything_is_touched() {
    let server = TestServer::start();
    let dead = format!("ws://127.0.0.1:{}", crate::common::free_port());
    let work = tempfile::tempdir().unwrap();
    let config = json!({"environments": [
        {"name": "listed", "connection": {"db_url": server.ws_url(), "db_ns": "listed", "db": "main",
                                          "username": "root", "password": "root"}},
        {"name": "tenant-{ns}", "discover": {"connection": {"db_url": dead, "db": "main",
                                             "username": "root", "password": "s3cret-discovery"},
                                             "namespaces": "tenant_*"}}
    ]});
    std::fs::write(work.path().join("environments.json"), config.to_string()).unwrap();
    let out = run_surql(
        &[
            "orchestrate",
            "deploy",
            "-e",
            "all",
            "-m",
            example_migrations().to_str().unwrap(),
            "--health-timeout",
            "5",
        ],
        work.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("environments[1] ('tenant-{ns}'): discovery on") && stderr.contains(&dead),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-discovery"), "{stderr}");
    // The listed environment was not touched: its namespace does not exist.
    assert!(
        connect_read_only(
            &Client::new(),
            &server.connection("listed", "main"),
            Duration::from_secs(10)
        )
        .await
        .unwrap()
        .is_none()
    );
}
