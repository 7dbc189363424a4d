//! The exact SurrealQL surql sends: each migration's transaction with its
//! history row, batches with their guards, reverts, the lock release.

use super::file::Migration;
use crate::connection::{ConnectionConfig, EndpointKind};

/// Where a migration's `execution_ms` is timed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StartClock {
    /// A remote server: the transaction notes its own start with a `LET`, as
    /// this machine's clock may differ from the server's.
    Server,
    /// The embedded engine runs on this process's clock: the start is bound as
    /// a parameter, sparing the `LET` (about 7 % of a deployment there).
    Shared,
}

impl StartClock {
    /// The clock for `connection`: shared for an embedded store, else the server's.
    pub fn of(connection: &ConnectionConfig) -> Self {
        match connection.endpoint_kind() {
            Ok(EndpointKind::Embedded) => Self::Shared,
            _ => Self::Server,
        }
    }
}

/// The exact SurrealQL that applies one migration with its history row, as
/// sent when the lock is held. On a server its transaction first proves the
/// lock is still `$surql_owner`'s, so a run whose lease expired and was taken
/// over writes nothing. An embedded store (the shared clock) is open in this
/// process only: there the process proves it instead, without the read
/// (see `src/migration/lease.rs`).
pub fn up_script(migration: &Migration, clock: StartClock) -> String {
    lone_script(migration, clock, clock == StartClock::Shared)
}

/// One migration alone, its transaction guarded by the lock unless this
/// process has `proven` the lock is its own.
pub(super) fn lone_script(migration: &Migration, clock: StartClock, proven: bool) -> String {
    let guard = if proven { Guard::Proven } else { Guard::Owner };
    transaction_script(migration, clock, guard, true)
}

/// What a batch's guard throws when a migration must not begin (the
/// classifier knows it: [`crate::connection::QueryErrorKind::Stopped`]).
pub(super) const STOPPED: &str = crate::connection::GUARD_STOPPED;

/// What a migration's transaction checks, before its own statements, to
/// begin.
#[derive(Clone, Copy)]
pub(super) enum Guard<'a> {
    /// A lone migration on an embedded store whose lock this process proved
    /// its own (see [`super::lease`]): nothing to read.
    Proven,
    /// A lone migration: the lock is still this run's (Ctrl-C is checked
    /// between requests, so one record read is enough).
    Owner,
    /// The first of a batch: the lock is still this run's and not marked
    /// interrupted.
    Lock,
    /// A later one: the same, and the migration before it (its version)
    /// committed.
    LockAndCommitted(&'a str),
}

/// One migration's transaction. The history row's version, name and
/// checksum are parameters (`$surql_version`, …) for a lone migration, and
/// literals in a batch, where each migration has its own.
/// The row is built by a `LET` and written with `CONTENT $surql_row`:
/// SurrealDB 3.3.5 evaluates a `LET` with its newer executor, while a
/// `CREATE`'s own expressions (`SET … = duration::millis(…)`) go through the
/// older one, which cost about a third of the history row (BENCHMARKS.md,
/// thirteenth round).
pub(super) fn transaction_script(migration: &Migration, clock: StartClock, guard: Guard, lone: bool) -> String {
    const LOCK: &str = "_migration_lock:current.owner != $surql_owner OR _migration_lock:current.interrupted = true";
    let refused = match guard {
        Guard::Proven => None,
        Guard::Owner => Some("_migration_lock:current.owner != $surql_owner".to_string()),
        Guard::Lock => Some(LOCK.to_string()),
        Guard::LockAndCommitted(previous) => Some(format!("!{}.id OR {LOCK}", history_record(previous))),
    };
    // On a server the guard and the start time are one statement: every
    // statement costs the server a parse and its tracing spans.
    let prelude = match (refused, clock) {
        (Some(refused), StartClock::Server) => {
            format!("LET $surql_started = IF {refused} {{ THROW '{STOPPED}' }} ELSE {{ time::now() }};\n")
        }
        (Some(refused), StartClock::Shared) => format!("IF {refused} {{ THROW '{STOPPED}' }};\n"),
        (None, StartClock::Server) => "LET $surql_started = time::now();\n".to_string(),
        (None, StartClock::Shared) => String::new(),
    };
    let (version, name, checksum) = if lone {
        (
            "$surql_version".to_string(),
            "$surql_name".to_string(),
            "$surql_checksum".to_string(),
        )
    } else {
        (
            quote(&migration.version),
            quote(&migration.name),
            quote(&migration.checksum),
        )
    };
    format!(
        "BEGIN TRANSACTION;\n{prelude}{up}LET $surql_row = {{ version: {version}, name: {name}, checksum: {checksum}, applied_at: time::now(), execution_ms: duration::millis(time::now() - $surql_started), deployment_id: $surql_deployment_id, actor: $surql_actor }};\nCREATE {record} CONTENT $surql_row RETURN NONE;\nCOMMIT TRANSACTION;\n",
        up = section_text(&migration.up, migration.up_ast.expressions.len()),
        record = history_record(&migration.version)
    )
}

/// A section as sent inside its transaction: its text and a `;` that ends
/// its last statement; a deliberately empty section (comments only) is sent
/// as those comments, with no empty statement that would shift the count.
fn section_text(text: &str, statements: usize) -> String {
    match statements {
        0 => format!("{text}\n"),
        _ => format!("{text}\n;\n"),
    }
}

