//! Delivering notifications: one background thread and one bounded queue per
//! notifier plugin, so a slow webhook never holds the run, nor another plugin.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;
use surql_plugin_sdk::HOOK_NOTIFY;

use super::PluginHost;

/// Events one plugin may have waiting before it counts as falling behind;
/// then progress events are dropped (with one warning), never the
/// deployment's first and last.
pub const QUEUE_CAPACITY: usize = 256;

#[derive(Default)]
struct Waiting {
    events: VecDeque<Value>,
    closed: bool,
    dropped: u64,
}

#[derive(Default)]
struct Queue {
    waiting: Mutex<Waiting>,
    ready: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Worker {
    plugin: String,
    /// The events it asked for (`events` in its config); `None`: all.
    wanted: Option<Vec<String>>,
    queue: Arc<Queue>,
    flush: Duration,
    done: mpsc::Receiver<()>,
}

/// Hears warnings and delivery failures (they never stop a run).
pub type OnWarning = Arc<dyn Fn(String) + Send + Sync>;

/// The notifier plugins' queues and threads.
pub struct Notifier {
    workers: Vec<Worker>,
    on_warning: OnWarning,
}

/// Never dropped for a full queue: a channel shows every deployment's start and end.
fn essential(event: &Value) -> bool {
    matches!(
        event["event"].as_str(),
        Some("deployment_started" | "deployment_finished")
    )
}

impl Notifier {
    /// Starts one delivery thread per notifier plugin of `host`.
    pub fn start(host: Arc<PluginHost>, on_warning: OnWarning) -> Self {
        let mut workers = Vec::new();
        for (index, plugin) in host.plugins.iter().enumerate() {
            if !plugin.has(HOOK_NOTIFY) {
                continue;
            }
            let queue = Arc::new(Queue::default());
            let (done_sender, done) = mpsc::channel();
            let (host, thread_queue, warn) = (host.clone(), queue.clone(), on_warning.clone());
            let started = std::thread::Builder::new()
                .name(format!("surql-notify-{}", plugin.settings.name))
                .spawn(move || {
                    let plugin = &host.plugins[index];
                    loop {
                        let event = {
                            let mut waiting = thread_queue.lock();
                            loop {
                                if let Some(event) = waiting.events.pop_front() {
                                    break Some(event);
                                }
                                if waiting.closed {
                                    break None;
                                }
                                waiting = thread_queue
                                    .ready
                                    .wait(waiting)
                                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                            }
                        };
                        let Some(event) = event else { break };
                        if let Err(error) = plugin.call("notify", &event) {
                            warn(format!("notification failed: {error}"));
                        }
                    }
                    // Let go of the plugins before saying so: whoever drops the
                    // last handle calls `destroy`, and it must not be a thread
                    // the process no longer waits for.
                    drop(host);
                    let _ = done_sender.send(());
                });
            match started {
                Ok(_) => workers.push(Worker {
                    plugin: plugin.settings.name.clone(),
                    wanted: plugin.settings.events.clone(),
                    queue,
                    flush: Duration::from_secs_f64(plugin.settings.flush_timeout_seconds),
                    done,
                }),
                Err(e) => on_warning(format!(
                    "plugin '{}': notifications are off: cannot start its thread: {e}",
                    plugin.settings.name
                )),
            }
        }
        Self { workers, on_warning }
    }

    /// Queues `event` for every notifier; a full queue drops progress events.
    pub fn send(&self, event: Value) {
        let name = event["event"].as_str().unwrap_or_default();
        for worker in &self.workers {
            if worker
                .wanted
                .as_ref()
                .is_some_and(|wanted| !wanted.iter().any(|w| w == name))
            {
                continue;
            }
            let mut waiting = worker.queue.lock();
            if waiting.closed {
                continue;
            }
            if waiting.events.len() >= QUEUE_CAPACITY && !essential(&event) {
                waiting.dropped += 1;
                if waiting.dropped == 1 {
                    (self.on_warning)(format!(
                        "plugin '{}' falls behind ({QUEUE_CAPACITY} notifications waiting): dropping progress notifications until it catches up",
                        worker.plugin
                    ));
                }
                continue;
            }
            waiting.events.push_back(event.clone());
            drop(waiting);
            worker.queue.ready.notify_one();
        }
    }

    /// Delivers what is queued, each plugin within its flush deadline (all at
    /// once), then stops; a plugin still busy after it is left behind.
    pub fn finish(&mut self) {
        let started = Instant::now();
        for worker in &self.workers {
            worker.queue.lock().closed = true;
            worker.queue.ready.notify_all();
        }
        for worker in self.workers.drain(..) {
            let left = worker.flush.saturating_sub(started.elapsed());
            let finished = worker.done.recv_timeout(left).is_ok();
            let mut waiting = worker.queue.lock();
            if !finished {
                (self.on_warning)(format!(
                    "plugin '{}': {} notification(s) not delivered within its flush deadline of {}s (flush_timeout_seconds); giving up on them",
                    worker.plugin,
                    waiting.events.len() + 1,
                    worker.flush.as_secs_f64()
                ));
                // Its thread ends after the call it is in.
                waiting.events.clear();
            }
            if waiting.dropped > 0 {
                (self.on_warning)(format!(
                    "plugin '{}': {} progress notification(s) were dropped because it fell behind",
                    worker.plugin, waiting.dropped
                ));
            }
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.finish();
    }
}
