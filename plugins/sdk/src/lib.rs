//! The surql plugin ABI. A plugin is a `cdylib` exporting one C function,
//! `surql_plugin_declare`, that returns a [`PluginDeclaration`]. Only plain
//! integers and UTF-8 JSON byte slices cross the boundary; strings a plugin
//! returns are freed by the plugin's own `free_string`.
//!
//! Authors implement [`Plugin`] and call [`declare_plugin!`]; they never write
//! `unsafe`, and a panic inside a hook is caught and returned as an error.
//! [`testing::Harness`] drives a plugin through these same functions in a
//! unit test. This crate knows nothing about surql itself.
//!
//! ABI 2 added the `gate` hook and group approvals (one request for many
//! environments, with the plan); the declaration's layout is that of ABI 1,
//! and the host loads ABI 1 plugins unchanged (asked once per environment).
//!
//! The declaration's function slots are nullable (`Option<…>`, the layout of
//! a plain function pointer): the host refuses a declaration with a null slot
//! when it loads it, instead of calling through it.

use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Version of this ABI.
pub const ABI_VERSION: u32 = 2;
/// The oldest version the host still loads. Declarations are only ever
/// appended to, so every version from this one to [`ABI_VERSION`] loads.
pub const OLDEST_ABI_VERSION: u32 = 1;

/// The exported symbol's name.
pub const DECLARE_SYMBOL: &[u8] = b"surql_plugin_declare\0";

/// Hook flag: the plugin answers `approve`.
pub const HOOK_APPROVE: u32 = 1;
/// Hook flag: the plugin receives `notify`.
pub const HOOK_NOTIFY: u32 = 2;
/// Hook flag: the plugin answers `gate` before each wave (ABI 2).
pub const HOOK_GATE: u32 = 4;

/// Call succeeded; the output holds the JSON answer.
pub const STATUS_OK: i32 = 0;
/// Call failed; the output holds an error message.
pub const STATUS_ERROR: i32 = 1;
/// The plugin panicked; the output holds the panic message.
pub const STATUS_PANIC: i32 = 2;

/// A string allocated by the plugin. Release it with the declaration's `free_string`.
#[repr(C)]
#[derive(Debug)]
pub struct PluginString {
    /// Start of the UTF-8 bytes; null for an empty string.
    pub ptr: *mut u8,
    /// Length in bytes.
    pub len: usize,
    /// Capacity of the plugin's allocation, needed to free it.
    pub capacity: usize,
}

impl PluginString {
    /// An empty string (nothing to free).
    pub const fn empty() -> Self {
        Self {
            ptr: std::ptr::null_mut(),
            len: 0,
            capacity: 0,
        }
    }

    /// Hands a Rust string to the other side.
    pub fn from_string(text: String) -> Self {
        let mut bytes = std::mem::ManuallyDrop::new(text.into_bytes());
        Self {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            capacity: bytes.capacity(),
        }
    }
}

/// `create(config_json) -> instance`: 0 and `*instance` set, or an error code and `*error` set.
pub type CreateFn = unsafe extern "C" fn(
    config: *const u8,
    config_len: usize,
    instance: *mut *mut c_void,
    error: *mut PluginString,
) -> i32;
/// `call(instance, hook, payload_json) -> output_json`.
pub type CallFn = unsafe extern "C" fn(
    instance: *mut c_void,
    hook: *const u8,
    hook_len: usize,
    payload: *const u8,
    payload_len: usize,
    output: *mut PluginString,
) -> i32;
/// Frees a string the plugin returned.
pub type FreeStringFn = unsafe extern "C" fn(text: PluginString);
/// Destroys an instance.
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);

// A nullable slot has the layout of a plain function pointer (the null-pointer
// optimisation), so declarations built before the slots were `Option`s read
// the same.
const _: () = {
    use std::mem::{align_of, size_of};
    assert!(size_of::<Option<CreateFn>>() == size_of::<usize>());
    assert!(size_of::<Option<CallFn>>() == size_of::<usize>());
    assert!(size_of::<Option<FreeStringFn>>() == size_of::<usize>());
    assert!(size_of::<Option<DestroyFn>>() == size_of::<usize>());
    assert!(align_of::<Option<CallFn>>() == align_of::<usize>());
};

