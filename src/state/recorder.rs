//! Writes each environment's state to the store as the engine reports it:
//! batched (every 200 ms, or 500 changes), so 10,000 tenants cost a few dozen
//! writes, and a crash loses at most the last fraction of a second.
//!
//! A write that fails holds the engine (no new environment starts; running
//! ones go on) and is retried with a back-off; the store back within
//! [`STORE_OUTAGE_LIMIT`], the engine goes on and nothing is lost. Past it,
//! the engine is stopped: what it never started ends SKIPPED, and the
//! recorder reports the loss so the run ends with its own exit code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use super::{EnvironmentRecord, EnvironmentState, STORE_OUTAGE_LIMIT, StateError, StateStore, WaveRecord};
use crate::engine::{Engine, Event, EventSink};

const FLUSH_EVERY: Duration = Duration::from_millis(200);
const FLUSH_AT: usize = 500;
/// A write outstanding this long holds new environments until it is answered:
/// the record is never more than this behind what the runner starts.
const STORE_SLOW: Duration = Duration::from_secs(2);
/// The first retry after a failed write; each next one waits twice as long.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(8);
/// The engine's hold while the store is away.
const HOLD_KEY: &str = "state-store";
/// How often a runner reads the operator's commands.
const CONTROL_EVERY: Duration = Duration::from_secs(1);
/// The engine's hold while an operator pauses the deployment.
const PAUSE_KEY: &str = "pause";

/// A running recorder; [`Recorder::stop`] writes what is left and ends it.
pub struct Recorder {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Option<String>>,
}

/// Where the recorder writes, and what it holds when it cannot.
pub struct RecorderTarget {
    /// The state store the record is written to.
    pub store: Arc<StateStore>,
    /// The deployment id.
    pub id: String,
    /// Its record's key (the id, or the shard's key).
    pub key: String,
    /// Held while the store is away, stopped when it stays away.
    pub engine: Arc<Engine>,
}

impl Recorder {
    /// Records the `events` of a deployment and passes each on to `forward`.
    pub fn start(target: RecorderTarget, events: UnboundedReceiver<Event>, forward: EventSink) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(record(target, events, forward, stopped));
        Self { stop, task }
    }

    /// Writes the changes still buffered and waits for the recorder to end.
    /// `Some(why)` when the record could not be kept (the store lost).
    pub async fn stop(self) -> Option<String> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(None)
    }
}

/// The store is failing: since when, and when to try again.
struct Outage {
    since: Instant,
    next_try: Instant,
    wait: Duration,
    last_error: String,
}

struct Writer {
    target: RecorderTarget,
    pending: indexmap::IndexMap<String, EnvironmentRecord>,
    applied: std::collections::HashMap<String, Vec<String>>,
    outage: Option<Outage>,
    /// Set once the outage outlasted [`STORE_OUTAGE_LIMIT`].
    lost: Option<String>,
    /// The operator's control as last obeyed.
    obeyed: super::Control,
    /// Environments that joined the deployment late, and those of them not
    /// yet added to its recorded selection.
    joined: std::collections::HashSet<String>,
    joined_unrecorded: Vec<String>,
    /// The wave each environment was given to.
    wave_of: std::collections::HashMap<String, usize>,
    waves_unrecorded: Vec<WaveRecord>,
    /// Each unrecorded wave's environments, by its number.
    wave_members: Vec<(usize, Vec<String>)>,
}

