//! Slack for surql.
//!
//! - `notify`: a readable message per event to an incoming webhook
//!   (`webhook_url`), with per-environment results when a deployment ends.
//! - `approve`: posts "approve deploying to X?" to `channel` with the Web API
//!   (`chat.postMessage`, bot token), then, on each poll, reads the message's
//!   reactions (`reactions.get`): ✅ (`white_check_mark`) from a user in
//!   `approvers` approves, ❌ (`x`) denies, anything else is pending.
//!
//! Config: `webhook_url`, `bot_token`, `channel`, `approvers` (Slack user ids;
//! empty = anyone), `api_base_url` (default `https://slack.com/api`),
//! `timeout_seconds` (HTTP, default 10). The token is never echoed back.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};
use surql_plugin_sdk::{Approval, HOOK_APPROVE, HOOK_NOTIFY, Plugin, base_url, declare_plugin, http_agent, text};

const APPROVE_REACTIONS: [&str; 2] = ["white_check_mark", "heavy_check_mark"];
const DENY_REACTIONS: [&str; 2] = ["x", "negative_squared_cross_mark"];

pub struct Slack {
    webhook_url: Option<String>,
    bot_token: Option<String>,
    channel: Option<String>,
    approvers: Vec<String>,
    api_base_url: String,
    agent: ureq::Agent,
    /// (deployment, environment) → (channel id, message ts) of the approval message.
    asked: Mutex<HashMap<(String, String), (String, String)>>,
}