/// What `surql_plugin_declare` returns. The first field is read before
/// anything else is trusted; fields are only ever appended.
#[repr(C)]
pub struct PluginDeclaration {
    /// The ABI the plugin was built against ([`ABI_VERSION`] of its SDK).
    pub abi_version: u32,
    /// `size_of::<PluginDeclaration>()` as the plugin was built.
    pub size: u32,
    /// NUL-terminated, static.
    pub name: *const c_char,
    /// NUL-terminated, static.
    pub version: *const c_char,
    /// [`HOOK_APPROVE`] | [`HOOK_NOTIFY`].
    pub hooks: u32,
    /// Each slot may be null (`None`); the host refuses such a declaration
    /// at load time. [`declare_plugin!`] fills every one.
    pub create: Option<CreateFn>,
    /// Runs one hook on an instance; see [`CallFn`].
    pub call: Option<CallFn>,
    /// Frees a [`PluginString`] the plugin returned.
    pub free_string: Option<FreeStringFn>,
    /// Destroys an instance made by `create`.
    pub destroy: Option<DestroyFn>,
    /// Room for future fields; always zero.
    pub reserved: [usize; 4],
}

// SAFETY: the declaration holds only pointers to static data and functions.
unsafe impl Sync for PluginDeclaration {}

/// The answer to an approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// The deployment may go ahead.
    Approved,
    /// Refused, for this reason.
    Denied(String),
    /// Not decided yet, with a reason to show; the host asks again later.
    Pending(String),
}

impl Approval {
    /// `{"decision": "approved" | "denied" | "pending", "reason": …}`.
    pub fn to_json(&self) -> serde_json::Value {
        let (decision, reason) = match self {
            Approval::Approved => ("approved", None),
            Approval::Denied(r) => ("denied", Some(r)),
            Approval::Pending(r) => ("pending", Some(r)),
        };
        serde_json::json!({ "decision": decision, "reason": reason })
    }
}

impl Approval {
    /// Reads an answer as [`Approval::to_json`] writes it.
    pub fn from_json(answer: &serde_json::Value) -> Result<Self, String> {
        let reason = answer["reason"].as_str().unwrap_or_default().to_string();
        match answer["decision"].as_str() {
            Some("approved") => Ok(Approval::Approved),
            Some("denied") => Ok(Approval::Denied(reason)),
            Some("pending") => Ok(Approval::Pending(reason)),
            _ => Err(format!("not an approval answer: {answer}")),
        }
    }
}

/// The answer of a gate: let the next wave start, or halt the rollout there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// The next wave may start.
    Continue,
    /// Stop the rollout before the next wave, for this reason.
    Halt(String),
}

impl Gate {
    /// `{"decision": "continue" | "halt", "reason": …}`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Gate::Continue => serde_json::json!({ "decision": "continue", "reason": null }),
            Gate::Halt(reason) => serde_json::json!({ "decision": "halt", "reason": reason }),
        }
    }

    /// Reads an answer as [`Gate::to_json`] writes it.
    pub fn from_json(answer: &serde_json::Value) -> Result<Self, String> {
        match answer["decision"].as_str() {
            Some("continue") => Ok(Gate::Continue),
            Some("halt") => Ok(Gate::Halt(answer["reason"].as_str().unwrap_or("halted").to_string())),
            _ => Err(format!("not a gate answer: {answer}")),
        }
    }
}

