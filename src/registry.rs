//! `EnvironmentConfig` and `EnvironmentRegistry`: the known environments and
//! the selection of some of them (`a,b`, `all`, `tag:x`). No I/O.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::connection::ConnectionConfig;
use crate::policy::{Freeze, Verdict, Window};

/// Default priority (lower deploys first).
pub const DEFAULT_PRIORITY: i64 = 100;

/// One database environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// Unique name.
    pub name: String,
    /// Where the database is.
    pub connection: ConnectionConfig,
    /// Deployment order: lower first.
    #[serde(default = "default_priority")]
    pub priority: i64,
    /// Labels for selection (`-e tag:production`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// A person (or an approval plugin) must approve deploying here.
    #[serde(default)]
    pub require_approval: bool,
    /// When false, migrations with data-losing statements are refused here.
    #[serde(default = "default_true")]
    pub allow_destructive: bool,
    /// Approval plugins asked before deploying here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Promotion rule: a migration version is deployed here only once it
    /// ended SUCCESS on every environment these select (names, `tag:X`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promote_from: Vec<String>,
    /// Deploy only while this weekly maintenance window is open; outside it
    /// the environment is SKIPPED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// Why it is held: while set it is SKIPPED and never connected to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
    /// Deploy migrations up to and including this version, no further.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_version: Option<String>,
    /// The file's top-level `freezes` that select it (set when the file is loaded).
    #[serde(skip)]
    #[schemars(skip)]
    pub freezes: Vec<Freeze>,
}

pub(crate) fn default_priority() -> i64 {
    DEFAULT_PRIORITY
}

pub(crate) fn default_true() -> bool {
    true
}

impl EnvironmentConfig {
    /// Whether deploying here needs an approval: `require_approval`, or
    /// approver plugins named (the one place this is decided).
    pub fn needs_approval(&self) -> bool {
        self.require_approval || !self.approvers.is_empty()
    }

    /// An environment with the guide's defaults.
    pub fn new(name: impl Into<String>, connection: ConnectionConfig) -> Self {
        Self {
            name: name.into(),
            connection,
            priority: DEFAULT_PRIORITY,
            tags: Vec::new(),
            require_approval: false,
            allow_destructive: true,
            approvers: Vec::new(),
            promote_from: Vec::new(),
            window: None,
            hold: None,
            pin_version: None,
            freezes: Vec::new(),
        }
    }

    /// Whether it may be deployed at `now`: its hold, a freeze in force
    /// (unless overridden), its window (the order `policy::gate` decides in).
    pub fn gate(&self, now: chrono::DateTime<chrono::Utc>, override_freeze: bool) -> Verdict {
        crate::policy::gate(
            self.hold.as_deref(),
            &self.freezes,
            self.window.as_ref(),
            now,
            override_freeze,
        )
    }

    /// Whether it carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// Why a selection or registration failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No environment has this name.
    #[error("Environment '{name}' not found in registry (known: {})", some_of(known))]
    NotFound {
        /// The name asked for.
        name: String,
        /// Every registered name, in registration order.
        known: Vec<String>,
    },
    /// A `tag:X` item selects no environment.
    #[error("no environment has tag '{tag}' (known tags: {})", some_of(known))]
    NoSuchTag {
        /// The tag asked for (without `tag:`).
        tag: String,
        /// Every tag some environment carries, sorted, each once.
        known: Vec<String>,
    },
    /// A `surrealdb:N` item selects no environment: none of them is on a
    /// server of that major version (or none could be asked).
    #[error("no environment is on a SurrealDB {major}.x server{}", unknown_servers(unknown))]
    NoServerOfVersion {
        /// The major version asked for.
        major: u64,
        /// Environments whose server's version could not be learned.
        unknown: Vec<String>,
    },
    /// A `surrealdb:` item without a major version number.
    #[error("'{0}' is not a server version selector: give surrealdb:MAJOR, e.g. surrealdb:4")]
    NotAServerVersion(String),
    /// An environment was registered under a name already taken (the name).
    #[error("environment '{0}' is registered twice: names must be unique")]
    Duplicate(String),
    /// The `-e` items were empty, so nothing was selected.
    #[error("no environments selected: pass -e NAME[,NAME], -e all or -e tag:TAG")]
    EmptySelection,
}

fn unknown_servers(unknown: &[String]) -> String {
    match unknown.len() {
        0 => String::new(),
        _ => format!(
            " (the version of these environments' servers could not be learned: {})",
            some_of(unknown)
        ),
    }
}

/// The major version a `surrealdb:N` selection item names.
pub fn server_major_item(item: &str) -> Option<Result<u64, RegistryError>> {
    let major = item.trim().strip_prefix("surrealdb:")?;
    Some(
        major
            .trim()
            .parse::<u64>()
            .map_err(|_| RegistryError::NotAServerVersion(item.trim().to_string())),
    )
}

