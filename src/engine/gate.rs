//! Gates: plugins asked before each wave (each `deploy` call) and by
//! scripts (`gate(envs, label)`) whether the rollout may go on. A halt
//! leaves the wave's environments SKIPPED with the reason; a gate that
//! fails to answer halts too: a broken check never waves a rollout through.

use serde_json::json;
use tracing::Instrument;

use super::{DeploymentResult, Engine, EngineError};
use crate::plugin::GateDecision;

/// Why a gate halted a wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateHalt {
    /// The plugin that halted it.
    pub gate: String,
    /// Label of the wave, or of the script's `gate` call, it halted.
    pub label: String,
    /// Why, as the plugin said (or why it failed to answer).
    pub reason: String,
}

impl std::fmt::Display for GateHalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "halted by gate '{}' before {}: {}",
            self.gate, self.label, self.reason
        )
    }
}

impl Engine {
    /// Asks every gate plugin, in the order they are listed, about the wave
    /// `label` of `names`; the first halt, if any. Dry runs and simulations
    /// ask no plugin (a simulation's gate halts the waves it was told to).
    pub async fn gate(&self, names: &[String], label: &str) -> Result<Option<GateHalt>, EngineError> {
        for name in names {
            self.environment(name)?;
        }
        if let Some(simulation) = &self.options.simulation {
            let halt = simulation.gate(names, label);
            if let Some(halt) = &halt {
                self.log(halt.to_string());
            }
            return Ok(halt);
        }
        let Some(host) = self.plugins.clone() else {
            return Ok(None);
        };
        if self.options.dry_run {
            return Ok(None);
        }
        let request = json!({
            "deployment_id": self.context.deployment_id,
            "actor": self.context.actor,
            "strategy": self.strategy_name(),
            "label": label,
            "environments": names,
        });
        for gate in host.gates() {
            for name in names {
                self.events.phase(name, format!("waiting for gate '{gate}'"));
            }
            let (host, asked, request) = (host.clone(), gate.clone(), request.clone());
            let span = tracing::info_span!(
                "gate",
                plugin = %gate,
                label = %label,
                decision = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            );
            let decision = tokio::task::spawn_blocking(move || host.gate(&asked, &request))
                .instrument(span.clone())
                .await
                .unwrap_or_else(|e| GateDecision::Halt(format!("the gate's thread failed: {e}")));
            span.record(
                "decision",
                match &decision {
                    GateDecision::Halt(_) => "halt",
                    _ => "proceed",
                },
            );
            span.record("otel.status_code", "OK");
            if let GateDecision::Halt(reason) = decision {
                let halt = GateHalt {
                    gate,
                    label: label.to_string(),
                    reason,
                };
                self.log(halt.to_string());
                self.notify(
                    "gate_halted",
                    json!({ "gate": halt.gate, "label": label, "reason": halt.reason, "environments": names.len() }),
                );
                return Ok(Some(halt));
            }
        }
        Ok(None)
    }

    /// [`Engine::gate`], and on a halt every environment of `names` not
    /// finished yet SKIPPED with the reason. Returns the halt and the results.
    pub async fn gate_wave(
        &self,
        names: &[String],
        label: &str,
    ) -> Result<(Option<GateHalt>, Vec<DeploymentResult>), EngineError> {
        let halt = self.gate(names, label).await?;
        let results = match &halt {
            Some(halt) => self.skip(names, &halt.to_string())?,
            None => Vec::new(),
        };
        Ok((halt, results))
    }
}
