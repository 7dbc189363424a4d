//! Reading the records: the newest deployments, one deployment with its
//! environments, and what past deployments tell promotion rules and
//! estimates — from SurrealDB, from the process serving an embedded store,
//! or from a folder of record files.

use serde_json::json;

use super::files;
use super::record::{aggregate, in_selection_order, parse};
use super::store::{Backend, run_retrying};
use super::{DeploymentRecord, EnvironmentRecord, StateError, StateStore, served};
use crate::connection::Db;

impl StateStore {
    /// The newest `limit` deployments, newest first (a sharded one as a whole).
    pub async fn list(&self, limit: usize) -> Result<Vec<DeploymentRecord>, StateError> {
        match &self.backend {
            Backend::Direct(db) => list_in(db, limit).await,
            Backend::Served(socket) => served::ask(socket, &self.url, &served::Request::List { limit }).await,
            Backend::Files(store) => store.locked(false, move |store| files::list(store, limit)).await,
        }
    }

    /// One deployment and its environments, in the order they were selected.
    pub async fn show(&self, id: &str) -> Result<(DeploymentRecord, Vec<EnvironmentRecord>), StateError> {
        match &self.backend {
            Backend::Direct(db) => show_in(db, id).await,
            Backend::Served(socket) => served::ask(socket, &self.url, &served::Request::Show { id: id.into() }).await,
            Backend::Files(store) => {
                let id = id.to_string();
                store.locked(false, move |store| files::show(store, &id)).await
            }
        }
    }
}

pub(super) async fn list_in(db: &Db, limit: usize) -> Result<Vec<DeploymentRecord>, StateError> {
    let newest = run_retrying(
        db,
        "SELECT deployment_id, started_at FROM deployment ORDER BY started_at DESC;",
        json!({}),
    )
    .await?;
    let mut ids: Vec<String> = Vec::new();
    for row in newest
        .first()
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(id) = row.get("deployment_id").and_then(serde_json::Value::as_str)
            && !ids.iter().any(|seen| seen == id)
        {
            ids.push(id.to_string());
        }
        if ids.len() == limit {
            break;
        }
    }
    let rows = run_retrying(
        db,
        "SELECT * OMIT id FROM deployment WHERE deployment_id IN $ids;",
        json!({ "ids": ids }),
    )
    .await?;
    let records: Vec<DeploymentRecord> = parse(rows.into_iter().next().unwrap_or_default())?;
    Ok(ids
        .iter()
        .filter_map(|id| aggregate(records.iter().filter(|r| &r.id == id).cloned().collect()))
        .collect())
}

impl StateStore {
    /// Per environment of `environments`, the migration versions that ended
    /// SUCCESS there in any recorded deployment (promotion rules).
    pub async fn succeeded_versions(
        &self,
        environments: &[String],
    ) -> Result<std::collections::HashMap<String, std::collections::HashSet<String>>, StateError> {
        let mut succeeded: std::collections::HashMap<String, std::collections::HashSet<String>> =
            environments.iter().map(|e| (e.clone(), Default::default())).collect();
        if environments.is_empty() {
            return Ok(succeeded);
        }
        if let Some(socket) = self.served_socket() {
            let rows: Vec<(String, Vec<String>)> = super::served::ask(
                socket,
                self.url(),
                &super::served::Request::Succeeded {
                    environments: environments.to_vec(),
                },
            )
            .await?;
            for (environment, versions) in rows {
                succeeded.entry(environment).or_default().extend(versions);
            }
            return Ok(succeeded);
        }
        let answer = match self.files() {
            Some(store) => {
                let wanted = environments.to_vec();
                let rows = store.locked(false, move |store| store.rows_of(&wanted)).await?;
                let rows = rows.into_iter().filter(|row| row["state"] == "success" && row["versions"].is_array());
                vec![serde_json::Value::Array(rows.collect())]
            }
            None => self
                .run(
                    "SELECT environment, versions FROM deployment_env WHERE environment IN $environments AND state = 'success' AND versions != NONE;",
                    json!({ "environments": environments }),
                )
                .await?,
        };
        for row in answer
            .first()
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(environment) = row["environment"].as_str() else {
                continue;
            };
            let versions = row["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str);
            // Recorded as `version_name`: the version is what comes before the first `_`.
            succeeded
                .entry(environment.to_string())
                .or_default()
                .extend(versions.map(|v| v.split('_').next().unwrap_or(v).to_string()));
        }
        Ok(succeeded)
    }
}

impl StateStore {
    /// Per environment of `environments`, how long its deployments took
    /// there (seconds; deployments that succeeded and applied something).
    pub async fn past_durations(
        &self,
        environments: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<f64>>, StateError> {
        if let Some(socket) = self.served_socket() {
            let rows: Vec<(String, Vec<f64>)> = super::served::ask(
                socket,
                self.url(),
                &super::served::Request::Durations {
                    environments: environments.to_vec(),
                },
            )
            .await?;
            return Ok(rows.into_iter().collect());
        }
        let answer = match self.files() {
            Some(store) => {
                let wanted = environments.to_vec();
                let rows = store.locked(false, move |store| store.rows_of(&wanted)).await?;
                let rows = rows.into_iter().filter(|row| {
                    row["state"] == "success"
                        && row["migrations_applied"].as_u64().is_some_and(|n| n > 0)
                        && row["duration_s"].is_number()
                });
                vec![serde_json::Value::Array(rows.collect())]
            }
            None => self
                .run(
                    "SELECT environment, duration_s FROM deployment_env WHERE environment IN $environments AND state = 'success' AND migrations_applied > 0 AND duration_s != NONE;",
                    json!({ "environments": environments }),
                )
                .await?,
        };
        let mut durations: std::collections::HashMap<String, Vec<f64>> = Default::default();
        for row in answer
            .first()
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(environment), Some(seconds)) = (row["environment"].as_str(), row["duration_s"].as_f64()) {
                durations.entry(environment.to_string()).or_default().push(seconds);
            }
        }
        Ok(durations)
    }
}

/// One deployment and its environments, in the order they were selected.
pub(super) async fn show_in(db: &Db, id: &str) -> Result<(DeploymentRecord, Vec<EnvironmentRecord>), StateError> {
    let answer = run_retrying(db,
            "SELECT * OMIT id FROM deployment WHERE deployment_id = $id; SELECT * OMIT id, deployment FROM deployment_env WHERE deployment = $id;",
            json!({ "id": id }),
        )
        .await?;
    let mut answer = answer.into_iter();
    let parts: Vec<DeploymentRecord> = parse(answer.next().unwrap_or_default())?;
    let deployment = aggregate(parts).ok_or_else(|| StateError::NotFound(id.to_string()))?;
    let mut environments: Vec<EnvironmentRecord> = parse(answer.next().unwrap_or_default())?;
    in_selection_order(&deployment, &mut environments);
    Ok((deployment, environments))
}