/// The history row's record id, `_migration_history:⟨VERSION⟩` (a string
/// key, the same as `type::record('_migration_history', $v)`): SurrealDB
/// 3.3.5 creates a literal id about 25 µs faster than a computed one.
/// Versions from files are digits; any other text is computed, quoted.
pub(super) fn history_record(version: &str) -> String {
    if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) {
        format!("_migration_history:⟨{version}⟩")
    } else {
        format!("type::record('_migration_history', {})", quote(version))
    }
}

/// A SurrealQL string literal.
pub(super) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Statements of a migration's transaction before its own: BEGIN, then the
/// lock guard (unless `proven`) and, on a server, the `LET` of the start
/// time, which are one statement where both are sent.
pub(super) fn statements_before_up(clock: StartClock, proven: bool) -> usize {
    1 + usize::from(!proven || clock == StartClock::Server)
}

/// Statements of a migration's whole transaction, as SurrealDB answers them
/// when it ran to its end: fewer means something ended it early. After its
/// own: the history row's `LET` and `CREATE`, and COMMIT.
pub(super) fn transaction_statements(migration: &Migration, clock: StartClock, proven: bool) -> usize {
    statements_before_up(clock, proven) + migration.up_ast.expressions.len() + 3
}

/// The SurrealQL of a batch: every migration in its own transaction, each
/// guarded by the lock and (after the first) by its predecessor; with
/// `release`, the release of the lock once the last one committed; then the
/// read of which of them committed.
/// Each transaction times itself (`StartClock::Server`): a bound start time
/// would be the batch's.
pub fn batch_script(batch: &[&Migration], release: bool) -> String {
    let mut sql = String::new();
    for (i, migration) in batch.iter().enumerate() {
        let guard = match i {
            0 => Guard::Lock,
            _ => Guard::LockAndCommitted(&batch[i - 1].version),
        };
        sql.push_str(&transaction_script(migration, StartClock::Server, guard, false));
    }
    if let (true, Some(last)) = (release, batch.last()) {
        sql.push_str(&release_after(&last.version));
    }
    sql.push_str("SELECT version, execution_ms FROM _migration_history:.. WHERE version IN $surql_versions AND deployment_id = $surql_deployment_id;");
    sql
}

/// The exact SurrealQL that rolls one migration back and removes its history
/// row, after proving the lock is still `$surql_owner`'s.
pub fn down_script(migration: &Migration) -> Option<String> {
    migration.down.as_ref().map(|down| {
        format!(
            "BEGIN TRANSACTION;\nIF _migration_lock:current.owner != $surql_owner {{ THROW '{STOPPED}' }};\n{down}DELETE type::record('_migration_history', $surql_version);\nCOMMIT TRANSACTION;",
            down = section_text(down, migration.down_statements)
        )
    })
}

/// Releases the lock, in the request of the last migration, once it committed
/// (its history row has an id: read as a field, about a megainstruction
/// cheaper on SurrealDB 3.3.5 than `record::exists`).
pub(super) fn release_after(version: &str) -> String {
    format!(
        "IF {}.id {{ DELETE _migration_lock:current WHERE owner = $surql_owner RETURN BEFORE }};\n",
        history_record(version)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deliberately empty migration sends its comment and no empty
    /// statement; its transaction still writes (or deletes) its history row.
    #[test]
    fn an_empty_migration_sends_no_statement_of_its_own() {
        let migration = crate::migration::file::parse_migration(
            std::path::Path::new("5_noop.surql"),
            "-- migrate:up\n-- surql:empty\n-- migrate:down\n-- surql:empty\n",
        )
        .unwrap();
        let up = up_script(&migration, StartClock::Shared);
        assert!(
            up.contains("-- surql:empty\nLET $surql_row = { version: $surql_version") && !up.contains("\n;\n"),
            "{up}"
        );
        // BEGIN, the row's LET, CREATE, COMMIT, and the guard unless proven
        // in-process.
        assert!(!up.contains("_migration_lock"), "{up}");
        assert_eq!(transaction_statements(&migration, StartClock::Shared, true), 4);
        assert_eq!(transaction_statements(&migration, StartClock::Shared, false), 5);
        // On a server the guard and the start time are one statement.
        assert_eq!(transaction_statements(&migration, StartClock::Server, false), 5);
        assert_eq!(transaction_statements(&migration, StartClock::Server, true), 5);
        assert!(up_script(&migration, StartClock::Server).contains("IF _migration_lock:current.owner"));
        let down = down_script(&migration).unwrap();
        assert!(down.contains("-- surql:empty\nDELETE type::record"), "{down}");
    }

    #[test]
    fn history_record_ids_are_literal_strings_that_cannot_break_out() {
        assert_eq!(history_record("0001"), "_migration_history:⟨0001⟩");
        let hostile = history_record("1⟩; REMOVE TABLE x; SELECT * FROM ⟨y");
        let parsed = surrealdb_core::syn::parse(&format!("CREATE {hostile};")).unwrap();
        assert_eq!(parsed.expressions.len(), 1, "{hostile}");
    }
}
