//! The approval gate: plugins named by an environment's `approvers`, or the
//! person running surql (`--approve`, `--yes`, the prompt). Asked once per
//! group — a wave, or a script's `approve(envs, label)` — with the plan read
//! first, read-only: what each environment would get.

use std::collections::HashMap;

use serde::Serialize;
use tracing::Instrument;

use super::stop::{Stop, failed_as, skipped};
use super::{Engine, EngineError, FailureKind, PlanReport, WaveOptions};
use crate::registry::EnvironmentConfig;
use crate::safety::{ApprovalDecision, DestructiveStatement};

/// What an approver is asked: a group of environments and what deploying
/// would do to each. ABI 1 plugins are asked one environment at a time.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRequest {
    /// Id of the deployment asking.
    pub deployment_id: String,
    /// Who runs the deployment.
    pub actor: String,
    /// Name of the strategy running it.
    pub strategy: String,
    /// The group: a wave's label, or the label a script gave `approve`.
    pub label: String,
    /// The first environment, its tags and pending migrations (`version_name`):
    /// the whole request when there is one environment.
    pub environment: String,
    /// Tags of `environment`.
    pub tags: Vec<String>,
    /// Migrations `environment` would get (`version_name`).
    pub pending: Vec<String>,
    /// Every environment of the group, with what each would get.
    pub environments: Vec<ApprovalTarget>,
    /// Every migration pending on any of them, in version order.
    pub migrations: Vec<PendingMigration>,
    /// Data-losing statements among them (file, line, statement).
    pub destructive: Vec<DestructiveStatement>,
    /// Pending migrations without a down section (`version_name`).
    pub irreversible: Vec<String>,
    /// One line: how many migrations to how many environments, and the risks.
    pub summary: String,
}

/// One environment of an approval request.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalTarget {
    /// The environment's name.
    pub name: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// `version_name` of each migration it would get.
    pub pending: Vec<String>,
    /// Why its plan could not be read (it is unhealthy, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A migration an approval would let through.
#[derive(Debug, Clone, Serialize)]
pub struct PendingMigration {
    /// Version, as in the file name.
    pub version: String,
    /// Name: the rest of the file name, without `.surql`.
    pub name: String,
    /// Hex SHA-256 of its up section.
    pub checksum: String,
    /// It has a down section.
    pub reversible: bool,
}

/// Asks a person or a plugin for approval. Called on a blocking thread.
pub trait Approver: Send + Sync {
    /// The decision on `request`: approved, denied, pending, or an error.
    fn approve(&self, request: &ApprovalRequest) -> ApprovalDecision;
}

/// The approval step of one environment's run: the decision its group got
/// when its wave began (see [`Engine::approve_group`]).
pub(super) fn approve(engine: &Engine, environment: &EnvironmentConfig) -> Result<(), Stop> {
    match engine.decision(&environment.name) {
        Some(ApprovalDecision::Approved) => Ok(()),
        Some(ApprovalDecision::Denied(reason)) => Err(skipped(reason)),
        Some(ApprovalDecision::Pending(reason)) => Err(skipped(format!("approval pending: {reason}"))),
        Some(ApprovalDecision::Error(reason)) => Err(failed_as(FailureKind::Approval, reason)),
        None => Err(failed_as(
            FailureKind::Approval,
            "approval required, but none was asked before its wave",
        )),
    }
}

/// Records `decision` for `name` unless an earlier answer already refused it.
fn refuse(decisions: &mut HashMap<String, ApprovalDecision>, name: &str, decision: ApprovalDecision) {
    let entry = decisions.entry(name.to_string()).or_insert(ApprovalDecision::Approved);
    if *entry == ApprovalDecision::Approved {
        *entry = decision;
    }
}

fn names_of(group: &[&EnvironmentConfig]) -> Vec<String> {
    group.iter().map(|e| e.name.clone()).collect()
}

impl Engine {
    /// The approval decision recorded for `name`, if it was asked.
    fn decision(&self, name: &str) -> Option<ApprovalDecision> {
        self.ledger().get(name).and_then(|s| s.approval.clone())
    }