/// The environments an approval request asks about: the names of its
/// `environments` (a group, ABI 2), else its one `environment` (ABI 1).
pub fn requested_environments(request: &serde_json::Value) -> Vec<&str> {
    let names: Vec<&str> = request["environments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str().or_else(|| e.as_str()))
        .collect();
    match (names.is_empty(), request["environment"].as_str()) {
        (true, Some(one)) => vec![one],
        _ => names,
    }
}

/// Longest duration [`seconds`] accepts: one week.
pub const MAX_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

/// A duration from the number `config[key]` (seconds), `default` when the key
/// is absent; an error naming the key when it is not a number between 0
/// (exclusive) and [`MAX_SECONDS`]. `Duration::from_secs_f64` would panic on
/// a negative or huge value.
pub fn seconds(config: &serde_json::Value, key: &str, default: f64) -> Result<std::time::Duration, String> {
    let value = match config.get(key) {
        None | Some(serde_json::Value::Null) => default,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| format!("config.{key} must be a number of seconds, got {v}"))?,
    };
    if value.is_finite() && value > 0.0 && value <= MAX_SECONDS {
        Ok(std::time::Duration::from_secs_f64(value))
    } else {
        Err(format!(
            "config.{key} must be more than 0 and at most {MAX_SECONDS} seconds, got {value}"
        ))
    }
}

/// The string `config[key]`; `None` when it is absent, not a string or empty.
pub fn text(config: &serde_json::Value, key: &str) -> Option<String> {
    config
        .get(key)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A base URL from `config[key]`, `default` when it is absent, without a
/// trailing `/` (paths are appended to it).
pub fn base_url(config: &serde_json::Value, key: &str, default: &str) -> String {
    text(config, key)
        .unwrap_or_else(|| default.into())
        .trim_end_matches('/')
        .to_string()
}

/// A blocking HTTP client for a plugin that calls a web API (feature
/// `http`): every request ends within `config.timeout_seconds` (default 10),
/// and an HTTP error status is a response to read, not an error, so the
/// plugin can report the API's own message.
#[cfg(feature = "http")]
pub fn http_agent(config: &serde_json::Value) -> Result<ureq::Agent, String> {
    let timeout = seconds(config, "timeout_seconds", 10.0)?;
    let agent_config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build();
    Ok(ureq::Agent::new_with_config(agent_config))
}

/// What a plugin author implements. Hooks run on a host thread, one call at a
/// time per instance is not guaranteed: keep state behind a `Mutex`.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// Builds the instance from the `config` object of environments.json.
    fn create(config: serde_json::Value) -> Result<Self, String>;

    /// Answers an approval request: one for a group of environments (a
    /// wave, or a script's `approve(envs, label)`) with what they would get
    /// — `deployment_id`, `actor`, `strategy`, `label`, `environments`
    /// (`name`, `tags`, `pending`), `migrations` (`version`, `name`,
    /// `checksum`, `reversible`), `destructive` (`migration`, `file`, `line`,
    /// `kind`, `statement`), `irreversible`, `summary`; and, as in ABI 1,
    /// `environment`, `tags` and `pending` (of the first environment).
    fn approve(&self, request: &serde_json::Value) -> Result<Approval, String> {
        let _ = request;
        Err("this plugin does not answer approvals".into())
    }

    /// Decides, before a wave starts, whether the rollout may go on
    /// (`deployment_id`, `actor`, `strategy`, `label`, `environments`).
    fn gate(&self, request: &serde_json::Value) -> Result<Gate, String> {
        let _ = request;
        Ok(Gate::Continue)
    }

    /// Receives an event (`event` name plus its data).
    fn notify(&self, event: &serde_json::Value) -> Result<(), String> {
        let _ = event;
        Ok(())
    }
}

thread_local! {
    /// True while this thread runs plugin code for a call from the host.
    static IN_FFI_CALL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as inside an FFI call until dropped (nests). Set around
/// the `catch_unwind` of each function [`declare_plugin!`] exports. During
/// thread teardown, when the flag is gone, nothing is marked (and a panic is
/// printed as usual).
struct FfiCall {
    outer: bool,
}

impl FfiCall {
    fn enter() -> Self {
        Self {
            outer: IN_FFI_CALL.try_with(|flag| flag.replace(true)).unwrap_or(false),
        }
    }
}

impl Drop for FfiCall {
    fn drop(&mut self) {
        let _ = IN_FFI_CALL.try_with(|flag| flag.set(self.outer));
    }
}

/// A panic inside an FFI call is caught and reported to the host as an
/// error; the default hook would also print it to stderr, so the hook stays
/// silent there. Everywhere else (a plugin author's own tests, threads the
/// plugin starts) it hands the panic to the hook that was installed before.
/// This plugin's copy of std has its own hook, so the host process is not
/// affected.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // During thread teardown the flag may be gone: not an FFI call.
            if !IN_FFI_CALL.try_with(std::cell::Cell::get).unwrap_or(false) {
                previous(info);
            }
        }));
    });
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("plugin panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("plugin panicked: {s}")
    } else {
        "plugin panicked".into()
    }
}

