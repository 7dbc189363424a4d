//! Native plugins: approval gates and notifiers loaded at run time from the
//! `plugins` list of environments.json. Hooks run on dedicated threads with a
//! timeout, never on the async runtime's threads.

mod loader;
mod notifier;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use surql_plugin_sdk::{Approval, Gate, HOOK_APPROVE, HOOK_GATE, STATUS_OK, STATUS_PANIC};

pub use loader::LoadedPlugin;
pub use notifier::Notifier;

use crate::safety::ApprovalDecision;

/// One entry of the `plugins` list.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The name environments use in `approvers`.
    pub name: String,
    /// The library (`.so`/`.dylib`/`.dll`); relative to the config file.
    pub path: PathBuf,
    /// Passed to the plugin's `create` (strings already `${VAR}`-expanded).
    #[serde(default)]
    pub config: Value,
    /// Seconds one hook call may take (default 10).
    #[serde(default = "default_call_timeout")]
    pub timeout_seconds: f64,
    /// Seconds to wait for a pending approval (default 600).
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout_seconds: f64,
    /// Seconds between asks while an approval is pending (default 5).
    #[serde(default = "default_poll")]
    pub poll_seconds: f64,
    /// Seconds the end of a run waits for this plugin's queued notifications (default 10).
    #[serde(default = "default_call_timeout")]
    pub flush_timeout_seconds: f64,
    /// The notifications it receives, by event name (default: all), e.g.
    /// `["wave_finished", "deployment_finished"]`; a strategy's own
    /// `notify` events are named here too.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

impl PluginConfig {
    /// Every duration a number of seconds the host can wait for: one week
    /// at most (a larger one would overflow the clock), and more than 0
    /// except `approval_timeout_seconds` (0: ask once).
    fn check_durations(&self) -> Result<(), SettingError> {
        let week = surql_plugin_sdk::MAX_SECONDS;
        for (key, value, zero_allowed) in [
            ("timeout_seconds", self.timeout_seconds, false),
            ("approval_timeout_seconds", self.approval_timeout_seconds, true),
            ("poll_seconds", self.poll_seconds, false),
            ("flush_timeout_seconds", self.flush_timeout_seconds, true),
        ] {
            let low_ok = if zero_allowed { value >= 0.0 } else { value > 0.0 };
            if !(value.is_finite() && low_ok && value <= week) {
                let low = if zero_allowed { "at least 0" } else { "more than 0" };
                return Err(SettingError::Duration { key, low, value });
            }
        }
        if let Some(events) = &self.events
            && let Some(blank) = events.iter().find(|e| e.trim().is_empty() || e.trim() != e.as_str())
        {
            return Err(SettingError::EventName(blank.clone()));
        }
        Ok(())
    }
}

/// A setting of a `plugins` entry that cannot be used (a [`PluginError::Config`]).
#[derive(Debug, thiserror::Error)]
enum SettingError {
    #[error(
        "{key} must be {low} and at most {} seconds, got {value}",
        surql_plugin_sdk::MAX_SECONDS
    )]
    Duration {
        key: &'static str,
        /// "at least 0" or "more than 0".
        low: &'static str,
        value: f64,
    },
    #[error("events: '{0}' is not an event name (e.g. \"deployment_finished\")")]
    EventName(String),
}

fn default_call_timeout() -> f64 {
    10.0
}
fn default_approval_timeout() -> f64 {
    600.0
}
fn default_poll() -> f64 {
    5.0
}

/// A plugin problem. Load errors stop the run before any environment is touched.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The library could not be loaded, its declaration was refused (wrong
    /// ABI, too short, no name), or its `create` failed or timed out.
    #[error("plugin '{name}' ({}): {message}", path.display())]
    Load {
        /// The plugin's configured name.
        name: String,
        /// The library's path, resolved against the config file's directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A declaration with a null function slot, refused before anything in
    /// the library is called.
    #[error(
        "plugin '{name}' ({}): its declaration has no `{slot}` function (a null slot); rebuild it with surql-plugin-sdk's declare_plugin!",
        path.display()
    )]
    NullSlot {
        /// The plugin's configured name.
        name: String,
        /// The library's path, resolved against the config file's directory.
        path: PathBuf,
        /// The null slot's field name, e.g. `call`.
        slot: &'static str,
    },
    /// An entry of the `plugins` list is invalid or duplicates a name.
    #[error("plugins[{index}]: {message}")]
    Config {
        /// Position of the entry in the `plugins` list (from 0).
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A hook call failed: an error status, a panic, invalid JSON, or no
    /// thread to run it on.
    #[error("plugin '{name}' {hook}: {message}")]
    Call {
        /// The plugin's configured name.
        name: String,
        /// The hook called, e.g. `approve`.
        hook: String,
        /// The plugin's error message, secrets redacted.
        message: String,
    },
    /// A hook call gave no answer within the plugin's `timeout_seconds`.
    #[error("plugin '{name}' {hook}: no answer within {}s", timeout.as_secs_f64())]
    Timeout {
        /// The plugin's configured name.
        name: String,
        /// The hook called, e.g. `approve`.
        hook: String,
        /// How long the host waited.
        timeout: Duration,
    },
}

