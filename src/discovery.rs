//! Tenant discovery: expands `discover` templates of environments.json into
//! one environment per namespace (or database) found on a server and matching
//! a pattern, so 1,000 tenants are never listed by hand. Reads only.

use std::time::Duration;

use serde_json::json;

use crate::config::{EnvironmentTemplate, EnvironmentsFile};
use crate::connection::{AuthLevel, Client, connect_unscoped, run_query};
use crate::registry::EnvironmentConfig;

/// What one template expanded to.
#[derive(Debug, Clone)]
pub struct Expansion {
    /// The template's name (with its `{ns}`/`{db}` placeholder).
    pub template: String,
    /// The server searched, its URL without credentials.
    pub server: String,
    /// Names of the namespaces or databases found and matched, sorted; one
    /// environment each.
    pub environments: Vec<String>,
}

/// A template that could not be expanded.
#[derive(Debug, thiserror::Error)]
#[error("environments[{index}] ('{template}'): discovery on {server} failed: {message}")]
pub struct DiscoveryError {
    /// Position of the template in the file's `environments` list.
    pub index: usize,
    /// The template's name.
    pub template: String,
    /// The server searched, its URL without credentials.
    pub server: String,
    /// What went wrong: connecting, querying, a non-root user for namespace
    /// discovery, or a discovered name already taken.
    pub message: String,
}

/// True when `name` matches a glob with `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Expands every template of `file` into environments appended to
/// `file.environments` (sorted by discovered name), and clears the templates.
/// Each server is asked through `client`.
pub async fn expand_templates(
    client: &Client,
    file: &mut EnvironmentsFile,
    timeout: Duration,
) -> Result<Vec<Expansion>, DiscoveryError> {
    let templates = std::mem::take(&mut file.templates);
    file.listed_environments = file.environments.len();
    file.expanded_templates = templates.clone();
    let mut expansions = Vec::new();
    // A set, not a scan of the list per discovered name: 10,000 tenants stay O(N).
    let mut taken: std::collections::HashSet<String> = file.environments.iter().map(|e| e.name.clone()).collect();
    for template in &templates {
        let (names, expanded) = expand(client, template, timeout).await?;
        for environment in expanded {
            if !taken.insert(environment.name.clone()) {
                return Err(error(
                    template,
                    format!(
                        "discovered environment '{}' has the name of another environment",
                        environment.name
                    ),
                ));
            }
            file.environments.push(environment);
        }
        expansions.push(Expansion {
            template: template.name().to_string(),
            server: crate::connection::redact_url(&template.discover.connection.db_url),
            environments: names,
        });
    }
    Ok(expansions)
}

fn error(template: &EnvironmentTemplate, message: String) -> DiscoveryError {
    DiscoveryError {
        index: template.index,
        template: template.name().to_string(),
        server: crate::connection::redact_url(&template.discover.connection.db_url),
        message,
    }
}

async fn expand(
    client: &Client,
    template: &EnvironmentTemplate,
    timeout: Duration,
) -> Result<(Vec<String>, Vec<EnvironmentConfig>), DiscoveryError> {
    let base = &template.environment.connection;
    let by_namespace = template.by_namespace();
    let pattern = template
        .discover
        .namespaces
        .clone()
        .or(template.discover.databases.clone())
        .unwrap_or_default();
    let root_level = base.username.is_none() || base.auth_level == AuthLevel::Root;
    if !by_namespace && root_level {
        // Selecting a missing namespace would create it: look first.
        let db = connect_unscoped(client, base, timeout, false)
            .await
            .map_err(|e| error(template, e.to_string()))?;
        let info = run_query(&db, "INFO FOR ROOT;", json!({}))
            .await
            .map_err(|e| error(template, e.to_string()))?;
        if info
            .first()
            .and_then(|v| v.get("namespaces"))
            .and_then(|v| v.get(&base.db_ns))
            .is_none()
        {
            return Ok((Vec::new(), Vec::new()));
        }
    }
    let db = connect_unscoped(client, base, timeout, !by_namespace)
        .await
        .map_err(|e| error(template, e.to_string()))?;
    let (query, section) = if by_namespace {
        ("INFO FOR ROOT;", "namespaces")
    } else {
        ("INFO FOR NS;", "databases")
    };
    if by_namespace && base.username.is_some() && base.auth_level != AuthLevel::Root {
        return Err(error(
            template,
            "namespace discovery needs a root user (auth_level \"root\")".into(),
        ));
    }
    let info = run_query(&db, query, json!({}))
        .await
        .map_err(|e| error(template, e.to_string()))?;
    let mut found: Vec<String> = info
        .first()
        .and_then(|v| v.get(section))
        .and_then(|v| v.as_object())
        .map(|m| m.keys().filter(|k| glob_match(&pattern, k)).cloned().collect())
        .unwrap_or_default();
    found.sort();
    let environments = found.iter().map(|item| template.expand_to(item)).collect();
    Ok((found, environments))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("tenant_*", "tenant_acme"));
        assert!(glob_match("tenant_*", "tenant_"));
        assert!(!glob_match("tenant_*", "other_acme"));
        assert!(glob_match("t?n*_e?", "tenant_eu"));
        assert!(glob_match("*", "anything"));
        assert!(!glob_match("a*b", "acbx"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }
}
