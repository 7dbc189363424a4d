//! environments.json's policy in the engine: a hold, a freeze in force or a
//! closed maintenance window skips an environment before anything touches
//! it, and `pin_version` stops its migrations at a version. Decided when an
//! environment is planned or started, so `plan()`, a dry run, a simulation
//! and a real run say the same.

use chrono::Utc;

use super::stop::{Stop, skipped};
use super::{Engine, EngineError, WaveOptions};
use crate::migration::Migration;
use crate::migration::file::version_order_key;
use crate::policy::Verdict;
use crate::registry::EnvironmentConfig;

impl Engine {
    /// Why `environment` is SKIPPED if it is started now: held, frozen (and
    /// not overridden), or outside its maintenance window.
    pub(super) fn policy_skip(&self, environment: &EnvironmentConfig) -> Option<String> {
        match environment.gate(Utc::now(), self.options.override_freeze.is_some()) {
            Verdict::Skip(reason) => Some(reason),
            Verdict::Go | Verdict::Overridden(_) => None,
        }
    }
}

/// The first step of an environment's run, before approval and before any
/// connection: SKIPPED when the policy says so; a freeze overridden is logged.
pub(super) fn admit(engine: &Engine, environment: &EnvironmentConfig) -> Result<(), Stop> {
    let override_reason = engine.options.override_freeze.as_deref();
    match environment.gate(Utc::now(), override_reason.is_some()) {
        Verdict::Go => Ok(()),
        Verdict::Skip(reason) => Err(skipped(reason)),
        Verdict::Overridden(frozen) => {
            engine.log(format!(
                "{}: {frozen}; deploying anyway: freeze overridden by {}: {}",
                environment.name,
                engine.context.actor,
                override_reason.unwrap_or_default()
            ));
            Ok(())
        }
    }
}

/// The order key of the last version a wave applies on `environment`: the
/// lower of the wave's `to_version` and the environment's `pin_version`.
pub(super) fn last_version(wave: &WaveOptions, environment: &EnvironmentConfig) -> Option<(usize, String)> {
    [wave.to_version.as_deref(), environment.pin_version.as_deref()]
        .into_iter()
        .flatten()
        .map(version_order_key)
        .min()
}

/// Whether `version` is within `last` (see [`last_version`]; `None`: no limit).
pub(super) fn within(last: Option<&(usize, String)>, version: &str) -> bool {
    last.is_none_or(|last| version_order_key(version) <= *last)
}

/// Refuses, before anything runs, an environment pinned to a version that
/// none of `migrations` has (with no migrations there is nothing to pin).
pub fn check_pins(environments: &[EnvironmentConfig], migrations: &[Migration]) -> Result<(), EngineError> {
    if migrations.is_empty() {
        return Ok(());
    }
    for environment in environments {
        if let Some(version) = &environment.pin_version
            && !migrations.iter().any(|m| &m.version == version)
        {
            let known: Vec<String> = migrations.iter().map(|m| m.version.clone()).collect();
            return Err(EngineError::UnknownPin {
                environment: environment.name.clone(),
                version: version.clone(),
                known: crate::registry::some_of(&known),
            });
        }
    }
    Ok(())
}
