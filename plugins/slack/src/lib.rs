//! Slack for surql, sized for fleets.
//!
//! - `notify` with a bot token and `channel`: one message per deployment,
//!   posted when it starts (`chat.postMessage`) and updated in place
//!   (`chat.update`) after each wave with progress counts and the
//!   environments that failed or were rolled back, then with the final
//!   summary. With a webhook only (`webhook_url`): one message per wave and
//!   one summary. Single environments that succeed are never listed.
//! - `approve`: one question per group (a wave, or a script's `approve`),
//!   showing what is asked — the environments, each migration, destructive
//!   statements highlighted, migrations without a down section — posted to
//!   `channel`; on each poll the message's reactions (`reactions.get`): ✅
//!   (`white_check_mark`) from a user in `approvers` approves, ❌ (`x`)
//!   denies, anything else is pending.
//!
//! Config: `webhook_url`, `bot_token`, `channel`, `approvers` (Slack user ids;
//! empty = anyone), `api_base_url` (default `https://slack.com/api`),
//! `timeout_seconds` (HTTP, default 10). The token is never echoed back.

mod text;

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};
use surql_plugin_sdk::{Approval, HOOK_APPROVE, HOOK_NOTIFY, Plugin, base_url, declare_plugin, http_agent};

pub use text::{approval_text, progress_text, summary_text, wave_text};

const APPROVE_REACTIONS: [&str; 2] = ["white_check_mark", "heavy_check_mark"];
const DENY_REACTIONS: [&str; 2] = ["x", "negative_squared_cross_mark"];

/// A deployment's live message and what it shows so far.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The channel the message was posted in.
    pub channel: String,
    /// Slack's timestamp of the message, which is its id for updates.
    pub ts: String,
    /// The deployment's strategy.
    pub strategy: String,
    /// Environments selected.
    pub total: u64,
    /// Environments with a result so far.
    pub finished: u64,
    /// Results so far: SUCCESS, FAILED, ROLLED_BACK, SKIPPED.
    pub counts: [u64; 4],
    /// `environment: STATUS reason` of each failure so far.
    pub failures: Vec<String>,
    /// Why the rollout halted, once it has.
    pub halted: Option<String>,
}

/// The Slack plugin: notifications by webhook or bot, approvals by reaction.
pub struct Slack {
    webhook_url: Option<String>,
    bot_token: Option<String>,
    channel: Option<String>,
    approvers: Vec<String>,
    api_base_url: String,
    agent: ureq::Agent,
    /// (deployment, group) → (channel id, message ts) of the approval question.
    asked: Mutex<HashMap<(String, String), (String, String)>>,
    /// deployment → its live message.
    live: Mutex<HashMap<String, Progress>>,
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

    /// Posts `text` to `channel`; its channel id and timestamp.
    fn post(&self, channel: &str, text: &str) -> Result<(String, String), String> {
        let message = json!({ "channel": channel, "text": text });
        let body = self.web_api("chat.postMessage", |agent, url, auth| {
            agent.post(&url).header("Authorization", &auth).send_json(&message)
        })?;
        let channel_id = body["channel"].as_str().unwrap_or(channel).to_string();
        let ts = body["ts"]
            .as_str()
            .ok_or("chat.postMessage: no message timestamp in the answer")?;
        Ok((channel_id, ts.to_string()))
    }

    fn update(&self, channel: &str, ts: &str, text: &str) -> Result<(), String> {
        let message = json!({ "channel": channel, "ts": ts, "text": text });
        self.web_api("chat.update", |agent, url, auth| {
            agent.post(&url).header("Authorization", &auth).send_json(&message)
        })
        .map(|_| ())
    }

