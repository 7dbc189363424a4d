//! Flags of the recorded-deployment commands and of every command that
//! records: approvals given up front, the state store, shards, `rollback`.
// Doc comments here are the `--help` text, not rustdoc.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::flags::{OrchestrateCommon, OutputFormat, RolloutArgs, parse_lock_ttl, parse_seconds};

/// Approvals given up front, for runs that may not be able to ask.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Approve these environments up front (NAME[,NAME]).
    #[arg(long, value_delimiter = ',')]
    pub approve: Vec<String>,
    /// Approve every environment that requires approval.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

impl ApproveArgs {
    /// The approval policy: these, and a prompt when on a terminal.
    pub fn policy(&self) -> surql::ApprovalPolicy {
        use std::io::IsTerminal;
        surql::ApprovalPolicy {
            approved: self.approve.iter().map(|s| s.trim().to_string()).collect(),
            approve_all: self.yes,
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        }
    }
}

/// Where deployment records are kept.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The state store: a folder of record files (`files://PATH`), an embedded
    /// SurrealDB store (`surrealkv://PATH`), or a SurrealDB server every runner
    /// shares (`ws://host:8000`). Default: `"state"` in environments.json, else
    /// `files://.surql/deployments`.
    #[arg(long = "state", env = "SURQL_STATE", value_name = "URL")]
    pub url: Option<String>,
    /// User of a state store server (root).
    #[arg(long, env = "SURQL_STATE_USER")]
    pub state_user: Option<String>,
    /// Password of a state store server.
    #[arg(long, env = "SURQL_STATE_PASS", hide_env_values = true)]
    pub state_pass: Option<String>,
}

impl StateArgs {
    /// The store's connection (its namespace and database are surql's own):
    /// these flags, else `configured` (environments.json's `"state"`), else
    /// the embedded default.
    pub fn connection(&self, configured: Option<&surql::StateConnection>) -> surql::connection::ConnectionConfig {
        let mut config = match (&self.url, configured) {
            (Some(url), _) => surql::connection::ConnectionConfig::new(url, "surql", "state"),
            (None, Some(state)) => {
                let mut config = surql::connection::ConnectionConfig::new(&state.db_url, "surql", "state");
                config.username = state.username.clone();
                config.password = state.password.clone();
                config.auth_level = state.auth_level;
                config
            }
            (None, None) => surql::connection::ConnectionConfig::new(surql::state::DEFAULT_STATE_URL, "surql", "state"),
        };
        if self.state_user.is_some() {
            config.username = self.state_user.clone();
        }
        if self.state_pass.is_some() {
            config.password = self.state_pass.clone();
        }
        config
    }
}

/// This runner's part of a selection split across runners.
#[derive(Debug, Args)]
pub struct ShardArgs {
    /// Deploy only part I of N of the selection (I from 0), chosen by a
    /// stable hash of each environment's name; give every runner the same
    /// --deployment-id and state store.
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    pub shard: Option<String>,
    /// Split across N runners, this one's part given by JOB_COMPLETION_INDEX
    /// (as a Kubernetes Indexed Job sets it).
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
}

impl ShardArgs {
    /// The shard, when the selection is split.
    pub fn shard(&self) -> Result<Option<surql::Shard>, String> {
        use surql::Shard;
        match (&self.shard, self.shards) {
            (Some(text), _) => Shard::parse(text).map(Some).map_err(|e| format!("--shard: {e}")),
            (None, Some(count)) => {
                let index = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
                    "--shards needs JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job), or give --shard I/N"
                        .to_string()
                })?;
                let index = index
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("JOB_COMPLETION_INDEX '{index}' is not a number"))?;
                Shard::new(index, count).map(Some).map_err(|e| format!("--shards: {e}"))
            }
            (None, None) => Ok(None),
        }
    }
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The deployment to roll back (see `surql orchestrate deployments`).
    pub id: String,
    /// The rollout: sequential, parallel, rolling, canary, or a script
    /// (default: the strategy the deployment ran with).
    #[arg(long)]
    pub strategy: Option<String>,
    #[command(flatten)]
    pub rollout: RolloutArgs,
    /// Roll back where a later deployment applied on top too.
    #[arg(long)]
    pub force: bool,
    /// Show what would be rolled back where. Writes nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// When a running deployment holds some of the same environments, wait for it.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub timeouts: RecordedTimeouts,
    #[command(flatten)]
    pub approvals: ApproveArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub common: OrchestrateCommon,
}

