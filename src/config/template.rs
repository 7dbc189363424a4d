//! Discovery templates: an environments.json entry with `discover` that
//! expands into one environment per namespace or database found. Every
//! other field of the entry is an environment's own, read as one: a policy
//! field added to environments reaches templates with nothing to repeat.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::connection::{ConnectionConfig, endpoint_kind};
use crate::registry::EnvironmentConfig;

/// `{"name": "tenant-{ns}", "discover": {...}, …}`: one environment per match.
#[derive(Debug, Clone)]
pub struct EnvironmentTemplate {
    /// The server to search and the namespace or database names to match.
    pub discover: Discover,
    /// What each environment it expands to starts from: the name with its
    /// `{ns}` or `{db}`, the entry's other fields (`priority`, `tags`,
    /// `hold`, …), and `discover.connection`, whose namespace or database
    /// each match fills in.
    pub environment: EnvironmentConfig,
    /// Position in the file's `environments` list, for error messages.
    pub index: usize,
}

impl EnvironmentTemplate {
    /// The name, with its `{ns}` or `{db}` placeholder.
    pub fn name(&self) -> &str {
        &self.environment.name
    }

    /// Whether it matches namespaces (else databases of one namespace).
    pub fn by_namespace(&self) -> bool {
        self.discover.namespaces.is_some()
    }

    /// The environment for `found`, a matching namespace or database.
    pub fn expand_to(&self, found: &str) -> EnvironmentConfig {
        let mut environment = self.environment.clone();
        let placeholder = if self.by_namespace() {
            environment.connection.db_ns = found.to_string();
            "{ns}"
        } else {
            environment.connection.db = found.to_string();
            "{db}"
        };
        environment.name = self.environment.name.replace(placeholder, found);
        environment
    }
}

/// Where to look and what to match.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Discover {
    /// The server; `db_ns`/`db` are the fixed parts (`db` for namespace
    /// discovery, `db_ns` for database discovery).
    pub connection: DiscoverConnection,
    /// Glob (`*`, `?`) over namespace names.
    #[serde(default)]
    pub namespaces: Option<String>,
    /// Glob over database names of `connection.db_ns`.
    #[serde(default)]
    pub databases: Option<String>,
}

/// The connection part of a template.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverConnection {
    /// The server: `ws://host:8000[/rpc]`, `wss://…`, `http(s)://…`, `mem://`, `surrealkv://path`.
    pub db_url: String,
    /// Namespace searched for databases; required for `databases` discovery,
    /// ignored for `namespaces` discovery.
    #[serde(default)]
    pub db_ns: Option<String>,
    /// Database of every discovered namespace; required for `namespaces`
    /// discovery, ignored for `databases` discovery.
    #[serde(default)]
    pub db: Option<String>,
    /// User name; the server is signed in to when it is set (namespace
    /// discovery needs a root user).
    #[serde(default)]
    pub username: Option<String>,
    /// Password of `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// Level of the user: `root` (default), `namespace` or `database`.
    #[serde(default)]
    pub auth_level: crate::connection::AuthLevel,
}

impl DiscoverConnection {
    /// The connection every match starts from (the part it fills in empty).
    fn base(&self) -> ConnectionConfig {
        ConnectionConfig {
            db_url: self.db_url.clone(),
            db_ns: self.db_ns.clone().unwrap_or_default(),
            db: self.db.clone().unwrap_or_default(),
            username: self.username.clone(),
            password: self.password.clone(),
            auth_level: self.auth_level,
        }
    }
}

/// An environment's schema with `discover` in place of `connection`.
impl schemars::JsonSchema for EnvironmentTemplate {
    fn schema_name() -> Cow<'static, str> {
        "EnvironmentTemplate".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = EnvironmentConfig::json_schema(generator);
        let discover = generator.subschema_for::<Discover>();
        if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            properties.remove("connection");
            let mut discover = discover.to_value();
            if let Some(discover) = discover.as_object_mut() {
                discover.insert(
                    "description".into(),
                    "The server to search and the namespace or database names to match.".into(),
                );
            }
            properties.insert("discover".into(), discover);
            properties.insert(
                "name".into(),
                json!({
                    "type": "string",
                    "description": "Contains `{ns}` (namespace discovery) or `{db}` (database discovery): each match's name replaces it."
                }),
            );
        }
        if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|field| field != "connection");
            required.push("discover".into());
        }
        schema.insert("title".into(), "EnvironmentTemplate".into());
        schema.insert(
            "description".into(),
            "`{\"name\": \"tenant-{ns}\", \"discover\": {...}, …}`: one environment per namespace or database found; every other field is an environment's own, given to each.".into(),
        );
        schema
    }
}

