//! Many tenants on one server: the connections surql opens stay bounded by
//! the pool, whatever the number of environments (speed itself is measured by
//! `examples/bench.rs`, never asserted here).

mod common;

use std::collections::HashSet;

use surql::connection::CONNECTIONS_PER_SERVER;
use surql::{DeployRequest, DeploymentStatus, EnvironmentConfig, EnvironmentRegistry, MigrationCoordinator};

use common::{TestServer, example_migrations};

/// Established TCP connections from this process to 127.0.0.1:`port` (Linux).
fn connections_to(port: u16) -> usize {
    let ours: HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            Some(target.strip_prefix("socket:[")?.trim_end_matches(']').to_string())
        })
        .collect();
    let remote = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/self/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // rem_address, st (01 = established), inode
            fields[2] == remote && fields[3] == "01" && ours.contains(fields[9])
        })
        .count()
}

#[tokio::test]
async fn many_tenants_share_a_bounded_pool_of_connections() {
    let server = TestServer::start();
    let mut registry = EnvironmentRegistry::new();
    for i in 0..40 {
        let mut env = EnvironmentConfig::new(format!("tenant-{i}"), server.connection(&format!("tenant_{i}"), "main"));
        env.tags = vec!["tenant".into()];
        registry.register(env).unwrap();
    }
    let migrations = surql::discover_migrations(example_migrations()).unwrap();
    let mut request = DeployRequest::new(&["tag:tenant"], migrations, "parallel");
    request.options.max_concurrent = 16;
    let report = MigrationCoordinator::new(registry)
        .deploy_to_environments(request)
        .await
        .unwrap();
    assert_eq!(report.results.len(), 40);
    for result in report.results.values() {
        assert_eq!(result.status, DeploymentStatus::Success, "{result:?}");
        assert_eq!(result.migrations_applied, 3);
    }

    // 40 environments, 16 at a time: one sign-in per pooled connection, not
    // one connection per environment — and more than one, so concurrent
    // environments do not queue behind a single socket.
    let open = connections_to(server.port);
    assert!(
        (2..=CONNECTIONS_PER_SERVER).contains(&open),
        "{open} connections to the server for 40 environments"
    );
}
