//! The options a deployment ran with, as its record keeps them (secrets
//! redacted): written by the coordinator when it starts, read back by
//! `resume` and `retry` to run it again the same way.

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// A field a person may have edited by hand: a value of the wrong type is
/// left out (its default applies), not a record nobody can read.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(deserializer: D) -> Result<Option<T>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

fn lenient_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<IndexMap<String, serde_json::Value>, D::Error> {
    Ok(lenient(deserializer)?.unwrap_or_default())
}

/// Who overrode a freeze for the deployment, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeOverride {
    /// The actor who ran the deployment with `--override-freeze`.
    pub by: String,
    /// The reason given to `--override-freeze`.
    pub reason: String,
}

/// A deployment's options as recorded. Every field is optional: records
/// written by older surql versions lack some.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RecordedOptions {
    /// Where the strategy came from: `built-in:NAME` or its file.
    #[serde(deserialize_with = "lenient")]
    pub strategy: Option<String>,
    /// Rolling: environments per batch.
    #[serde(deserialize_with = "lenient")]
    pub batch_size: Option<usize>,
    /// Canary: percentage of environments deployed first.
    #[serde(deserialize_with = "lenient")]
    pub canary_percent: Option<f64>,
    /// Environments deployed at once.
    #[serde(deserialize_with = "lenient")]
    pub max_concurrent: Option<usize>,
    /// Environments at once against one database server; `None`: no limit.
    #[serde(deserialize_with = "lenient")]
    pub max_per_server: Option<usize>,
    /// Round-trip time (milliseconds) above which a server gets no new
    /// environment until it recovers; `None`: no limit.
    #[serde(deserialize_with = "lenient")]
    pub max_server_latency_ms: Option<u64>,
    /// Whether discovery was expanded again before each wave.
    #[serde(deserialize_with = "lenient")]
    pub refresh_discovery: Option<bool>,
    /// A failure budget as given (`3`, `10%`).
    #[serde(deserialize_with = "lenient")]
    pub max_failures: Option<String>,
    /// Whether health was checked before deploying each environment.
    #[serde(deserialize_with = "lenient")]
    pub verify_health: Option<bool>,
    /// Whether a failed environment rolled back what the run applied.
    #[serde(deserialize_with = "lenient")]
    pub auto_rollback: Option<bool>,
    /// The `--set KEY=VALUE` options a script received.
    #[serde(deserialize_with = "lenient_map")]
    pub set: IndexMap<String, serde_json::Value>,
    /// A rollback's `--force`.
    #[serde(deserialize_with = "lenient")]
    pub force: Option<bool>,
    /// Seconds allowed to connect and sign in.
    #[serde(deserialize_with = "lenient")]
    pub connect_timeout_s: Option<f64>,
    /// Seconds one query (one migration) may take.
    #[serde(deserialize_with = "lenient")]
    pub operation_timeout_s: Option<f64>,
    /// Seconds a database's migration lock lasts without renewal.
    #[serde(deserialize_with = "lenient")]
    pub lock_ttl_s: Option<f64>,
    /// Set when frozen environments were deployed anyway; `None` otherwise.
    #[serde(deserialize_with = "lenient")]
    pub override_freeze: Option<FreezeOverride>,
}

impl RecordedOptions {
    /// The strategy's name to run it by again: a built-in's name, or the file.
    pub fn strategy_name(&self) -> &str {
        let strategy = self.strategy.as_deref().unwrap_or("sequential");
        strategy.strip_prefix("built-in:").unwrap_or(strategy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record edited by hand keeps what still reads, and older records read.
    #[test]
    fn wrong_types_fall_back_to_defaults() {
        let options: RecordedOptions = serde_json::from_value(serde_json::json!({
            "strategy": "built-in:canary", "batch_size": "five", "max_concurrent": 8,
            "set": ["not", "a", "map"], "lock_ttl_s": 30.0, "unknown": true
        }))
        .unwrap();
        assert_eq!(options.strategy_name(), "canary");
        assert_eq!((options.batch_size, options.max_concurrent), (None, Some(8)));
        assert!(options.set.is_empty());
        assert_eq!(options.lock_ttl_s, Some(30.0));
        assert_eq!(
            serde_json::from_value::<RecordedOptions>(serde_json::json!({})).unwrap(),
            RecordedOptions::default()
        );
    }
}
