//! Preparing a deployment: the request checked, the environments selected
//! (shard, duplicates, approvers, promotions, pins), the engine built.

use std::sync::Arc;

use super::recording::{PreparedDeployment, Recording};
use super::request::validate;
use super::{CoordinatorError, DeployRequest, MigrationCoordinator, rediscover};
use crate::engine::{Engine, EngineParts, EventSink};
use crate::registry::deployment_order;
use crate::script::Strategy;

impl MigrationCoordinator {
    /// Builds the engine for a request: validated options, selected environments.
    /// Use it with [`PreparedDeployment::run`] to keep a handle (for Ctrl-C).
    pub async fn prepare(&self, mut request: DeployRequest) -> Result<PreparedDeployment<'_>, CoordinatorError> {
        validate(&request.options, &request.context)?;
        request.options.max_per_server = request.options.max_per_server.or(self.max_per_server);
        let strategy = Strategy::resolve(&request.strategy, &request.strategy_dir)?;
        let mut selected = self.select(&request.environments).await?;
        if let Some(shard) = request.shard {
            selected.retain(|e| shard.contains(&e.name));
        }
        let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
        for environment in &selected {
            let identity = crate::connection::database_identity(&environment.connection);
            if let Some(first) = seen.insert(identity.clone(), &environment.name) {
                return Err(CoordinatorError::DuplicateTarget {
                    first: first.to_string(),
                    second: environment.name.clone(),
                    database: crate::redact::redact(&identity),
                });
            }
        }
        let mut approved: Vec<&String> = request.options.approvals.approved.iter().collect();
        approved.sort();
        if let Some(name) = approved.into_iter().find(|name| self.registry.get(name).is_err()) {
            return Err(CoordinatorError::Option(format!(
                "--approve: environment '{name}' is not configured (known: {})",
                crate::registry::some_of(&self.registry.names())
            )));
        }
        // A simulation asks no plugin: approvals are scripted.
        for environment in selected.iter().filter(|_| request.options.simulation.is_none()) {
            for approver in &environment.approvers {
                let loaded = self.plugins.as_ref().is_some_and(|p| p.get(approver).is_some());
                if !loaded {
                    return Err(CoordinatorError::Option(format!(
                        "environment '{}' lists approver '{approver}', which is not a loaded plugin (add it to \"plugins\")",
                        environment.name
                    )));
                }
            }
        }
        for environment in &selected {
            self.promotion_sources(environment)?;
        }
        crate::engine::check_pins(&selected, &request.migrations)?;
        let mut environments = selected.clone();
        deployment_order(&mut environments);
        let recorded = !request.options.dry_run && request.options.simulation.is_none();
        let (events, recording) = match self.state.as_ref().filter(|_| recorded) {
            Some(_) => {
                let id = request.context.deployment_id.clone();
                let shard = request.shard.map(|s| s.to_string());
                let key = crate::state::record_key(&id, shard.as_deref());
                let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
                let recording = Recording {
                    events: Some(receiver),
                    recorder: None,
                    retry_of: request.retry_of.clone(),
                    shard,
                    key,
                    recorded_runner: request.recorded_runner.clone(),
                    plan_changes: request.plan_changes.clone(),
                };
                (EventSink::new(sender), Some(recording))
            }
            None => (self.events.clone(), None),
        };
        let rediscovery = match (request.options.refresh_discovery, &self.discovery) {
            (false, _) => None,
            (true, None) => {
                return Err(CoordinatorError::Option(
                    "--refresh-discovery: the environments file has no discover template to expand again".into(),
                ));
            }
            (true, Some(file)) => Some(rediscover::Rediscovery {
                file: file.clone(),
                selection: request.environments.clone(),
                shard: request.shard,
                timeout: request.options.health_timeout,
                client: self.client.clone(),
            }),
        };
        let engine = Engine::new(EngineParts {
            input_order: selected.iter().map(|e| e.name.clone()).collect(),
            environments,
            migrations: Arc::new(request.migrations),
            options: request.options,
            context: request.context,
            client: self.client.clone(),
            events,
            approver: self.approver.clone(),
        });
        let engine = match &self.plugins {
            Some(plugins) => engine.with_plugins(plugins.clone()),
            None => engine,
        };
        let engine = match rediscovery {
            Some(rediscovery) => engine.with_discoverer(Arc::new(rediscovery)),
            None => engine,
        };
        engine.keep(request.kept);
        engine.set_strategy_name(&strategy.name);
        Ok(PreparedDeployment {
            coordinator: self,
            engine: Arc::new(engine),
            strategy,
            recording,
            claimed: false,
        })
    }
}