/// A loaded plugin with its settings.
pub struct Plugin {
    /// The library and its instance, shared with calls still running.
    pub loaded: Arc<LoadedPlugin>,
    /// Its entry of the `plugins` list.
    pub settings: PluginConfig,
}

impl Plugin {
    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.settings.timeout_seconds.max(0.001))
    }

    /// Calls a hook on its own thread; stops waiting after the timeout (the
    /// call itself cannot be stopped and finishes in the background).
    pub fn call(&self, hook: &str, payload: &Value) -> Result<Value, PluginError> {
        let (sender, receiver) = mpsc::channel();
        let loaded = self.loaded.clone();
        // A plugin's own config (at `create`) carries its token; nothing else
        // it is sent may carry a secret.
        let text = match hook {
            "create" => payload.to_string(),
            _ => crate::redact::redact_json(payload.clone()).to_string(),
        };
        let hook_name = hook.to_string();
        std::thread::Builder::new()
            .name(format!("surql-plugin-{}", self.settings.name))
            .spawn(move || {
                let answer = loaded.call_blocking(&hook_name, &text);
                // Let go before answering: the last handle's owner calls `destroy`.
                drop(loaded);
                let _ = sender.send(answer);
            })
            .map_err(|e| self.call_error(hook, format!("cannot start a thread: {e}")))?;
        let timeout = self.timeout();
        let (status, text) = receiver.recv_timeout(timeout).map_err(|_| PluginError::Timeout {
            name: self.settings.name.clone(),
            hook: hook.to_string(),
            timeout,
        })?;
        match status {
            STATUS_OK => serde_json::from_str(&text)
                .map_err(|e| self.call_error(hook, format!("answered with invalid JSON: {e}"))),
            STATUS_PANIC => Err(self.call_error(hook, text)),
            _ => Err(self.call_error(hook, text)),
        }
    }

    fn call_error(&self, hook: &str, message: String) -> PluginError {
        PluginError::Call {
            name: self.settings.name.clone(),
            hook: hook.to_string(),
            message: crate::redact::redact(&message),
        }
    }

    pub(crate) fn has(&self, hook: u32) -> bool {
        self.loaded.hooks & hook != 0
    }
}

/// Loads a plugin on a thread of its own: a `create` that never returns
/// fails the load after `timeout_seconds` instead of holding the run.
fn load_within(settings: &PluginConfig, path: &Path) -> Result<LoadedPlugin, PluginError> {
    let (sender, receiver) = mpsc::channel();
    let (name, thread_path, config) = (settings.name.clone(), path.to_path_buf(), settings.config.clone());
    std::thread::Builder::new()
        .name(format!("surql-plugin-load-{name}"))
        .spawn(move || {
            let _ = sender.send(loader::load(&name, &thread_path, &config));
        })
        .map_err(|e| PluginError::Load {
            name: settings.name.clone(),
            path: path.to_path_buf(),
            message: format!("cannot start a thread: {e}"),
        })?;
    let timeout = Duration::from_secs_f64(settings.timeout_seconds);
    receiver.recv_timeout(timeout).unwrap_or_else(|_| {
        Err(PluginError::Load {
            name: settings.name.clone(),
            path: path.to_path_buf(),
            message: format!(
                "create gave no answer within {}s (timeout_seconds)",
                timeout.as_secs_f64()
            ),
        })
    })
}

/// Every loaded plugin.
#[derive(Default)]
pub struct PluginHost {
    plugins: Vec<Plugin>,
}

