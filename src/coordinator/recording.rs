//! Recording a deployment in the state store: its first record, and the
//! claim on its environments (the fleet lock) before it runs.

use serde_json::json;

use super::MigrationCoordinator;
use crate::engine::Engine;
use crate::script::Strategy;
use crate::state::{DeploymentRecord, Recorder, StateError};

/// A prepared deployment's recorder, what it retries, and whether it was
/// recorded as running yet.
pub(super) struct Recording {
    pub(super) recorder: Recorder,
    pub(super) retry_of: Option<String>,
    /// `I/N` when the selection is split across runners.
    pub(super) shard: Option<String>,
    /// Its record's key in the store.
    pub(super) key: String,
    pub(super) claimed: bool,
}

/// The record a deployment starts with: who, how, where; every environment pending.
fn deployment_record(engine: &Engine, strategy: &Strategy) -> DeploymentRecord {
    let options = engine.options();
    let context = engine.context();
    DeploymentRecord {
        id: context.deployment_id.clone(),
        actor: context.actor.clone(),
        strategy: strategy.name.clone(),
        options: json!({
            "strategy": strategy.origin,
            "batch_size": options.batch_size,
            "canary_percent": options.canary_percent,
            "max_concurrent": options.max_concurrent,
            "max_failures": options.max_failures.map(|b| b.to_string()),
            "verify_health": options.verify_health,
            "auto_rollback": options.auto_rollback,
            "set": options.extra,
            "force": options.undo.as_ref().map(|undo| undo.force),
            "connect_timeout_s": options.connect_timeout.as_secs_f64(),
            "operation_timeout_s": options.operation_timeout.as_secs_f64(),
            "lock_ttl_s": context.lock_ttl.as_secs_f64(),
        }),
        selection: engine.environments().map(|e| e.name.clone()).collect(),
        started_at: chrono::Utc::now().to_rfc3339(),
        finished_at: None,
        state: "running".into(),
        runner: crate::migration::holder::owner_string(&context.actor, &context.deployment_id, None),
        counts: Default::default(),
        retry_of: None,
        heartbeat_at: None,
        shard: None,
        shards: Vec::new(),
        rollback_of: options.undo.as_ref().map(|undo| undo.deployment_id.clone()),
    }
}

impl MigrationCoordinator {
    /// Records a prepared deployment in the state store as running — unless
    /// a running deployment (its heartbeat fresh) holds one of the same
    /// environments: then it is refused, naming that one. Done by
    /// [`MigrationCoordinator::run`] when not called before; call it first
    /// to tell a refusal from a run (`--wait`). Without a state store, or
    /// for dry runs and simulations, it does nothing.
    pub async fn claim(&self, engine: &Engine, strategy: &Strategy) -> Result<(), StateError> {
        let id = &engine.context().deployment_id;
        let (retry_of, shard) = {
            let recorders = self.recorders.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match recorders.get(id) {
                Some(recording) if !recording.claimed => (recording.retry_of.clone(), recording.shard.clone()),
                _ => return Ok(()),
            }
        };
        let Some(store) = &self.state else { return Ok(()) };
        let mut record = deployment_record(engine, strategy);
        record.retry_of = retry_of;
        record.shard = shard;
        store.begin(&record, engine.kept()).await?;
        if let Some(recording) = self
            .recorders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(id)
        {
            recording.claimed = true;
        }
        Ok(())
    }
}
