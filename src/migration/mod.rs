//! Migrations on ONE database: files, history, lock, apply and roll back.
//! Knows nothing about environments or strategies.

pub mod apply;
pub mod file;
pub mod history;
pub mod lock;

pub use apply::{
    AppliedStep, ApplyContext, ApplyError, MigrationPlan, MigrationState, MigrationStatusRow, apply_migration,
    down_script, migrate_down, migrate_up, plan, revert_migration, rollback_plan, up_script,
};
pub use file::{Migration, MigrationFileError, discover_migrations};
pub use history::{AppliedMigration, HISTORY_TABLE, applied_migrations, ensure_history_table, history_table_exists};
pub use lock::{HeldLock, LockError, LockInfo, acquire_lock, current_lock, release_lock};
