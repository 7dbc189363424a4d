//! Loading plugin libraries. All of the host's `unsafe` lives here.

use std::ffi::{CStr, c_void};
use std::path::{Path, PathBuf};

use libloading::Library;
use surql_plugin_sdk::{
    ABI_VERSION, CallFn, CreateFn, DECLARE_SYMBOL, DestroyFn, FreeStringFn, HOOK_APPROVE, HOOK_NOTIFY,
    OLDEST_ABI_VERSION, PluginDeclaration, PluginString, STATUS_OK,
};

use super::PluginError;

/// A created plugin instance inside a library that stays loaded for the life
/// of the process (unloading can crash on thread-local destructors).
pub struct LoadedPlugin {
    /// The name from the config's `plugins` entry (not the declared one).
    pub name: String,
    /// The library it was loaded from.
    pub path: PathBuf,
    /// The `HOOK_*` flags it answers; an ABI 1 plugin keeps only approve and notify.
    pub hooks: u32,
    /// The ABI version it was built for: 1 is asked once per environment
    /// and has no `gate`.
    pub abi_version: u32,
    slots: Slots,
    instance: *mut c_void,
}

/// The declaration's functions used after `create`, each checked non-null
/// when the library was loaded.
#[derive(Clone, Copy)]
struct Slots {
    call: CallFn,
    free_string: FreeStringFn,
    destroy: DestroyFn,
}

/// Every function of `declaration` (`create` apart, it is called once), or
/// the name of its first null slot.
fn checked_slots(declaration: &PluginDeclaration) -> Result<(CreateFn, Slots), &'static str> {
    Ok((
        declaration.create.ok_or("create")?,
        Slots {
            call: declaration.call.ok_or("call")?,
            free_string: declaration.free_string.ok_or("free_string")?,
            destroy: declaration.destroy.ok_or("destroy")?,
        },
    ))
}

// SAFETY: the SDK requires plugin types to be `Send + Sync`; the instance
// pointer is only used through the declaration's functions.
unsafe impl Send for LoadedPlugin {}
// SAFETY: as above.
unsafe impl Sync for LoadedPlugin {}

/// Size of the declaration fields this host reads.
const KNOWN_SIZE: usize = std::mem::size_of::<PluginDeclaration>();

/// Loads `path`, checks its ABI, and creates an instance from `config`.
pub fn load(name: &str, path: &Path, config: &serde_json::Value) -> Result<LoadedPlugin, PluginError> {
    let error = |message: String| PluginError::Load {
        name: name.to_string(),
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(error(
            "no such file (build it with `cargo build -p …`, or fix \"path\")".into(),
        ));
    }
    // SAFETY: loading a library runs its initialisers; plugins are trusted code
    // the user listed in their config.
    let library = unsafe { Library::new(path) }.map_err(|e| error(format!("cannot load: {e}")))?;
    // Never unloaded: the library lives as long as the process.
    let library: &'static Library = Box::leak(Box::new(library));
    // SAFETY: the symbol's type is fixed by the plugin ABI; calling foreign
    // code is unsafe, so the pointer type says so.
    let declare = unsafe { library.get::<unsafe extern "C" fn() -> *const PluginDeclaration>(DECLARE_SYMBOL) }
        .map_err(|_| error("not a surql plugin: it does not export `surql_plugin_declare`".into()))?;
    // SAFETY: the ABI's entry point takes nothing and returns a pointer to static data.
    let pointer = unsafe { declare() };
    if pointer.is_null() {
        return Err(error("`surql_plugin_declare` returned null".into()));
    }
    // SAFETY: the first field of every ABI version is the u32 version; read it
    // before trusting anything else.
    let abi_version = unsafe { std::ptr::read(pointer.cast::<u32>()) };
    if !(OLDEST_ABI_VERSION..=ABI_VERSION).contains(&abi_version) {
        return Err(error(format!(
            "plugin ABI version {abi_version} is not one surql loads ({OLDEST_ABI_VERSION} to {ABI_VERSION}): rebuild the plugin against surql-plugin-sdk (ABI {ABI_VERSION})"
        )));
    }
    // SAFETY: the second field of this ABI version is the u32 size; read it
    // before forming a reference to a declaration that may be shorter.
    let size = unsafe { std::ptr::read(pointer.cast::<u32>().add(1)) };
    if (size as usize) < KNOWN_SIZE {
        return Err(error(format!(
            "declaration is {size} bytes, expected at least {KNOWN_SIZE}"
        )));
    }
    // SAFETY: same ABI version and at least our size, so the layout is ours;
    // the declaration is static.
    let declaration: &'static PluginDeclaration = unsafe { &*pointer };
    if declaration.name.is_null() {
        return Err(error("the declaration has no name (null pointer)".into()));
    }
    // A null function slot is refused here, before anything is called.
    let (create, slots) = checked_slots(declaration).map_err(|slot| PluginError::NullSlot {
        name: name.to_string(),
        path: path.to_path_buf(),
        slot,
    })?;
    let config_text = config.to_string();
    let mut instance: *mut c_void = std::ptr::null_mut();
    let mut message = PluginString::empty();
    // SAFETY: valid pointers per the ABI; `create` catches panics itself.
    let status = unsafe { create(config_text.as_ptr(), config_text.len(), &mut instance, &mut message) };
    if status != STATUS_OK || instance.is_null() {
        let text = take_string(slots.free_string, message);
        return Err(error(format!("create failed: {text}")));
    }
    // SAFETY: `name` is a static NUL-terminated string per the ABI.
    let declared = unsafe { CStr::from_ptr(declaration.name) }
        .to_string_lossy()
        .into_owned();
    tracing::debug!(plugin = name, declared, path = %path.display(), "plugin loaded");
    Ok(LoadedPlugin {
        name: name.to_string(),
        path: path.to_path_buf(),
        // ABI 1 knew only these two hooks.
        hooks: match abi_version {
            1 => declaration.hooks & (HOOK_APPROVE | HOOK_NOTIFY),
            _ => declaration.hooks,
        },
        abi_version,
        slots,
        instance,
    })
}

