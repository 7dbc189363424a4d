//! The fixture really declares another ABI (and `cargo test` builds its cdylib).

#[test]
fn declares_another_abi_version() {
    let declaration = unsafe { &*surql_test_wrong_abi_plugin::surql_plugin_declare() };
    assert_ne!(declaration.abi_version, surql_plugin_sdk::ABI_VERSION);
}
