//! The namespace and database listings of a server (`INFO FOR ROOT`, `INFO
//! FOR NS`), cached for a second: whether a tenant exists, read without
//! creating it.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use super::Db;
use super::config::{ConnectionConfig, sdk_address};
use super::query::{QueryError, run_query};

/// Names listed by `INFO FOR ROOT` (namespaces) or `INFO FOR NS` (databases)
/// and when.
pub(super) type Listing = (std::time::Instant, std::sync::Arc<std::collections::HashSet<String>>);

pub(super) type ListingSlot = std::sync::Arc<tokio::sync::Mutex<Option<Listing>>>;

/// What a listing lists: the namespaces of a server (`None`), or the
/// databases of one of its namespaces.
pub(super) type ListingKey = (String, Option<String>);

pub(super) static LISTINGS: LazyLock<std::sync::Mutex<HashMap<ListingKey, ListingSlot>>> =
    LazyLock::new(|| std::sync::Mutex::new(HashMap::new()));

pub(super) const LISTING_FRESH_FOR: Duration = Duration::from_secs(1);

/// Names this process selected for writing (and so created), per listing: a
/// listing taken just before such a write must not hide it.
pub(super) static NOTED: LazyLock<std::sync::Mutex<HashMap<ListingKey, std::collections::HashSet<String>>>> =
    LazyLock::new(|| std::sync::Mutex::new(HashMap::new()));

pub(super) fn noted(key: &ListingKey, name: &str) -> bool {
    NOTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(key)
        .is_some_and(|names| names.contains(name))
}

/// Remembers that `config`'s namespace and database exist (a writer selected them).
pub(super) fn note_namespace(config: &ConnectionConfig) {
    let server = sdk_address(&config.db_url);
    let mut noted = NOTED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    noted
        .entry((server.clone(), None))
        .or_default()
        .insert(config.db_ns.clone());
    noted
        .entry((server, Some(config.db_ns.clone())))
        .or_default()
        .insert(config.db.clone());
}

pub(super) fn listing_slot(key: &ListingKey) -> ListingSlot {
    LISTINGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(key.clone())
        .or_default()
        .clone()
}

/// A listing taken at most once a second per key: with 10,000 tenants,
/// listing for every tenant made each check O(N). One caller lists while the
/// others wait for its answer. A name created since the listing is seen as
/// missing (uninitialised) for at most that second; writers re-read the
/// history under the lock anyway, and this process's own writes are noted.
pub(super) async fn cached_listing<F>(
    key: &ListingKey,
    list: F,
) -> Result<std::sync::Arc<std::collections::HashSet<String>>, QueryError>
where
    F: Future<Output = Result<std::collections::HashSet<String>, QueryError>>,
{
    let slot = listing_slot(key);
    let mut listing = slot.lock().await;
    if let Some((_, names)) = listing.as_ref().filter(|(at, _)| at.elapsed() < LISTING_FRESH_FOR) {
        return Ok(names.clone());
    }
    let names = std::sync::Arc::new(list.await?);
    *listing = Some((std::time::Instant::now(), names.clone()));
    Ok(names)
}

/// A fresh listing, if one was taken within the last second.
pub(super) async fn fresh_listing(key: &ListingKey) -> Option<std::sync::Arc<std::collections::HashSet<String>>> {
    let slot = listing_slot(key);
    let listing = slot.lock().await;
    listing
        .as_ref()
        .filter(|(at, _)| at.elapsed() < LISTING_FRESH_FOR)
        .map(|(_, names)| names.clone())
}

pub(super) async fn store_listing(key: &ListingKey, names: std::collections::HashSet<String>) {
    *listing_slot(key).lock().await = Some((std::time::Instant::now(), std::sync::Arc::new(names)));
}

/// The keys of one section (`namespaces`, `databases`) of an `INFO FOR …` result.
pub(super) fn section_names(info: Option<&serde_json::Value>, section: &str) -> std::collections::HashSet<String> {
    info.and_then(|v| v.get(section))
        .and_then(|v| v.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

pub(super) async fn namespace_exists(db: &Db, config: &ConnectionConfig) -> Result<bool, QueryError> {
    let key = (sdk_address(&config.db_url), None);
    let names = cached_listing(&key, async {
        let root = run_query(db, "INFO FOR ROOT;", serde_json::json!({})).await?;
        Ok(section_names(root.first(), "namespaces"))
    })
    .await?;
    Ok(names.contains(&config.db_ns) || noted(&key, &config.db_ns))
}

/// Whether `config`'s database exists; `db` has its namespace selected.
pub(super) async fn database_exists(db: &Db, config: &ConnectionConfig) -> Result<bool, QueryError> {
    let key = (sdk_address(&config.db_url), Some(config.db_ns.clone()));
    let names = cached_listing(&key, async {
        let info = run_query(db, "INFO FOR NS;", serde_json::json!({})).await?;
        Ok(section_names(info.first(), "databases"))
    })
    .await?;
    Ok(names.contains(&config.db) || noted(&key, &config.db))
}
