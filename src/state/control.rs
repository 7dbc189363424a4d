//! The commands an operator gives a running deployment — pause, continue,
//! abort, throttle — written to its record (every shard's), from any machine
//! that shares the store. The record is the control channel: each runner
//! reads its `control` about once a second and obeys before it starts the
//! next environment.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{StateError, StateStore};

/// What an operator asks of a running deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Command {
    /// Start no new environment; running ones finish.
    Pause {
        /// Why, if given: shown as `paused by ACTOR: REASON`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Go on after a pause.
    Continue,
    /// Start no new environment, ever: the rest end SKIPPED "aborted by …".
    Abort {
        /// Why, if given: the skipped environments say `aborted by ACTOR: REASON`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Environments at once, for the wave running and those to come.
    Throttle {
        /// The new limit; at least 1 (0 is refused).
        max_concurrent: usize,
    },
}

/// A command as recorded: who gave it, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// The command itself (flattened into the record).
    #[serde(flatten)]
    pub command: Command,
    /// Who gave it (`--actor`, else the OS user).
    pub actor: String,
    /// When it was given (RFC 3339, UTC).
    pub at: String,
}

impl CommandRecord {
    /// `command` given by `actor` now.
    pub fn now(command: Command, actor: &str) -> Self {
        Self {
            command,
            actor: actor.to_string(),
            at: chrono::Utc::now().to_rfc3339(),
        }
    }
}

/// Who paused or aborted a deployment, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Steer {
    /// The actor who gave the command.
    pub by: String,
    /// The reason given with it, if any.
    #[serde(default)]
    pub reason: Option<String>,
    /// When it was given (RFC 3339, UTC).
    pub at: String,
}

impl std::fmt::Display for Steer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reason {
            Some(reason) => write!(f, "{}: {reason}", self.by),
            None => f.write_str(&self.by),
        }
    }
}

/// What every runner of a deployment obeys, as the commands left it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    /// Set by a pause, cleared by a continue; `None` while not paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Steer>,
    /// Set by an abort, never cleared; `None` unless aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<Steer>,
    /// The last throttle's limit on environments at once; `None` when never
    /// throttled (the deployment's own limit holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
}

impl Control {
    /// The control after `record`.
    fn after(&self, record: &CommandRecord) -> Self {
        let steer = |reason: &Option<String>| Steer {
            by: record.actor.clone(),
            reason: reason.clone(),
            at: record.at.clone(),
        };
        let mut next = self.clone();
        match &record.command {
            Command::Pause { reason } => next.paused = Some(steer(reason)),
            Command::Continue => next.paused = None,
            Command::Abort { reason } => next.aborted = Some(steer(reason)),
            Command::Throttle { max_concurrent } => next.max_concurrent = Some(*max_concurrent),
        }
        next
    }
}

impl StateStore {
    /// Gives `record`'s command to every running part of deployment `id`
    /// and records it there. Refused when no part of it is running.
    pub async fn command(&self, id: &str, record: &CommandRecord) -> Result<Control, StateError> {
        if let Command::Throttle { max_concurrent: 0 } = record.command {
            return Err(StateError::Refused(
                "throttle --max-concurrent must be at least 1".into(),
            ));
        }
        if let Some(served) = self.served_socket() {
            return super::served::ask(
                served,
                self.url(),
                &super::served::Request::Command {
                    id: id.to_string(),
                    record: record.clone(),
                },
            )
            .await;
        }
        if let Some(store) = self.files() {
            let (id, record) = (id.to_string(), record.clone());
            return store
                .locked(true, move |store| {
                    let mut parts = store.parts(Some(&id))?;
                    let (running, next) = steered(&id, &parts, &record)?;
                    let entry = crate::redact::redact_json(serde_json::to_value(&record).unwrap_or_default());
                    for (key, part) in parts.iter_mut().filter(|(key, _)| running.contains(key)) {
                        part["control"] = json!(next);
                        let mut commands = part["commands"].as_array().cloned().unwrap_or_default();
                        commands.push(entry.clone());
                        part["commands"] = serde_json::Value::Array(commands);
                        store.save(key, part)?;
                    }
                    Ok(next)
                })
                .await;
        }
        let answer = self
            .run(
                "SELECT record::id(id) AS key, state, control FROM deployment WHERE deployment_id = $id;",
                json!({ "id": id }),
            )
            .await?;
        let parts: Vec<(String, serde_json::Value)> = answer
            .first()
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .map(|part| (part["key"].as_str().unwrap_or_default().to_string(), part.clone()))
            .collect();
        let (keys, next) = steered(id, &parts, record)?;
        self.run(
            "FOR $key IN $keys { UPDATE type::record('deployment', $key) SET control = $control, commands = array::append(commands ?? [], $entry) WHERE state = 'running'; };",
            json!({ "keys": keys, "control": next, "entry": crate::redact::redact_json(serde_json::to_value(record).unwrap_or_default()) }),
        )
        .await?;
        Ok(next)
    }

    /// The control of the record under `key` (what its runner obeys).
    pub async fn control(&self, key: &str) -> Result<Control, StateError> {
        if let Some(store) = self.files() {
            let key = key.to_string();
            let part = store.locked(false, move |store| store.part(&key)).await?;
            let value = part.map(|part| part["control"].clone()).unwrap_or_default();
            return Ok(serde_json::from_value(value).unwrap_or_default());
        }
        let answer = self
            .run(
                "SELECT VALUE control FROM type::record('deployment', $key);",
                json!({ "key": key }),
            )
            .await?;
        let value = answer.first().and_then(|rows| rows.get(0)).cloned().unwrap_or_default();
        Ok(serde_json::from_value(value).unwrap_or_default())
    }
}

/// Which parts of deployment `id` a command steers (its running ones, by
/// key) and the control they obey after it; refused when none runs.
fn steered(
    id: &str,
    parts: &[(String, serde_json::Value)],
    record: &CommandRecord,
) -> Result<(Vec<String>, Control), StateError> {
    let Some((_, first)) = parts.first() else {
        return Err(StateError::NotFound(id.to_string()));
    };
    let running_state = serde_json::json!(super::DeploymentState::Running);
    let running: Vec<&(String, serde_json::Value)> =
        parts.iter().filter(|(_, p)| p["state"] == running_state).collect();
    let Some((_, steered)) = running.first() else {
        let state = first["state"].as_str().unwrap_or("finished");
        return Err(StateError::Refused(format!(
            "deployment {id} is {state}, not running: commands steer a running deployment"
        )));
    };
    let control: Control = serde_json::from_value(steered["control"].clone()).unwrap_or_default();
    Ok((
        running.iter().map(|(key, _)| key.clone()).collect(),
        control.after(record),
    ))
}
