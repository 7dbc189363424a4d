//! Declaration (and `cargo test` builds the cdylib).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

#[test]
fn declares_the_current_abi_and_its_three_hooks() {
    // SAFETY: the declaration is a static that lives as long as the library.
    let declaration = unsafe { &*surql_pagerduty::surql_plugin_declare() };
    assert_eq!(declaration.abi_version, surql_plugin_sdk::ABI_VERSION);
    assert_eq!(
        declaration.hooks,
        surql_plugin_sdk::HOOK_APPROVE | surql_plugin_sdk::HOOK_NOTIFY | surql_plugin_sdk::HOOK_GATE
    );
    assert_eq!(surql_pagerduty::dedup_key("production"), "surql-production");
}
