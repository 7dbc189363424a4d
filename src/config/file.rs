//! environments.json: its types, parsing and validation. Every error names
//! the file and the JSON path.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::vars::expand_vars;
use crate::connection::endpoint_kind;
use crate::registry::{EnvironmentConfig, EnvironmentRegistry};

/// The whole environments.json.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentsFile {
    /// The environments, in file order (templates not yet expanded).
    pub environments: Vec<EnvironmentConfig>,
    /// Entries with `discover`: expanded (see [`crate::configure_environments`]) into one
    /// environment per namespace or database found on a server.
    #[serde(skip)]
    pub templates: Vec<EnvironmentTemplate>,
    /// The templates once expanded, and how many environments the file
    /// listed itself (the first ones): to expand them again mid-run.
    #[serde(skip)]
    pub expanded_templates: Vec<EnvironmentTemplate>,
    /// How many of `environments` the file listed itself; they come first, the
    /// expanded ones after.
    #[serde(skip)]
    pub listed_environments: usize,
    /// Plugin entries (`name`, `path`, `config`), with strings expanded.
    #[serde(default)]
    pub plugins: Vec<Value>,
    /// Where editors find the file's JSON Schema (`environments.schema.json`); not used otherwise.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// Where deployments are recorded, unless `--state` says otherwise.
    #[serde(default)]
    pub state: Option<StateConnection>,
    /// At most this many environments at once against one database server,
    /// unless `--max-per-server` says otherwise.
    #[serde(default)]
    pub max_per_server: Option<std::num::NonZeroUsize>,
    /// Change freezes: the environments each selects are SKIPPED while it is in force.
    #[serde(default)]
    pub freezes: Vec<Freeze>,
}

/// The state store's connection: `{"db_url": "ws://state:8000", "username": …, "password": …}`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConnection {
    /// `files://PATH` (a folder of record files), `surrealkv://PATH` (both relative to this file), or a SurrealDB server every runner shares.
    pub db_url: String,
    /// User name; a remote server is signed in to when it is set.
    #[serde(default)]
    pub username: Option<String>,
    /// Password of `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// Level of the user: `root` (default), `namespace` or `database`.
    #[serde(default)]
    pub auth_level: crate::connection::AuthLevel,
}

// The shape of environments.json for editors: generated from the types surql
// reads the file into, so it cannot drift from them.
/// surql's environments file: the databases to deploy to, and the plugins to load.
#[derive(schemars::JsonSchema)]
#[schemars(title = "surql environments.json")]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // only its schema is used
struct EnvironmentsFileSchema {
    /// This schema, for editors: `"./environments.schema.json"`.
    #[serde(rename = "$schema", default)]
    schema: Option<String>,
    /// The environments: each with a `connection`, or a `discover` template
    /// that becomes one environment per namespace or database found.
    environments: Vec<EnvironmentEntry>,
    /// Plugins loaded at run time (approvals, notifications).
    #[serde(default)]
    plugins: Vec<crate::plugin::PluginConfig>,
    /// Where deployments are recorded (default: JSON files in `files://.surql/deployments`).
    #[serde(default)]
    state: Option<StateConnection>,
    /// At most this many environments deployed at once against one database
    /// server (environments grouped by the server they connect to), under the
    /// overall concurrency; `--max-per-server` wins.
    #[serde(default)]
    max_per_server: Option<std::num::NonZeroUsize>,
    /// Change freezes: from `start` to `end` the environments each selects
    /// are SKIPPED, unless a deployment is run with `--override-freeze REASON`.
    #[serde(default)]
    freezes: Vec<Freeze>,
}

#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // only its schema is used
enum EnvironmentEntry {
    Environment(EnvironmentConfig),
    Template(EnvironmentTemplate),
}

/// The JSON Schema of environments.json (`surql config-schema`; shipped as
/// `environments.schema.json` at the repository root).
pub fn json_schema() -> serde_json::Result<Value> {
    serde_json::to_value(schemars::schema_for!(EnvironmentsFileSchema))
}

use super::template::{EnvironmentTemplate, parse_template, validate_template};
use crate::policy::Freeze;

/// A config file that cannot be used. Nothing is touched when this happens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read (missing, say, or not permitted).
    #[error("{}: cannot read: {error} (pass another file with --config)", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why reading failed.
        error: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("{}: invalid JSON at line {line}, column {column}: {message}", path.display())]
    Json {
        /// The config file.
        path: PathBuf,
        /// Line of the syntax error, from 1.
        line: usize,
        /// Column of the syntax error, from 1.
        column: usize,
        /// The JSON parser's message.
        message: String,
    },
    /// Valid JSON, but an unset `${VAR}`, unknown key, wrong type, duplicate
    /// name, bad URL or bad template.
    #[error("{}: {location}: {message}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// JSON path, with the environment's name when known.
        location: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Reads, expands and validates an environments file.