/// The first names of a list for a message; a fleet of 10,000 is not printed whole.
pub fn some_of(names: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut text = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// The known environments, in registration order.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentRegistry {
    environments: IndexMap<String, EnvironmentConfig>,
}

impl EnvironmentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an environment; a second one with the same name is an error.
    pub fn register(&mut self, environment: EnvironmentConfig) -> Result<(), RegistryError> {
        if self.environments.contains_key(&environment.name) {
            return Err(RegistryError::Duplicate(environment.name));
        }
        self.environments.insert(environment.name.clone(), environment);
        Ok(())
    }

    /// The guide's `register_environment(name, connection, priority, tags)`.
    pub fn register_environment(
        &mut self,
        name: impl Into<String>,
        connection: ConnectionConfig,
        priority: i64,
        tags: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<(), RegistryError> {
        let mut environment = EnvironmentConfig::new(name, connection);
        environment.priority = priority;
        environment.tags = tags.into_iter().map(Into::into).collect();
        self.register(environment)
    }

    /// One environment by name.
    pub fn get(&self, name: &str) -> Result<&EnvironmentConfig, RegistryError> {
        self.environments.get(name).ok_or_else(|| RegistryError::NotFound {
            name: name.to_string(),
            known: self.names(),
        })
    }

    /// Every environment, in registration order.
    pub fn list(&self) -> Vec<&EnvironmentConfig> {
        self.environments.values().collect()
    }

    /// Environments carrying `tag`.
    pub fn by_tag(&self, tag: &str) -> Vec<&EnvironmentConfig> {
        self.environments.values().filter(|e| e.has_tag(tag)).collect()
    }

    /// Names, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.environments.keys().cloned().collect()
    }

    /// Number of environments.
    pub fn len(&self) -> usize {
        self.environments.len()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.environments.is_empty()
    }

    /// Resolves `-e` items (`name`, `all`, `tag:x`, comma-separated and
    /// combinable) to environments, each once, in the order given (`all` and
    /// tags expand in registration order).
    pub fn select<S: AsRef<str>>(&self, items: &[S]) -> Result<Vec<&EnvironmentConfig>, RegistryError> {
        self.select_with(items, |_| None)
    }

    /// [`Self::select`], where a `surrealdb:N` item selects the environments
    /// whose server is on major version N, as `major_of` knows them (the
    /// coordinator asks the servers; `None` for one it could not ask).
    pub fn select_with<S: AsRef<str>>(
        &self,
        items: &[S],
        major_of: impl Fn(&EnvironmentConfig) -> Option<u64>,
    ) -> Result<Vec<&EnvironmentConfig>, RegistryError> {
        let mut chosen: IndexMap<&str, &EnvironmentConfig> = IndexMap::new();
        for item in items.iter().flat_map(|i| i.as_ref().split(',')) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            if let Some(major) = server_major_item(item) {
                let major = major?;
                let on_it: Vec<&EnvironmentConfig> = self
                    .environments
                    .values()
                    .filter(|e| major_of(e) == Some(major))
                    .collect();
                if on_it.is_empty() {
                    let unknown = (self.environments.values())
                        .filter(|e| major_of(e).is_none())
                        .map(|e| e.name.clone())
                        .collect();
                    return Err(RegistryError::NoServerOfVersion { major, unknown });
                }
                chosen.extend(on_it.into_iter().map(|e| (e.name.as_str(), e)));
            } else if item == "all" {
                chosen.extend(self.environments.iter().map(|(k, v)| (k.as_str(), v)));
            } else if let Some(tag) = item.strip_prefix("tag:") {
                let tagged = self.by_tag(tag);
                if tagged.is_empty() {
                    let mut known: Vec<String> = self
                        .environments
                        .values()
                        .flat_map(|e| e.tags.iter().cloned())
                        .collect();
                    known.sort();
                    known.dedup();
                    return Err(RegistryError::NoSuchTag {
                        tag: tag.to_string(),
                        known,
                    });
                }
                chosen.extend(tagged.into_iter().map(|e| (e.name.as_str(), e)));
            } else {
                let environment = self.get(item)?;
                chosen.insert(environment.name.as_str(), environment);
            }
        }
        if chosen.is_empty() {
            return Err(RegistryError::EmptySelection);
        }
        Ok(chosen.into_values().collect())
    }
}

/// One runner's part of a selection split across N runners (`--shard I/N`,
/// I from 0 as a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`): the
/// environments whose name hashes to I. The hash (FNV-1a) is the same on
/// every machine and release, so the N parts cover the selection exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This runner's part, from 0 to `count - 1`.
    pub index: usize,
    /// How many runners the selection is split across (at least 1).
    pub count: usize,
}

/// Why a shard was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// `N` was 0.
    #[error("the number of shards must be at least 1")]
    NoShards,
    /// `I` was not below `N`.
    #[error("shard {index}/{count}: the index runs from 0 to {} (as JOB_COMPLETION_INDEX does)", count - 1)]
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// The number of shards given.
        count: usize,
    },
    /// The text was not `I/N`.
    #[error("'{text}' is not a shard: give I/N, e.g. 0/3 (the first of three)")]
    NotAShard {
        /// What was given.
        text: String,
    },
}

