//! Migrations on ONE database: files, history, lock, apply and roll back.
//! Knows nothing about environments or strategies.

pub mod adopt;
pub mod apply;
pub mod baseline;
pub mod context;
pub mod dialect;
pub mod file;
mod file_error;
mod foreign;
pub mod history;
pub(crate) mod holder;
pub mod import;
mod import_py;
pub mod import_sm;
mod lease;
mod lexer;
pub mod lock;
pub mod plan;
pub mod script;
mod sections;
pub mod settle;
mod statements;
mod tables;
pub mod updown;
pub mod verify;

pub(crate) use apply::DatabaseError;
pub use apply::{AppliedStep, ApplyError, apply_migration, revert_migration};
pub use context::ApplyContext;
pub use dialect::{ConcurrentIndex, RowMigration, ServerRequirements, V4Clause};
pub use file::{Migration, MigrationFileError, discover_migrations};
pub use history::{AppliedMigration, HISTORY_TABLE, applied_migrations, ensure_history_table, history_table_exists};
pub use lock::{HeldLock, LockError, LockInfo, acquire_lock, current_lock, release_lock};
pub use plan::{MigrationPlan, MigrationState, MigrationStatusRow, plan};
pub use script::{down_script, up_script};
pub use sections::{VerifyCheck, VerifySection};
pub(crate) use statements::statement_starts;
pub use updown::{migrate_down, migrate_up, rollback_plan};
