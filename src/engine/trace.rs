//! The `tracing` spans of a deployment (deployment → wave → environment →
//! migration), which `surql::observe::traces` exports over OTLP when asked.
//! Without a subscriber that wants them, they cost a disabled callsite check.

use super::{DeploymentResult, DeploymentStatus, Engine};

/// Parent of nothing: a wave outside a recorded deployment span.
static NO_SPAN: tracing::Span = tracing::Span::none();

impl Engine {
    /// Makes `span` the parent of every wave this engine runs.
    pub fn set_deployment_span(&self, span: tracing::Span) {
        let _ = self.span.set(span);
    }

    /// The deployment's span (none until the coordinator runs it).
    pub(super) fn deployment_span(&self) -> &tracing::Span {
        self.span.get().unwrap_or(&NO_SPAN)
    }
}

/// Records an environment's result on the current (environment) span.
pub(super) fn finished_environment(result: &DeploymentResult) {
    let span = tracing::Span::current();
    span.record("status", result.status.value());
    span.record("migrations_applied", result.migrations_applied);
    if let Some(error) = &result.error {
        // Already redacted by `DeploymentResult::finished`.
        span.record("error", error.as_str());
    }
    let code = match result.status {
        DeploymentStatus::Failed | DeploymentStatus::RolledBack => "ERROR",
        DeploymentStatus::Success | DeploymentStatus::Skipped => "OK",
    };
    span.record("otel.status_code", code);
}

/// A span for one request applying `migrations` (`version_name` each) on the current environment.
pub(super) fn migration_span(migrations: &str, count: usize) -> tracing::Span {
    tracing::info_span!(
        "migration",
        migration = migrations,
        count,
        error = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// Marks `span` failed with `error` (redacted).
pub(super) fn failed(span: &tracing::Span, error: &str) {
    span.record("error", crate::redact::redact(error).as_str());
    span.record("otel.status_code", "ERROR");
}
