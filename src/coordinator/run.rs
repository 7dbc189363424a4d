//! Running a prepared deployment: Ctrl-C, the claim, the strategy on its
//! own thread, the record's end, and the report.

use std::sync::Arc;

use serde_json::json;
use tracing::Instrument;

use super::recording::Recording;
use super::report::record_outcome;
use super::{CoordinatorError, DeployRequest, DeploymentReport, MigrationCoordinator};
use crate::engine::{DeploymentResult, DeploymentStatus, Engine};
use crate::script::{ScriptError, Strategy, run_strategy};

impl MigrationCoordinator {
    /// Runs the strategy on its own blocking thread and collects every result.
    pub(super) async fn run(
        &self,
        engine: Arc<Engine>,
        strategy: Strategy,
        recording: Option<Recording>,
        claimed: bool,
    ) -> DeploymentReport {
        let interrupt = self.stop_on_ctrl_c.then(|| {
            let watched = engine.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    watched.log(
                        "interrupted: finishing running migrations, starting nothing new (Ctrl-C again to quit now)",
                    );
                    watched.cancel();
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(crate::exit::EXIT_INTERRUPTED);
                    }
                }
            })
        });
        let report = self.run_strategy(&engine, strategy, recording, claimed).await;
        if let Some(interrupt) = interrupt {
            interrupt.abort();
            let _ = interrupt.await;
        }
        report
    }

    async fn run_strategy(
        &self,
        engine: &Arc<Engine>,
        strategy: Strategy,
        mut recording: Option<Recording>,
        claimed: bool,
    ) -> DeploymentReport {
        let id = engine.context().deployment_id.clone();
        let claim = match (&mut recording, claimed) {
            (Some(recording), false) => self.claim(engine, &strategy, recording).await,
            _ => Ok(()),
        };
        if let Err(refused) = claim {
            // Another runner holds this deployment or some of these
            // environments: nothing is recorded for this one.
            drop(recording);
            let results = engine.finish(&format!("not deployed: {refused}"));
            return DeploymentReport {
                deployment_id: id,
                actor: engine.context().actor.clone(),
                strategy: strategy.name,
                results,
                waves: Vec::new(),
                script_error: None,
                interrupted: false,
                record_lost: None,
                stopped: None,
                estimates: None,
            };
        }
        self.load_promotions(engine).await;
        let span = tracing::info_span!(
            "deployment",
            deployment_id = %id,
            strategy = %strategy.name,
            actor = %engine.context().actor,
            environments = engine.environments().len(),
            success = tracing::field::Empty,
            failed = tracing::field::Empty,
            rolled_back = tracing::field::Empty,
            skipped = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        engine.set_deployment_span(span.clone());
        let mut report = self.run_recorded(engine, strategy).instrument(span.clone()).await;
        record_outcome(&span, &report);
        if engine.options().dry_run || engine.options().simulation.is_some() {
            report.estimates = self.estimate_waves(&report.waves).await;
        }
        let Some(recording) = recording else {
            return report;
        };
        let mut lost = match recording.recorder {
            Some(recorder) => recorder.stop().await,
            None => None,
        };
        // A store given up on is not waited for again: `resume` completes the record.
        if let Some(store) = self.state.as_ref().filter(|_| lost.is_none()) {
            let results: Vec<&DeploymentResult> = report.results.values().collect();
            let interrupted = report.interrupted || lost.is_some();
            if let Err(error) = store.finish(&id, &recording.key, &results, interrupted).await {
                tracing::warn!(
                    "could not record the end of deployment {id} in {}: {error}",
                    store.url()
                );
                lost.get_or_insert_with(|| format!("could not record the end of the deployment: {error}"));
            }
        }
        report.record_lost = lost;
        crate::migration::holder::note_released(&crate::migration::holder::owner_string(
            &engine.context().actor,
            &id,
            None,
        ));
        report
    }

    async fn run_recorded(&self, engine: &Arc<Engine>, strategy: Strategy) -> DeploymentReport {
        let handle = tokio::runtime::Handle::current();
        engine.notify(
            "deployment_started",
            json!({
                "strategy": strategy.name,
                "environments": engine.environments().iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
                "actor": engine.context().actor,
            }),
        );
        let script_engine = engine.clone();
        let script = strategy.clone();
        let outcome = tokio::task::spawn_blocking(move || run_strategy(&script, script_engine, handle)).await;
        let script_error = match outcome {
            Ok(Ok(())) => None,
            // Ctrl-C stops the script on purpose; that is not a script error.
            Ok(Err(error)) if error.interrupted => None,
            Ok(Err(error)) => Some(error),
            Err(join_error) => Some(ScriptError {
                origin: strategy.origin.clone(),
                line: 0,
                column: 0,
                message: format!("the strategy thread failed: {join_error}"),
                source_line: None,
                interrupted: false,
            }),
        };
        let reason = match (&script_error, engine.is_cancelled()) {
            (_, true) => engine.not_started_reason(),
            (Some(error), _) => format!("not deployed: {error}"),
            (None, _) => format!("not deployed: strategy '{}' did not reach it", strategy.name),
        };
        let results = engine.finish(&reason);
        let count = |status: DeploymentStatus| results.values().filter(|r| r.status == status).count();
        engine.notify(
            "deployment_finished",
            json!({
                "strategy": strategy.name,
                "results": results.values().collect::<Vec<_>>(),
                "success": count(DeploymentStatus::Success),
                "failed": count(DeploymentStatus::Failed),
                "rolled_back": count(DeploymentStatus::RolledBack),
                "skipped": count(DeploymentStatus::Skipped),
                "script_error": script_error.as_ref().map(|e| e.to_string()),
            }),
        );
        engine.finish_notifications();
        DeploymentReport {
            deployment_id: engine.context().deployment_id.clone(),
            actor: engine.context().actor.clone(),
            strategy: strategy.name,
            results,
            waves: engine.waves(),
            script_error,
            interrupted: engine.is_cancelled() && engine.stop_reason().is_none(),
            record_lost: None,
            stopped: engine.stop_reason().map(str::to_string),
            estimates: None,
        }
    }

    /// Deploys `request.migrations` to the selected environments with the
    /// strategy; results keep the input order.
    pub async fn deploy_to_environments(&self, request: DeployRequest) -> Result<DeploymentReport, CoordinatorError> {
        Ok(self.prepare(request).await?.run().await)
    }
}