async fn record(
    target: RecorderTarget,
    mut events: UnboundedReceiver<Event>,
    forward: EventSink,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) -> Option<String> {
    let mut writer = Writer {
        target,
        pending: indexmap::IndexMap::new(),
        applied: std::collections::HashMap::new(),
        outage: None,
        lost: None,
        obeyed: super::Control::default(),
        joined: Default::default(),
        joined_unrecorded: Vec::new(),
        wave_of: Default::default(),
        waves_unrecorded: Vec::new(),
        wave_members: Vec::new(),
    };
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    let mut heartbeat = tokio::time::interval(super::HEARTBEAT_EVERY);
    let mut control = tokio::time::interval(CONTROL_EVERY);
    loop {
        let stop = tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    writer.note(&event);
                    forward.send(event);
                    if writer.pending.len() >= FLUSH_AT && writer.outage.is_none() {
                        writer.flush(false).await;
                    }
                    false
                }
                None => true,
            },
            _ = tick.tick() => {
                writer.flush(false).await;
                false
            }
            _ = heartbeat.tick() => {
                if writer.outage.is_none() {
                    writer.flush(true).await;
                }
                false
            }
            _ = control.tick() => {
                if writer.outage.is_none() && writer.lost.is_none() {
                    writer.read_control().await;
                }
                false
            }
            _ = &mut stopped => true,
        };
        if stop {
            // Whatever arrived before the stop is written too: one more try
            // even in an outage (each request has its deadline).
            while let Ok(event) = events.try_recv() {
                writer.note(&event);
                forward.send(event);
            }
            if let Some(outage) = &mut writer.outage {
                outage.next_try = Instant::now();
            }
            writer.flush(false).await;
            return match (writer.lost, writer.outage) {
                (Some(lost), _) => Some(lost),
                (None, Some(outage)) => Some(writer_lost_message(&writer.target, &outage)),
                (None, None) => None,
            };
        }
    }
}

fn writer_lost_message(target: &RecorderTarget, outage: &Outage) -> String {
    format!(
        "state store {} unreachable for {}s ({})",
        target.store.url(),
        outage.since.elapsed().as_secs(),
        outage.last_error
    )
}

