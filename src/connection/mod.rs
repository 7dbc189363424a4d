//! Connecting to any SurrealDB endpoint: `mem://`, `surrealkv://path`, `ws(s)://`,
//! `http(s)://`. Knows nothing about migrations.
//!
//! Connections to servers are made through a [`Client`]: its pooled
//! signed-in connections, round trips and listings are its own, so every
//! `connect` takes one (a coordinator owns one and hands it to everything it
//! drives). Embedded endpoints are not a client's: they are opened once per
//! process and shared, a second `connect` to the same `mem://` or
//! `surrealkv://` URL (through any client) getting a new session on the same
//! datastore (two opens of one surrealkv folder would fight over its file
//! lock, and two `mem://` opens would be two different databases).
//!
//! | file | owns |
//! |---|---|
//! | `config.rs` | `ConnectionConfig`, URLs, redaction |
//! | `client.rs` | `Client`: one set of pooled connections, round trips and listings |
//! | `db.rs` | `Db`, a session with its timeouts and its client |
//! | `pool.rs` | embedded stores (per process), pooling signed-in connections in a client, sign-in, round trips |
//! | `session.rs` | connecting, read-only sessions, selecting |
//! | `listing.rs` | the namespace and database listings, cached in a client for a second |
//! | `scopes.rs` | many scopes (tenants) per request |
//! | `query.rs` | running statements, timeouts, retries, the cause of a failure |
//! | `liveness.rs` | the watchdog's probe |
//! | `version.rs` | `ServerVersion`, the SurrealDB version a server reports |

mod client;
mod config;
mod db;
mod listing;
mod liveness;
mod pool;
mod query;
mod scopes;
mod session;
mod version;

pub use client::{CONNECTIONS_PER_SERVER, Client};
pub use config::{
    AuthLevel, ConnectionConfig, ConnectionError, DEFAULT_CONNECT_TIMEOUT, EndpointKind, database_identity,
    endpoint_kind, escape_ident, redact_url, scrub,
};
pub use db::{DEFAULT_OPERATION_TIMEOUT, Db, Timeouts};
pub use liveness::wait_until_unreachable;
pub use pool::{
    close_embedded, known_server_version, probe_round_trip, recent_round_trip, recent_round_trip_to, round_trip,
    server_version,
};
pub use query::{
    CLAIMED_THROWN, Collected, FLEET_BUSY_THROWN, GUARD_STOPPED, QueryError, QueryErrorKind, first_cause,
    run_collecting_errors, run_idempotent, run_query, run_statements,
};
pub use scopes::{
    SCOPE_REQUESTS_AT_ONCE, SCOPES_PER_REQUEST, existing_scopes, reads_many_scopes, run_in_each_scope,
    run_in_every_scope_or_none, shared_session_key,
};
pub use session::{
    ReadOnly, connect, connect_read_only, connect_unscoped, ensure_namespace_and_database, namespace_and_database_sql,
    open_read_only, select_for_write,
};
pub use version::ServerVersion;