pub fn load_environments_file(path: impl AsRef<Path>) -> Result<EnvironmentsFile, ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse_environments(path, &text, &|name| std::env::var(name).ok())
}

impl EnvironmentsFile {
    /// A registry of the file's environments (names were checked unique).
    pub fn registry(&self) -> EnvironmentRegistry {
        let mut registry = EnvironmentRegistry::new();
        for environment in &self.environments {
            let mut environment = environment.clone();
            environment.freezes = (self.freezes.iter())
                .filter(|f| f.selects(&environment.name, &environment.tags))
                .cloned()
                .collect();
            let _ = registry.register(environment);
        }
        registry
    }
}

/// Parses text as an environments file; `lookup` resolves `${VAR}`.
pub fn parse_environments(
    path: &Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<EnvironmentsFile, ConfigError> {
    let mut raw: Value = serde_json::from_str(text).map_err(|e| ConfigError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let invalid = |location: String, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        location,
        message,
    };
    expand_value(&mut raw, "$".into(), lookup)
        .map_err(|(location, message)| invalid(describe_location(&raw_names(text), &location), message))?;
    // Everything secret in the file is masked in all output from here on.
    crate::redact::register_secrets_in(&raw);
    let names = environment_names(&raw);
    // Templates are taken out first; the rest must be plain environments.
    let mut templates = Vec::new();
    let mut template_positions = Vec::new();
    if let Some(entries) = raw.get_mut("environments").and_then(Value::as_array_mut) {
        let mut index = 0;
        entries.retain(|entry| {
            let is_template = entry.get("discover").is_some();
            if is_template {
                templates.push((index, entry.clone()));
            } else {
                template_positions.push(index);
            }
            index += 1;
            !is_template
        });
    }
    // Error paths must name the entry's position in the file, not in the filtered list.
    let file_index = |filtered: usize| template_positions.get(filtered).copied().unwrap_or(filtered);
    let remap = |location: String| -> String {
        match location.strip_prefix("$.environments[").and_then(|r| r.split_once(']')) {
            Some((i, tail)) => match i.parse::<usize>() {
                Ok(i) => format!("$.environments[{}]{tail}", file_index(i)),
                Err(_) => location.clone(),
            },
            None => location,
        }
    };
    let file: EnvironmentsFile = serde_path_to_error::deserialize(raw).map_err(|e| {
        let location = remap(format!("$.{}", e.path()));
        invalid(describe_location(&names, &location), e.inner().to_string())
    })?;
    let mut file = file;
    for (index, entry) in templates {
        let template = parse_template(entry, index)
            .and_then(|template| {
                let environment = &template.environment;
                not_blank(&environment.hold, &environment.pin_version)?;
                validate_template(&template)?;
                Ok(template)
            })
            .map_err(|(field, message)| {
                invalid(
                    describe_location(&names, &format!("$.environments[{index}].{field}")),
                    message,
                )
            })?;
        file.templates.push(template);
    }
    validate(&file).map_err(|(location, message)| invalid(describe_location(&names, &remap(location)), message))?;
    if let Some(base) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        for environment in &mut file.environments {
            environment.connection.db_url = relative_to(base, &environment.connection.db_url);
        }
        if let Some(state) = &mut file.state {
            state.db_url = relative_to(base, &state.db_url);
        }
    }
    Ok(file)
}

/// A relative `surrealkv://` or `files://` path is relative to the config
/// file, not to the directory surql happens to run in.
fn relative_to(base: &Path, db_url: &str) -> String {
    for scheme in ["surrealkv://", "files://"] {
        if let Some(path) = db_url.strip_prefix(scheme)
            && !path.is_empty()
            && Path::new(path).is_relative()
        {
            return format!("{scheme}{}", base.join(path).display());
        }
    }
    db_url.to_string()
}

fn raw_names(text: &str) -> Vec<Option<String>> {
    serde_json::from_str::<Value>(text)
        .map(|v| environment_names(&v))
        .unwrap_or_default()
}

