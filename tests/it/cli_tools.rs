//! What a team sets up around the binary: shell completions, man pages and
//! the JSON Schema of environments.json, all generated from the same
//! definitions surql itself uses.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first surprise

use std::process::{Command, Output};

use crate::common::text;

fn surql(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_surql")).args(args).output().unwrap()
}

#[test]
fn completions_for_each_shell_name_the_commands_and_flags() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = surql(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["orchestrate", "deploy", "max-concurrent", "canary-percent", "migrate"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = surql(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn man_pages_are_generated_from_the_same_definitions() {
    let out = surql(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH surql"), "{page}");
    assert!(page.contains("orchestrate"));

    let dir = tempfile::tempdir().unwrap();
    let out = surql(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let deploy = std::fs::read_to_string(dir.path().join("surql-orchestrate-deploy.1")).unwrap();
    assert!(deploy.contains("max\\-concurrent"), "{deploy}");
    assert!(dir.path().join("surql-migrate-up.1").exists());
}

/// docs/reference/ is generated from the clap tree and the JSON Schema:
/// a flag or key added without regenerating it fails here.
#[test]
fn the_generated_references_are_up_to_date() {
    for (which, file) in [
        ("commands", "docs/reference/commands.md"),
        ("config", "docs/reference/config.md"),
    ] {
        let out = surql(&["reference", which]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let shipped = std::fs::read_to_string(crate::common::repo().join(file)).unwrap_or_default();
        assert!(
            String::from_utf8_lossy(&out.stdout) == shipped,
            "{file} is stale: run `cargo run -q --bin surql -- reference {which} > {file}`"
        );
    }
    let commands = std::fs::read_to_string(crate::common::repo().join("docs/reference/commands.md")).unwrap();
    for heading in [
        "## `surql orchestrate deploy`",
        "## `surql migrate up`",
        "## `surql orchestrate resume`",
    ] {
        assert!(commands.contains(heading), "the command reference lacks {heading}");
    }
    assert!(commands.contains("`--max-concurrent <N>`") || commands.contains("--max-concurrent"));
    let config = std::fs::read_to_string(crate::common::repo().join("docs/reference/config.md")).unwrap();
    for key in ["`db_url`", "`require_approval`", "`discover`", "`freezes`"] {
        assert!(config.contains(key), "the config reference lacks {key}");
    }
}

#[test]
fn the_shipped_schema_is_the_generated_one_and_the_shipped_config_points_at_it() {
    let root = crate::common::repo();
    let out = surql(&["config-schema"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shipped: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("environments.schema.json")).unwrap()).unwrap();
    assert_eq!(
        generated, shipped,
        "environments.schema.json is stale: run `cargo run -q --bin surql -- config-schema > environments.schema.json`"
    );
    // The schema knows every key of an environment, a template and a plugin.
    let text = generated.to_string();
    for key in [
        "db_url",
        "auth_level",
        "require_approval",
        "allow_destructive",
        "approvers",
        "discover",
        "namespaces",
        "approval_timeout_seconds",
        "window",
        "timezone",
        "freezes",
        "hold",
        "pin_version",
    ] {
        assert!(text.contains(key), "schema lacks {key}");
    }
    assert_eq!(generated["required"], serde_json::json!(["environments"]));

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("environments.json")).unwrap()).unwrap();
    assert_eq!(config["$schema"], "./environments.schema.json");
    surql::load_environments_file(root.join("environments.json"))
        .expect("the shipped config loads with its $schema key");
}