/// # Safety
/// `ptr` must point to `len` readable bytes (or be null with `len` 0).
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

fn parse_json(input: &[u8]) -> Result<serde_json::Value, String> {
    serde_json::from_slice(input).map_err(|e| format!("invalid JSON from the host: {e}"))
}

/// Implementation of `create` for `P`. Used by [`declare_plugin!`].
///
/// # Safety
/// Called by the host with valid pointers, per the ABI.
pub unsafe fn create_instance<P: Plugin>(
    config: *const u8,
    config_len: usize,
    instance: *mut *mut c_void,
    error: *mut PluginString,
) -> i32 {
    quiet_panics();
    // SAFETY: the host passes `config_len` readable bytes.
    let input = unsafe { bytes(config, config_len) };
    let ffi_call = FfiCall::enter();
    let outcome = catch_unwind(AssertUnwindSafe(|| parse_json(input).and_then(P::create)));
    drop(ffi_call);
    let (status, message) = match outcome {
        Ok(Ok(plugin)) => {
            // SAFETY: the host passes a writable pointer.
            unsafe { *instance = Box::into_raw(Box::new(plugin)).cast() };
            return STATUS_OK;
        }
        Ok(Err(message)) => (STATUS_ERROR, message),
        Err(panic) => (STATUS_PANIC, panic_message(panic)),
    };
    // SAFETY: the host passes a writable pointer.
    unsafe { *error = PluginString::from_string(message) };
    status
}

/// Implementation of `call` for `P`. Used by [`declare_plugin!`].
///
/// # Safety
/// `instance` must come from [`create_instance::<P>`]; pointers valid per the ABI.
pub unsafe fn call_instance<P: Plugin>(
    instance: *mut c_void,
    hook: *const u8,
    hook_len: usize,
    payload: *const u8,
    payload_len: usize,
    output: *mut PluginString,
) -> i32 {
    quiet_panics();
    // SAFETY: `instance` was created by `create_instance::<P>` and is alive.
    let plugin: &P = unsafe { &*(instance as *const P) };
    // SAFETY: the host passes valid byte slices.
    let (hook, payload) = unsafe { (bytes(hook, hook_len), bytes(payload, payload_len)) };
    let ffi_call = FfiCall::enter();
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<serde_json::Value, String> {
        let payload = parse_json(payload)?;
        match hook {
            b"approve" => plugin.approve(&payload).map(|a| a.to_json()),
            b"notify" => plugin.notify(&payload).map(|()| serde_json::json!({ "ok": true })),
            b"gate" => plugin.gate(&payload).map(|g| g.to_json()),
            other => Err(format!("unknown hook '{}'", String::from_utf8_lossy(other))),
        }
    }));
    drop(ffi_call);
    let (status, text) = match outcome {
        Ok(Ok(value)) => (STATUS_OK, value.to_string()),
        Ok(Err(message)) => (STATUS_ERROR, message),
        Err(panic) => (STATUS_PANIC, panic_message(panic)),
    };
    // SAFETY: the host passes a writable pointer.
    unsafe { *output = PluginString::from_string(text) };
    status
}

/// Frees a string made by [`PluginString::from_string`].
///
/// # Safety
/// `text` must come from this plugin and be freed once.
pub unsafe fn free_plugin_string(text: PluginString) {
    if !text.ptr.is_null() {
        // SAFETY: ptr/len/capacity come from a Vec<u8> leaked by `from_string`.
        drop(unsafe { Vec::from_raw_parts(text.ptr, text.len, text.capacity) });
    }
}

