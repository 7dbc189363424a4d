//! Many tenants on one server: the connections surql opens stay bounded by
//! the pool, whatever the number of environments (speed itself is measured by
//! `examples/bench.rs`, never asserted here).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

use std::collections::HashSet;

use surql::connection::{CONNECTIONS_PER_SERVER, Client, connect, round_trip};
use surql::{DeployRequest, DeploymentStatus, EnvironmentConfig, EnvironmentRegistry, MigrationCoordinator};

use crate::common::{TestServer, example_migrations};

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
    // Its pooled connections live as long as the coordinator (its client).
    let coordinator = MigrationCoordinator::new(registry);
    let report = coordinator.deploy_to_environments(request).await.unwrap();
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

/// A client's pool is its own: however often one client connects to a
/// server with the same credentials, it signs in on at most
/// [`CONNECTIONS_PER_SERVER`] connections (the rest of its sessions reuse
/// them, and so does a clone of it); another client shares none of them, nor
/// the round trip measured on them.
#[tokio::test]
async fn a_client_reuses_its_pooled_connections_and_shares_them_with_no_other() {
    let server = TestServer::start();
    let config = server.connection("pooled", "main");
    let timeout = std::time::Duration::from_secs(10);
    let one = Client::new();
    assert_eq!(round_trip(&one, &config), None, "measured before any connection");
    let mut sessions = Vec::new();
    for _ in 0..3 * CONNECTIONS_PER_SERVER {
        sessions.push(connect(&one, &config, timeout).await.unwrap());
    }
    // Each pooled connection is made once, its round trip measured then.
    assert_eq!(connections_to(server.port), CONNECTIONS_PER_SERVER);
    assert!(round_trip(&one, &config).is_some());
    let clone = one.clone();
    sessions.push(connect(&clone, &config, timeout).await.unwrap());
    assert_eq!(
        connections_to(server.port),
        CONNECTIONS_PER_SERVER,
        "a clone is the same client"
    );

    let other = Client::new();
    assert_eq!(
        round_trip(&other, &config),
        None,
        "a round trip measured by another client"
    );
    sessions.push(connect(&other, &config, timeout).await.unwrap());
    assert_eq!(
        connections_to(server.port),
        CONNECTIONS_PER_SERVER + 1,
        "another client signs in on a connection of its own"
    );
    assert!(round_trip(&other, &config).is_some());
    for session in &sessions {
        session.query("RETURN 1;").await.unwrap().check().unwrap();
    }
}

/// Health and history of every environment, without the time of the check.
fn comparable(status: &surql::HealthStatus, history: &Option<Vec<surql::migration::AppliedMigration>>) -> String {
    format!(
        "{} healthy={} connect={} auth={} table={} error={:?} history={history:?}",
        status.environment,
        status.is_healthy,
        status.can_connect,
        status.authenticated,
        status.migration_table_exists,
        status.error
    )
}

