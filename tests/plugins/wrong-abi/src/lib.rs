//! Test fixture: declares ABI version 999. Its functions must never be called.

use std::ffi::c_void;

use surql_plugin_sdk::{PluginDeclaration, PluginString};

unsafe extern "C" fn create(_: *const u8, _: usize, _: *mut *mut c_void, _: *mut PluginString) -> i32 {
    unreachable!("the host must refuse this plugin before calling it")
}
unsafe extern "C" fn call(_: *mut c_void, _: *const u8, _: usize, _: *const u8, _: usize, _: *mut PluginString) -> i32 {
    unreachable!("the host must refuse this plugin before calling it")
}
unsafe extern "C" fn free_string(_: PluginString) {}
unsafe extern "C" fn destroy(_: *mut c_void) {}

static DECLARATION: PluginDeclaration = PluginDeclaration {
    abi_version: 999,
    size: std::mem::size_of::<PluginDeclaration>() as u32,
    name: c"wrong-abi".as_ptr(),
    version: c"0.0.0".as_ptr(),
    hooks: 0,
    create: Some(create),
    call: Some(call),
    free_string: Some(free_string),
    destroy: Some(destroy),
    reserved: [0; 4],
};

/// Entry point with the wrong ABI version.
#[unsafe(no_mangle)]
pub extern "C" fn surql_plugin_declare() -> *const PluginDeclaration {
    &DECLARATION
}
