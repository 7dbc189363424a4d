//! An example gate to copy: before each wave, one Prometheus-style query
//! (`GET query_url`, e.g. `http://prometheus:9090/api/v1/query?query=…`);
//! the wave may start while the first sample's value is at most `threshold`,
//! and halts above it. A query that fails, or answers no sample, halts too
//! (a check that cannot be made is no go-ahead) unless `when_no_data` is
//! `"continue"`.
//!
//! environments.json:
//! ```json
//! "plugins": [{"name": "error-rate", "path": "target/debug/libsurql_metric_gate.so",
//!              "config": {"query_url": "http://prometheus:9090/api/v1/query?query=job:errors:rate5m",
//!                         "threshold": 0.05, "metric": "error rate"}}]
//! ```

use serde_json::Value;
use surql_plugin_sdk::{Gate, HOOK_GATE, Plugin, declare_plugin, http_agent, text};

/// Lets a wave through only while a metric read over HTTP stays under its limit.
pub struct MetricGate {
    query_url: String,
    threshold: f64,
    /// What the metric is called in the halt reason.
    metric: String,
    continue_without_data: bool,
    agent: ureq::Agent,
}

/// The first sample of a Prometheus `/api/v1/query` answer (a vector or a scalar).
pub fn first_sample(answer: &Value) -> Option<f64> {
    let data = &answer["data"];
    let value = match data["resultType"].as_str() {
        Some("scalar") => &data["result"][1],
        _ => &data["result"][0]["value"][1],
    };
    // "NaN" (0/0) or ±Inf is no reading: the gate halts on it.
    value
        .as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .or_else(|| value.as_f64())
        .filter(|v| v.is_finite())
}

impl Plugin for MetricGate {
    fn create(config: Value) -> Result<Self, String> {
        let query_url = text(&config, "query_url").ok_or("config needs \"query_url\" (a Prometheus query URL)")?;
        let threshold = config["threshold"]
            .as_f64()
            .filter(|t| t.is_finite())
            .ok_or("config needs \"threshold\", a number")?;
        let continue_without_data = match config["when_no_data"].as_str() {
            None | Some("halt") => false,
            Some("continue") => true,
            Some(other) => {
                return Err(format!(
                    "config.when_no_data must be \"halt\" or \"continue\", got \"{other}\""
                ));
            }
        };
        Ok(MetricGate {
            query_url,
            threshold,
            metric: text(&config, "metric").unwrap_or_else(|| "the metric".into()),
            continue_without_data,
            agent: http_agent(&config)?,
        })
    }

    fn gate(&self, request: &Value) -> Result<Gate, String> {
        let before = request["label"].as_str().unwrap_or("the next wave");
        let mut response = self
            .agent
            .get(&self.query_url)
            .call()
            .map_err(|e| format!("query: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Ok(Gate::Halt(format!("{} could not be read (HTTP {status})", self.metric)));
        }
        let answer: Value = response.body_mut().read_json().map_err(|e| format!("query: {e}"))?;
        Ok(match first_sample(&answer) {
            Some(value) if value > self.threshold => Gate::Halt(format!(
                "{} is {value}, above {} — {before} waits",
                self.metric, self.threshold
            )),
            Some(_) => Gate::Continue,
            None if self.continue_without_data => Gate::Continue,
            None => Gate::Halt(format!("{} has no sample (the query answered {answer})", self.metric)),
        })
    }
}

declare_plugin!(MetricGate, "metric-gate", hooks = HOOK_GATE);