/// `status`/`validate` read the tenants of one server a few hundred per
/// request (switching with `USE`); the answers are those of checking each
/// tenant on its own, in every state a tenant can be in, and nothing is created.
#[tokio::test]
async fn tenants_of_one_server_are_read_together_with_the_same_answers() {
    let server = TestServer::start();
    let root = surql::connection::connect_unscoped(
        &surql::Client::new(),
        &server.connection("x", "y"),
        std::time::Duration::from_secs(10),
        false,
    )
    .await
    .unwrap();
    let mut registry = EnvironmentRegistry::new();
    let mut setup = String::new();
    for i in 0..320 {
        let ns = format!("tenant_{i}");
        let mut env = EnvironmentConfig::new(format!("tenant-{i:03}"), server.connection(&ns, "main"));
        env.tags = vec![if i < 200 { "deployed".into() } else { "other".into() }];
        registry.register(env).unwrap();
        match i {
            // The namespace exists, its database `main` does not.
            200..250 => setup.push_str(&format!("DEFINE NAMESPACE {ns}; USE NS {ns}; DEFINE DATABASE other;\n")),
            // The database exists, without a history table.
            250..260 => setup.push_str(&format!("USE NS {ns} DB main; DEFINE TABLE unrelated;\n")),
            // A history row surql cannot read.
            260..265 => setup.push_str(&format!(
                "USE NS {ns} DB main; CREATE _migration_history:1 SET version = '1';\n"
            )),
            _ => {}
        }
    }
    root.query(setup).await.unwrap().check().unwrap();
    let migrations = surql::discover_migrations(example_migrations()).unwrap();
    let coordinator = MigrationCoordinator::new(registry);
    let mut request = DeployRequest::new(&["tag:deployed"], migrations.clone(), "parallel");
    request.options.max_concurrent = 16;
    assert!(
        coordinator
            .deploy_to_environments(request)
            .await
            .unwrap()
            .all_succeeded()
    );
    // Drift on ten of the deployed tenants.
    let drift: String = (190..200)
        .map(|i| format!("USE NS tenant_{i} DB main; UPDATE _migration_history SET checksum = 'changed' WHERE version = '20250101090000';\n"))
        .collect();
    root.query(drift).await.unwrap().check().unwrap();

    let info = |sql: &'static str| {
        let root = root.clone();
        async move {
            let value: Option<serde_json::Value> = root.query(sql).await.unwrap().take(0).unwrap();
            let names: Vec<String> = value.unwrap()["namespaces"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            names
        }
    };
    let namespaces_before = info("INFO FOR ROOT").await;
    assert_eq!(namespaces_before.len(), 266, "tenants 0..265 and the default namespace");

    let check = coordinator.health_check(surql::health::DEFAULT_HEALTH_TIMEOUT);
    let all = vec!["all".to_string()];
    let selected = coordinator.select(&all).await.unwrap();
    let refs: Vec<&EnvironmentConfig> = selected.iter().collect();
    let together = check.read_many(&refs).await;
    let statuses = coordinator
        .get_deployment_status(&all, &migrations, &check)
        .await
        .unwrap();
    // Deployed tenants only: every read succeeds, so each request is one read
    // transaction, sent without asking which databases exist. With the others
    // it fails as a whole (rolling back what its `USE`s created, checked
    // below), and its tenants are read after listing which exist.
    let deployed = check.read_many(&refs[..200]).await;
    assert_eq!(deployed.len(), 200);
    for (environment, reading) in selected.iter().zip(&together).chain(selected.iter().zip(&deployed)) {
        let alone = check.inspect(environment).await;
        assert_eq!(
            comparable(&reading.status, &reading.history),
            comparable(&alone.status, &alone.history)
        );
    }

    let i = |n: usize| &statuses[&format!("tenant-{n:03}")];
    assert_eq!((i(0).applied_count, i(0).pending_count, i(0).drift.len()), (3, 0, 0));
    assert!(i(0).health.is_healthy && i(0).health.migration_table_exists);
    assert_eq!(i(195).drift, ["20250101090000_create_users (drifted)"]);
    for n in [200, 255, 300] {
        assert_eq!(i(n).health.label(), "Healthy (uninitialised)", "{:?}", i(n));
        assert_eq!(i(n).pending_count, 3);
    }
    assert!(!i(262).health.is_healthy);
    let error = i(262).health.error.as_deref().unwrap();
    assert!(
        error.starts_with("schema not readable: unreadable _migration_history row"),
        "{error}"
    );

    // Nothing was created: no namespace for tenants 265.., no database `main` in 200..250.
    assert_eq!(info("INFO FOR ROOT").await, namespaces_before);
    let databases: Option<serde_json::Value> = root
        .query("USE NS tenant_210; INFO FOR NS;")
        .await
        .unwrap()
        .take(1)
        .unwrap();
    assert!(databases.unwrap()["databases"].get("main").is_none());

    // A wrong password: every tenant unhealthy with the sign-in error, as one by one.
    let mut wrong = server.connection("tenant_0", "main");
    wrong.password = Some("not-the-password".into());
    let env = EnvironmentConfig::new("wrong", wrong);
    let together = check.read_many(&[&env, &env]).await;
    let alone = check.inspect(&env).await;
    assert_eq!(
        comparable(&together[1].status, &together[1].history),
        comparable(&alone.status, &alone.history)
    );
    assert!(!together[0].status.is_healthy && together[0].status.can_connect && !together[0].status.authenticated);
    assert!(
        !together[0]
            .status
            .error
            .as_deref()
            .unwrap()
            .contains("not-the-password")
    );
}