    fn webhook(&self, url: &str, text: &str) -> Result<(), String> {
        let response = self
            .agent
            .post(url)
            .send_json(json!({ "text": text }))
            .map_err(|e| format!("webhook: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("webhook answered HTTP {}", response.status()));
        }
        Ok(())
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

    /// One live message per deployment, updated in place.
    fn notify_live(&self, channel: &str, event: &Value) -> Result<(), String> {
        let deployment = event["deployment_id"].as_str().unwrap_or_default().to_string();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match event["event"].as_str().unwrap_or("") {
            "deployment_started" => {
                let mut progress = Progress {
                    strategy: event["strategy"].as_str().unwrap_or("?").to_string(),
                    total: event["environments"].as_array().map_or(0, |a| a.len() as u64),
                    ..Progress::default()
                };
                let (channel, ts) = self.post(channel, &progress_text(&deployment, &progress))?;
                (progress.channel, progress.ts) = (channel, ts);
                live.insert(deployment, progress);
            }
            "wave_finished" | "gate_halted" => {
                let Some(progress) = live.get_mut(&deployment) else {
                    return Ok(());
                };
                progress.note(event);
                let text = progress_text(&deployment, progress);
                self.update(&progress.channel, &progress.ts, &text)?;
            }
            "deployment_finished" => {
                let text = summary_text(event);
                match live.remove(&deployment) {
                    Some(progress) => self.update(&progress.channel, &progress.ts, &text)?,
                    None => {
                        self.post(channel, &text)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Progress {
    /// Takes in a `wave_finished` or `gate_halted` notification.
    pub fn note(&mut self, event: &Value) {
        if event["event"] == "gate_halted" {
            self.halted = Some(format!(
                "halted by gate '{}' before {}: {}",
                event["gate"].as_str().unwrap_or("?"),
                event["label"].as_str().unwrap_or("?"),
                event["reason"].as_str().unwrap_or("")
            ));
            return;
        }
        for (i, key) in ["success", "failed", "rolled_back", "skipped"].iter().enumerate() {
            self.counts[i] += event[*key].as_u64().unwrap_or(0);
        }
        self.finished = event["finished"].as_u64().unwrap_or(self.finished);
        self.total = event["total"].as_u64().unwrap_or(self.total);
        for failure in event["failures"].as_array().into_iter().flatten() {
            self.failures.push(text::failure_line(failure));
        }
    }
}

impl Plugin for Slack {
    fn create(config: Value) -> Result<Self, String> {
        let text = |key: &str| surql_plugin_sdk::text(&config, key);
        let plugin = Slack {
            webhook_url: text("webhook_url"),
            bot_token: text("bot_token"),
            channel: text("channel"),
            approvers: config
                .get("approvers")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            api_base_url: base_url(&config, "api_base_url", "https://slack.com/api"),
            agent: http_agent(&config)?,
            asked: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
        };
        if plugin.webhook_url.is_none() && plugin.bot_token.is_none() {
            return Err(
                "config needs \"webhook_url\" (notifications) and/or \"bot_token\" + \"channel\" (approvals)".into(),
            );
        }
        Ok(plugin)
    }

    fn notify(&self, event: &Value) -> Result<(), String> {
        if let (Some(_), Some(channel)) = (&self.bot_token, &self.channel) {
            return self.notify_live(channel, event);
        }
        let Some(url) = &self.webhook_url else { return Ok(()) };
        let text = match event["event"].as_str().unwrap_or("") {
            "wave_finished" => wave_text(event),
            "gate_halted" => format!(
                ":octagonal_sign: surql deployment `{}` halted by gate '{}' before {}: {}",
                event["deployment_id"].as_str().unwrap_or("?"),
                event["gate"].as_str().unwrap_or("?"),
                event["label"].as_str().unwrap_or("?"),
                event["reason"].as_str().unwrap_or("")
            ),
            "deployment_finished" => summary_text(event),
            _ => return Ok(()),
        };
        self.webhook(url, &text)
    }

    fn approve(&self, request: &Value) -> Result<Approval, String> {
        let group = surql_plugin_sdk::requested_environments(request);
        let key = (
            request["deployment_id"].as_str().unwrap_or_default().to_string(),
            format!(
                "{}|{}|{}",
                request["label"].as_str().unwrap_or_default(),
                request["environment"].as_str().unwrap_or_default(),
                group.join(",")
            ),
        );
        let asked = self.asked.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        let (channel, ts) = match asked {
            Some(message) => message,
            None => {
                let channel = self.channel.as_ref().ok_or("approvals need \"channel\"")?;
                let message = self.post(channel, &approval_text(request))?;
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
