//! `surql orchestrate baseline` and `adopt`: recording, on each selected
//! environment, that every migration up to a version is already applied
//! there, or turning another tool's history into surql's.

use serde::Serialize;

use super::MigrationCoordinator;
use crate::connection::{Client, Timeouts, connect, connect_read_only};
use crate::migration::adopt;
use crate::migration::baseline::{baseline, baseline_plan};
use crate::migration::{ApplyContext, ApplyError, DatabaseError, Migration, applied_migrations};
use crate::registry::{EnvironmentConfig, RegistryError};

/// What a baseline or an adoption did (or, in a dry run, would do) on one environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineOutcome {
    /// The environment's name.
    pub environment: String,
    /// `version_name` of each migration recorded (as baseline, or adopted).
    pub recorded: Vec<String>,
    /// Why nothing was recorded there.
    pub error: Option<String>,
}

impl MigrationCoordinator {
    /// Records every migration up to `version` as baseline on each selected
    /// environment (see [`crate::migration::baseline::baseline`]), a few at
    /// a time; with `dry_run`, reads only and says what it would record.
    pub async fn baseline_environments(
        &self,
        environments: &[String],
        migrations: &[Migration],
        version: &str,
        ctx: &ApplyContext,
        timeouts: Timeouts,
        dry_run: bool,
    ) -> Result<Vec<BaselineOutcome>, RegistryError> {
        let client = &self.client;
        self.on_each_selected(environments, |environment| async move {
            baseline_one(client, &environment, migrations, version, ctx, timeouts, dry_run).await
        })
        .await
    }

    /// Adopts oneiriq-surql's history on each selected environment (see
    /// [`crate::migration::adopt::adopt`]); with `dry_run`, reads only.
    pub async fn adopt_environments(
        &self,
        environments: &[String],
        migrations: &[Migration],
        ctx: &ApplyContext,
        timeouts: Timeouts,
        dry_run: bool,
    ) -> Result<Vec<BaselineOutcome>, RegistryError> {
        let client = &self.client;
        self.on_each_selected(environments, |environment| async move {
            adopt_one(client, &environment, migrations, ctx, timeouts, dry_run).await
        })
        .await
    }

    /// `run` on each selected environment, a few at a time, in selection order.
    async fn on_each_selected<F, Fut>(
        &self,
        environments: &[String],
        run: F,
    ) -> Result<Vec<BaselineOutcome>, RegistryError>
    where
        F: FnMut(EnvironmentConfig) -> Fut,
        Fut: std::future::Future<Output = BaselineOutcome>,
    {
        let selected = self.select(environments).await?;
        Ok(crate::concurrent::bounded(selected.into_iter().map(run), crate::health::CHECK_CONCURRENCY).await)
    }
}

async fn adopt_one(
    client: &Client,
    environment: &EnvironmentConfig,
    migrations: &[Migration],
    ctx: &ApplyContext,
    timeouts: Timeouts,
    dry_run: bool,
) -> BaselineOutcome {
    let connection = &environment.connection;
    let outcome: Result<Vec<String>, DatabaseError> = async {
        let rows = if dry_run {
            let foreign = match connect_read_only(client, connection, timeouts).await? {
                Some(db) => adopt::read_foreign(&db).await.map_err(ApplyError::from)?,
                None => None,
            };
            let foreign = foreign.ok_or_else(|| ApplyError::Refused(adopt::NOTHING_TO_ADOPT.into()))?;
            adopt::adopt_plan(migrations, &foreign)?
        } else {
            let db = connect(client, connection, timeouts).await?;
            adopt::adopt(&db, migrations, ctx).await?
        };
        Ok(rows.iter().map(adopt::AdoptedRow::id).collect())
    }
    .await;
    finished(environment, outcome)
}

/// Databases without surql's history may hold another tool's: each such
/// reading becomes unhealthy, naming the tool and what to run. Only those
/// are asked (one `INFO FOR DB` each, a few at a time), through `client`.
pub(super) async fn name_foreign_histories(
    client: &Client,
    environments: &[&EnvironmentConfig],
    readings: &mut [crate::health::Reading],
    timeout: std::time::Duration,
) {
    let checks: Vec<_> = readings
        .iter()
        .enumerate()
        .filter(|(_, r)| r.history.as_ref().is_none_or(Vec::is_empty) && r.status.is_healthy)
        .map(|(i, _)| {
            let connection = &environments[i].connection;
            async move {
                let foreign = match connect_read_only(client, connection, Timeouts::from(timeout)).await {
                    Ok(Some(db)) => adopt::foreign_tables(&db).await.ok().flatten(),
                    _ => None,
                };
                (i, foreign)
            }
        })
        .collect();
    for (i, foreign) in crate::concurrent::bounded(checks, crate::health::CHECK_CONCURRENCY).await {
        if let Some(foreign) = foreign {
            readings[i].status.is_healthy = false;
            readings[i].status.error = Some(foreign);
        }
    }
}

fn finished(environment: &EnvironmentConfig, outcome: Result<Vec<String>, DatabaseError>) -> BaselineOutcome {
    let (recorded, error) = match outcome {
        Ok(recorded) => (recorded, None),
        Err(error) => (Vec::new(), Some(crate::redact::redact(&error.to_string()))),
    };
    BaselineOutcome {
        environment: environment.name.clone(),
        recorded,
        error,
    }
}

async fn baseline_one(
    client: &Client,
    environment: &EnvironmentConfig,
    migrations: &[Migration],
    version: &str,
    ctx: &ApplyContext,
    timeouts: Timeouts,
    dry_run: bool,
) -> BaselineOutcome {
    let connection = &environment.connection;
    let outcome: Result<Vec<String>, DatabaseError> = async {
        if dry_run {
            let applied = match connect_read_only(client, connection, timeouts).await? {
                Some(db) => applied_migrations(&db).await.map_err(ApplyError::from)?,
                None => Vec::new(),
            };
            let plan = baseline_plan(migrations, &applied, version)?;
            return Ok(plan.into_iter().map(Migration::id).collect());
        }
        let db = connect(client, connection, timeouts).await?;
        Ok(baseline(&db, connection, migrations, version, ctx).await?)
    }
    .await;
    finished(environment, outcome)
}
