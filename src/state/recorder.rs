//! Writes each environment's state to the store as the engine reports it:
//! batched (every 200 ms, or 500 changes), so 10,000 tenants cost a few dozen
//! writes, and a crash loses at most the last fraction of a second.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::{EnvironmentRecord, EnvironmentState, StateStore};
use crate::engine::{Event, EventSink};

const FLUSH_EVERY: Duration = Duration::from_millis(200);
const FLUSH_AT: usize = 500;

/// A running recorder; [`Recorder::stop`] writes what is left and ends it.
pub struct Recorder {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Records the events of deployment `id` (its record under `key`) and
    /// passes each on to `forward`. Returns the recorder and the sink to give the engine.
    pub fn start(store: Arc<StateStore>, id: String, key: String, forward: EventSink) -> (Self, EventSink) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(record(store, id, key, receiver, forward, stopped));
        (Self { stop, task }, EventSink::new(sender))
    }

    /// Writes the changes still buffered and waits for the recorder to end.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn record(
    store: Arc<StateStore>,
    id: String,
    key: String,
    mut events: UnboundedReceiver<Event>,
    forward: EventSink,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let mut pending: indexmap::IndexMap<String, EnvironmentRecord> = indexmap::IndexMap::new();
    let mut applied = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    let mut heartbeat = tokio::time::interval(super::HEARTBEAT_EVERY);
    loop {
        let stop = tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    note(&mut pending, &mut applied, &event);
                    forward.send(event);
                    if pending.len() >= FLUSH_AT {
                        flush(&store, &id, &mut pending).await;
                    }
                    false
                }
                None => true,
            },
            _ = tick.tick() => {
                flush(&store, &id, &mut pending).await;
                false
            }
            _ = heartbeat.tick() => {
                if let Err(error) = store.heartbeat(&key).await {
                    tracing::warn!("could not record that deployment {id} is alive: {error}");
                }
                false
            }
            _ = &mut stopped => true,
        };
        if stop {
            // Whatever arrived before the stop is written too.
            while let Ok(event) = events.try_recv() {
                note(&mut pending, &mut applied, &event);
                forward.send(event);
            }
            flush(&store, &id, &mut pending).await;
            return;
        }
    }
}

fn note(
    pending: &mut indexmap::IndexMap<String, EnvironmentRecord>,
    applied: &mut std::collections::HashMap<String, Vec<String>>,
    event: &Event,
) {
    let now = chrono::Utc::now().to_rfc3339();
    let (environment, state, migrations_applied, error) = match event {
        Event::Started { environment } => (environment, EnvironmentState::Running, 0, None),
        Event::MigrationApplied {
            environment, migration, ..
        } => {
            let versions = applied.entry(environment.clone()).or_default();
            versions.push(migration.clone());
            (environment, EnvironmentState::Running, versions.len(), None)
        }
        Event::Finished { result } => (
            &result.environment,
            EnvironmentState::of(result),
            result.migrations_applied,
            result.error.clone(),
        ),
        _ => return,
    };
    let record = EnvironmentRecord {
        environment: environment.clone(),
        state,
        migrations_applied,
        versions: applied.get(environment).cloned().unwrap_or_default(),
        error,
        updated_at: now,
    };
    pending.insert(record.environment.clone(), record);
}

async fn flush(store: &StateStore, id: &str, pending: &mut indexmap::IndexMap<String, EnvironmentRecord>) {
    if pending.is_empty() {
        return;
    }
    let rows: Vec<EnvironmentRecord> = pending.drain(..).map(|(_, row)| row).collect();
    if let Err(error) = store.write_environments(id, &rows).await {
        tracing::warn!("could not record the state of {} environment(s): {error}", rows.len());
    }
}