/// `destroy` once the last handle is gone: every hook call holds a handle
/// on its thread, so no call is running (a hung call keeps its plugin alive).
impl Drop for LoadedPlugin {
    fn drop(&mut self) {
        /// The instance, moved to the thread that destroys it.
        struct Instance(*mut c_void);
        // SAFETY: the SDK requires plugin types to be `Send`; nothing else
        // holds the pointer once the last handle is gone.
        unsafe impl Send for Instance {}
        let (destroy, instance) = (self.slots.destroy, Instance(self.instance));
        let (done, finished) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("surql-plugin-destroy-{}", self.name))
            .spawn(move || {
                let instance = instance;
                // SAFETY: the instance came from this declaration's `create`,
                // no call is in flight (see above), and it is destroyed once.
                unsafe { destroy(instance.0) };
                let _ = done.send(());
            });
        // A `destroy` that never returns must not hold the process.
        if spawned.is_err() || finished.recv_timeout(DESTROY_TIMEOUT).is_err() {
            tracing::warn!(plugin = %self.name, "destroy gave no answer within {}s", DESTROY_TIMEOUT.as_secs());
        }
    }
}

/// How long the end of a run waits for a plugin's `destroy`.
const DESTROY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Copies a plugin string and frees it with the plugin's own allocator.
fn take_string(free_string: FreeStringFn, text: PluginString) -> String {
    if text.ptr.is_null() {
        return String::new();
    }
    // SAFETY: the plugin returned `len` initialised bytes at `ptr`.
    let copy = String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(text.ptr, text.len) }).into_owned();
    // SAFETY: freed once, by the plugin that allocated it.
    unsafe { free_string(text) };
    copy
}

impl LoadedPlugin {
    /// Calls `hook` with a JSON payload; blocks until the plugin returns.
    /// Returns the plugin's status code and text.
    pub fn call_blocking(&self, hook: &str, payload: &str) -> (i32, String) {
        let mut output = PluginString::empty();
        // SAFETY: instance created by this declaration's `create`; valid slices.
        let status = unsafe {
            (self.slots.call)(
                self.instance,
                hook.as_ptr(),
                hook.len(),
                payload.as_ptr(),
                payload.len(),
                &mut output,
            )
        };
        (status, take_string(self.slots.free_string, output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn create(_: *const u8, _: usize, _: *mut *mut c_void, _: *mut PluginString) -> i32 {
        1
    }
    unsafe extern "C" fn call(
        _: *mut c_void,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: *mut PluginString,
    ) -> i32 {
        1
    }
    unsafe extern "C" fn free_string(_: PluginString) {}
    unsafe extern "C" fn destroy(_: *mut c_void) {}

    #[test]
    fn each_null_slot_is_named() {
        let full = || PluginDeclaration {
            abi_version: ABI_VERSION,
            size: KNOWN_SIZE as u32,
            name: c"slots".as_ptr(),
            version: c"0".as_ptr(),
            hooks: 0,
            create: Some(create),
            call: Some(call),
            free_string: Some(free_string),
            destroy: Some(destroy),
            reserved: [0; 4],
        };
        assert!(checked_slots(&full()).is_ok());
        for slot in ["create", "call", "free_string", "destroy"] {
            let mut declaration = full();
            match slot {
                "create" => declaration.create = None,
                "call" => declaration.call = None,
                "free_string" => declaration.free_string = None,
                _ => declaration.destroy = None,
            }
            assert_eq!(checked_slots(&declaration).err(), Some(slot));
        }
    }
}
