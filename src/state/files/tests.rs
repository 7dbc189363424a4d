//! The folder of record files against crashes and hand edits.

use super::*;

fn store() -> (tempfile::TempDir, FileStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), "files://test", true).unwrap();
    (dir, store)
}

#[test]
fn rows_merge_in_order_and_a_torn_line_is_not_written() {
    let (_dir, store) = store();
    let row = |environment: &str, state: &str| json!({ "environment": environment, "state": state });
    store
        .append_environments("d1", &[row("a", "pending"), row("b", "pending")])
        .unwrap();
    // A crash cut this write short; the next write still lands whole.
    let path = store.environments_path("d1").unwrap();
    let mut log = std::fs::read_to_string(&path).unwrap();
    log.push_str("{\"environment\":\"a\",\"sta");
    std::fs::write(&path, log).unwrap();
    store
        .append_environments(
            "d1",
            &[json!({ "environment": "a", "state": "success", "versions": ["1_x"] })],
        )
        .unwrap();
    let rows = store.environments("d1").unwrap();
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(
        rows["a"],
        json!({ "environment": "a", "state": "success", "versions": ["1_x"] })
    );
    assert_eq!(rows["b"]["state"], "pending");
}

#[test]
fn a_wave_mark_sets_only_a_first_wave_and_creates_no_environment() {
    let (_dir, store) = store();
    store
        .append_environments("d1", &[json!({ "environment": "a", "state": "pending" })])
        .unwrap();
    let mark =
        |wave: usize| json!([{ "environment": "a", FIRST_WAVE: wave }, { "environment": "ghost", FIRST_WAVE: wave }]);
    store.append_environments("d1", mark(1).as_array().unwrap()).unwrap();
    store.append_environments("d1", mark(2).as_array().unwrap()).unwrap();
    let rows = store.environments("d1").unwrap();
    assert_eq!(rows["a"]["wave"], 1);
    assert!(!rows.contains_key("ghost"));
}

#[test]
fn a_line_broken_by_hand_is_refused_naming_file_and_line() {
    let (_dir, store) = store();
    store
        .append_environments("d1", &[json!({ "environment": "a" })])
        .unwrap();
    let path = store.environments_path("d1").unwrap();
    std::fs::write(&path, "{\"environment\":\"a\"}\nnot json\n").unwrap();
    let error = store.environments("d1").unwrap_err().to_string();
    assert!(error.contains("d1.jsonl:2: not an environment record"), "{error}");
}

#[test]
fn no_id_names_a_path_outside_the_store() {
    let (_dir, store) = store();
    for id in ["../escape", "a/b", "..", ""] {
        let error = store.append_environments(id, &[json!({})]).unwrap_err().to_string();
        assert!(error.contains("cannot name a record"), "{id}: {error}");
    }
}

#[test]
fn a_compacted_log_has_a_line_per_environment_and_reads_the_same() {
    let (_dir, store) = store();
    for state in ["pending", "running", "success"] {
        let rows = [
            json!({ "environment": "a", "state": state }),
            json!({ "environment": "b", "state": state }),
        ];
        store.append_environments("d1", &rows).unwrap();
    }
    store
        .append_environments("d1", &[json!({ "environment": "a", FIRST_WAVE: 1 })])
        .unwrap();
    let before = store.environments("d1").unwrap();
    store.compact_environments("d1").unwrap();
    let path = store.environments_path("d1").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    assert_eq!(store.environments("d1").unwrap(), before);
    assert_eq!(before["a"]["wave"], 1);
}
