//! Test fixture: an ABI 2 declaration whose `call` slot is null (`None`), as
//! a hand-written or corrupted declaration could be. The host must refuse it
//! at load time, before calling any of its functions.

use std::ffi::c_void;

use surql_plugin_sdk::{ABI_VERSION, HOOK_APPROVE, HOOK_NOTIFY, PluginDeclaration, PluginString};

unsafe extern "C" fn create(_: *const u8, _: usize, _: *mut *mut c_void, _: *mut PluginString) -> i32 {
    unreachable!("the host must refuse this plugin before calling it")
}
unsafe extern "C" fn free_string(_: PluginString) {
    unreachable!("the host must refuse this plugin before calling it")
}
unsafe extern "C" fn destroy(_: *mut c_void) {
    unreachable!("the host must refuse this plugin before calling it")
}

static DECLARATION: PluginDeclaration = PluginDeclaration {
    abi_version: ABI_VERSION,
    size: std::mem::size_of::<PluginDeclaration>() as u32,
    name: c"null-slot".as_ptr(),
    version: c"0.0.0".as_ptr(),
    hooks: HOOK_APPROVE | HOOK_NOTIFY,
    create: Some(create),
    call: None,
    free_string: Some(free_string),
    destroy: Some(destroy),
    reserved: [0; 4],
};

/// Entry point with a null `call` slot.
#[unsafe(no_mangle)]
pub extern "C" fn surql_plugin_declare() -> *const PluginDeclaration {
    &DECLARATION
}
