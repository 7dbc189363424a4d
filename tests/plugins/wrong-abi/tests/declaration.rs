//! The fixture really declares another ABI (and `cargo test` builds its cdylib).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

#[test]
fn declares_another_abi_version() {
    // SAFETY: the declaration is a static that lives as long as the library.
    let declaration = unsafe { &*surql_test_wrong_abi_plugin::surql_plugin_declare() };
    assert_ne!(declaration.abi_version, surql_plugin_sdk::ABI_VERSION);
}