impl Slack {
    fn web_api(
        &self,
        method: &str,
        call: impl FnOnce(&ureq::Agent, String, String) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, String> {
        let token = self.bot_token.as_ref().ok_or("approvals need \"bot_token\"")?;
        let url = format!("{}/{method}", self.api_base_url);
        let mut response = call(&self.agent, url, format!("Bearer {token}")).map_err(|e| format!("{method}: {e}"))?;
        let status = response.status();
        let body: Value = response
            .body_mut()
            .read_json()
            .map_err(|e| format!("{method}: HTTP {status}, unreadable answer: {e}"))?;
        if body["ok"].as_bool() != Some(true) {
            return Err(format!(
                "{method}: Slack answered {}",
                body["error"].as_str().unwrap_or("not ok")
            ));
        }
        Ok(body)
    }

    fn post_question(&self, request: &Value) -> Result<(String, String), String> {
        let channel = self.channel.as_ref().ok_or("approvals need \"channel\"")?;
        let environment = request["environment"].as_str().unwrap_or("?");
        let deployment = request["deployment_id"].as_str().unwrap_or("?");
        let message = json!({
            "channel": channel,
            "text": format!(
                ":rotating_light: surql wants to deploy to *{environment}* (deployment `{deployment}`). React :white_check_mark: to approve or :x: to deny."
            ),
        });
        let body = self.web_api("chat.postMessage", |agent, url, auth| {
            agent.post(&url).header("Authorization", &auth).send_json(&message)
        })?;
        let channel_id = body["channel"].as_str().unwrap_or(channel).to_string();
        let ts = body["ts"]
            .as_str()
            .ok_or("chat.postMessage: no message timestamp in the answer")?;
        Ok((channel_id, ts.to_string()))
    }

    fn read_reactions(&self, channel: &str, ts: &str) -> Result<Option<Approval>, String> {
        let body = self.web_api("reactions.get", |agent, url, auth| {
            agent
                .get(&url)
                .header("Authorization", &auth)
                .query("channel", channel)
                .query("timestamp", ts)
                .query("full", "true")
                .call()
        })?;
        let empty = Vec::new();
        let reactions = body["message"]["reactions"].as_array().unwrap_or(&empty);
        let by_allowed = |name: &str| -> Option<String> {
            reactions
                .iter()
                .filter(|r| r["name"].as_str() == Some(name))
                .flat_map(|r| r["users"].as_array().cloned().unwrap_or_default())
                .filter_map(|u| u.as_str().map(str::to_string))
                .find(|user| self.approvers.is_empty() || self.approvers.contains(user))
        };
        if let Some(user) = DENY_REACTIONS.iter().find_map(|r| by_allowed(r)) {
            return Ok(Some(Approval::Denied(format!("denied in Slack by {user}"))));
        }
        if APPROVE_REACTIONS.iter().any(|r| by_allowed(r).is_some()) {
            return Ok(Some(Approval::Approved));
        }
        Ok(None)
    }
}

/// A readable line for a result object.
fn result_line(result: &Value) -> String {
    let icon = match result["status"].as_str() {
        Some("success") => ":white_check_mark:",
        Some("skipped") => ":fast_forward:",
        Some("rolled_back") => ":leftwards_arrow_with_hook:",
        _ => ":x:",
    };
    let mut line = format!(
        "{icon} *{}* {} ({} migration(s))",
        result["environment"].as_str().unwrap_or("?"),
        result["status"].as_str().unwrap_or("?").to_uppercase(),
        result["migrations_applied"]
    );
    if let Some(error) = result["error"].as_str() {
        line.push_str(&format!(": {error}"));
    }
    line
}

/// The webhook message for an event.
pub fn message_text(event: &Value) -> String {
    let deployment = event["deployment_id"].as_str().unwrap_or("?");
    match event["event"].as_str().unwrap_or("") {
        "deployment_started" => format!(
            ":rocket: surql deployment `{deployment}` started ({}) on {}",
            event["strategy"].as_str().unwrap_or("?"),
            event["environments"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ),
        "environment_finished" | "rollback" => result_line(&event["result"]),
        "deployment_finished" => {
            let mut text = format!(
                "surql deployment `{deployment}` finished: {} success, {} failed, {} rolled back, {} skipped",
                event["success"], event["failed"], event["rolled_back"], event["skipped"]
            );
            for result in event["results"].as_array().into_iter().flatten() {
                text.push('\n');
                text.push_str(&result_line(result));
            }
            text
        }
        other => format!("surql `{deployment}` {other}: {}", event["data"]),
    }
}

impl Plugin for Slack {
    fn create(config: Value) -> Result<Self, String> {
        let plugin = Slack {
            webhook_url: text(&config, "webhook_url"),
            bot_token: text(&config, "bot_token"),
            channel: text(&config, "channel"),
            approvers: config
                .get("approvers")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            api_base_url: base_url(&config, "api_base_url", "https://slack.com/api"),
            agent: http_agent(&config)?,
            asked: Mutex::new(HashMap::new()),
        };
        if plugin.webhook_url.is_none() && plugin.bot_token.is_none() {
            return Err(
                "config needs \"webhook_url\" (notifications) and/or \"bot_token\" + \"channel\" (approvals)".into(),
            );
        }
        Ok(plugin)
    }

    fn notify(&self, event: &Value) -> Result<(), String> {
        let Some(url) = &self.webhook_url else { return Ok(()) };
        let response = self
            .agent
            .post(url)
            .send_json(json!({ "text": message_text(event) }))
            .map_err(|e| format!("webhook: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("webhook answered HTTP {}", response.status()));
        }
        Ok(())
    }

    fn approve(&self, request: &Value) -> Result<Approval, String> {
        let key = (
            request["deployment_id"].as_str().unwrap_or_default().to_string(),
            request["environment"].as_str().unwrap_or_default().to_string(),
        );
        let asked = self.asked.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        let (channel, ts) = match asked {
            Some(message) => message,
            None => {
                let message = self.post_question(request)?;
                self.asked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, message.clone());
                message
            }
        };
        Ok(self
            .read_reactions(&channel, &ts)?
            .unwrap_or_else(|| Approval::Pending(format!("waiting for a reaction in Slack channel {channel}"))))
    }
}

declare_plugin!(Slack, "slack", hooks = HOOK_APPROVE | HOOK_NOTIFY);
