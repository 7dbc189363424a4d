//! Why an environment stopped before its final result: the status it will
//! get, the error, and the [`FailureKind`] that metrics and records count by.

use super::{DeploymentStatus, Engine, FailureKind};
use crate::connection::{QueryError, QueryErrorKind};
use crate::migration::Migration;
use crate::migration::lock::LockError;

/// Why an environment stopped, before its final status is decided.
pub(super) struct Stop {
    pub(super) status: DeploymentStatus,
    pub(super) error: String,
    /// A write may still be running on the server: the lock is not released
    /// but left to expire, so no other run writes until it has settled.
    pub(super) lock_left_to_expire: bool,
    /// Why it failed (FAILED and ROLLED_BACK).
    pub(super) kind: FailureKind,
}

pub(super) fn failed(error: impl Into<String>) -> Stop {
    failed_as(FailureKind::Other, error)
}

pub(super) fn failed_as(kind: FailureKind, error: impl Into<String>) -> Stop {
    Stop {
        status: DeploymentStatus::Failed,
        error: error.into(),
        lock_left_to_expire: false,
        kind,
    }
}

pub(super) fn skipped(error: impl Into<String>) -> Stop {
    Stop {
        status: DeploymentStatus::Skipped,
        error: error.into(),
        lock_left_to_expire: false,
        kind: FailureKind::Other,
    }
}

/// A connection's or a query's failure, by the classifier's kind.
pub(super) fn kind_of_query(error: &QueryError) -> FailureKind {
    match error.kind() {
        QueryErrorKind::ConnectionLost | QueryErrorKind::NotAllowed | QueryErrorKind::TimedOut => {
            FailureKind::Connection
        }
        _ => FailureKind::Other,
    }
}

/// A lock's failure: held or busy is `locked`, a lost lease `lease_lost`.
pub(super) fn kind_of_lock(error: &LockError) -> FailureKind {
    match error {
        LockError::Held(_) | LockError::Busy(_) => FailureKind::Locked,
        LockError::Lost(_) => FailureKind::LeaseLost,
        LockError::Query(query) => kind_of_query(query),
    }
}

/// A migration's request ended without an answer that says whether it
/// committed. Rolling back on a guess could revert what the server is still
/// committing, and releasing the lock would let another run write meanwhile:
/// neither happens. This run's earlier migrations there are kept too.
pub(super) fn outcome_unknown(engine: &Engine, name: &str, migration: &Migration, error: &QueryError) -> Stop {
    let kept = engine.mark_outcome_unknown(name);
    let error = match error.kind() {
        QueryErrorKind::Inconsistent => error.to_string(),
        _ => format!(
            "outcome unknown: {} may still be running on the server ({error}); nothing was rolled back",
            migration.id()
        ),
    };
    Stop {
        status: DeploymentStatus::Failed,
        error: format!(
            "{error} ({kept} earlier migration(s) of this run kept); the lock is left to expire (--lock-ttl {}s) so that nothing else writes until it settles: then `surql orchestrate status` shows what committed, and deploying again converges",
            engine.context.lock_ttl.as_secs_f64()
        ),
        lock_left_to_expire: true,
        kind: FailureKind::OutcomeUnknown,
    }
}
