//! Recording a deployment in the state store: its first record, and the
//! claim on its environments (the fleet lock) before it runs.

use std::sync::Arc;

use super::MigrationCoordinator;
use crate::engine::{Engine, Event};
use crate::script::Strategy;
use crate::state::{
    DeploymentRecord, FreezeOverride, PlanChange, PlannedMigration, RecordedOptions, Recorder, RecorderTarget,
    StateError,
};

/// A prepared deployment's recording: its events until it is claimed, then
/// the recorder writing them; what it retries or continues.
pub(super) struct Recording {
    /// The engine's events, buffered until the claim starts the recorder.
    pub(super) events: Option<tokio::sync::mpsc::UnboundedReceiver<Event>>,
    pub(super) recorder: Option<Recorder>,
    pub(super) retry_of: Option<String>,
    /// `I/N` when the selection is split across runners.
    pub(super) shard: Option<String>,
    /// Its record's key in the store.
    pub(super) key: String,
    /// The runner of the recorded run this one continues (see [`crate::state::StateStore::begin`]).
    pub(super) recorded_runner: Option<String>,
    /// Plan changes accepted so far (a `resume --force` adds its own).
    pub(super) plan_changes: Vec<PlanChange>,
}

/// The record a deployment starts with: who, how, where; every environment pending.
fn deployment_record(engine: &Engine, strategy: &Strategy) -> DeploymentRecord {
    let options = engine.options();
    let context = engine.context();
    DeploymentRecord {
        id: context.deployment_id.clone(),
        actor: context.actor.clone(),
        strategy: strategy.name.clone(),
        options: RecordedOptions {
            strategy: Some(strategy.origin.clone()),
            batch_size: Some(options.batch_size),
            canary_percent: Some(options.canary_percent),
            max_concurrent: Some(options.max_concurrent),
            max_per_server: options.max_per_server,
            max_server_latency_ms: options.max_server_latency.map(|d| d.as_millis() as u64),
            refresh_discovery: Some(options.refresh_discovery),
            max_failures: options.max_failures.map(|b| b.to_string()),
            verify_health: Some(options.verify_health),
            auto_rollback: Some(options.auto_rollback),
            set: options.extra.clone().into_iter().collect(),
            force: options.undo.as_ref().map(|undo| undo.force),
            connect_timeout_s: Some(options.connect_timeout.as_secs_f64()),
            operation_timeout_s: Some(options.operation_timeout.as_secs_f64()),
            lock_ttl_s: Some(context.lock_ttl.as_secs_f64()),
            override_freeze: options.override_freeze.as_ref().map(|reason| FreezeOverride {
                by: context.actor.clone(),
                reason: reason.clone(),
            }),
        },
        selection: engine.environments().iter().map(|e| e.name.clone()).collect(),
        started_at: chrono::Utc::now().to_rfc3339(),
        finished_at: None,
        state: crate::state::DeploymentState::Running,
        runner: crate::migration::holder::owner_string(&context.actor, &context.deployment_id, None),
        counts: Default::default(),
        retry_of: None,
        heartbeat_at: None,
        shard: None,
        shards: Vec::new(),
        rollback_of: options.undo.as_ref().map(|undo| undo.deployment_id.clone()),
        plan: PlannedMigration::plan_of(engine.migrations()),
        plan_changes: Vec::new(),
        control: None,
        commands: Vec::new(),
        waves: Vec::new(),
    }
}

impl MigrationCoordinator {
    /// Records a prepared deployment in the state store as running, then
    /// starts recording it — unless a running deployment (its heartbeat
    /// fresh) holds one of the same environments ([`StateError::Overlap`],
    /// naming it: call again to wait), or another runner claimed this
    /// deployment or shard first ([`StateError::Claimed`]). Done by [`MigrationCoordinator::run`] when not called
    /// before. Without a state store, or for dry runs and simulations, it
    /// does nothing.
    pub async fn claim(&self, engine: &Arc<Engine>, strategy: &Strategy) -> Result<(), StateError> {
        let id = &engine.context().deployment_id;
        let (retry_of, shard, recorded_runner, plan_changes) = {
            let recorders = self.recorders.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match recorders.get(id) {
                Some(recording) if recording.recorder.is_none() => (
                    recording.retry_of.clone(),
                    recording.shard.clone(),
                    recording.recorded_runner.clone(),
                    recording.plan_changes.clone(),
                ),
                _ => return Ok(()),
            }
        };
        let Some(store) = &self.state else { return Ok(()) };
        let mut record = deployment_record(engine, strategy);
        record.retry_of = retry_of;
        record.shard = shard;
        record.plan_changes = plan_changes;
        let claimed = store.begin(&record, engine.kept(), recorded_runner.as_deref()).await;
        let mut recorders = self.recorders.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match claimed {
            Ok(()) => {
                if let Some(recording) = recorders.get_mut(id)
                    && let Some(events) = recording.events.take()
                {
                    let target = RecorderTarget {
                        store: store.clone(),
                        id: id.clone(),
                        key: recording.key.clone(),
                        engine: engine.clone(),
                    };
                    recording.recorder = Some(Recorder::start(target, events, self.events.clone()));
                }
                Ok(())
            }
            // Nothing recorded: a later call claims again (and is refused
            // again while the other runner holds it).
            Err(refused) => Err(refused),
        }
    }
}