fn environment_names(raw: &Value) -> Vec<Option<String>> {
    raw.get("environments")
        .and_then(Value::as_array)
        .map(|envs| {
            envs.iter()
                .map(|e| e.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `$.environments[1].connection.password` → `environments[1] (staging).connection.password`.
fn describe_location(names: &[Option<String>], location: &str) -> String {
    let location = location.trim_start_matches("$.").trim_start_matches('$');
    let location = if location.is_empty() { "(top level)" } else { location };
    if let Some(rest) = location.strip_prefix("environments[")
        && let Some((index, tail)) = rest.split_once(']')
        && let Ok(i) = index.parse::<usize>()
        && let Some(Some(name)) = names.get(i)
    {
        return format!("environments[{i}] ('{name}'){tail}");
    }
    location.to_string()
}

fn validate(file: &EnvironmentsFile) -> Result<(), (String, String)> {
    let mut seen = std::collections::HashSet::new();
    for (i, env) in file.environments.iter().enumerate() {
        let at = |field: &str| format!("$.environments[{i}].{field}");
        if env.name.trim().is_empty() {
            return Err((at("name"), "an environment needs a non-empty name".into()));
        }
        if env.name.contains(',')
            || env.name.starts_with("tag:")
            || env.name.starts_with("surrealdb:")
            || env.name == "all"
        {
            return Err((
                at("name"),
                format!(
                    "'{}' cannot be an environment name: commas, 'tag:', 'surrealdb:' and 'all' have a meaning in -e",
                    env.name
                ),
            ));
        }
        if !seen.insert(env.name.as_str()) {
            return Err((
                at("name"),
                format!("duplicate environment name '{}': names must be unique", env.name),
            ));
        }
        if let Err(e) = endpoint_kind(&env.connection.db_url) {
            return Err((at("connection.db_url"), e.to_string()));
        }
        not_blank(&env.hold, &env.pin_version).map_err(|(field, message)| (at(&field), message))?;
        for (field, value) in [
            ("connection.db_ns", &env.connection.db_ns),
            ("connection.db", &env.connection.db),
        ] {
            if value.trim().is_empty() {
                return Err((at(field), "must not be empty".into()));
            }
        }
    }
    Ok(())
}

/// `hold` and `pin_version` say something when given.
fn not_blank(hold: &Option<String>, pin_version: &Option<String>) -> Result<(), (String, String)> {
    if hold.as_deref().is_some_and(|h| h.trim().is_empty()) {
        return Err((
            "hold".into(),
            "give the reason it is held (\"hold\": \"REASON\"), or remove \"hold\"".into(),
        ));
    }
    if pin_version.as_deref().is_some_and(|v| v.trim().is_empty()) {
        return Err((
            "pin_version".into(),
            "give a migration version, or remove \"pin_version\"".into(),
        ));
    }
    Ok(())
}

/// Expands `${VAR}` and `${VAR:-default}` in every string of `value`.
fn expand_value(
    value: &mut Value,
    location: String,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    match value {
        Value::String(s) => {
            *s = expand_vars(s, lookup).map_err(|m| (location, m.to_string()))?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, format!("{location}[{i}]"), lookup)?;
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                expand_value(item, format!("{location}.{key}"), lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::vars::tests::vars;
    use super::*;

    fn parse(text: &str) -> Result<EnvironmentsFile, ConfigError> {
        parse_environments(Path::new("environments.json"), text, &vars)
    }

    #[test]
    fn guide_format_with_defaults() {
        let file = parse(
            r#"{"environments": [{"name": "dev", "connection": {"db_url": "mem://", "db_ns": "d", "db": "main",
                "username": "root", "password": "${PASS}"}}]}"#,
        )
        .unwrap();
        let env = &file.environments[0];
        assert_eq!(env.priority, 100);
        assert!(env.tags.is_empty());
        assert!(!env.require_approval);
        assert!(env.allow_destructive);
        assert_eq!(env.connection.password.as_deref(), Some("s3cret"));
    }

    #[test]
    fn unset_variable_names_variable_and_environment() {
        let err = parse(
            r#"{"environments": [{"name": "staging", "connection": {"db_url": "mem://", "db_ns": "d", "db": "m",
                "password": "${STAGING_PASSWORD}"}}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("environments[0] ('staging').connection.password"), "{err}");
        assert!(err.contains("${STAGING_PASSWORD} is not set"), "{err}");
    }

    #[test]
    fn unknown_keys_duplicates_and_bad_urls_name_the_path() {
        let err = parse(r#"{"environments": [{"name": "a", "priorty": 1, "connection": {"db_url": "mem://", "db_ns": "d", "db": "m"}}]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("environments[0] ('a')") && err.contains("priorty"),
            "{err}"
        );

        let err = parse(r#"{"environments": [{"name": "a", "connection": {"db_url": "mem://", "db_ns": "d", "db": "m"}},
                                              {"name": "a", "connection": {"db_url": "mem://", "db_ns": "d", "db": "m"}}]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("environments[1] ('a').name") && err.contains("duplicate"),
            "{err}"
        );

        let err = parse(
            r#"{"environments": [{"name": "a", "connection": {"db_url": "postgres://x", "db_ns": "d", "db": "m"}}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("connection.db_url") && err.contains("unsupported"),
            "{err}"
        );

        let err =
            parse(r#"{"environments": [{"name": "a", "connection": {"db_url": "mem://", "db_ns": "d", "db": "m"}}"#)
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("environments.json: invalid JSON"), "{err}");
    }
}
