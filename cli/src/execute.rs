//! What every command that deploys shares: the environments file read, the
//! coordinator made, the state store opened, and one deployment request run
//! with progress, the terminal approver and Ctrl-C, then its report printed.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::args::{DeployArgs, OrchestrateCommon, OutputFormat, StateArgs};
use super::progress::{Progress, TerminalApprover};
use super::render;
use surql::EnvironmentsFile;
use surql::Error;
use surql::EventSink;
use surql::connection::Client;
use surql::error::{EXIT_FAILURE, EXIT_SUCCESS};
use surql::load_environments;
use surql::migration::{Migration, discover_migrations};
use surql::parse_script_option;
use surql::state::StateStore;
use surql::{ClaimOptions, ClaimOutcome, DeployRequest, MigrationCoordinator};

/// The config file with its `discover` templates expanded (through `client`).
pub(super) async fn load_config(client: &Client, common: &OrchestrateCommon) -> Result<EnvironmentsFile, Error> {
    let (file, expansions) = load_environments(client, &common.config, common.health_timeout).await?;
    if common.output == OutputFormat::Table {
        for expansion in expansions {
            eprintln!(
                "discovered {} environment(s) for '{}' on {}",
                expansion.environments.len(),
                expansion.template,
                expansion.server
            );
        }
    }
    Ok(file)
}

/// A coordinator over the config file's environments, connecting through
/// `client` (the command's one client, which discovery used too).
pub(super) async fn coordinator(client: &Client, common: &OrchestrateCommon) -> Result<MigrationCoordinator, Error> {
    Ok(MigrationCoordinator::new(load_config(client, common).await?.registry()).with_client(client.clone()))
}

pub(super) fn migrations(common: &OrchestrateCommon) -> Result<Vec<Migration>, Error> {
    Ok(discover_migrations(&common.dir.migrations_dir)?)
}

/// The `--set KEY=VALUE` options for a script, their raw text registered as secrets.
pub(super) fn script_options(items: &[String]) -> Result<indexmap::IndexMap<String, serde_json::Value>, Error> {
    let mut set = indexmap::IndexMap::new();
    for item in items {
        let (key, value) = parse_script_option(item).map_err(Error::Usage)?;
        // `--set api_token=…` is a secret like any config password, typed or not.
        let raw = item.split_once('=').map_or("", |(_, raw)| raw.trim());
        surql::redact::register_secrets_in(&json!({ key.clone(): raw }));
        set.insert(key, value);
    }
    Ok(set)
}

/// `--override-freeze REASON`: the reason is recorded, so it must say something.
pub(super) fn override_freeze(reason: Option<&str>) -> Result<Option<String>, Error> {
    match reason.map(str::trim) {
        Some("") => Err(Error::Usage(
            "--override-freeze needs a reason: --override-freeze \"hotfix for INC-123\"".into(),
        )),
        reason => Ok(reason.map(str::to_string)),
    }
}