impl Shard {
    /// Shard `index` of `count` (0 ≤ index < count).
    pub fn new(index: usize, count: usize) -> Result<Self, ShardError> {
        if count == 0 {
            return Err(ShardError::NoShards);
        }
        if index >= count {
            return Err(ShardError::IndexOutOfRange { index, count });
        }
        Ok(Self { index, count })
    }

    /// `I/N`, as `--shard` takes it.
    pub fn parse(text: &str) -> Result<Self, ShardError> {
        let bad = || ShardError::NotAShard { text: text.to_string() };
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let number = |n: &str| n.trim().parse::<usize>().map_err(|_| bad());
        Self::new(number(index)?, number(count)?)
    }

    /// Whether environment `name` belongs to this shard.
    pub fn contains(&self, name: &str) -> bool {
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        hash % self.count as u64 == self.index as u64
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Deployment order: priority (lower first), then name.
pub fn deployment_order(environments: &mut [EnvironmentConfig]) {
    environments.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.name.cmp(&b.name)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_name_lists_are_cut_in_messages() {
        let names: Vec<String> = (0..10_000).map(|i| format!("tenant-{i}")).collect();
        let text = some_of(&names);
        assert!(text.starts_with("tenant-0, tenant-1,"));
        assert!(text.ends_with("tenant-19 and 9980 more"), "{text}");
        assert_eq!(some_of(&names[..2]), "tenant-0, tenant-1");
    }

    fn registry() -> EnvironmentRegistry {
        let mut r = EnvironmentRegistry::new();
        let conn = |ns: &str| ConnectionConfig::new("mem://", ns, "main");
        r.register_environment("production", conn("p"), 1, ["production", "critical"])
            .unwrap();
        r.register_environment("staging", conn("s"), 50, ["staging"]).unwrap();
        r.register_environment("dev", conn("d"), 100, ["dev"]).unwrap();
        r.register_environment("prod-eu", conn("pe"), 1, ["production"])
            .unwrap();
        r
    }

    fn names(selected: Vec<&EnvironmentConfig>) -> Vec<&str> {
        selected.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn selection_keeps_input_order_without_duplicates() {
        let r = registry();
        assert_eq!(
            names(r.select(&["all"]).unwrap()),
            ["production", "staging", "dev", "prod-eu"]
        );
        assert_eq!(names(r.select(&["dev,staging"]).unwrap()), ["dev", "staging"]);
        assert_eq!(
            names(r.select(&["tag:production", "dev"]).unwrap()),
            ["production", "prod-eu", "dev"]
        );
        assert_eq!(names(r.select(&["staging,tag:staging"]).unwrap()), ["staging"]);
    }

    #[test]
    fn deployment_order_is_priority_then_name() {
        let r = registry();
        let mut envs: Vec<EnvironmentConfig> = r.select(&["all"]).unwrap().into_iter().cloned().collect();
        deployment_order(&mut envs);
        let order: Vec<&str> = envs.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(order, ["prod-eu", "production", "staging", "dev"]);
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = registry().select(&["prod"]).unwrap_err().to_string();
        assert_eq!(
            err,
            "Environment 'prod' not found in registry (known: production, staging, dev, prod-eu)"
        );
        assert!(registry().select(&["tag:nope"]).is_err());
        assert_eq!(registry().select::<&str>(&[]), Err(RegistryError::EmptySelection));
    }

    #[test]
    fn shards_cover_a_selection_exactly_once_and_evenly() {
        let names: Vec<String> = (0..3000).map(|i| format!("tenant-{i}")).collect();
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        let mut sizes = [0usize; 3];
        for name in &names {
            let owners: Vec<usize> = shards.iter().filter(|s| s.contains(name)).map(|s| s.index).collect();
            assert_eq!(owners.len(), 1, "{name} in {owners:?}");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 900), "{sizes:?}");
        // Stable: the same name, the same shard, on every machine and release
        // (a different hash would move tenants between runners mid-rollout).
        let owner = |name: &str| shards.iter().position(|s| s.contains(name)).unwrap();
        let owners: Vec<usize> = (0..6).map(|i| owner(&format!("tenant-{i}"))).collect();
        assert_eq!(owners, [2, 0, 1, 2, 0, 1]);
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        assert!(Shard::parse("3/3").unwrap_err().to_string().contains("from 0 to 2"));
        assert!(Shard::parse("x").unwrap_err().to_string().contains("I/N"));
        assert_eq!(Shard::parse("0/0"), Err(ShardError::NoShards));
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut r = registry();
        let again = EnvironmentConfig::new("dev", ConnectionConfig::new("mem://", "x", "y"));
        assert_eq!(r.register(again), Err(RegistryError::Duplicate("dev".into())));
    }
}
