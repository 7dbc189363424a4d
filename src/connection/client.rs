//! A client: one set of pooled signed-in connections and the caches that go
//! with them (round trips, namespace and database listings). What it holds;
//! `pool.rs` and `listing.rs` fill it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use surrealdb::Surreal;
use surrealdb::engine::any::Any;

use super::config::{AuthLevel, ConnectionConfig};

/// Connections per server and credentials. The SDK serves all sessions of one
/// connection through one socket and one router task; with 16 environments
/// at once a single connection queues them.
pub const CONNECTIONS_PER_SERVER: usize = 4;

/// One set of pooled connections and caches: every session opened through a
/// client (see [`connect`](super::connect)) shares its signed-in connections
/// ([`CONNECTIONS_PER_SERVER`] per server and credentials, each signed in
/// once), the round trips measured on them, and the namespace and database
/// listings read through them (with the names it created).
///
/// Cloning is cheap and shares everything: a clone is the same client. A
/// program may make several, and two clients share nothing (two coordinators
/// in one process each sign in on their own); a
/// [`MigrationCoordinator`](crate::MigrationCoordinator) owns one and hands
/// it to everything it drives. Its connections close once the client and
/// every session opened through it are dropped.
///
/// Embedded stores (`mem://`, `surrealkv://`) are not a client's: each is
/// opened once per process and shared by every client (see the module's
/// documentation).
#[derive(Clone, Default)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The pooled connections, by key and slot.
    remote: Mutex<HashMap<(RemoteKey, usize), RemoteSlot>>,
    /// Which slot of a key the next session takes (they are used in turn).
    next: AtomicUsize,
    /// Round trips measured on new pooled connections, by address.
    round_trips: Mutex<HashMap<String, Duration>>,
    /// Each server's SurrealDB version, by address, as its newest pooled connection learned it.
    server_versions: Mutex<HashMap<String, super::ServerVersion>>,
    /// The last few round trips probed to each server, by `host:port`, newest last.
    recent: Mutex<HashMap<String, VecDeque<Duration>>>,
    /// Namespace and database listings.
    listings: Mutex<HashMap<ListingKey, ListingSlot>>,
    /// Names this client selected for writing (and so created), per listing.
    noted: Mutex<HashMap<ListingKey, HashSet<String>>>,
}

/// A poisoned lock is recovered: every map stays valid between statements.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Client {
    /// A client with no connections and empty caches.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `other` is this client (a clone of it): they share everything.
    pub fn shares_with(&self, other: &Client) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The next pooled connection slot of `key` (the slots of a key are used in turn).
    pub(super) fn remote_slot(&self, key: RemoteKey) -> RemoteSlot {
        let index = self.inner.next.fetch_add(1, Ordering::Relaxed) % CONNECTIONS_PER_SERVER;
        locked(&self.inner.remote).entry((key, index)).or_default().clone()
    }

    /// Forgets the pooled connections of `key`.
    pub(super) fn evict(&self, key: &RemoteKey) {
        locked(&self.inner.remote).retain(|(pooled, _), _| pooled != key);
    }

    /// Remembers a round trip measured to `address` (the best one is kept).
    pub(super) fn note_round_trip(&self, address: &str, took: Duration) {
        let mut known = locked(&self.inner.round_trips);
        let entry = known.entry(address.to_string()).or_insert(took);
        *entry = (*entry).min(took);
    }

    /// The best round trip measured to `address`.
    pub(super) fn round_trip_to(&self, address: &str) -> Option<Duration> {
        locked(&self.inner.round_trips).get(address).copied()
    }

    /// Remembers the version of the server at `address`.
    pub(super) fn note_server_version(&self, address: &str, version: super::ServerVersion) {
        locked(&self.inner.server_versions).insert(address.to_string(), version);
    }

    /// The version of the server at `address`, once a pooled connection learned it.
    pub(super) fn server_version_at(&self, address: &str) -> Option<super::ServerVersion> {
        locked(&self.inner.server_versions).get(address).cloned()
    }

    /// Remembers a recent round trip to `host`, keeping the last `keep`.
    pub(super) fn note_recent(&self, host: String, took: Duration, keep: usize) {
        let mut recent = locked(&self.inner.recent);
        let samples = recent.entry(host).or_default();
        samples.push_back(took);
        while samples.len() > keep {
            samples.pop_front();
        }
    }

    /// The recent round trips to `host`, oldest first.
    pub(super) fn recent_to(&self, host: &str) -> Vec<Duration> {
        locked(&self.inner.recent)
            .get(host)
            .map(|samples| samples.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The cached listing of `key` (empty until one is taken).
    pub(super) fn listing_slot(&self, key: &ListingKey) -> ListingSlot {
        locked(&self.inner.listings).entry(key.clone()).or_default().clone()
    }

    /// Whether this client noted `name` in `key`'s listing.
    pub(super) fn noted(&self, key: &ListingKey, name: &str) -> bool {
        locked(&self.inner.noted)
            .get(key)
            .is_some_and(|names| names.contains(name))
    }

    /// Notes that `name` exists in `key`'s listing (this client created it).
    pub(super) fn note(&self, key: ListingKey, name: String) {
        locked(&self.inner.noted).entry(key).or_default().insert(name);
    }

    /// How many signed-in connections are pooled now.
    fn pooled(&self) -> usize {
        let slots: Vec<RemoteSlot> = locked(&self.inner.remote).values().cloned().collect();
        slots
            .iter()
            .filter(|slot| slot.try_lock().is_ok_and(|pooled| pooled.is_some()))
            .count()
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("pooled_connections", &self.pooled())
            .finish_non_exhaustive()
    }
}

/// Which pooled connection a config may share: same server, same credentials,
/// and for namespace/database users the same namespace/database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RemoteKey {
    address: String,
    username: Option<String>,
    password: Option<String>,
    level: AuthLevel,
    scope: (String, String),
}

