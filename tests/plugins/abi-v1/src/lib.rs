//! Test fixture: a plugin as ABI 1 declared it. Approves, appending each
//! approval request and each notification as a JSON line to `log_file`. It
//! also sets the gate flag, which ABI 1 did not have: the host must ignore it.

use std::io::Write;
use std::sync::Mutex;

use serde_json::Value;
use surql_plugin_sdk::{Approval, Gate, HOOK_APPROVE, HOOK_GATE, HOOK_NOTIFY, Plugin, PluginDeclaration};

/// A plugin built against version 1 of the ABI.
pub struct OldPlugin {
    log_file: String,
    write: Mutex<()>,
}

impl OldPlugin {
    fn log(&self, hook: &str, payload: &Value) -> Result<(), String> {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .map_err(|e| e.to_string())?;
        writeln!(file, "{}", serde_json::json!({ "hook": hook, "payload": payload })).map_err(|e| e.to_string())
    }
}

impl Plugin for OldPlugin {
    fn create(config: Value) -> Result<Self, String> {
        Ok(OldPlugin {
            log_file: config["log_file"]
                .as_str()
                .ok_or("config needs \"log_file\"")?
                .to_string(),
            write: Mutex::new(()),
        })
    }
    fn approve(&self, request: &Value) -> Result<Approval, String> {
        self.log("approve", request)?;
        Ok(Approval::Approved)
    }
    fn notify(&self, event: &Value) -> Result<(), String> {
        self.log("notify", event)
    }
    fn gate(&self, _request: &Value) -> Result<Gate, String> {
        Ok(Gate::Halt("an ABI 1 plugin must never be asked to gate".into()))
    }
}

unsafe extern "C" fn create(
    config: *const u8,
    len: usize,
    instance: *mut *mut std::ffi::c_void,
    error: *mut surql_plugin_sdk::PluginString,
) -> i32 {
    // SAFETY: forwarded from the host per the ABI.
    unsafe { surql_plugin_sdk::create_instance::<OldPlugin>(config, len, instance, error) }
}
unsafe extern "C" fn call(
    instance: *mut std::ffi::c_void,
    hook: *const u8,
    hook_len: usize,
    payload: *const u8,
    payload_len: usize,
    output: *mut surql_plugin_sdk::PluginString,
) -> i32 {
    // SAFETY: forwarded from the host per the ABI.
    unsafe { surql_plugin_sdk::call_instance::<OldPlugin>(instance, hook, hook_len, payload, payload_len, output) }
}
unsafe extern "C" fn free_string(text: surql_plugin_sdk::PluginString) {
    // SAFETY: forwarded from the host per the ABI.
    unsafe { surql_plugin_sdk::free_plugin_string(text) }
}
unsafe extern "C" fn destroy(instance: *mut std::ffi::c_void) {
    // SAFETY: forwarded from the host per the ABI.
    unsafe { surql_plugin_sdk::destroy_instance::<OldPlugin>(instance) }
}

static DECLARATION: PluginDeclaration = PluginDeclaration {
    abi_version: 1,
    size: std::mem::size_of::<PluginDeclaration>() as u32,
    name: c"abi-v1".as_ptr(),
    version: c"1.0.0".as_ptr(),
    hooks: HOOK_APPROVE | HOOK_NOTIFY | HOOK_GATE,
    create: Some(create),
    call: Some(call),
    free_string: Some(free_string),
    destroy: Some(destroy),
    reserved: [0; 4],
};

/// Entry point, as an ABI 1 plugin exports it.
#[unsafe(no_mangle)]
pub extern "C" fn surql_plugin_declare() -> *const PluginDeclaration {
    &DECLARATION
}
