//! The final result of one environment, and the plan a dry run reports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::safety::DestructiveStatement;

/// How an environment ended. Every selected environment gets exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// A rollback's plan: `pending` are the migrations it would revert,
    /// newest first, and `statements` their down sections.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

/// The result of one environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentResult {
    pub environment: String,
    pub status: DeploymentStatus,
    /// Migrations this run applied there (and kept).
    pub migrations_applied: usize,
    pub duration_seconds: Option<f64>,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Dry runs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<EnvironmentPlan>,
    /// Migrations a rollback of a recorded deployment reverted there.
    #[serde(skip_serializing_if = "is_zero")]
    pub migrations_rolled_back: usize,
    /// FAILED with a write whose outcome nobody knows (a timeout, a lost
    /// connection): it may still commit, so its lock is left to expire.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outcome_unknown: bool,
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
