//! Progress events: the engine never prints; the CLI (or a library user)
//! receives these on a channel.

use tokio::sync::mpsc::UnboundedSender;

use super::result::DeploymentResult;

/// Something that happened during a deployment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The strategy began deploying this environment.
    Started { environment: String },
    /// A step of the per-environment state machine.
    Phase { environment: String, phase: String },
    /// One migration committed.
    MigrationApplied {
        environment: String,
        migration: String,
        duration_ms: u64,
    },
    /// The environment has its final result.
    Finished { result: DeploymentResult },
    /// A line from the strategy script (`log(...)`, `print(...)`).
    Log { message: String },
    /// A tenant discovered after the deployment started joined it.
    Joined { environment: String },
    /// A wave (a `deploy` call) begins with these environments.
    WaveStarted {
        number: usize,
        label: String,
        environments: Vec<String>,
    },
    /// A wave ended: each of its environments has a result.
    WaveFinished { number: usize, label: String },
}

/// Where events go; sending never fails the deployment.
#[derive(Debug, Clone, Default)]
pub struct EventSink {
    sender: Option<UnboundedSender<Event>>,
}

impl EventSink {
    /// Events to a channel.
    pub fn new(sender: UnboundedSender<Event>) -> Self {
        Self { sender: Some(sender) }
    }

    /// Sends an event if someone listens.
    pub fn send(&self, event: Event) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(event);
        }
    }

    /// Shorthand for a phase event.
    pub fn phase(&self, environment: &str, phase: impl Into<String>) {
        self.send(Event::Phase {
            environment: environment.to_string(),
            phase: phase.into(),
        });
    }
}