impl Writer {
    fn note(&mut self, event: &Event) {
        let now = chrono::Utc::now().to_rfc3339();
        let duration_s = match event {
            Event::Finished { result } => result.duration_seconds,
            _ => None,
        };
        if let Event::Joined { environment } = event {
            self.joined.insert(environment.clone());
            self.joined_unrecorded.push(environment.clone());
        }
        if let Event::WaveStarted {
            number,
            label,
            environments,
        } = event
        {
            for name in environments {
                self.wave_of.insert(name.clone(), *number);
            }
            self.waves_unrecorded.push(WaveRecord {
                number: *number,
                label: label.clone(),
                environments: environments.len(),
            });
            self.wave_members.push((*number, environments.clone()));
        }
        let failure_kind = match event {
            Event::Finished { result } if result.is_failure() => result.failure_kind,
            _ => None,
        };
        let server_version = match event {
            Event::Finished { result } => result.server_version.clone(),
            _ => None,
        };
        let (environment, state, migrations_applied, error) = match event {
            Event::Joined { environment } => (environment, EnvironmentState::Pending, 0, None),
            Event::Started { environment } => (environment, EnvironmentState::Running, 0, None),
            Event::MigrationApplied {
                environment, migration, ..
            } => {
                let versions = self.applied.entry(environment.clone()).or_default();
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
            versions: self.applied.get(environment).cloned().unwrap_or_default(),
            error,
            updated_at: now,
            reconciled: false,
            duration_s,
            joined_late: self.joined.contains(environment),
            wave: self.wave_of.get(environment).copied(),
            failure_kind,
            server_version,
        };
        self.pending.insert(record.environment.clone(), record);
    }

    /// Writes the buffered rows (and the heartbeat when `heartbeat`, or when
    /// retrying after an outage). Rows stay buffered until a write succeeds.
    async fn flush(&mut self, heartbeat: bool) {
        if self.lost.is_some() {
            return;
        }
        let retrying = self.outage.is_some();
        if let Some(outage) = &self.outage
            && Instant::now() < outage.next_try
        {
            return;
        }
        if self.pending.is_empty()
            && self.joined_unrecorded.is_empty()
            && self.waves_unrecorded.is_empty()
            && !heartbeat
            && !retrying
        {
            return;
        }
        let rows: Vec<EnvironmentRecord> = self.pending.values().cloned().collect();
        let written = {
            let write = write(
                &self.target,
                rows,
                &self.joined_unrecorded,
                (&self.waves_unrecorded, &self.wave_members),
                heartbeat || retrying,
            );
            tokio::pin!(write);
            tokio::select! {
                written = &mut write => written,
                _ = tokio::time::sleep(STORE_SLOW) => {
                    if self.outage.is_none() {
                        self.outage = Some(Outage::begin(&self.target, "no answer yet"));
                    }
                    write.await
                }
            }
        };
        match written {
            Ok(()) => {
                self.pending.clear();
                self.joined_unrecorded.clear();
                self.waves_unrecorded.clear();
                self.wave_members.clear();
                if let Some(outage) = self.outage.take() {
                    self.target.engine.release(HOLD_KEY);
                    self.target.engine.log(format!(
                        "state store {} is back after {}s: recording again, starting environments again",
                        self.target.store.url(),
                        outage.since.elapsed().as_secs()
                    ));
                }
            }
            Err(error) => self.failed(error),
        }
    }

    /// Reads the operator's control and obeys what changed (a failed read
    /// waits for the next: the writes notice an outage).
    async fn read_control(&mut self) {
        let Ok(control) = self.target.store.control(&self.target.key).await else {
            return;
        };
        let engine = &self.target.engine;
        let id = &self.target.id;
        if control.paused != self.obeyed.paused {
            match &control.paused {
                Some(steer) => {
                    engine.hold(PAUSE_KEY, format!("paused by {steer}"));
                    engine.log(format!(
                        "paused by {steer}: running environments finish, no new one starts (`surql orchestrate continue {id}`)"
                    ));
                }
                None => {
                    engine.release(PAUSE_KEY);
                    engine.log("continued: starting environments again");
                }
            }
        }
        if let Some(steer) = control.aborted.as_ref().filter(|_| self.obeyed.aborted.is_none()) {
            engine.stop(format!("aborted by {steer}"));
            engine.log(format!(
                "aborted by {steer}: running environments finish, the rest are SKIPPED"
            ));
        }
        if let Some(max) = control
            .max_concurrent
            .filter(|max| Some(*max) != self.obeyed.max_concurrent)
        {
            engine.throttle(max);
            engine.log(format!("throttled: at most {max} environment(s) at once"));
        }
        self.obeyed = control;
    }

    fn failed(&mut self, error: StateError) {
        let error = crate::redact::redact(&error.to_string());
        let target = &self.target;
        let outage = self.outage.get_or_insert_with(|| Outage::begin(target, &error));
        outage.last_error = error;
        outage.next_try = Instant::now() + outage.wait;
        outage.wait = (outage.wait * 2).min(LONGEST_RETRY);
        if outage.since.elapsed() >= STORE_OUTAGE_LIMIT {
            let lost = writer_lost_message(target, outage);
            tracing::warn!("{lost}");
            target.engine.stop(format!("not started: {lost}"));
            self.lost = Some(lost);
        }
    }
}

impl Outage {
    /// Holds the engine: nothing new starts while the record cannot be written.
    fn begin(target: &RecorderTarget, why: &str) -> Self {
        let url = target.store.url();
        target.engine.hold(HOLD_KEY, format!("state store {url} unreachable"));
        target.engine.log(format!(
            "state store {url} unreachable ({why}): starting no new environment, retrying for up to {}s",
            STORE_OUTAGE_LIMIT.as_secs()
        ));
        let now = Instant::now();
        Self {
            since: now,
            next_try: now,
            wait: FIRST_RETRY,
            last_error: why.to_string(),
        }
    }
}

/// Writes `rows` of the deployment (and its heartbeat).
async fn write(
    target: &RecorderTarget,
    rows: Vec<EnvironmentRecord>,
    joined: &[String],
    (waves, members): (&[WaveRecord], &[(usize, Vec<String>)]),
    heartbeat: bool,
) -> Result<(), StateError> {
    target.store.write_environments(&target.id, &rows).await?;
    if !joined.is_empty() {
        target.store.extend_selection(&target.key, joined).await?;
    }
    if !waves.is_empty() {
        target.store.add_waves(&target.id, &target.key, waves, members).await?;
    }
    if heartbeat {
        target.store.heartbeat(&target.key).await?;
    }
    Ok(())
}