/// Destroys an instance made by [`create_instance::<P>`].
///
/// # Safety
/// `instance` must come from `create_instance::<P>` and be destroyed once.
pub unsafe fn destroy_instance<P: Plugin>(instance: *mut c_void) {
    if !instance.is_null() {
        quiet_panics();
        let _ffi_call = FfiCall::enter();
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: created by `Box::into_raw` in `create_instance::<P>`.
            drop(unsafe { Box::from_raw(instance as *mut P) })
        }));
    }
}

/// Exports `surql_plugin_declare` for a [`Plugin`] type:
///
/// ```ignore
/// surql_plugin_sdk::declare_plugin!(MyNotifier, "my-notifier", hooks = surql_plugin_sdk::HOOK_NOTIFY);
/// ```
#[macro_export]
macro_rules! declare_plugin {
    ($plugin:ty, $name:literal, hooks = $hooks:expr) => {
        unsafe extern "C" fn __surql_create(
            config: *const u8,
            config_len: usize,
            instance: *mut *mut ::std::ffi::c_void,
            error: *mut $crate::PluginString,
        ) -> i32 {
            // SAFETY: forwarded from the host per the ABI.
            unsafe { $crate::create_instance::<$plugin>(config, config_len, instance, error) }
        }
        unsafe extern "C" fn __surql_call(
            instance: *mut ::std::ffi::c_void,
            hook: *const u8,
            hook_len: usize,
            payload: *const u8,
            payload_len: usize,
            output: *mut $crate::PluginString,
        ) -> i32 {
            // SAFETY: forwarded from the host per the ABI.
            unsafe { $crate::call_instance::<$plugin>(instance, hook, hook_len, payload, payload_len, output) }
        }
        unsafe extern "C" fn __surql_free(text: $crate::PluginString) {
            // SAFETY: forwarded from the host per the ABI.
            unsafe { $crate::free_plugin_string(text) }
        }
        unsafe extern "C" fn __surql_destroy(instance: *mut ::std::ffi::c_void) {
            // SAFETY: forwarded from the host per the ABI.
            unsafe { $crate::destroy_instance::<$plugin>(instance) }
        }
        static __SURQL_DECLARATION: $crate::PluginDeclaration = $crate::PluginDeclaration {
            abi_version: $crate::ABI_VERSION,
            size: ::std::mem::size_of::<$crate::PluginDeclaration>() as u32,
            name: concat!($name, "\0").as_ptr() as *const ::std::ffi::c_char,
            version: concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const ::std::ffi::c_char,
            hooks: $hooks,
            create: ::std::option::Option::Some(__surql_create),
            call: ::std::option::Option::Some(__surql_call),
            free_string: ::std::option::Option::Some(__surql_free),
            destroy: ::std::option::Option::Some(__surql_destroy),
            reserved: [0; 4],
        };
        /// The plugin's entry point, read by the surql host.
        #[unsafe(no_mangle)]
        pub extern "C" fn surql_plugin_declare() -> *const $crate::PluginDeclaration {
            &__SURQL_DECLARATION
        }
    };
}

pub mod testing;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_helpers_read_text_urls_and_seconds() {
        let config = json!({"token": "abc", "empty": "", "number": 3, "url": "http://127.0.0.1:9/api/", "timeout": -1});
        assert_eq!(text(&config, "token").as_deref(), Some("abc"));
        assert_eq!(text(&config, "empty"), None);
        assert_eq!(text(&config, "number"), None);
        assert_eq!(text(&config, "absent"), None);
        assert_eq!(base_url(&config, "url", "https://x"), "http://127.0.0.1:9/api");
        assert_eq!(base_url(&config, "absent", "https://x/v2/"), "https://x/v2");
        assert_eq!(seconds(&config, "absent", 10.0), Ok(std::time::Duration::from_secs(10)));
        let refused = seconds(&config, "timeout", 10.0).unwrap_err();
        assert!(refused.contains("config.timeout must be more than 0"), "{refused}");
    }
}