impl PluginHost {
    /// Loads the `plugins` entries of a config file. Paths are relative to
    /// `config_dir`. Any failure is an error before anything is deployed.
    pub fn load(entries: &[Value], config_dir: &Path) -> Result<Self, PluginError> {
        let mut plugins: Vec<Plugin> = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let settings: PluginConfig = serde_json::from_value(entry.clone()).map_err(|e| PluginError::Config {
                index,
                message: e.to_string(),
            })?;
            settings.check_durations().map_err(|e| PluginError::Config {
                index,
                message: e.to_string(),
            })?;
            if plugins.iter().any(|p| p.settings.name == settings.name) {
                return Err(PluginError::Config {
                    index,
                    message: format!("duplicate plugin name '{}'", settings.name),
                });
            }
            // Absolute, so a bare file name never goes through the system's
            // library search path.
            let path = std::path::absolute(config_dir.join(&settings.path)).unwrap_or_else(|_| settings.path.clone());
            let loaded = load_within(&settings, &path)?;
            plugins.push(Plugin {
                loaded: Arc::new(loaded),
                settings,
            });
        }
        Ok(Self { plugins })
    }

    /// True when no plugin is loaded.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Names of the loaded plugins.
    pub fn names(&self) -> Vec<String> {
        self.plugins.iter().map(|p| p.settings.name.clone()).collect()
    }

    /// The plugin called `name`.
    pub fn get(&self, name: &str) -> Option<&Plugin> {
        self.plugins.iter().find(|p| p.settings.name == name)
    }

    /// Asks `approver` for approval, polling while it answers pending, until
    /// its approval timeout. Blocks.
    pub fn approve(&self, approver: &str, request: &Value) -> ApprovalDecision {
        let Some(plugin) = self.get(approver) else {
            return ApprovalDecision::Error(format!(
                "approver '{approver}' is not a loaded plugin (loaded: {})",
                self.names().join(", ")
            ));
        };
        if !plugin.has(HOOK_APPROVE) {
            return ApprovalDecision::Error(format!("plugin '{approver}' does not answer approvals"));
        }
        let deadline = Instant::now() + Duration::from_secs_f64(plugin.settings.approval_timeout_seconds.max(0.0));
        let poll = Duration::from_secs_f64(plugin.settings.poll_seconds.max(0.01));
        loop {
            let answer = match plugin.call("approve", request) {
                Ok(answer) => answer,
                Err(e) => return ApprovalDecision::Error(format!("approval failed: {e}")),
            };
            // The answer is read as the SDK writes it: one format at both ends.
            match Approval::from_json(&answer) {
                Ok(Approval::Approved) => return ApprovalDecision::Approved,
                Ok(Approval::Denied(reason)) => {
                    return ApprovalDecision::Denied(format!("denied by '{approver}': {reason}"));
                }
                Ok(Approval::Pending(_)) if Instant::now() < deadline => {
                    std::thread::sleep(poll.min(deadline.saturating_duration_since(Instant::now())))
                }
                Ok(Approval::Pending(reason)) => {
                    return ApprovalDecision::Pending(format!(
                        "'{approver}' gave no answer within {}s ({reason})",
                        plugin.settings.approval_timeout_seconds
                    ));
                }
                Err(_) => {
                    return ApprovalDecision::Error(format!("approval failed: plugin '{approver}' answered {answer}"));
                }
            }
        }
    }
}

/// What a gate plugin answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GateDecision {
    /// The wave may start.
    Continue,
    /// The rollout stops before the wave, for this reason (also when the
    /// gate failed or answered nonsense).
    Halt(String),
}

impl PluginHost {
    /// The plugins that answer `gate`, in the order they are listed.
    pub fn gates(&self) -> Vec<String> {
        self.plugins
            .iter()
            .filter(|p| p.has(HOOK_GATE))
            .map(|p| p.settings.name.clone())
            .collect()
    }

    /// Asks gate `name` whether the wave in `request` may start. Blocks. A
    /// call that fails or answers nonsense halts: a broken check is no go-ahead.
    pub fn gate(&self, name: &str, request: &Value) -> GateDecision {
        let Some(plugin) = self.get(name).filter(|p| p.has(HOOK_GATE)) else {
            return GateDecision::Halt(format!("'{name}' is not a loaded gate plugin"));
        };
        match plugin.call("gate", request) {
            Ok(answer) => match Gate::from_json(&answer) {
                Ok(Gate::Continue) => GateDecision::Continue,
                Ok(Gate::Halt(reason)) => GateDecision::Halt(reason),
                Err(_) => GateDecision::Halt(format!("the gate answered {answer}, not continue or halt")),
            },
            Err(error) => GateDecision::Halt(format!("the gate failed: {error}")),
        }
    }
}

/// The payload of a notification: `{"event": name, …fields}`.
pub fn event(name: &str, fields: Value) -> Value {
    let mut event = json!({ "event": name });
    if let (Some(target), Value::Object(source)) = (event.as_object_mut(), fields) {
        target.extend(source);
    }
    event
}
