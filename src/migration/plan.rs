//! What is pending, applied, drifted or missing on one database, and what a
//! rollback would revert. Pure: reads nothing.

use serde::Serialize;

use super::file::Migration;
use super::history::AppliedMigration;

/// State of one migration on one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum MigrationState {
    /// Applied, and the file still matches.
    Applied,
    /// In the files, not applied.
    Pending,
    /// Applied, but the file's up section changed since.
    Drifted,
    /// Applied, but its file is gone.
    Missing,
    /// Recorded by `baseline` (made another way), and the file still matches.
    Baseline,
}

impl MigrationState {
    /// Lowercase label used in tables and JSON.
    pub fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Pending => "pending",
            Self::Drifted => "drifted",
            Self::Missing => "missing",
            Self::Baseline => "baseline",
        }
    }
}

/// One line of `migrate status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationStatusRow {
    /// The migration's version.
    pub version: String,
    /// The migration's name (from its file, or its history row when missing).
    pub name: String,
    /// When it was applied, from the history; `None` while pending.
    pub applied_at: Option<String>,
    /// How the file and the history compare.
    pub state: MigrationState,
}

/// The files compared with a database's history.
#[derive(Debug, Clone)]
pub struct MigrationPlan<'a> {
    /// Every migration and applied row, in version order.
    pub rows: Vec<MigrationStatusRow>,
    /// Files not yet applied, in version order.
    pub pending: Vec<&'a Migration>,
    /// What is drifted or missing; `up` refuses while this is not empty.
    pub drift: Vec<MigrationStatusRow>,
}

/// Compares files with history.
pub fn plan<'a>(migrations: &'a [Migration], applied: &[AppliedMigration]) -> MigrationPlan<'a> {
    let mut rows = Vec::new();
    let mut pending = Vec::new();
    for migration in migrations {
        let row = applied.iter().find(|a| a.version == migration.version);
        let state = match row {
            None => {
                pending.push(migration);
                MigrationState::Pending
            }
            Some(a) if a.checksum != migration.checksum => MigrationState::Drifted,
            Some(a) if a.baseline => MigrationState::Baseline,
            Some(_) => MigrationState::Applied,
        };
        rows.push(MigrationStatusRow {
            version: migration.version.clone(),
            name: migration.name.clone(),
            applied_at: row.map(|a| a.applied_at.clone()),
            state,
        });
    }
    for a in applied {
        if !migrations.iter().any(|m| m.version == a.version) {
            rows.push(MigrationStatusRow {
                version: a.version.clone(),
                name: a.name.clone(),
                applied_at: Some(a.applied_at.clone()),
                state: MigrationState::Missing,
            });
        }
    }
    rows.sort_by_key(|r| super::file::version_order_key(&r.version));
    let drift = rows
        .iter()
        .filter(|r| matches!(r.state, MigrationState::Drifted | MigrationState::Missing))
        .cloned()
        .collect();
    MigrationPlan { rows, pending, drift }
}

/// What a deployment tolerates beyond a clean history (Flyway's
/// `outOfOrder` and `ignoreMissingMigrations`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderPolicy {
    /// Apply a pending migration older than the newest applied one.
    pub allow_out_of_order: bool,
    /// Deploy although an applied migration's file is gone.
    pub allow_missing: bool,
}

impl MigrationPlan<'_> {
    /// The drift that blocks applying under `policy`: changed files always,
    /// missing ones unless allowed.
    pub fn blocking_drift(&self, policy: OrderPolicy) -> Vec<MigrationStatusRow> {
        self.drift
            .iter()
            .filter(|row| row.state == MigrationState::Drifted || !policy.allow_missing)
            .cloned()
            .collect()
    }

    /// Why this plan must not be applied under `policy`, if it must not: a
    /// changed file always; a missing file and out-of-order versions unless
    /// allowed.
    pub fn refusal(&self, policy: OrderPolicy) -> Option<String> {
        let blocking = self.blocking_drift(policy);
        if !blocking.is_empty() {
            let hint = if blocking.iter().all(|r| r.state == MigrationState::Missing) {
                "restore the files, or deploy anyway with --allow-missing"
            } else {
                "restore the files or resolve the history before deploying"
            };
            return Some(format!("drift: {}; {hint}", describe_drift(&blocking)));
        }
        if policy.allow_out_of_order {
            return None;
        }
        let newest = self
            .rows
            .iter()
            .filter(|row| row.state != MigrationState::Pending)
            .max_by_key(|row| super::file::version_order_key(&row.version))?;
        // A migration limited to newer servers comes when the server does,
        // after the ones applied meanwhile.
        let older: Vec<String> = self
            .pending
            .iter()
            .filter(|m| m.requires.min_major.is_none())
            .filter(|m| super::file::version_order_key(&m.version) < super::file::version_order_key(&newest.version))
            .map(|m| m.id())
            .collect();
        (!older.is_empty()).then(|| {
            format!(
                "out of order: {} {} older than the newest applied migration {}_{}; apply with --allow-out-of-order, or give {} a newer version",
                older.join(", "),
                if older.len() == 1 { "is" } else { "are" },
                newest.version,
                newest.name,
                if older.len() == 1 { "it" } else { "them" },
            )
        })
    }
}

/// Describes drift for an error message.
pub fn describe_drift(drift: &[MigrationStatusRow]) -> String {
    drift
        .iter()
        .map(|r| match r.state {
            MigrationState::Drifted => format!(
                "{}_{} was changed after it was applied (checksum differs)",
                r.version, r.name
            ),
            _ => format!("{}_{} is applied but its file is missing", r.version, r.name),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
