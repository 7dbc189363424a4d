//! What a deployment reports: every selected environment's result, its
//! waves, why it stopped, and the exit code.

use indexmap::IndexMap;
use serde::Serialize;

use super::WaveEstimate;
use crate::engine::{DeploymentResult, DeploymentStatus};
use crate::script::ScriptError;

/// Every selected environment's result, and the script error if the strategy failed.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentReport {
    /// Id of the deployment (in every history row and the state store).
    pub deployment_id: String,
    /// Name of the strategy that ran it.
    pub strategy: String,
    /// Who ran it (recorded in every history row).
    pub actor: String,
    /// In the order the environments were selected.
    pub results: IndexMap<String, DeploymentResult>,
    /// The waves (`deploy` calls) the strategy made, in order, with their
    /// options and the pauses after them: in a dry run, the rollout as it
    /// would run.
    pub waves: Vec<crate::engine::Wave>,
    /// Set when the strategy failed to compile or run; the environments it did
    /// not reach are SKIPPED with this reason.
    #[serde(skip)]
    pub script_error: Option<ScriptError>,
    /// The run was stopped (Ctrl-C, `Engine::cancel`): environments it did
    /// not start are SKIPPED.
    #[serde(skip)]
    pub interrupted: bool,
    /// The state store could not keep the record (it went away and stayed
    /// away past [`crate::state::STORE_OUTAGE_LIMIT`], or the end could not
    /// be written): why. Environments not started are SKIPPED; `resume`
    /// completes the record from the databases.
    #[serde(skip)]
    pub record_lost: Option<String>,
    /// Why the run was stopped when not by Ctrl-C: an operator's abort
    /// (`aborted by ACTOR: REASON`), or the state store lost.
    #[serde(skip)]
    pub stopped: Option<String>,
    /// A dry run's estimated duration of each wave, from the state store's
    /// past durations (none without a store or a recorded duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimates: Option<Vec<WaveEstimate>>,
}

impl DeploymentReport {
    /// The documented exit code: 5 the record lost, 130 interrupted, 1
    /// aborted, 3 script error, 0 every environment SUCCESS, else 1.
    pub fn exit_code(&self) -> i32 {
        use crate::exit::{EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_RECORD_LOST, EXIT_SCRIPT, EXIT_SUCCESS};
        if self.record_lost.is_some() {
            EXIT_RECORD_LOST
        } else if self.interrupted {
            EXIT_INTERRUPTED
        } else if self.stopped.is_some() {
            EXIT_FAILURE
        } else if self.script_error.is_some() {
            EXIT_SCRIPT
        } else if self.all_succeeded() {
            EXIT_SUCCESS
        } else {
            EXIT_FAILURE
        }
    }

    /// True when every environment is SUCCESS and the script ran to the end.
    pub fn all_succeeded(&self) -> bool {
        self.script_error.is_none() && self.results.values().all(|r| r.status == DeploymentStatus::Success)
    }
}

/// The deployment span's counts and status: an error when any environment failed.
pub(super) fn record_outcome(span: &tracing::Span, report: &DeploymentReport) {
    let count = |status: DeploymentStatus| report.results.values().filter(|r| r.status == status).count();
    span.record("success", count(DeploymentStatus::Success));
    span.record("failed", count(DeploymentStatus::Failed));
    span.record("rolled_back", count(DeploymentStatus::RolledBack));
    span.record("skipped", count(DeploymentStatus::Skipped));
    let failed = report.results.values().any(DeploymentResult::is_failure) || report.script_error.is_some();
    span.record("otel.status_code", if failed { "ERROR" } else { "OK" });
}
