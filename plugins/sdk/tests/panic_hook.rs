//! The SDK's panic hook is silent only inside the FFI calls `declare_plugin!`
//! exports: anywhere else a panic reaches the hook installed before it, so an
//! `assert!` failing in a plugin author's own test prints as usual.
//!
//! One test in its own binary: the panic hook is global to the process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::ffi::c_void;
use std::panic::PanicHookInfo;
use std::sync::Mutex;

use serde_json::{Value, json};
use surql_plugin_sdk::{HOOK_NOTIFY, Plugin, PluginString, STATUS_OK, STATUS_PANIC, declare_plugin};

/// Every panic message the previous hook saw.
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record(info: &PanicHookInfo) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    SEEN.lock().unwrap_or_else(|e| e.into_inner()).push(message);
}

/// Panics in `create` when told to; its `notify` panics, or starts a thread
/// that panics (outside any FFI call) and waits for it.
struct Panicky;

impl Plugin for Panicky {
    fn create(config: Value) -> Result<Self, String> {
        if config["panic"] == json!(true) {
            panic!("create, inside an FFI call");
        }
        Ok(Panicky)
    }

    fn notify(&self, event: &Value) -> Result<(), String> {
        match event["event"].as_str() {
            Some("thread") => {
                let _ = std::thread::spawn(|| panic!("a thread the plugin started")).join();
                Ok(())
            }
            _ => panic!("notify, inside an FFI call"),
        }
    }
}

declare_plugin!(Panicky, "panicky", hooks = HOOK_NOTIFY);

/// The declaration's own functions, as the host calls them.
struct Host {
    declaration: &'static surql_plugin_sdk::PluginDeclaration,
}

impl Host {
    fn take(&self, text: PluginString) -> String {
        if text.ptr.is_null() {
            return String::new();
        }
        // SAFETY: `len` initialised bytes the plugin made.
        let copy = String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(text.ptr, text.len) }).into_owned();
        // SAFETY: freed once, by the plugin that made it.
        unsafe { (self.declaration.free_string.unwrap())(text) };
        copy
    }

    fn create(&self, config: Value) -> (i32, *mut c_void, String) {
        let text = config.to_string();
        let (mut instance, mut error) = (std::ptr::null_mut(), PluginString::empty());
        // SAFETY: valid pointers, as the host passes them.
        let status =
            unsafe { (self.declaration.create.unwrap())(text.as_ptr(), text.len(), &mut instance, &mut error) };
        (status, instance, self.take(error))
    }

    fn notify(&self, instance: *mut c_void, event: &str) -> (i32, String) {
        let payload = json!({ "event": event }).to_string();
        let mut output = PluginString::empty();
        // SAFETY: the instance came from `create`; valid slices.
        let status = unsafe {
            (self.declaration.call.unwrap())(
                instance,
                b"notify".as_ptr(),
                6,
                payload.as_ptr(),
                payload.len(),
                &mut output,
            )
        };
        (status, self.take(output))
    }
}

#[test]
fn the_hook_is_silent_inside_ffi_calls_and_forwards_everywhere_else() {
    std::panic::set_hook(Box::new(record));
    // SAFETY: the macro's entry point returns a pointer to a static declaration.
    let host = Host {
        // SAFETY: the declaration (and its strings) are statics that live as long as the library.
        declaration: unsafe { &*surql_plugin_declare() },
    };

    // The first FFI call installs the SDK's hook over `record`.
    let create_panicked = host.create(json!({"panic": true}));
    let (created, instance, _) = host.create(json!({}));
    let notify_panicked = host.notify(instance, "panic");
    // A thread the plugin starts during a call is not inside the call.
    let plugin_thread = host.notify(instance, "thread");
    // Outside any FFI call: another thread, and this one once the calls returned.
    let _ = std::thread::spawn(|| assert!(std::hint::black_box(2) == 3, "an author's failing assert")).join();
    let _ = std::panic::catch_unwind(|| panic!("after the calls, on the calling thread"));
    // SAFETY: made by this declaration's `create`, destroyed once.
    unsafe { (host.declaration.destroy.unwrap())(instance) };

    // The default hook again, so a failing assert below is printed whatever
    // the hook under test did.
    let _ = std::panic::take_hook();
    let seen_all = SEEN.lock().unwrap().clone();
    assert_eq!(
        (create_panicked.0, create_panicked.2.as_str()),
        (STATUS_PANIC, "plugin panicked: create, inside an FFI call")
    );
    assert_eq!(created, STATUS_OK);
    assert_eq!(
        (notify_panicked.0, notify_panicked.1.as_str()),
        (STATUS_PANIC, "plugin panicked: notify, inside an FFI call")
    );
    assert_eq!(plugin_thread.0, STATUS_OK);
    assert_eq!(
        seen_all,
        [
            "a thread the plugin started",
            "an author's failing assert",
            "after the calls, on the calling thread"
        ],
        "the previous hook must see every panic outside FFI calls and none inside"
    );
}
