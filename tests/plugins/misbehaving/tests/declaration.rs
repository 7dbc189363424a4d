//! The fixture declares itself (and `cargo test` builds its cdylib for surql's tests).

#[test]
fn declares_the_current_abi() {
    let declaration = unsafe { &*surql_test_misbehaving_plugin::surql_plugin_declare() };
    assert_eq!(declaration.abi_version, surql_plugin_sdk::ABI_VERSION);
}
