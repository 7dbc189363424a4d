//! PagerDuty for surql.
//!
//! - `notify`: a change event per deployment (on `deployment_finished`), an
//!   alert triggered when an environment fails or is rolled back, resolved when
//!   a later deployment of it succeeds (dedup key `surql-<environment>`), all
//!   through the Events API v2.
//! - `gate`: halts the next wave while `service_id` has open (triggered or
//!   acknowledged) incidents, read through the REST API — before every wave,
//!   not only at an approval. Without `api_token`/`service_id` it lets every
//!   wave through.
//! - `approve`: the same incident check as an approver; with `routing_key`,
//!   each approval request is also sent as a change event whose custom
//!   details carry what is being approved (migrations, checksums,
//!   destructive statements, environments).
//!
//! Config: `routing_key` (Events API v2 integration key), `events_url` (default
//! `https://events.pagerduty.com/v2`), `api_token` and `service_id` (the gate),
//! `api_url` (default `https://api.pagerduty.com`), `source` (default `surql`),
//! `timeout_seconds` (HTTP, default 10).

use serde_json::{Value, json};
use surql_plugin_sdk::{
    Approval, Gate, HOOK_APPROVE, HOOK_GATE, HOOK_NOTIFY, Plugin, base_url, declare_plugin, http_agent, text,
};

/// The PagerDuty plugin: change events and alerts, and a gate that holds while incidents are open.
pub struct PagerDuty {
    routing_key: Option<String>,
    events_url: String,
    api_token: Option<String>,
    service_id: Option<String>,
    api_url: String,
    source: String,
    agent: ureq::Agent,
}

/// The dedup key of an environment's alert.
pub fn dedup_key(environment: &str) -> String {
    format!("surql-{environment}")
}

