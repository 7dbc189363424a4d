//! Bad input never panics (a unit-test module: these parsers are internal): property tests (bounded budget) over the
//! environments.json loader, `${VAR}` expansion, the migration file parser and
//! `--set` handling.

use std::path::Path;

use proptest::prelude::*;

use crate::config::{expand_vars, parse_environments};
use crate::migration::file::parse_migration;
use crate::script::parse_script_option;

fn vars(name: &str) -> Option<String> {
    name.len().is_multiple_of(2).then(|| format!("value-of-{name}"))
}

/// JSON values shaped like environments.json, with random holes and junk.
fn config_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .unwrap_or_default()),
        "[ -~]{0,20}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("mem://"),
            Just("ws://127.0.0.1:1/rpc"),
            Just("${DB_URL}"),
            Just("${X:-surrealkv://x}"),
            Just("${"),
            Just("tag:x")
        ]
        .prop_map(serde_json::Value::from),
    ];
    let keys = prop_oneof![
        Just("environments"),
        Just("name"),
        Just("connection"),
        Just("db_url"),
        Just("db_ns"),
        Just("db"),
        Just("username"),
        Just("password"),
        Just("priority"),
        Just("tags"),
        Just("require_approval"),
        Just("allow_destructive"),
        Just("approvers"),
        Just("plugins"),
        Just("auth_level"),
        Just("unknown"),
    ];
    leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| { serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()) }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn environments_loader_never_panics_on_any_text(text in "\\PC{0,200}") {
        let _ = parse_environments(Path::new("environments.json"), &text, &vars);
    }

    #[test]
    fn environments_loader_never_panics_on_shaped_json(value in config_json()) {
        let text = serde_json::json!({ "environments": [value.clone()] }).to_string();
        let _ = parse_environments(Path::new("environments.json"), &text, &vars);
        let _ = parse_environments(Path::new("environments.json"), &value.to_string(), &vars);
    }

    #[test]
    fn expansion_never_panics_and_keeps_plain_text(text in "[ -~]{0,80}") {
        match expand_vars(&text, &vars) {
            Ok(out) if !text.contains("${") => prop_assert_eq!(out, text),
            _ => {}
        }
    }

    #[test]
    fn migration_parser_never_panics(
        before in "[ -~\n]{0,40}",
        up in "[ -~\n]{0,120}",
        down in proptest::option::of("[ -~\n]{0,80}"),
        name in "[0-9]{0,3}_?[a-z_-]{0,8}(\\.surql)?",
    ) {
        let mut text = format!("{before}\n-- migrate:up\n{up}\n");
        if let Some(down) = down {
            text.push_str(&format!("-- migrate:down\n{down}\n"));
        }
        let _ = parse_migration(Path::new(&name), &text);
        let _ = parse_migration(Path::new("1_x.surql"), &text);
        let _ = parse_migration(Path::new("1_x.surql"), &up);
    }

    #[test]
    fn set_option_parsing_never_panics(text in "\\PC{0,40}") {
        if let Ok((key, _)) = parse_script_option(&text) {
            prop_assert!(!key.is_empty());
            prop_assert!(text.contains('='));
        }
    }
}

#[test]
fn surrealql_fragments_that_stress_the_parser_give_errors_not_panics() {
    for up in [
        "DEFINE TABLE",
        "((((((((((((((((((((((((((((((((((((((((",
        "SELECT * FROM [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        "\u{0}",
        "LET $a = 'unterminated",
        "-- migrate:up",
        "DEFINE FIELD x ON t TYPE option<option<option<option<option<option<string>>>>>>;",
    ] {
        let text = format!("-- migrate:up\n{up}\n");
        let _ = parse_migration(Path::new("1_x.surql"), &text);
    }
}
