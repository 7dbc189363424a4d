//! Exit codes of the `surql` binary, documented in docs/cli.md: a leaf every
//! layer may use (the coordinator exits 130 on a second Ctrl-C).

/// Every selected environment (or the one database) succeeded; a dry run's plan is valid.
pub const EXIT_SUCCESS: i32 = 0;
/// Something ran and did not succeed: an environment not SUCCESS, a failed migration,
/// drift, a held lock, an unhealthy environment in `validate`.
pub const EXIT_FAILURE: i32 = 1;
/// Nothing ran: bad usage, config or migration files.
pub const EXIT_USAGE: i32 = 2;
/// A strategy script failed to compile or run.
pub const EXIT_SCRIPT: i32 = 3;
/// A plugin failed to load.
pub const EXIT_PLUGIN: i32 = 4;
/// The state store went away mid-deployment and stayed away: environments
/// not started were skipped; `resume` completes the record.
pub const EXIT_RECORD_LOST: i32 = 5;
/// Interrupted by Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;