impl PagerDuty {
    fn send_event(&self, path: &str, body: Value) -> Result<(), String> {
        let url = format!("{}/{path}", self.events_url);
        let response = self
            .agent
            .post(&url)
            .send_json(&body)
            .map_err(|e| format!("{path}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{path}: PagerDuty answered HTTP {}", response.status()));
        }
        Ok(())
    }

    fn change_event(&self, routing_key: &str, event: &Value) -> Result<(), String> {
        let deployment = event["deployment_id"].as_str().unwrap_or("?");
        let summary = format!(
            "surql deployment {deployment} ({}): {} success, {} failed, {} rolled back, {} skipped",
            event["strategy"].as_str().unwrap_or("?"),
            event["success"],
            event["failed"],
            event["rolled_back"],
            event["skipped"]
        );
        self.send_event(
            "change/enqueue",
            json!({
                "routing_key": routing_key,
                "payload": {
                    "summary": summary,
                    "source": self.source,
                    "custom_details": { "deployment_id": deployment, "results": event["results"] }
                }
            }),
        )
    }

    /// A change event for an approval request: the plan as custom details.
    fn approval_change_event(&self, routing_key: &str, request: &Value) -> Result<(), String> {
        self.send_event(
            "change/enqueue",
            json!({
                "routing_key": routing_key,
                "payload": {
                    "summary": format!(
                        "surql approval requested: {} (deployment {})",
                        request["summary"].as_str().unwrap_or("?"),
                        request["deployment_id"].as_str().unwrap_or("?")
                    ),
                    "source": self.source,
                    "custom_details": {
                        "deployment_id": request["deployment_id"],
                        "actor": request["actor"],
                        "strategy": request["strategy"],
                        "label": request["label"],
                        "environments": request["environments"],
                        "migrations": request["migrations"],
                        "destructive": request["destructive"],
                        "irreversible": request["irreversible"],
                    }
                }
            }),
        )
    }

    /// `N open PagerDuty incident(s) on service S: #N title; …`, or none open.
    fn open_incidents(&self, token: &str, service: &str) -> Result<Option<String>, String> {
        let url = format!("{}/incidents", self.api_url);
        let mut response = self
            .agent
            .get(&url)
            .header("Authorization", &format!("Token token={token}"))
            .header("Accept", "application/vnd.pagerduty+json;version=2")
            .query("service_ids[]", service)
            .query("statuses[]", "triggered")
            .query("statuses[]", "acknowledged")
            .call()
            .map_err(|e| format!("incidents: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("incidents: PagerDuty answered HTTP {status}"));
        }
        let body: Value = response.body_mut().read_json().map_err(|e| format!("incidents: {e}"))?;
        let open: Vec<String> = body["incidents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| matches!(i["status"].as_str(), Some("triggered" | "acknowledged") | None))
            .map(|i| {
                format!(
                    "#{} {}",
                    i["incident_number"],
                    i["title"].as_str().unwrap_or("untitled")
                )
            })
            .collect();
        Ok((!open.is_empty()).then(|| {
            format!(
                "{} open PagerDuty incident(s) on service {service}: {}",
                open.len(),
                open.join("; ")
            )
        }))
    }

    fn alert(&self, routing_key: &str, event: &Value) -> Result<(), String> {
        let result = &event["result"];
        let environment = result["environment"].as_str().unwrap_or("?");
        let status = result["status"].as_str().unwrap_or("");
        let action = match status {
            "failed" | "rolled_back" => "trigger",
            "success" => "resolve",
            _ => return Ok(()),
        };
        let mut body = json!({
            "routing_key": routing_key,
            "event_action": action,
            "dedup_key": dedup_key(environment),
        });
        if action == "trigger" {
            body["payload"] = json!({
                "summary": format!(
                    "surql: migration deployment to {environment} {}: {}",
                    status.replace('_', " "),
                    result["error"].as_str().unwrap_or("")
                ),
                "source": self.source,
                "severity": "error",
                "custom_details": { "deployment_id": event["deployment_id"], "result": result }
            });
        }
        self.send_event("enqueue", body)
    }
}

impl Plugin for PagerDuty {
    fn create(config: Value) -> Result<Self, String> {
        let plugin = PagerDuty {
            routing_key: text(&config, "routing_key"),
            events_url: base_url(&config, "events_url", "https://events.pagerduty.com/v2"),
            api_token: text(&config, "api_token"),
            service_id: text(&config, "service_id"),
            api_url: base_url(&config, "api_url", "https://api.pagerduty.com"),
            source: text(&config, "source").unwrap_or_else(|| "surql".into()),
            agent: http_agent(&config)?,
        };
        if plugin.routing_key.is_none() && plugin.api_token.is_none() {
            return Err(
                "config needs \"routing_key\" (events) and/or \"api_token\" + \"service_id\" (incident gate)".into(),
            );
        }
        Ok(plugin)
    }

    fn notify(&self, event: &Value) -> Result<(), String> {
        let Some(routing_key) = &self.routing_key else {
            return Ok(());
        };
        match event["event"].as_str() {
            Some("deployment_finished") => self.change_event(routing_key, event),
            Some("environment_finished") => self.alert(routing_key, event),
            _ => Ok(()),
        }
    }

    fn approve(&self, request: &Value) -> Result<Approval, String> {
        let (Some(token), Some(service)) = (&self.api_token, &self.service_id) else {
            return Err("the incident gate needs \"api_token\" and \"service_id\"".into());
        };
        if let Some(routing_key) = &self.routing_key {
            self.approval_change_event(routing_key, request)?;
        }
        Ok(match self.open_incidents(token, service)? {
            None => Approval::Approved,
            Some(open) => Approval::Denied(open),
        })
    }

    fn gate(&self, _request: &Value) -> Result<Gate, String> {
        let (Some(token), Some(service)) = (&self.api_token, &self.service_id) else {
            return Ok(Gate::Continue);
        };
        Ok(match self.open_incidents(token, service)? {
            None => Gate::Continue,
            Some(open) => Gate::Halt(open),
        })
    }
}

declare_plugin!(PagerDuty, "pagerduty", hooks = HOOK_APPROVE | HOOK_NOTIFY | HOOK_GATE);
