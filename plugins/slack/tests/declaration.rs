//! Declaration and message formatting (and `cargo test` builds the cdylib).

use serde_json::json;

#[test]
fn declares_the_current_abi_and_both_hooks() {
    let declaration = unsafe { &*surql_slack::surql_plugin_declare() };
    assert_eq!(declaration.abi_version, surql_plugin_sdk::ABI_VERSION);
    assert_eq!(
        declaration.hooks,
        surql_plugin_sdk::HOOK_APPROVE | surql_plugin_sdk::HOOK_NOTIFY
    );
}

#[test]
fn finished_message_lists_every_environment() {
    let text = surql_slack::message_text(&json!({
        "event": "deployment_finished", "deployment_id": "d1", "success": 1, "failed": 1, "rolled_back": 0, "skipped": 0,
        "results": [
            {"environment": "staging", "status": "success", "migrations_applied": 3, "error": null},
            {"environment": "production", "status": "failed", "migrations_applied": 0, "error": "unhealthy: down"}
        ]
    }));
    assert!(text.contains("`d1` finished: 1 success, 1 failed"), "{text}");
    assert!(text.contains("*staging* SUCCESS (3 migration(s))"), "{text}");
    assert!(
        text.contains("*production* FAILED (0 migration(s)): unhealthy: down"),
        "{text}"
    );
}
