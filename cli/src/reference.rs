//! The generated references in `docs/reference/`: every command and flag
//! from the clap tree, every environments.json key from its JSON Schema
//! (`surql reference commands|config`; a test keeps the files equal).

use std::fmt::Write as _;

use clap::CommandFactory as _;
use serde_json::Value;

use super::args::Cli;

/// Every command with its usage, flags, defaults and environment variables, as Markdown.
pub fn commands() -> String {
    let mut command = Cli::command();
    command.build();
    let mut out = String::from(
        "# Command reference\n\nGenerated from the command line itself (`surql reference commands > docs/reference/commands.md`); a test fails when it is stale.\n",
    );
    describe(&mut command, "surql", &mut out);
    out
}

fn describe(command: &mut clap::Command, path: &str, out: &mut String) {
    if command.is_hide_set() {
        return;
    }
    let _ = write!(out, "\n## `{path}`\n\n");
    if let Some(about) = command.get_long_about().or(command.get_about()) {
        let _ = write!(out, "{about}\n\n");
    }
    let usage = command.render_usage().to_string();
    let usage = usage.trim_start_matches("Usage: ");
    let _ = write!(out, "```text\n{usage}\n```\n");
    let arguments: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !["help", "version"].contains(&a.get_id().as_str()))
        .collect();
    if !arguments.is_empty() {
        out.push_str("\n| Argument | Description |\n|---|---|\n");
        for argument in arguments {
            let _ = writeln!(out, "| {} | {} |", cell(&name_of(argument)), description_of(argument));
        }
    }
    let names: Vec<String> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        if let Some(sub) = command.find_subcommand_mut(&name) {
            describe(sub, &format!("{path} {name}"), out);
        }
    }
}

fn name_of(argument: &clap::Arg) -> String {
    let value = argument
        .get_value_names()
        .map(|names| names.iter().map(|n| format!("<{n}>")).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| format!("<{}>", argument.get_id().as_str().to_uppercase()));
    let takes_value = argument.get_num_args().is_some_and(|n| n.takes_values());
    let mut flags = Vec::new();
    if let Some(short) = argument.get_short() {
        flags.push(format!("-{short}"));
    }
    if let Some(long) = argument.get_long() {
        flags.push(format!("--{long}"));
    }
    match (flags.is_empty(), takes_value) {
        (true, _) => format!("`{value}`"),
        (false, true) => format!("`{} {value}`", flags.join(", ")),
        (false, false) => format!("`{}`", flags.join(", ")),
    }
}

fn description_of(argument: &clap::Arg) -> String {
    let mut text = argument
        .get_long_help()
        .or(argument.get_help())
        .map(|h| h.to_string().trim_end().to_string())
        .unwrap_or_default();
    if !text.is_empty() && !text.ends_with(['.', ')', '`', ':']) {
        text.push('.');
    }
    let defaults: Vec<String> = argument
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().to_string())
        .collect();
    if !defaults.is_empty() && argument.get_num_args().is_some_and(|n| n.takes_values()) {
        let _ = write!(text, " Default: `{}`.", defaults.join(","));
    }
    let possible: Vec<String> = argument
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    if !possible.is_empty() && argument.get_num_args().is_some_and(|n| n.takes_values()) {
        let _ = write!(text, " One of {}.", possible.join(", "));
    }
    if let Some(env) = argument.get_env() {
        let _ = write!(text, " Environment: `{}`.", env.to_string_lossy());
    }
    cell(&text)
}

/// environments.json key by key, from the JSON Schema `surql config-schema` prints, as Markdown.
pub fn config(schema: &Value) -> String {
    let mut out = String::from(
        "# environments.json reference\n\nGenerated from its JSON Schema (`surql reference config > docs/reference/config.md`; the schema itself is `environments.schema.json`, from `surql config-schema`); a test fails when it is stale.\n",
    );
    let _ = write!(out, "\n## The file\n\n{}\n", cell(text_of(schema, "description")));
    keys(schema, &mut out);
    if let Some(definitions) = schema.get("$defs").and_then(Value::as_object) {
        for (name, definition) in definitions {
            let _ = write!(out, "\n## `{name}`\n\n{}\n", cell(text_of(definition, "description")));
            keys(definition, &mut out);
            if let Some(choices) = definition.get("oneOf").and_then(Value::as_array) {
                out.push_str("\n| Value | Meaning |\n|---|---|\n");
                for choice in choices {
                    let value = choice
                        .get("const")
                        .map(Value::to_string)
                        .unwrap_or_else(|| type_of(choice));
                    let _ = writeln!(out, "| `{value}` | {} |", cell(text_of(choice, "description")));
                }
            }
        }
    }
    out
}

fn keys(object: &Value, out: &mut String) {
    let Some(properties) = object.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = object
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("\n| Key | Type | Description |\n|---|---|---|\n");
    for (key, property) in properties {
        let mut description = cell(text_of(property, "description"));
        if required.contains(&key.as_str()) {
            description.push_str(" Required.");
        } else if let Some(default) = property.get("default").filter(|d| !d.is_null()) {
            let _ = write!(description, " Default: `{default}`.");
        }
        let _ = writeln!(out, "| `{key}` | {} | {description} |", type_of(property));
    }
}

/// A property's type: a named definition links to its section.
fn type_of(property: &Value) -> String {
    if let Some(reference) = property.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("[`{name}`](#{})", name.to_lowercase());
    }
    if let Some(items) = property.get("items") {
        return format!("array of {}", type_of(items));
    }
    for combinator in ["anyOf", "oneOf"] {
        if let Some(choices) = property.get(combinator).and_then(Value::as_array) {
            return choices.iter().map(type_of).collect::<Vec<_>>().join(" or ");
        }
    }
    match property.get("type") {
        Some(Value::String(name)) => name.clone(),
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" or "),
        _ => "any".to_string(),
    }
}

fn text_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Text fit for one Markdown table cell.
fn cell(text: &str) -> String {
    text.trim()
        .replace('|', "\\|")
        .replace("\n\n", "<br>")
        .replace('\n', " ")
}
