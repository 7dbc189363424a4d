//! Resolving `-e` items to environments, asking servers their SurrealDB
//! version only when an item selects by it (`surrealdb:4`).

use std::collections::HashMap;
use std::time::Duration;

use crate::connection::Client;
use crate::registry::{EnvironmentConfig, EnvironmentRegistry, RegistryError, server_major_item};

/// How many servers are asked their version at once.
const SERVERS_ASKED_AT_ONCE: usize = 16;

/// The environments `items` select from `registry`, in the order given.
/// A `surrealdb:N` item asks each server of the registry its version once
/// (through `client`, within `timeout`); an environment whose server cannot
/// be asked is not selected by it.
pub(crate) async fn select_environments(
    registry: &EnvironmentRegistry,
    client: &Client,
    items: &[String],
    timeout: Duration,
) -> Result<Vec<EnvironmentConfig>, RegistryError> {
    let by_version = items
        .iter()
        .flat_map(|item| item.split(','))
        .any(|item| server_major_item(item).is_some());
    if !by_version {
        return Ok(registry.select(items)?.into_iter().cloned().collect());
    }
    let majors = server_majors(registry, client, timeout).await;
    let major_of = |e: &EnvironmentConfig| majors.get(e.connection.db_url.as_str()).copied().flatten();
    let unknown: Vec<String> = (registry.list().into_iter())
        .filter(|e| major_of(e).is_none())
        .map(|e| e.name.clone())
        .collect();
    if !unknown.is_empty() {
        tracing::warn!(
            "not selected by a surrealdb:N item, their server's version not known: {}",
            crate::registry::some_of(&unknown)
        );
    }
    let selected = registry.select_with(items, major_of)?;
    Ok(selected.into_iter().cloned().collect())
}

/// Each server's major version, by URL: one question per server, not per
/// environment (10,000 tenants on three servers are three questions).
async fn server_majors(
    registry: &EnvironmentRegistry,
    client: &Client,
    timeout: Duration,
) -> HashMap<String, Option<u64>> {
    let mut first_of_each: HashMap<String, EnvironmentConfig> = HashMap::new();
    for environment in registry.list() {
        (first_of_each.entry(environment.connection.db_url.clone())).or_insert_with(|| environment.clone());
    }
    let asks = first_of_each.into_iter().map(|(url, environment)| {
        let client = client.clone();
        async move {
            let major = match crate::connection::server_version(&client, &environment.connection, timeout).await {
                Ok(version) => version.map(|v| v.major()),
                Err(error) => {
                    tracing::warn!("{url}: cannot ask the server its version: {error}");
                    None
                }
            };
            (url, major)
        }
    });
    crate::concurrent::bounded(asks, SERVERS_ASKED_AT_ONCE)
        .await
        .into_iter()
        .collect()
}
