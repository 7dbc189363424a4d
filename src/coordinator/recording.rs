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
            set: options.set.clone().into_iter().collect(),
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
        resumed_at: None,
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

/// A deployment ready to run: its engine, its strategy, and its recording
/// in the state store. [`PreparedDeployment::claim`] records it as running
/// (optional: [`PreparedDeployment::run`] claims when it was not);
/// `run` runs it.
pub struct PreparedDeployment<'c> {
    pub(super) coordinator: &'c MigrationCoordinator,
    pub(super) engine: Arc<Engine>,
    pub(super) strategy: Strategy,
    pub(super) recording: Option<Recording>,
    pub(super) claimed: bool,
}

impl PreparedDeployment<'_> {
    /// The engine that will run it (its environments, options, events).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The strategy it runs.
    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    /// Records it in the state store as running and starts recording it —
    /// unless a running deployment (its heartbeat fresh) holds one of the
    /// same environments ([`StateError::Overlap`]), or another runner
    /// claimed this deployment or shard first ([`StateError::Claimed`]).
    /// With `wait`, an overlap is waited out: `waiting` hears who holds it
    /// each time it tries again (every 2 s). Without a state store, or for
    /// dry runs and simulations, it does nothing.
    pub async fn claim(&mut self, wait: bool, mut waiting: impl FnMut(&str)) -> Result<(), StateError> {
        let Some(recording) = self.recording.as_mut().filter(|_| !self.claimed) else {
            return Ok(());
        };
        loop {
            match self.coordinator.claim(&self.engine, &self.strategy, recording).await {
                Ok(()) => {
                    self.claimed = true;
                    return Ok(());
                }
                Err(StateError::Overlap(busy)) if wait => {
                    waiting(&busy);
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
                Err(refused) => return Err(refused),
            }
        }
    }

    /// Runs it (claiming it first when not claimed: refused, every
    /// environment is SKIPPED `not deployed: …`); one result per environment.
    pub async fn run(self) -> crate::coordinator::DeploymentReport {
        self.coordinator
            .run(self.engine, self.strategy, self.recording, self.claimed)
            .await
    }
}

impl MigrationCoordinator {
    /// Records a prepared deployment in the store and starts its recorder;
    /// on a refusal nothing is recorded (a later call claims again).
    pub(super) async fn claim(
        &self,
        engine: &Arc<Engine>,
        strategy: &Strategy,
        recording: &mut Recording,
    ) -> Result<(), StateError> {
        if recording.recorder.is_some() {
            return Ok(());
        }
        let Some(store) = &self.state else { return Ok(()) };
        let id = &engine.context().deployment_id;
        let mut record = deployment_record(engine, strategy);
        record.retry_of = recording.retry_of.clone();
        record.shard = recording.shard.clone();
        record.plan_changes = recording.plan_changes.clone();
        store
            .begin(&record, engine.kept(), recording.recorded_runner.as_deref())
            .await?;
        // Alive while it runs here: another deployment of this process must
        // not take its record for a dead runner's.
        crate::migration::holder::note_held(&record.runner);
        if let Some(events) = recording.events.take() {
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
}