impl RemoteKey {
    pub(super) fn of(config: &ConnectionConfig, address: &str) -> Self {
        let scope = match config.auth_level {
            AuthLevel::Root => (String::new(), String::new()),
            AuthLevel::Namespace => (config.db_ns.clone(), String::new()),
            AuthLevel::Database => (config.db_ns.clone(), config.db.clone()),
        };
        Self {
            address: address.to_string(),
            username: config.username.clone(),
            password: config.password.clone(),
            level: config.auth_level,
            scope,
        }
    }
}

/// A connection signed in once; every `connect` is a new session on it that
/// replays only an `authenticate` with the sign-in's token. A sign-in makes the
/// server verify a password hash (tens of milliseconds); at 1,000 tenants on
/// one server that was most of a deployment's time.
pub(super) struct Pooled {
    pub(super) base: Surreal<Any>,
    pub(super) created: Instant,
}

/// One pooled connection of a key, made by the first session that needs it.
pub(super) type RemoteSlot = Arc<tokio::sync::Mutex<Option<Pooled>>>;

/// Names listed by `INFO FOR ROOT` (namespaces) or `INFO FOR NS` (databases)
/// and when.
pub(super) type Listing = (Instant, Arc<HashSet<String>>);

/// One listing, taken by the first caller that needs it.
pub(super) type ListingSlot = Arc<tokio::sync::Mutex<Option<Listing>>>;

/// What a listing lists: the namespaces of a server (`None`), or the
/// databases of one of its namespaces.
pub(super) type ListingKey = (String, Option<String>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_clients_share_no_pool_or_cache() {
        let (one, other) = (Client::new(), Client::new());
        let key: ListingKey = ("ws://db:8000".into(), None);
        one.note(key.clone(), "app".into());
        one.note_round_trip("ws://db:8000", Duration::from_millis(3));
        one.note_recent("db:8000".into(), Duration::from_millis(5), 3);
        let config = ConnectionConfig::new("ws://db:8000", "app", "main");
        let slot = one.remote_slot(RemoteKey::of(&config, "ws://db:8000"));
        assert!(one.noted(&key, "app"));
        assert_eq!(one.round_trip_to("ws://db:8000"), Some(Duration::from_millis(3)));
        assert_eq!(one.recent_to("db:8000"), [Duration::from_millis(5)]);

        assert!(!other.noted(&key, "app"), "a name noted by another client");
        assert_eq!(other.round_trip_to("ws://db:8000"), None);
        assert!(other.recent_to("db:8000").is_empty());
        let theirs = other.remote_slot(RemoteKey::of(&config, "ws://db:8000"));
        assert!(!Arc::ptr_eq(&slot, &theirs), "a pooled connection of another client");
        assert!(!Arc::ptr_eq(&one.listing_slot(&key), &other.listing_slot(&key)));
        assert!(!one.shares_with(&other));
    }

    #[test]
    fn a_clone_is_the_same_client() {
        let one = Client::new();
        let clone = one.clone();
        assert!(one.shares_with(&clone));
        let key: ListingKey = ("ws://db:8000".into(), Some("app".into()));
        clone.note(key.clone(), "main".into());
        assert!(one.noted(&key, "main"));
        assert!(Arc::ptr_eq(&one.listing_slot(&key), &clone.listing_slot(&key)));
        // The slots of a key are used in turn, then again from the first.
        let config = ConnectionConfig::new("ws://db:8000", "app", "main");
        let key = RemoteKey::of(&config, "ws://db:8000");
        let first = one.remote_slot(key.clone());
        for _ in 1..CONNECTIONS_PER_SERVER {
            assert!(!Arc::ptr_eq(&first, &clone.remote_slot(key.clone())));
        }
        assert!(Arc::ptr_eq(&first, &one.remote_slot(key)));
    }
}
