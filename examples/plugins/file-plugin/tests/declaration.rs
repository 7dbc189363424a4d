//! The exported declaration is well formed (and `cargo test` builds the cdylib
//! that surql's plugin tests load).

#![allow(clippy::unwrap_used)] // tests stop at the first surprise

use surql_plugin_sdk::{ABI_VERSION, HOOK_APPROVE, HOOK_NOTIFY};

#[test]
fn declares_the_current_abi_and_both_hooks() {
    // SAFETY: the macro's declaration is a static that lives as long as the library.
    let declaration = unsafe { &*surql_file_plugin::surql_plugin_declare() };
    assert_eq!(declaration.abi_version, ABI_VERSION);
    assert_eq!(declaration.hooks, HOOK_APPROVE | HOOK_NOTIFY);
    // SAFETY: `name` points at the declaration's NUL-terminated static string.
    let name = unsafe { std::ffi::CStr::from_ptr(declaration.name) };
    assert_eq!(name.to_str().unwrap(), "file");
}
