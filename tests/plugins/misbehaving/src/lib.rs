//! Test fixture: behaves as its config says — `create`, `approve`, `notify`
//! each one of `ok`, `fail`, `panic`, `hang` (approve also `deny`, `pending`);
//! with `destroyed_file`, writes "destroyed" there when the host destroys it.

use serde_json::Value;
use surql_plugin_sdk::{Approval, HOOK_APPROVE, HOOK_NOTIFY, Plugin, declare_plugin};

/// A plugin that misbehaves as its config asks, for the host's tests.
pub struct Misbehaving {
    config: Value,
}

fn act(config: &Value, hook: &str) -> Result<(), String> {
    match config[hook].as_str().unwrap_or("ok") {
        "panic" => panic!("{hook} exploded on purpose"),
        "hang" => {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(())
        }
        "fail" => Err(format!("{hook} failed on purpose")),
        _ => Ok(()),
    }
}

impl Plugin for Misbehaving {
    fn create(config: Value) -> Result<Self, String> {
        act(&config, "create")?;
        Ok(Misbehaving { config })
    }

    fn approve(&self, _request: &Value) -> Result<Approval, String> {
        act(&self.config, "approve")?;
        Ok(match self.config["approve"].as_str() {
            Some("deny") => Approval::Denied("no".into()),
            Some("pending") => Approval::Pending("later".into()),
            _ => Approval::Approved,
        })
    }

    fn notify(&self, _event: &Value) -> Result<(), String> {
        act(&self.config, "notify")
    }
}

impl Drop for Misbehaving {
    fn drop(&mut self) {
        if let Some(path) = self.config["destroyed_file"].as_str() {
            let _ = std::fs::write(path, "destroyed");
        }
    }
}

declare_plugin!(Misbehaving, "misbehaving", hooks = HOOK_APPROVE | HOOK_NOTIFY);
