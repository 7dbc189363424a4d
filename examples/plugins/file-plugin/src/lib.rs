//! A minimal surql plugin to copy: every notification is appended as one JSON
//! line to `events_file`; approvals are read from `approvals_file`, a JSON object
//! such as `{"production": "approved"}` (`approved`, `denied`, or anything else
//! meaning pending).
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

pub struct FilePlugin {
    events_file: Option<PathBuf>,
    approvals_file: Option<PathBuf>,
    /// Appends from concurrent calls must not interleave.
    write: Mutex<()>,
}

impl Plugin for FilePlugin {
    fn create(config: Value) -> Result<Self, String> {
        let path = |key: &str| config.get(key).and_then(Value::as_str).map(PathBuf::from);
        let plugin = FilePlugin {
            events_file: path("events_file"),
            approvals_file: path("approvals_file"),
            write: Mutex::new(()),
        };
        if plugin.events_file.is_none() && plugin.approvals_file.is_none() {
            return Err("config needs \"events_file\" and/or \"approvals_file\"".into());
        }
        Ok(plugin)
    }

    fn notify(&self, event: &Value) -> Result<(), String> {
        let Some(path) = &self.events_file else { return Ok(()) };
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(file, "{event}").map_err(|e| format!("{}: {e}", path.display()))
    }

    fn approve(&self, request: &Value) -> Result<Approval, String> {
        let Some(path) = &self.approvals_file else {
            return Err("no \"approvals_file\" configured".into());
        };
        let environment = request["environment"].as_str().unwrap_or_default();
        let answers: Value = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(_) => Value::Null,
        };
        Ok(match answers[environment].as_str() {
            Some("approved") => Approval::Approved,
            Some("denied") => Approval::Denied(format!("denied in {}", path.display())),
            _ => Approval::Pending(format!("waiting for \"{environment}\" in {}", path.display())),
        })
    }
}

declare_plugin!(FilePlugin, "file", hooks = HOOK_APPROVE | HOOK_NOTIFY);
