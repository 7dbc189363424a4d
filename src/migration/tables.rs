//! surql's bookkeeping tables on every database: the history and the lock.

/// Defines the history table (idempotent). Rows are written only by surql,
/// with a fixed shape and the version as record id; seven `DEFINE FIELD`s per
/// database cost ~10 % of a 1,000-tenant deployment (BENCHMARKS.md) and
/// protected nothing the record id does not.
pub const DEFINE_HISTORY_TABLE: &str = "DEFINE TABLE IF NOT EXISTS _migration_history SCHEMALESS COMMENT 'surql migration history: version, name, checksum, applied_at, execution_ms, deployment_id, actor';";

/// Defines the lock table (idempotent); SurrealDB 3 refuses queries on undefined tables.
pub const DEFINE_LOCK_TABLE: &str = "DEFINE TABLE IF NOT EXISTS _migration_lock SCHEMALESS;";
