//! The approval gate: plugins named by an environment's `approvers`, or the
//! person running surql (`--approve`, `--yes`, the prompt).

use super::env_run::{Stop, failed, skipped};
use super::{ApprovalRequest, Engine};
use crate::registry::EnvironmentConfig;
use crate::safety::ApprovalDecision;

pub(super) async fn approve(engine: &Engine, environment: &EnvironmentConfig) -> Result<(), Stop> {
    let name = &environment.name;
    if !environment.approvers.is_empty() {
        return approve_with_plugins(engine, environment).await;
    }
    let decision = match engine.options.approvals.decide_without_prompt(name) {
        Some(decision) => decision,
        None => match &engine.approver {
            Some(approver) => {
                let approver = approver.clone();
                let request = ApprovalRequest {
                    deployment_id: engine.context.deployment_id.clone(),
                    environment: name.clone(),
                    tags: environment.tags.clone(),
                    pending: Vec::new(),
                };
                tokio::task::spawn_blocking(move || approver.approve(&request))
                    .await
                    .unwrap_or_else(|e| ApprovalDecision::Denied(format!("approval prompt failed: {e}")))
            }
            None => ApprovalDecision::Denied(
                "approval required and nobody can be asked: pass --approve NAME or --yes".into(),
            ),
        },
    };
    decided(decision)
}

fn decided(decision: ApprovalDecision) -> Result<(), Stop> {
    match decision {
        ApprovalDecision::Approved => Ok(()),
        ApprovalDecision::Denied(reason) => Err(skipped(reason)),
        ApprovalDecision::Pending(reason) => Err(skipped(format!("approval pending: {reason}"))),
        ApprovalDecision::Error(reason) => Err(failed(reason)),
    }
}

/// Every plugin in `approvers` must approve; `--approve`/`--yes` do not replace them.
async fn approve_with_plugins(engine: &Engine, environment: &EnvironmentConfig) -> Result<(), Stop> {
    let Some(host) = engine.plugins.clone() else {
        return Err(failed("approvers are configured but no plugins are loaded"));
    };
    let request = serde_json::to_value(ApprovalRequest {
        deployment_id: engine.context.deployment_id.clone(),
        environment: environment.name.clone(),
        tags: environment.tags.clone(),
        pending: Vec::new(),
    })
    .map_err(|e| failed(format!("cannot build the approval request: {e}")))?;
    for approver in &environment.approvers {
        engine
            .events
            .phase(&environment.name, format!("awaiting approval from '{approver}'"));
        let (host, approver, request) = (host.clone(), approver.clone(), request.clone());
        let decision = tokio::task::spawn_blocking(move || host.approve(&approver, &request))
            .await
            .unwrap_or_else(|e| ApprovalDecision::Error(format!("approval thread failed: {e}")));
        decided(decision)?;
    }
    Ok(())
}
