//! Declaration and message texts (and `cargo test` builds the cdylib).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use serde_json::json;

#[test]
fn declares_the_current_abi_and_both_hooks() {
    // SAFETY: the declaration is a static that lives as long as the library.
    let declaration = unsafe { &*surql_slack::surql_plugin_declare() };
    assert_eq!(declaration.abi_version, surql_plugin_sdk::ABI_VERSION);
    assert_eq!(
        declaration.hooks,
        surql_plugin_sdk::HOOK_APPROVE | surql_plugin_sdk::HOOK_NOTIFY
    );
}

#[test]
fn the_summary_counts_everything_and_names_only_what_failed() {
    let text = surql_slack::summary_text(&json!({
        "event": "deployment_finished", "deployment_id": "d1", "strategy": "parallel",
        "success": 1, "failed": 1, "rolled_back": 1, "skipped": 0,
        "results": [
            {"environment": "staging", "status": "success", "migrations_applied": 3, "error": null},
            {"environment": "production", "status": "failed", "migrations_applied": 0, "error": "unhealthy: down"},
            {"environment": "eu", "status": "rolled_back", "migrations_applied": 0, "error": "boom; rolled back"}
        ]
    }));
    assert!(
        text.contains("`d1` (parallel) finished: 1 success, 1 failed, 1 rolled back, 0 skipped"),
        "{text}"
    );
    assert!(!text.contains("staging"), "{text}");
    assert!(text.contains(":x: *production* FAILED: unhealthy: down"), "{text}");
    assert!(text.contains("*eu* ROLLED_BACK: boom"), "{text}");
}

#[test]
fn an_approval_question_shows_the_plan_and_highlights_destructive_statements() {
    let mut request = surql_plugin_sdk::testing::approval_request(
        "wave 2",
        &["t1", "t2", "t3"],
        &[("20260101000000", "drop_legacy")],
    );
    request["destructive"] = json!([{"migration": "20260101000000_drop_legacy", "file": "20260101000000_drop_legacy.surql",
        "line": 4, "kind": "REMOVE TABLE", "statement": "REMOVE TABLE legacy"}]);
    request["irreversible"] = json!(["20260101000000_drop_legacy"]);
    let text = surql_slack::approval_text(&request);
    assert!(text.contains("*wave 2* (3 environments)"), "{text}");
    assert!(text.contains("Environments: t1, t2, t3"), "{text}");
    assert!(
        text.contains("• `20260101000000_drop_legacy` (checksum `000000000000`)"),
        "{text}"
    );
    assert!(
        text.contains(
            ":warning: *destructive* `20260101000000_drop_legacy.surql:4` REMOVE TABLE: `REMOVE TABLE legacy`"
        ),
        "{text}"
    );
    assert!(text.contains(":no_entry: no down section"), "{text}");
}
