//! Progress events: the engine never prints; the CLI (or a library user)
//! receives these on a channel.

use tokio::sync::mpsc::UnboundedSender;

use super::result::DeploymentResult;

/// Something that happened during a deployment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The strategy began deploying this environment.
    Started {
        /// The environment's name.
        environment: String,
    },
    /// A step of the per-environment state machine.
    Phase {
        /// The environment's name.
        environment: String,
        /// What it is doing now, e.g. `acquiring lock`, `awaiting approval`.
        phase: String,
    },
    /// One migration committed.
    MigrationApplied {
        /// The environment's name.
        environment: String,
        /// The migration, as `version_name`.
        migration: String,
        /// How long it took to apply, in milliseconds.
        duration_ms: u64,
    },
    /// The environment has its final result.
    Finished {
        /// The result, with the environment's name.
        result: DeploymentResult,
    },
    /// A line from the strategy script (`log(...)`, `print(...)`).
    Log {
        /// The line's text.
        message: String,
    },
    /// A tenant discovered after the deployment started joined it.
    Joined {
        /// The new environment's name.
        environment: String,
    },
    /// A wave (a `deploy` call) begins with these environments.
    WaveStarted {
        /// The wave's number in the deployment, from 1.
        number: usize,
        /// The label the strategy gave it, or `wave N`.
        label: String,
        /// Names of its environments.
        environments: Vec<String>,
    },
    /// A wave ended: each of its environments has a result.
    WaveFinished {
        /// The wave's number in the deployment, from 1.
        number: usize,
        /// The label the strategy gave it, or `wave N`.
        label: String,
    },
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
