//! A minimal surql plugin to copy: every notification is appended as one JSON
//! line to `events_file`; approvals are read from `approvals_file`, a JSON object
//! such as `{"production": "approved"}` (`approved`, `denied`, or anything else
//! meaning pending). A request for a group of environments is approved when
//! every one of them is, denied when any is; each request is appended to
//! `requests_file` when one is given.
//!
//! environments.json:
//! ```json
//! "plugins": [{"name": "file", "path": "target/debug/libsurql_file_plugin.so",
//!              "config": {"events_file": "events.jsonl", "approvals_file": "approvals.json"}}]
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::Value;
use surql_plugin_sdk::{Approval, HOOK_APPROVE, HOOK_NOTIFY, Plugin, declare_plugin};

/// Writes every event to a file and approves from one: the example plugin.
pub struct FilePlugin {
    events_file: Option<PathBuf>,
    approvals_file: Option<PathBuf>,
    requests_file: Option<PathBuf>,
    /// Appends from concurrent calls must not interleave.
    write: Mutex<()>,
}

impl Plugin for FilePlugin {
    fn create(config: Value) -> Result<Self, String> {
        let path = |key: &str| config.get(key).and_then(Value::as_str).map(PathBuf::from);
        let plugin = FilePlugin {
            events_file: path("events_file"),
            approvals_file: path("approvals_file"),
            requests_file: path("requests_file"),
            write: Mutex::new(()),
        };
        if plugin.events_file.is_none() && plugin.approvals_file.is_none() {
            return Err("config needs \"events_file\" and/or \"approvals_file\"".into());
        }
        Ok(plugin)
    }

    fn notify(&self, event: &Value) -> Result<(), String> {
        match &self.events_file {
            Some(path) => self.append(path, event),
            None => Ok(()),
        }
    }

    fn approve(&self, request: &Value) -> Result<Approval, String> {
        let Some(path) = &self.approvals_file else {
            return Err("no \"approvals_file\" configured".into());
        };
        if let Some(log) = &self.requests_file {
            self.append(log, request)?;
        }
        let answers: Value = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(_) => Value::Null,
        };
        // A group (ABI 2) lists its environments; ABI 1 asked for one.
        let environments = surql_plugin_sdk::requested_environments(request);
        if let Some(denied) = environments.iter().find(|e| answers[**e].as_str() == Some("denied")) {
            return Ok(Approval::Denied(format!("{denied} denied in {}", path.display())));
        }
        Ok(
            match environments.iter().find(|e| answers[**e].as_str() != Some("approved")) {
                Some(waiting) => Approval::Pending(format!("waiting for \"{waiting}\" in {}", path.display())),
                None => Approval::Approved,
            },
        )
    }
}

impl FilePlugin {
    /// Appends `value` as one JSON line to `path`.
    fn append(&self, path: &std::path::Path, value: &Value) -> Result<(), String> {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(file, "{value}").map_err(|e| format!("{}: {e}", path.display()))
    }
}

declare_plugin!(FilePlugin, "file", hooks = HOOK_APPROVE | HOOK_NOTIFY);
