//! The namespace and database listings of a server (`INFO FOR ROOT`, `INFO
//! FOR NS`), cached for a second in a client: whether a tenant exists, read
//! without creating it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::Db;
use super::client::{Client, ListingKey};
use super::config::{ConnectionConfig, sdk_address};
use super::query::{QueryError, run_query};

pub(super) const LISTING_FRESH_FOR: Duration = Duration::from_secs(1);

/// Remembers in `client` that `config`'s namespace and database exist (a
/// writer selected them, and so created them): a listing taken just before
/// such a write must not hide it.
pub(super) fn note_namespace(client: &Client, config: &ConnectionConfig) {
    let server = sdk_address(&config.db_url);
    client.note((server.clone(), None), config.db_ns.clone());
    client.note((server, Some(config.db_ns.clone())), config.db.clone());
}

/// A listing taken at most once a second per key and client: with 10,000
/// tenants, listing for every tenant made each check O(N). One caller lists
/// while the others wait for its answer. A name created since the listing is
/// seen as missing (uninitialised) for at most that second; writers re-read
/// the history under the lock anyway, and the client's own writes are noted.
pub(super) async fn cached_listing<F>(
    client: &Client,
    key: &ListingKey,
    list: F,
) -> Result<Arc<HashSet<String>>, QueryError>
where
    F: Future<Output = Result<HashSet<String>, QueryError>>,
{
    let slot = client.listing_slot(key);
    let mut listing = slot.lock().await;
    if let Some((_, names)) = listing.as_ref().filter(|(at, _)| at.elapsed() < LISTING_FRESH_FOR) {
        return Ok(names.clone());
    }
    let names = Arc::new(list.await?);
    *listing = Some((std::time::Instant::now(), names.clone()));
    Ok(names)
}

/// A fresh listing, if one was taken within the last second.
pub(super) async fn fresh_listing(client: &Client, key: &ListingKey) -> Option<Arc<HashSet<String>>> {
    let slot = client.listing_slot(key);
    let listing = slot.lock().await;
    listing
        .as_ref()
        .filter(|(at, _)| at.elapsed() < LISTING_FRESH_FOR)
        .map(|(_, names)| names.clone())
}

pub(super) async fn store_listing(client: &Client, key: &ListingKey, names: HashSet<String>) {
    *client.listing_slot(key).lock().await = Some((std::time::Instant::now(), Arc::new(names)));
}

/// The keys of one section (`namespaces`, `databases`) of an `INFO FOR …` result.
pub(super) fn section_names(info: Option<&serde_json::Value>, section: &str) -> HashSet<String> {
    info.and_then(|v| v.get(section))
        .and_then(|v| v.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Whether `config`'s namespace exists, listed through `db` (and cached in its client).
pub(super) async fn namespace_exists(db: &Db, config: &ConnectionConfig) -> Result<bool, QueryError> {
    let key = (sdk_address(&config.db_url), None);
    let names = cached_listing(db.client(), &key, async {
        let root = run_query(db, "INFO FOR ROOT;", serde_json::json!({})).await?;
        Ok(section_names(root.first(), "namespaces"))
    })
    .await?;
    Ok(names.contains(&config.db_ns) || db.client().noted(&key, &config.db_ns))
}

/// Whether `config`'s database exists; `db` has its namespace selected.
pub(super) async fn database_exists(db: &Db, config: &ConnectionConfig) -> Result<bool, QueryError> {
    let key = (sdk_address(&config.db_url), Some(config.db_ns.clone()));
    let names = cached_listing(db.client(), &key, async {
        let info = run_query(db, "INFO FOR NS;", serde_json::json!({})).await?;
        Ok(section_names(info.first(), "databases"))
    })
    .await?;
    Ok(names.contains(&config.db) || db.client().noted(&key, &config.db))
}
