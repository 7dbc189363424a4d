//! The final result of one environment, and the plan a dry run reports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::safety::DestructiveStatement;

/// How an environment ended. Every selected environment gets exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeploymentStatus {
    /// Every pending migration applied (or none were pending).
    Success,
    /// Not deployed, or stopped part-way without a rollback.
    Failed,
    /// Failed, and what this run applied there was rolled back.
    RolledBack,
    /// Deliberately not deployed: approval, strategy stop, interruption.
    Skipped,
}

impl DeploymentStatus {
    /// `SUCCESS`, `FAILED`, `ROLLED_BACK`, `SKIPPED`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::RolledBack => "ROLLED_BACK",
            Self::Skipped => "SKIPPED",
        }
    }

    /// `success`, `failed`, `rolled_back`, `skipped` (as in JSON and Rhai).
    pub fn value(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::Skipped => "skipped",
        }
    }
}

/// Why an environment failed, beside its error text: what dashboards,
/// metrics and plugins count by, so nobody matches message texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// An approval plugin failed to answer.
    Approval,
    /// The health check failed.
    Unhealthy,
    /// The history disagrees with the files (changed checksum, order).
    Drift,
    /// The database holds another tool's tables and no surql history.
    ForeignSchema,
    /// A destructive statement where `allow_destructive` is false.
    Destructive,
    /// Another run holds the database's migration lock.
    Locked,
    /// Connecting, signing in, or the connection lost before a write.
    Connection,
    /// The database refused a migration (nothing of it committed).
    Rejected,
    /// A write whose outcome nobody knows (timeout, lost connection).
    OutcomeUnknown,
    /// The lock expired and another runner took it mid-run.
    LeaseLost,
    /// Ctrl-C while it ran.
    Interrupted,
    /// A pending migration its server's SurrealDB version cannot run (a
    /// clause only SurrealDB 4 understands, sent to a 3.x server), or a
    /// requirement whose server does not tell its version.
    ServerVersion,
    /// Committed, but what it left the server doing in the background
    /// failed or outlasted the operation timeout: an index built
    /// `CONCURRENTLY`, the verification of a raised compatibility level.
    BackgroundWork,
    /// Anything else (the error text says what).
    Other,
}

impl FailureKind {
    /// Every kind, in the order metrics list them.
    pub const ALL: [FailureKind; 14] = [
        Self::Approval,
        Self::Unhealthy,
        Self::Drift,
        Self::ForeignSchema,
        Self::Destructive,
        Self::Locked,
        Self::Connection,
        Self::Rejected,
        Self::OutcomeUnknown,
        Self::LeaseLost,
        Self::Interrupted,
        Self::ServerVersion,
        Self::BackgroundWork,
        Self::Other,
    ];

    /// `unhealthy`, `outcome_unknown` … (as in JSON and metrics).
    pub fn value(self) -> &'static str {
        match self {
            Self::Approval => "approval",
            Self::Unhealthy => "unhealthy",
            Self::Drift => "drift",
            Self::ForeignSchema => "foreign_schema",
            Self::Destructive => "destructive",
            Self::Locked => "locked",
            Self::Connection => "connection",
            Self::Rejected => "rejected",
            Self::OutcomeUnknown => "outcome_unknown",
            Self::LeaseLost => "lease_lost",
            Self::Interrupted => "interrupted",
            Self::ServerVersion => "server_version",
            Self::BackgroundWork => "background_work",
            Self::Other => "other",
        }
    }
}

/// What a dry run found for one environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EnvironmentPlan {
    /// `version_name` of each migration that would be applied, in order.
    pub pending: Vec<String>,
    /// The SurrealQL that would run, one entry per pending migration.
    /// Shared between environments: 10,000 plans hold one copy of each script.
    pub statements: Vec<std::sync::Arc<str>>,
    /// Data-losing statements among the pending migrations.
    pub destructive: Vec<DestructiveStatement>,
    /// A person or plugin would have to approve this environment.
    pub approval_required: bool,
    /// Pending migrations without a down section (auto-rollback impossible).
    pub irreversible: Vec<String>,
    /// The run-once row conversions the pending migrations would run
    /// (SurrealDB 4's `MIGRATE EXISTING ROWS AS name`), as
    /// `table.name (migration)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_migrations: Vec<String>,
    /// Pending migrations passed over because its server is too old for
    /// them (`-- migrate:requires surrealdb >= N`), each with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<String>,
    /// A rollback's plan: `pending` are the migrations it would revert,
    /// newest first, and `statements` their down sections.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

/// The result of one environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentResult {
    /// The environment's name.
    pub environment: String,
    /// How it ended.
    pub status: DeploymentStatus,
    /// Migrations this run applied there (and kept).
    pub migrations_applied: usize,
    /// Seconds from `started_at` to `completed_at`.
    pub duration_seconds: Option<f64>,
    /// Why it failed or was skipped, secrets masked; `None` on SUCCESS.
    pub error: Option<String>,
    /// When its run began (for a skip, when it was skipped).
    pub started_at: DateTime<Utc>,
    /// When it got this result.
    pub completed_at: Option<DateTime<Utc>>,
    /// Dry runs only (boxed: a result of a real run stays small).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Box<EnvironmentPlan>>,
    /// Migrations a rollback of a recorded deployment reverted there.
    #[serde(skip_serializing_if = "is_zero")]
    pub migrations_rolled_back: usize,
    /// FAILED with a write whose outcome nobody knows (a timeout, a lost
    /// connection): it may still commit, so its lock is left to expire.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outcome_unknown: bool,
    /// Why it failed (FAILED and ROLLED_BACK only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_kind: Option<FailureKind>,
    /// Pending migrations its server is too old for (`-- migrate:requires`),
    /// each with the reason. SKIPPED with nothing else to do is up to date
    /// for its server: the built-in strategies go on past it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<String>,
    /// The SurrealDB version of its server, once this run reached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<crate::connection::ServerVersion>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl DeploymentResult {
    /// A finished result that started at `started_at`.
    pub fn finished(
        environment: &str,
        status: DeploymentStatus,
        migrations_applied: usize,
        error: Option<String>,
        started_at: DateTime<Utc>,
    ) -> Self {
        let completed_at = Utc::now();
        let duration = (completed_at - started_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
        Self {
            environment: environment.to_string(),
            status,
            migrations_applied,
            duration_seconds: Some(duration.max(0.0)),
            error: error.map(|e| crate::redact::redact(&e)),
            started_at,
            completed_at: Some(completed_at),
            plan: None,
            migrations_rolled_back: 0,
            outcome_unknown: false,
            passed_over: Vec::new(),
            server_version: None,
            failure_kind: (status == DeploymentStatus::Failed || status == DeploymentStatus::RolledBack)
                .then_some(FailureKind::Other),
        }
    }

    /// SKIPPED now, with the reason.
    pub fn skipped(environment: &str, reason: impl Into<String>) -> Self {
        Self::finished(
            environment,
            DeploymentStatus::Skipped,
            0,
            Some(reason.into()),
            Utc::now(),
        )
    }

    /// True for FAILED and ROLLED_BACK.
    pub fn is_failure(&self) -> bool {
        matches!(self.status, DeploymentStatus::Failed | DeploymentStatus::RolledBack)
    }
}
