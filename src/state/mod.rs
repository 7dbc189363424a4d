//! Deployment records in a state store: JSON files in a folder by default
//! (`files://.surql/deployments`), an embedded SurrealDB store
//! (`surrealkv://`), or any server a team shares. Each
//! deployment and each of its environments is written as its state changes,
//! so a crash loses at most the environments in flight. Knows nothing of Rhai.

mod control;
mod convert;
mod files;
mod options;
mod reads;
mod record;
mod recorder;
mod served;
mod store;

use std::time::Duration;

pub use control::{Command, CommandRecord, Control, Steer};
pub use files::FILES_SCHEME;
pub use options::{FreezeOverride, RecordedOptions};
pub use record::{
    Counts, DeploymentRecord, DeploymentState, EnvironmentRecord, EnvironmentState, PlanChange, PlannedMigration,
    ShardPart, WaveRecord, record_key,
};
pub use recorder::{Recorder, RecorderTarget};
pub use store::StateStore;

use crate::connection::{ConnectionError, QueryError};

/// Where deployment records go unless `--state` says otherwise.
pub const DEFAULT_STATE_URL: &str = "files://.surql/deployments";

/// How often a running deployment tells the store it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A running deployment silent this long is taken for dead: it no longer
/// holds its environments against another deployment.
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(30);

/// The longest any one request to the state store may take: a store that
/// went away must not hang a runner.
pub const STORE_DEADLINE: Duration = Duration::from_secs(10);

/// How long an embedded store held by another process is tried again
/// before it is reported busy.
pub const BUSY_PATIENCE: Duration = Duration::from_secs(2);

/// How long a runner that cannot write its record retries the store (starting
/// nothing new meanwhile) before it stops the deployment.
pub const STORE_OUTAGE_LIMIT: Duration = Duration::from_secs(30);

/// The namespace and database of the records in a state store.
const NAMESPACE: &str = "surql";
const DATABASE: &str = "state";

const DEFINE_TABLES: &str = "DEFINE TABLE IF NOT EXISTS deployment SCHEMALESS COMMENT 'surql deployments';
DEFINE TABLE IF NOT EXISTS deployment_env SCHEMALESS COMMENT 'surql deployments: one row per environment';
DEFINE INDEX IF NOT EXISTS deployment_env_of ON deployment_env FIELDS deployment;
DEFINE INDEX IF NOT EXISTS deployment_env_by_environment ON deployment_env FIELDS environment;
DEFINE INDEX IF NOT EXISTS deployment_by_id ON deployment FIELDS deployment_id;";

/// Why the state store cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The store could not be opened or reached.
    #[error("state store {url}: {source}")]
    Connect {
        /// The store's URL, without credentials.
        url: String,
        /// Why the connection failed.
        #[source]
        source: ConnectionError,
    },
    /// A query against the store failed.
    #[error("state store: {0}")]
    Query(#[from] QueryError),
    /// No record of the deployment with this id.
    #[error("state store: no deployment '{0}' (see `surql orchestrate deployments`)")]
    NotFound(String),
    /// A running deployment holds some of the same environments.
    #[error(
        "another deployment is running on the same environments: {0}; wait for it (--wait), or resume it if its runner died"
    )]
    Overlap(String),
    /// An embedded store is open in another process.
    #[error(
        "state store {url} is in use by another surql process (a deployment running from this folder?): an embedded store serves one process at a time; wait for it, give this run a store of its own (--state surrealkv://PATH), or share a SurrealDB server between runners (--state ws://HOST:PORT)"
    )]
    Busy {
        /// The store's URL.
        url: String,
    },
    /// An embedded store another process holds, and that process did not answer.
    #[error(
        "state store {url} is in use by another surql process, which did not answer on {socket} ({why}): try again, or wait for it to finish"
    )]
    Served {
        /// The store's URL.
        url: String,
        /// The path of the holding process's socket.
        socket: String,
        /// What went wrong asking it: an I/O error, a timeout, or its own error.
        why: String,
    },
    /// A folder of record files that cannot be read or written as it is.
    #[error("state store {url}: {why}")]
    Files {
        /// The store's URL.
        url: String,
        /// What failed, naming the file.
        why: String,
    },
    /// A request the store cannot carry out as asked.
    #[error("{0}")]
    Refused(String),
    /// Another runner claimed the same deployment (or shard) first.
    #[error(
        "{what} is claimed by another runner: {holder}; this runner starts nothing (--wait waits for it and continues what it leaves undone)"
    )]
    Claimed {
        /// The deployment, or deployment and shard, e.g. `deployment ID shard 2`.
        what: String,
        /// The runner holding it and its record's state, e.g. `RUNNER (running)`.
        holder: String,
    },
}
