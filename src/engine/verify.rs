//! `verify`: judged from what a health check read, then the verify sections
//! of the migrations applied there.

use super::{Engine, VerifyResult};
use crate::connection::{ReadOnly, open_read_only};
use crate::health::Reading;
use crate::migration::plan;
use crate::migration::plan::describe_drift;
use crate::migration::verify::run_verify_sections;
use crate::registry::EnvironmentConfig;

/// Healthy, every migration file applied with a matching checksum (judged
/// from what a health check read, see [`HealthCheck::read_many`]), and every
/// applied migration's verify section holding.
pub(super) async fn verify(engine: &Engine, environment: &EnvironmentConfig, reading: Reading) -> VerifyResult {
    let name = reading.status.environment.clone();
    let fail = |error: String| VerifyResult {
        environment: name.clone(),
        ok: false,
        error: Some(error),
        failure: None,
    };
    if !reading.status.is_healthy {
        return fail(format!("unhealthy: {}", reading.status.error.unwrap_or_default()));
    }
    let ok = VerifyResult {
        environment: name.clone(),
        ok: true,
        error: None,
        failure: None,
    };
    if engine.options.dry_run {
        return ok;
    }
    let history = reading.history.unwrap_or_default();
    let migration_plan = plan(&engine.migrations, &history);
    if !migration_plan.drift.is_empty() {
        return fail(format!("drift: {}", describe_drift(&migration_plan.drift)));
    }
    if !migration_plan.pending.is_empty() {
        let ids: Vec<String> = migration_plan.pending.iter().map(|m| m.id()).collect();
        return fail(format!("not applied: {}", ids.join(", ")));
    }
    let has_checks = engine
        .migrations
        .iter()
        .any(|m| m.verify.is_some() && history.iter().any(|row| row.version == m.version));
    if !has_checks {
        return ok;
    }
    let db = match open_read_only(&engine.client, &environment.connection, engine.options.timeouts()).await {
        Ok(ReadOnly::Selected(db)) => db,
        Ok(ReadOnly::Missing(_)) => return fail("the database is gone".into()),
        Err(e) => return fail(e.to_string()),
    };
    match run_verify_sections(&db, &engine.migrations, &history).await {
        Ok(None) => ok,
        Ok(Some(failure)) => VerifyResult {
            environment: name,
            ok: false,
            error: Some(failure.to_string()),
            failure: Some(failure),
        },
        Err(e) => fail(format!("verify sections could not run: {e}")),
    }
}
