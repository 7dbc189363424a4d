//! `verify`: judged from what a health check read.

use super::{Engine, VerifyResult};
use crate::health::Reading;
use crate::migration::plan;
use crate::migration::plan::describe_drift;

/// Healthy, and every migration file is applied with a matching checksum,
/// judged from what a health check read (see [`HealthCheck::read_many`]).
pub(super) fn verify(engine: &Engine, reading: Reading) -> VerifyResult {
    let name = reading.status.environment.clone();
    let outcome: Result<(), String> = (|| {
        if !reading.status.is_healthy {
            return Err(format!("unhealthy: {}", reading.status.error.unwrap_or_default()));
        }
        if engine.options.dry_run {
            return Ok(());
        }
        let migration_plan = plan(&engine.migrations, &reading.history.unwrap_or_default());
        if !migration_plan.drift.is_empty() {
            return Err(format!("drift: {}", describe_drift(&migration_plan.drift)));
        }
        if !migration_plan.pending.is_empty() {
            let ids: Vec<String> = migration_plan.pending.iter().map(|m| m.id()).collect();
            return Err(format!("not applied: {}", ids.join(", ")));
        }
        Ok(())
    })();
    VerifyResult {
        environment: name,
        ok: outcome.is_ok(),
        error: outcome.err(),
    }
}