    /// `approve(envs, label)`: asks once for the group each approver has
    /// among `names` — each plugin in their `approvers` once (an ABI 1
    /// plugin once per environment), the person once — with the plan read
    /// first, read-only. Records each decision for `deploy` and returns the
    /// names approved (those needing no approval included). Reading the plan
    /// writes nothing: an unapproved environment is never written to.
    pub async fn approve_group(
        &self,
        names: &[String],
        label: &str,
        wave: &WaveOptions,
    ) -> Result<Vec<String>, EngineError> {
        let environments = names
            .iter()
            .map(|n| self.environment(n))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(simulation) = &self.options.simulation {
            return Ok(names
                .iter()
                .filter(|n| !simulation.deny.contains(*n))
                .cloned()
                .collect());
        }
        let asking: Vec<&EnvironmentConfig> = environments
            .iter()
            .map(|e| &**e)
            .filter(|e| e.needs_approval())
            // Held, frozen or outside its window: a deploy skips it untouched, nobody
            // is asked (a rollback of a recorded deployment is not held back).
            .filter(|e| self.options.undo.is_some() || self.policy_skip(e).is_none())
            // A later wave of an environment finished up to a `to_version`
            // (expand, then contract) is asked again: it would get more.
            .filter(|e| {
                self.is_partial(&e.name) || self.decision(&e.name).is_none() && self.result_of(&e.name).is_none()
            })
            .collect();
        if !asking.is_empty() && !self.options.dry_run {
            let names: Vec<String> = asking.iter().map(|e| e.name.clone()).collect();
            // A rollback's approvers are told what it undoes, not a deploy plan.
            let plans: HashMap<String, PlanReport> = match self.options.undo {
                Some(_) => HashMap::new(),
                None => self
                    .plan_for(&names, wave)
                    .await?
                    .into_iter()
                    .map(|p| (p.environment.clone(), p))
                    .collect(),
            };
            let decisions = self.ask(&asking, &plans, label).await;
            let mut ledger = self.ledger();
            for (name, decision) in decisions {
                ledger.entry(name).or_default().approval = Some(decision);
            }
        }
        Ok(names
            .iter()
            .filter(|n| self.options.dry_run || matches!(self.decision(n), None | Some(ApprovalDecision::Approved)))
            .cloned()
            .collect())
    }

    /// Every environment's decision: approved only if each of its plugin
    /// approvers approved (or, without any, the person did).
    async fn ask(
        &self,
        asking: &[&EnvironmentConfig],
        plans: &HashMap<String, PlanReport>,
        label: &str,
    ) -> HashMap<String, ApprovalDecision> {
        let mut decisions: HashMap<String, ApprovalDecision> = HashMap::new();
        let mut approvers: Vec<&String> = Vec::new();
        for environment in asking {
            for approver in &environment.approvers {
                if !approvers.contains(&approver) {
                    approvers.push(approver);
                }
            }
        }
        for approver in approvers {
            let group: Vec<&EnvironmentConfig> = asking
                .iter()
                .copied()
                .filter(|e| e.approvers.contains(approver))
                .collect();
            for (members, decision) in self.ask_plugin(approver, &group, plans, label).await {
                for name in members {
                    refuse(&mut decisions, &name, decision.clone());
                }
            }
        }
        let people: Vec<&EnvironmentConfig> = asking.iter().copied().filter(|e| e.approvers.is_empty()).collect();
        let mut prompt: Vec<&EnvironmentConfig> = Vec::new();
        for environment in people {
            match self.options.approvals.decide_without_prompt(&environment.name) {
                Some(decision) => refuse(&mut decisions, &environment.name, decision),
                None => prompt.push(environment),
            }
        }
        if !prompt.is_empty() {
            let decision = match &self.approver {
                Some(approver) => {
                    let (approver, request) = (approver.clone(), self.request(&prompt, plans, label));
                    tokio::task::spawn_blocking(move || approver.approve(&request))
                        .await
                        .unwrap_or_else(|e| ApprovalDecision::Denied(format!("approval prompt failed: {e}")))
                }
                None => ApprovalDecision::Denied(
                    "approval required and nobody can be asked: pass --approve NAME or --yes".into(),
                ),
            };
            for environment in prompt {
                refuse(&mut decisions, &environment.name, decision.clone());
            }
        }
        for environment in asking {
            decisions
                .entry(environment.name.clone())
                .or_insert(ApprovalDecision::Approved);
        }
        decisions
    }