/// Reads a template entry (one with `discover`); `Err((field, message))`.
pub(super) fn parse_template(entry: Value, index: usize) -> Result<EnvironmentTemplate, (String, String)> {
    let at = |prefix: &str, path: String| match (prefix, path.as_str()) {
        (prefix, ".") => prefix.to_string(),
        ("", path) => path.to_string(),
        (prefix, path) => format!("{prefix}.{path}"),
    };
    let Value::Object(mut fields) = entry else {
        return Err(("discover".into(), "a template is an object".into()));
    };
    if fields.contains_key("connection") {
        return Err((
            "connection".into(),
            "a template searches the server in discover.connection: remove \"connection\"".into(),
        ));
    }
    let discover: Discover = serde_path_to_error::deserialize(fields.remove("discover").unwrap_or(Value::Null))
        .map_err(|e| (at("discover", e.path().to_string()), e.inner().to_string()))?;
    // The rest is read as an environment; its connection is the template's server.
    fields.insert("connection".into(), json!({ "db_url": "", "db_ns": "", "db": "" }));
    let mut environment: EnvironmentConfig = serde_path_to_error::deserialize(Value::Object(fields)).map_err(|e| {
        // An unknown field's list of those expected names a template's own.
        let message = e.inner().to_string().replace("`connection`", "`discover`");
        (at("", e.path().to_string()), message)
    })?;
    environment.connection = discover.connection.base();
    Ok(EnvironmentTemplate {
        discover,
        environment,
        index,
    })
}

/// The template's own rules (the fields an environment has are checked as an
/// environment's, by the loader).
pub(super) fn validate_template(template: &EnvironmentTemplate) -> Result<(), (String, String)> {
    let discover = &template.discover;
    let (placeholder, fixed, fixed_field) = match (&discover.namespaces, &discover.databases) {
        (Some(_), None) => ("{ns}", &discover.connection.db, "discover.connection.db"),
        (None, Some(_)) => ("{db}", &discover.connection.db_ns, "discover.connection.db_ns"),
        _ => {
            return Err((
                "discover".into(),
                "give exactly one of \"namespaces\" or \"databases\" (a pattern such as \"tenant_*\")".into(),
            ));
        }
    };
    if !template.name().contains(placeholder) {
        return Err((
            "name".into(),
            format!(
                "'{}' must contain {placeholder} so each discovered environment gets its own name",
                template.name()
            ),
        ));
    }
    if fixed.as_deref().is_none_or(|v| v.trim().is_empty()) {
        return Err((fixed_field.into(), "is required for this kind of discovery".into()));
    }
    endpoint_kind(&discover.connection.db_url).map_err(|e| ("discover.connection.db_url".into(), e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A template's fields give each environment exactly what the same
    /// fields give an environment listed by hand.
    #[test]
    fn an_expanded_environment_is_the_same_entry_written_by_hand() {
        let policy = json!({
            "priority": 7, "tags": ["tenant", "eu"], "require_approval": true, "allow_destructive": false,
            "approvers": ["gate"], "promote_from": ["tag:staging"], "hold": "audit",
            "pin_version": "0002", "window": {"days": ["sat"], "start": "01:00", "end": "05:00"}
        });
        let mut template = json!({"name": "tenant-{ns}", "discover": {
            "connection": {"db_url": "ws://db:8000", "db": "main", "username": "root", "password": "pw"},
            "namespaces": "t_*"}});
        let mut by_hand = json!({"name": "tenant-t_acme", "connection": {
            "db_url": "ws://db:8000", "db_ns": "t_acme", "db": "main", "username": "root", "password": "pw"}});
        for entry in [&mut template, &mut by_hand] {
            entry
                .as_object_mut()
                .unwrap()
                .extend(policy.as_object().unwrap().clone());
        }
        let template = parse_template(template, 3).unwrap();
        validate_template(&template).unwrap();
        let by_hand: EnvironmentConfig = serde_json::from_value(by_hand).unwrap();
        assert_eq!(template.expand_to("t_acme"), by_hand);
        assert_eq!(template.index, 3);
    }

    #[test]
    fn a_bad_template_names_the_field() {
        let discover = json!({"connection": {"db_url": "mem://", "db": "m"}, "namespaces": "*"});
        for (entry, field, message) in [
            (
                json!({"name": "t-{ns}", "discover": discover, "priorty": 5}),
                "priorty",
                "unknown field `priorty`, expected one of `name`, `discover`, `priority`",
            ),
            (
                json!({"name": "t-{ns}", "discover": discover, "tags": "eu"}),
                "tags",
                "invalid type",
            ),
            (
                json!({"name": "t-{ns}", "discover": discover, "connection": {"db_url": "mem://"}}),
                "connection",
                "remove \"connection\"",
            ),
            (
                json!({"name": "t-{ns}", "discover": {"connection": {"db_url": 5}, "namespaces": "*"}}),
                "discover.connection.db_url",
                "invalid type",
            ),
            (json!({"discover": discover}), "", "missing field `name`"),
        ] {
            let (at, error) = parse_template(entry, 0).unwrap_err();
            assert!(at == field && error.contains(message), "{field}: {at}: {error}");
        }
    }

    #[test]
    fn the_schema_of_a_template_takes_discover_in_place_of_connection() {
        let schema = serde_json::to_value(schemars::schema_for!(EnvironmentTemplate)).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        assert!(properties.contains_key("discover") && !properties.contains_key("connection"));
        assert!(properties.contains_key("pin_version") && properties.contains_key("window"));
        let required = schema["required"].as_array().unwrap();
        assert!(required.contains(&json!("discover")) && !required.contains(&json!("connection")));
    }
}