/// Runs a deployment request with progress, the terminal approver, Ctrl-C
/// and the state store (waiting for overlapping deployments with `wait`),
/// and prints its report (`--report` when `args` has one). Connects through
/// `client`, the command's (its state store's) one client.
pub(super) async fn execute(
    client: &Client,
    request: DeployRequest,
    common: &OrchestrateCommon,
    store: Option<Arc<surql::state::StateStore>>,
    claim: ClaimOptions,
    args: Option<&DeployArgs>,
) -> Result<i32, Error> {
    let dry_run = request.options.dry_run;
    let file = load_config(client, common).await?;
    let config_dir = common.config.parent().unwrap_or(Path::new("."));
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let json_output = common.output == OutputFormat::Json;
    let total = file
        .registry()
        .select(&request.environments)
        .map(|s| {
            s.iter()
                .filter(|e| request.shard.is_none_or(|shard| shard.contains(&e.name)))
                .count()
        })
        .unwrap_or(0);
    let progress = Progress::new(false, total);
    let approver = TerminalApprover {
        multi: progress.multi(),
    };
    let mut coordinator = MigrationCoordinator::from_file(&file, config_dir)?
        .with_client(client.clone())
        .with_events(EventSink::new(sender))
        .with_approver(Arc::new(approver))
        .stop_on_ctrl_c();
    if let Some(store) = store {
        coordinator = coordinator.with_state(store);
    }
    let prepared = match coordinator
        .prepare_and_claim(request, claim, |what| eprintln!("waiting: {what}"))
        .await?
    {
        ClaimOutcome::Ready { prepared, notices } => {
            notices.iter().for_each(|notice| eprintln!("{notice}"));
            prepared
        }
        ClaimOutcome::FinishedMeanwhile { what, runner, counts } => {
            eprintln!("{what} was finished by {runner} ({counts})");
            let failed = counts.failed + counts.rolled_back > 0;
            return Ok(if failed { EXIT_FAILURE } else { EXIT_SUCCESS });
        }
        _ => return Err(Error::Usage("this deployment cannot start here".into())),
    };
    let (engine, strategy) = (prepared.engine().clone(), prepared.strategy().name.clone());
    let metrics_options = args.map(|a| a.metrics.options()).unwrap_or_default();
    let (receiver, metrics) = match metrics_options.is_empty() || dry_run {
        true => (receiver, None),
        false => {
            let metrics = surql::observe::Metrics::new(
                &engine.context().deployment_id,
                &strategy,
                engine.environments().len(),
                Some(engine.clone()),
            );
            let export = surql::observe::MetricsExport::start(&metrics_options, metrics.clone()).await?;
            if let Some(address) = export.address {
                eprintln!("metrics on http://{address}/metrics");
            }
            (metrics.tap(receiver), Some(export))
        }
    };
    drop(engine);
    let renderer = tokio::spawn(progress.run(receiver));
    let started_at = chrono::Utc::now();
    let report = prepared.run().await;
    // Closing the sender ends the progress task.
    drop(coordinator);
    let _ = renderer.await;
    if let Some(metrics) = metrics {
        metrics.finish()?;
    }

    if let Some(args) = args
        && let Some(path) = &args.report
    {
        let document = render::run_report(&report, args, started_at);
        std::fs::write(path, document)
            .map_err(|e| Error::io(format!("cannot write --report {}", path.display()), e))?;
    }

    if json_output {
        println!("{}", render::report_json(&report));
    } else {
        if dry_run {
            print!("{}", render::dry_run_plan(&report));
        }
        if let Some(table) = render::results_table(&report) {
            println!("{table}");
        }
        println!("{}", render::summary_line(&report));
    }
    if let Some(lost) = &report.record_lost {
        eprintln!("error: {}", render::record_lost(&report, lost));
    } else if report.interrupted {
        eprintln!("error: interrupted; every environment is reported above");
    } else if let Some(stopped) = &report.stopped {
        eprintln!(
            "error: {}; every environment is reported above",
            surql::redact::redact(stopped)
        );
    } else if let Some(error) = &report.script_error {
        eprintln!("error: {}", surql::redact::redact(&error.to_string()));
    }
    Ok(report.exit_code())
}

/// The state store of `--state`, else of the `"state"` of the environments
/// file at `config` when there is one (its password registered as a secret).
pub(super) async fn open(client: &Client, state: &StateArgs, config: &std::path::Path) -> Result<StateStore, Error> {
    told(StateStore::open(client, store_config(state, config)?, STORE_CONNECT_TIMEOUT).await?)
}

/// The store, its notice (records of an older surql converted) printed.
fn told(store: StateStore) -> Result<StateStore, Error> {
    if let Some(notice) = store.notice() {
        eprintln!("{notice}");
    }
    Ok(store)
}

/// The store for reading only, if it exists (see [`StateStore::open_existing`]).
pub(super) async fn open_existing(
    client: &Client,
    state: &StateArgs,
    config: &std::path::Path,
) -> Result<Option<StateStore>, Error> {
    Ok(StateStore::open_existing(client, store_config(state, config)?, STORE_CONNECT_TIMEOUT).await)
}

/// [`open`] for reading: an embedded store a running deployment holds is
/// read through that process.
pub(super) async fn open_to_read(
    client: &Client,
    state: &StateArgs,
    config: &std::path::Path,
) -> Result<StateStore, Error> {
    told(StateStore::open_to_read(client, store_config(state, config)?, STORE_CONNECT_TIMEOUT).await?)
}

const STORE_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub(super) fn store_config(
    state: &StateArgs,
    config: &std::path::Path,
) -> Result<surql::connection::ConnectionConfig, Error> {
    let configured = match (&state.url, config.is_file()) {
        (None, true) => surql::load_environments_file(config)?.state,
        _ => None,
    };
    let config = state.connection(configured.as_ref());
    surql::redact::register_secrets_in(&json!({ "password": config.password }));
    Ok(config)
}