    /// Asks plugin `approver` about `group`: once, or once per environment
    /// for an ABI 1 plugin. Returns which environments each answer covers.
    async fn ask_plugin(
        &self,
        approver: &str,
        group: &[&EnvironmentConfig],
        plans: &HashMap<String, PlanReport>,
        label: &str,
    ) -> Vec<(Vec<String>, ApprovalDecision)> {
        let Some(host) = self.plugins.clone() else {
            let error = ApprovalDecision::Error("approvers are configured but no plugins are loaded".into());
            return vec![(names_of(group), error)];
        };
        let groups: Vec<Vec<&EnvironmentConfig>> = match host.get(approver).map(|p| p.loaded.abi_version) {
            Some(1) => group.iter().map(|e| vec![*e]).collect(),
            _ => vec![group.to_vec()],
        };
        let mut answers = Vec::new();
        for members in groups {
            for environment in &members {
                self.events.phase(
                    &environment.name,
                    format!("awaiting approval from '{approver}' ({label})"),
                );
            }
            let request = serde_json::to_value(self.request(&members, plans, label)).unwrap_or_default();
            let (host, name) = (host.clone(), approver.to_string());
            let span = tracing::info_span!(
                "approval",
                plugin = %approver,
                label = %label,
                environments = members.len(),
                decision = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            );
            let decision = tokio::task::spawn_blocking(move || host.approve(&name, &request))
                .instrument(span.clone())
                .await
                .unwrap_or_else(|e| ApprovalDecision::Error(format!("approval thread failed: {e}")));
            let (answer, code) = match &decision {
                ApprovalDecision::Approved => ("approved", "OK"),
                ApprovalDecision::Denied(_) => ("denied", "OK"),
                ApprovalDecision::Pending(_) => ("pending", "OK"),
                ApprovalDecision::Error(_) => ("error", "ERROR"),
            };
            span.record("decision", answer);
            span.record("otel.status_code", code);
            answers.push((names_of(&members), decision));
        }
        answers
    }

    /// The request for `members`: their plans, the migrations, the risks.
    fn request(
        &self,
        members: &[&EnvironmentConfig],
        plans: &HashMap<String, PlanReport>,
        label: &str,
    ) -> ApprovalRequest {
        let mut pending_versions: Vec<&str> = Vec::new();
        let mut destructive: Vec<DestructiveStatement> = Vec::new();
        let mut irreversible: Vec<String> = Vec::new();
        let targets: Vec<ApprovalTarget> = members
            .iter()
            .map(|environment| {
                let report = plans.get(&environment.name);
                let plan = report.and_then(|r| r.plan.as_ref());
                if let Some(plan) = plan {
                    for id in &plan.pending {
                        if !pending_versions.contains(&id.as_str()) {
                            pending_versions.push(id);
                        }
                    }
                    for statement in &plan.destructive {
                        if !destructive.contains(statement) {
                            destructive.push(statement.clone());
                        }
                    }
                    for id in &plan.irreversible {
                        if !irreversible.contains(id) {
                            irreversible.push(id.clone());
                        }
                    }
                }
                ApprovalTarget {
                    name: environment.name.clone(),
                    tags: environment.tags.clone(),
                    pending: plan.map(|p| p.pending.clone()).unwrap_or_default(),
                    error: report.and_then(|r| r.error.clone().or_else(|| r.blocked.clone())),
                }
            })
            .collect();
        let migrations: Vec<PendingMigration> = self
            .migrations
            .iter()
            .filter(|m| pending_versions.contains(&m.id().as_str()))
            .map(|m| PendingMigration {
                version: m.version.clone(),
                name: m.name.clone(),
                checksum: m.checksum.clone(),
                reversible: m.down.is_some(),
            })
            .collect();
        let mut summary = match &self.options.undo {
            Some(undo) => format!(
                "{label}: roll back deployment {} on {} environment(s)",
                undo.deployment_id,
                targets.len()
            ),
            None => format!(
                "{label}: {} migration(s) to {} environment(s)",
                migrations.len(),
                targets.len()
            ),
        };
        if !destructive.is_empty() {
            summary.push_str(&format!(", {} destructive statement(s)", destructive.len()));
        }
        if !irreversible.is_empty() {
            summary.push_str(&format!(", {} without a down section", irreversible.len()));
        }
        let first = targets.first();
        ApprovalRequest {
            deployment_id: self.context.deployment_id.clone(),
            actor: self.context.actor.clone(),
            strategy: self.strategy_name(),
            label: label.to_string(),
            environment: first.map(|t| t.name.clone()).unwrap_or_default(),
            tags: first.map(|t| t.tags.clone()).unwrap_or_default(),
            pending: first.map(|t| t.pending.clone()).unwrap_or_default(),
            environments: targets,
            migrations,
            destructive,
            irreversible,
            summary,
        }
    }
}