/// The timeouts and lease of a run over a recorded deployment (`resume`,
/// `retry`, `rollback`): each the deployment's own unless given.
#[derive(Debug, Args)]
pub struct RecordedTimeouts {
    /// Seconds allowed to connect and sign in (default: the deployment's).
    #[arg(long, value_parser = parse_seconds)]
    pub connect_timeout: Option<Duration>,
    /// Seconds one query (one migration, one down section) may take before
    /// that environment fails (default: the deployment's).
    #[arg(long, value_parser = parse_seconds)]
    pub operation_timeout: Option<Duration>,
    /// Seconds a database's migration lock lasts without renewal (default: the deployment's).
    #[arg(long, value_parser = parse_lock_ttl)]
    pub lock_ttl: Option<Duration>,
}

/// Flags of the commands that steer a running deployment.
#[derive(Debug, Args)]
pub struct SteerArgs {
    /// Who gives the command (recorded; default: the OS user).
    #[arg(long)]
    pub actor: Option<String>,
    /// Environments file (its `"state"` names the store).
    #[arg(long, default_value = "environments.json", env = "SURQL_CONFIG")]
    pub config: PathBuf,
    #[command(flatten)]
    pub state: StateArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Flags of `baseline` and `adopt`: history rows for what is already there.
#[derive(Debug, Args)]
pub struct ExistingHistoryArgs {
    /// Environments: NAME[,NAME], all, tag:TAG (combinable).
    #[arg(short = 'e', long = "environments", required = true, value_delimiter = ',')]
    pub environments: Vec<String>,
    /// Say what would be recorded; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Name recorded as the actor in each history row (default: the OS user).
    #[arg(long, env = "SURQL_ACTOR")]
    pub actor: Option<String>,
    #[command(flatten)]
    pub common: OrchestrateCommon,
}

/// Where a deployment's Prometheus metrics go.
#[derive(Debug, Clone, Args, Default)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics on http://ADDR/metrics while the deployment
    /// runs (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Write the same metrics to this file every 5 s and at the end
    /// (node-exporter's textfile collector reads `*.prom`).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

impl MetricsArgs {
    pub fn options(&self) -> surql::observe::MetricsOptions {
        surql::observe::MetricsOptions {
            listen: self.metrics_listen.clone(),
            file: self.metrics_file.clone(),
        }
    }
}

/// `orchestrate dashboard`.
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Where to listen. Beyond loopback a token is required.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// A token every request must carry (`?token=` or `Authorization:
    /// Bearer`); required when listening beyond loopback.
    #[arg(long, env = "SURQL_DASHBOARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Environments file (its `"state"` names the store).
    #[arg(long, default_value = "environments.json", env = "SURQL_CONFIG")]
    pub config: PathBuf,
    #[command(flatten)]
    pub state: StateArgs,
}

/// `surql strategy simulate`'s flags.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// sequential, parallel, rolling, canary, a name in ./strategies/, or a .rhai path.
    #[arg(value_name = "FILE|NAME")]
    pub strategy: String,
    /// Environments: NAME[,NAME], all, tag:TAG (combinable).
    #[arg(short = 'e', long = "environments", required = true, value_delimiter = ',')]
    pub environments: Vec<String>,
    /// Environments where a migration fails (NAME[,NAME]).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub fail: Vec<String>,
    /// Environments whose health check fails (NAME[,NAME]).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub unhealthy: Vec<String>,
    /// Environments whose approval is denied (NAME[,NAME]).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub deny: Vec<String>,
    /// A gate halts each wave (and script `gate()` call) that includes one of these (NAME[,NAME]).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub halt: Vec<String>,
    #[command(flatten)]
    pub rollout: RolloutArgs,
    /// As deploy: failures keep what they applied (FAILED, not ROLLED_BACK).
    #[arg(long)]
    pub no_rollback: bool,
    /// As deploy: no health check before deploying.
    #[arg(long)]
    pub skip_health_check: bool,
    /// A value for the script's `options` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// As deploy: environments under a change freeze are deployed anyway.
    #[arg(long, value_name = "REASON")]
    pub override_freeze: Option<String>,
    /// The state store past durations are read from, when it exists (for estimates).
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub common: OrchestrateCommon,
}
