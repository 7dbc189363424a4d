//! The fixture declares itself (and `cargo test` builds its cdylib for surql's tests).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

#[test]
fn declares_the_current_abi() {
    // SAFETY: the declaration (and its strings) are statics that live as long as the library.
    let declaration = unsafe { &*surql_test_misbehaving_plugin::surql_plugin_declare() };
    assert_eq!(declaration.abi_version, surql_plugin_sdk::ABI_VERSION);
}
