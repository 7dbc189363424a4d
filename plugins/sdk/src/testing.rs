//! Unit-testing a plugin without surql: [`Harness`] creates it and calls its
//! hooks through the very functions `declare_plugin!` exports — JSON in and
//! out, panics caught — and the builders below make payloads shaped as
//! surql sends them.
//!
//! ```ignore
//! use surql_plugin_sdk::testing::{Harness, approval_request};
//! let plugin = Harness::<MyApprover>::create(serde_json::json!({"allow": ["staging"]})).unwrap();
//! let answer = plugin.approve(&approval_request("wave 1", &["staging"], &[("20260101", "users")])).unwrap();
//! assert_eq!(answer, surql_plugin_sdk::Approval::Approved);
//! ```

use std::ffi::c_void;
use std::marker::PhantomData;

use serde_json::{Value, json};

use crate::{Approval, Gate, Plugin, PluginString, STATUS_OK};

/// A plugin instance made and called the way surql makes and calls it.
pub struct Harness<P: Plugin> {
    instance: *mut c_void,
    plugin: PhantomData<P>,
}

impl<P: Plugin> Harness<P> {
    /// `create` with this config (what environments.json's `config` holds).
    pub fn create(config: Value) -> Result<Self, String> {
        let text = config.to_string();
        let mut instance = std::ptr::null_mut();
        let mut error = PluginString::empty();
        // SAFETY: valid pointers, as the host passes them.
        let status = unsafe { crate::create_instance::<P>(text.as_ptr(), text.len(), &mut instance, &mut error) };
        if status != STATUS_OK {
            return Err(take(error));
        }
        Ok(Self {
            instance,
            plugin: PhantomData,
        })
    }

    /// Calls `hook` with `payload`; the answer as JSON, or the plugin's error
    /// (a panic is an error too, as under surql).
    pub fn call(&self, hook: &str, payload: &Value) -> Result<Value, String> {
        let text = payload.to_string();
        let mut output = PluginString::empty();
        // SAFETY: the instance came from `create_instance::<P>`; valid slices.
        let status = unsafe {
            crate::call_instance::<P>(
                self.instance,
                hook.as_ptr(),
                hook.len(),
                text.as_ptr(),
                text.len(),
                &mut output,
            )
        };
        let answer = take(output);
        if status != STATUS_OK {
            return Err(answer);
        }
        serde_json::from_str(&answer).map_err(|e| format!("the plugin answered invalid JSON ({e}): {answer}"))
    }

    /// The `approve` hook.
    pub fn approve(&self, request: &Value) -> Result<Approval, String> {
        Approval::from_json(&self.call("approve", request)?)
    }

    /// The `notify` hook.
    pub fn notify(&self, event: &Value) -> Result<(), String> {
        self.call("notify", event).map(|_| ())
    }

    /// The `gate` hook.
    pub fn gate(&self, request: &Value) -> Result<Gate, String> {
        Gate::from_json(&self.call("gate", request)?)
    }
}

impl<P: Plugin> Drop for Harness<P> {
    fn drop(&mut self) {
        // SAFETY: made by `create_instance::<P>`, destroyed once.
        unsafe { crate::destroy_instance::<P>(self.instance) };
    }
}

fn take(text: PluginString) -> String {
    if text.ptr.is_null() {
        return String::new();
    }
    // SAFETY: `len` initialised bytes made by `PluginString::from_string`.
    let copy = String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(text.ptr, text.len) }).into_owned();
    // SAFETY: freed once, by the allocator that made it.
    unsafe { crate::free_plugin_string(text) };
    copy
}

/// An approval request for `environments`, each pending `migrations`
/// (`(version, name)`), shaped as surql sends it.
pub fn approval_request(label: &str, environments: &[&str], migrations: &[(&str, &str)]) -> Value {
    let pending: Vec<String> = migrations.iter().map(|(v, n)| format!("{v}_{n}")).collect();
    json!({
        "deployment_id": "20260101T000000Z-00000000",
        "actor": "tester",
        "strategy": "parallel",
        "label": label,
        "environment": environments.first().copied().unwrap_or_default(),
        "tags": [],
        "pending": pending,
        "environments": environments.iter().map(|name| json!({"name": name, "tags": [], "pending": pending})).collect::<Vec<_>>(),
        "migrations": migrations.iter().map(|(v, n)| json!({"version": v, "name": n, "checksum": "0".repeat(64), "reversible": true})).collect::<Vec<_>>(),
        "destructive": [],
        "irreversible": [],
        "summary": format!("{label}: {} migration(s) to {} environment(s)", migrations.len(), environments.len()),
    })
}

/// A gate request before the wave `label` of `environments`.
pub fn gate_request(label: &str, environments: &[&str]) -> Value {
    json!({
        "deployment_id": "20260101T000000Z-00000000",
        "actor": "tester",
        "strategy": "parallel",
        "label": label,
        "environments": environments,
    })
}

/// A notification: `{"event": name, "deployment_id": …, …fields}`.
pub fn event(name: &str, fields: Value) -> Value {
    let mut event = json!({ "event": name, "deployment_id": "20260101T000000Z-00000000" });
    if let (Some(target), Value::Object(source)) = (event.as_object_mut(), fields) {
        target.extend(source);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Approves staging only, halts when told to, panics on request.
    struct Example;

    impl Plugin for Example {
        fn create(config: Value) -> Result<Self, String> {
            match config["fail"].as_bool() {
                Some(true) => Err("told to fail".into()),
                _ => Ok(Example),
            }
        }
        fn approve(&self, request: &Value) -> Result<Approval, String> {
            let names = crate::requested_environments(request);
            Ok(match names.iter().all(|n| *n == "staging") {
                true => Approval::Approved,
                false => Approval::Denied(format!("not only staging: {names:?}")),
            })
        }
        fn notify(&self, event: &Value) -> Result<(), String> {
            match event["event"].as_str() {
                Some("panic") => panic!("asked to"),
                _ => Ok(()),
            }
        }
        fn gate(&self, request: &Value) -> Result<Gate, String> {
            Ok(match request["label"].as_str() {
                Some("halt") => Gate::Halt("metric above threshold".into()),
                _ => Gate::Continue,
            })
        }
    }

    #[test]
    fn every_hook_goes_through_the_abi() {
        assert_eq!(
            Harness::<Example>::create(json!({"fail": true})).err().as_deref(),
            Some("told to fail")
        );
        let plugin = Harness::<Example>::create(json!({})).unwrap();
        let request = approval_request("wave 1", &["staging"], &[("1", "users")]);
        assert_eq!(plugin.approve(&request), Ok(Approval::Approved));
        let request = approval_request("wave 2", &["staging", "production"], &[("1", "users")]);
        assert!(matches!(plugin.approve(&request), Ok(Approval::Denied(_))));
        assert_eq!(plugin.gate(&gate_request("wave 1", &["a"])), Ok(Gate::Continue));
        assert_eq!(
            plugin.gate(&gate_request("halt", &["a"])),
            Ok(Gate::Halt("metric above threshold".into()))
        );
        assert_eq!(plugin.notify(&event("deployment_started", json!({}))), Ok(()));
        let panicked = plugin.notify(&event("panic", json!({}))).unwrap_err();
        assert!(panicked.contains("plugin panicked: asked to"), "{panicked}");
        assert!(
            plugin
                .call("nope", &json!({}))
                .unwrap_err()
                .contains("unknown hook 'nope'")
        );
    }
}
