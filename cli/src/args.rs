//! Command-line flags (clap). Turned into library requests by the command modules.
// Doc comments here are the `--help` text, not rustdoc: `NAME[,NAME]` and
// `<version>` are meant literally.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use surql::connection::AuthLevel;

use super::flags::parse_auth_level;
pub use super::flags::{MigrationsDir, OrchestrateCommon, OutputFormat, RolloutArgs, parse_lock_ttl, parse_seconds};
pub use super::record_args::{
    ApproveArgs, ExistingHistoryArgs, RecordedTimeouts, RollbackArgs, ShardArgs, SimulateArgs, StateArgs, SteerArgs,
};

/// Deploy SurrealDB schema migrations to one database or many environments.
#[derive(Debug, Parser)]
#[command(name = "surql", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrations on one database: create, up, down, status, validate.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Many environments: deploy with a strategy, status, validate.
    #[command(subcommand)]
    Orchestrate(OrchestrateCommand),
    /// Rollout strategies: try one without a database.
    #[command(subcommand)]
    Strategy(StrategyCommand),
    /// Print a shell completion script (e.g. `surql completions bash > /etc/bash_completion.d/surql`).
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a folder.
    Man {
        /// Write `surql.1`, `surql-orchestrate-deploy.1`, … into this folder.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Print the JSON Schema of environments.json (what `environments.schema.json` holds).
    ConfigSchema,
    /// Print a generated reference as Markdown (what docs/reference/ holds).
    #[command(hide = true)]
    Reference {
        #[arg(value_enum)]
        which: Reference,
    },
}

/// Which generated reference `surql reference` prints.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Reference {
    /// Every command and flag (docs/reference/commands.md).
    Commands,
    /// Every environments.json key (docs/reference/config.md).
    Config,
}

#[derive(Debug, Subcommand)]
pub enum StrategyCommand {
    /// Run a strategy against the selected environments with scripted
    /// outcomes (success unless named), instantly and without touching any
    /// database; prints its waves and the result each environment would get.
    Simulate(Box<SimulateArgs>),
}

#[derive(Debug, Subcommand)]
pub enum OrchestrateCommand {
    /// Deploy migrations to environments with a rollout strategy.
    Deploy(Box<DeployArgs>),
    /// Health, applied version, pending migrations and drift per environment.
    Status {
        /// Environments: NAME[,NAME], all, tag:TAG (combinable).
        #[arg(short = 'e', long = "environments", required = true, value_delimiter = ',')]
        environments: Vec<String>,
        #[command(flatten)]
        common: OrchestrateCommon,
    },
    /// Check every environment's configuration and connectivity.
    Validate {
        /// Environments to check (default: all).
        #[arg(short = 'e', long = "environments", value_delimiter = ',', default_value = "all")]
        environments: Vec<String>,
        #[command(flatten)]
        common: OrchestrateCommon,
    },
    /// Healthy, every migration applied with its checksum, and each applied
    /// migration's `-- migrate:verify` section holding (exit 1 otherwise).
    Verify {
        /// Environments: NAME[,NAME], all, tag:TAG (combinable).
        #[arg(short = 'e', long = "environments", required = true, value_delimiter = ',')]
        environments: Vec<String>,
        #[command(flatten)]
        common: OrchestrateCommon,
    },
    /// Recorded deployments, newest first: id, when, actor, strategy, results, state.
    Deployments {
        /// Show at most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Environments file (its `"state"` names the store).
        #[arg(long, default_value = "environments.json", env = "SURQL_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        state: StateArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// A read-only web dashboard over the state store: deployments, waves,
    /// a map of every environment, failures, commands; live while they run.
    Dashboard(super::record_args::DashboardArgs),
    /// One recorded deployment: its options and every environment's state.
    Show {
        /// The deployment id (see `surql orchestrate deployments`).
        id: String,
        /// Environments file (its `"state"` names the store).
        #[arg(long, default_value = "environments.json", env = "SURQL_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        state: StateArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Continue an interrupted or crashed deployment with its strategy and
    /// options: environments it finished keep their result untouched, the
    /// strategy runs again over the rest, under the same deployment id.
    Resume {
        /// The deployment id (see `surql orchestrate deployments`).
        id: String,
        /// Resume although its runner may still be alive (on another
        /// machine), or although the migration files differ from the
        /// deployment's recorded plan (the change is recorded).
        #[arg(long)]
        force: bool,
        /// Of a deployment split across runners: this shard's part.
        #[command(flatten)]
        shard: ShardArgs,
        /// When a running deployment holds some of the same environments, wait for it.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        timeouts: RecordedTimeouts,
        #[command(flatten)]
        approvals: ApproveArgs,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        common: OrchestrateCommon,
    },
    /// A new deployment, linked to ID, over its environments that ended
    /// FAILED or ROLLED_BACK (`--failed`, the default) and/or SKIPPED (`--skipped`).
    Retry {
        /// The deployment id (see `surql orchestrate deployments`).
        id: String,
        /// Environments that ended FAILED, ROLLED_BACK or outcome unknown.
        #[arg(long)]
        failed: bool,
        /// Environments that ended SKIPPED.
        #[arg(long)]
        skipped: bool,
        /// When a running deployment holds some of the same environments, wait for it.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        timeouts: RecordedTimeouts,
        #[command(flatten)]
        approvals: ApproveArgs,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        common: OrchestrateCommon,
    },
    /// Roll back, newest first, exactly the migrations deployment ID applied
    /// on each of its environments (found by the deployment id in each
    /// history row), as a rollout with any strategy. An environment where a
    /// later deployment applied on top is refused unless --force.
    Rollback(Box<RollbackArgs>),
    /// Record that every migration up to VERSION is already applied on each
    /// environment (its schema was made another way): history rows marked
    /// baseline, nothing run; refused where the history goes beyond VERSION.
    Baseline {
        /// The last migration already in place.
        #[arg(long)]
        version: String,
        #[command(flatten)]
        existing: ExistingHistoryArgs,
    },
    /// Turn oneiriq-surql's `_migration_history` into surql's on each
    /// environment (see `surql migrate adopt`).
    Adopt(ExistingHistoryArgs),
    /// Remove the migration lock of environments, naming each holder and asking first.
    Unlock {
        /// Environments: NAME[,NAME], all, tag:TAG (combinable).
        #[arg(short = 'e', long = "environments", required = true, value_delimiter = ',')]
        environments: Vec<String>,
        /// Remove without asking (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        common: OrchestrateCommon,
    },
    /// Pause a running deployment (every shard, from any machine sharing
    /// its state store): environments running finish, no new one starts.
    Pause {
        /// The deployment id (see `surql orchestrate deployments`).
        id: String,
        /// Why, recorded and shown with the pause.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        steer: SteerArgs,
    },
    /// Go on with a paused deployment.
    Continue {
        /// The deployment id.
        id: String,
        #[command(flatten)]
        steer: SteerArgs,
    },
    /// Abort a running deployment: environments running finish, the rest
    /// end SKIPPED "aborted by ACTOR: REASON", never connected to.
    Abort {
        /// The deployment id.
        id: String,
        /// Why, recorded and given as every skipped environment's reason.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        steer: SteerArgs,
    },
    /// Change how many environments a running deployment deploys at once,
    /// in the wave running and every wave to come.
    Throttle {
        /// The deployment id.
        id: String,
        /// Environments at once (at least 1).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max_concurrent: u64,
        #[command(flatten)]
        steer: SteerArgs,
    },
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Environments: NAME[,NAME], all, tag:TAG (combinable).
    #[arg(short = 'e', long = "environments", required = true, value_delimiter = ',')]
    pub environments: Vec<String>,
    /// sequential, parallel, rolling, canary, a name in ./strategies/, or a .rhai path.
    #[arg(long, default_value = "sequential")]
    pub strategy: String,
    #[command(flatten)]
    pub rollout: RolloutArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// The deployment id (letters, digits, '.', '_', '-'), instead of a new
    /// one: the one id every shard of a split deployment records under.
    #[arg(long, env = "SURQL_DEPLOYMENT_ID")]
    pub deployment_id: Option<String>,
    /// When a running deployment holds some of the same environments, wait
    /// for it instead of stopping.
    #[arg(long)]
    pub wait: bool,
    /// Plan only: pending migrations, SurrealQL, destructive statements, approvals. Writes nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Check health before deploying (the default).
    #[arg(long, conflicts_with = "skip_health_check")]
    pub verify_health: bool,
    /// Do not check health before deploying.
    #[arg(long)]
    pub skip_health_check: bool,
    /// Keep what was applied when an environment fails (no auto-rollback).
    #[arg(long)]
    pub no_rollback: bool,
    /// Deploy environments under a change freeze anyway, for REASON
    /// (recorded with the actor; holds and windows still apply).
    #[arg(long, value_name = "REASON")]
    pub override_freeze: Option<String>,
    #[command(flatten)]
    pub approvals: ApproveArgs,
    /// Seconds a strategy may spend in `pause` over the whole run.
    #[arg(long, default_value = "86400", value_parser = parse_seconds)]
    pub max_pause: Duration,
    /// New environments on a server whose recent round trips pass MS
    /// milliseconds wait until it recovers (at most 10 minutes, then SKIPPED).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_server_latency_ms: Option<u64>,
    /// Expand the discovery templates again before each wave: tenants created
    /// since the deployment started join the waves still to come.
    #[arg(long)]
    pub refresh_discovery: bool,
    /// A value for the strategy script's `options` (repeatable): --set bake_seconds=30.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Name recorded as the actor in each history row (default: the OS user).
    #[arg(long, env = "SURQL_ACTOR")]
    pub actor: Option<String>,
    /// Seconds allowed to connect and sign in.
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub connect_timeout: Duration,
    /// Seconds one query (one migration) may take before that environment fails.
    #[arg(long, default_value = "300", value_parser = parse_seconds)]
    pub operation_timeout: Duration,
    /// Seconds a database's migration lock lasts without renewal (a crashed run's lock expires).
    #[arg(long, default_value = "300", value_parser = parse_lock_ttl)]
    pub lock_ttl: Duration,
    /// Apply a pending migration older than the newest applied one (refused by default).
    #[arg(long)]
    pub allow_out_of_order: bool,
    /// Deploy although an applied migration's file is gone (refused by default).
    #[arg(long)]
    pub allow_missing: bool,
    /// Also write the whole run as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub metrics: super::record_args::MetricsArgs,
    #[command(flatten)]
    pub common: OrchestrateCommon,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Create a new migration file with a timestamp version and both sections.
    Create {
        /// Name of the migration (letters, digits, '_' and '-').
        name: String,
        #[command(flatten)]
        dir: MigrationsDir,
    },
    /// Apply pending migrations, oldest first.
    Up {
        /// Apply at most N migrations; 0 only creates the history table.
        #[arg(long)]
        steps: Option<usize>,
        /// Print the SurrealQL that would run; write nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Roll back applied migrations, newest first.
    Down {
        /// Roll back N migrations.
        #[arg(long, default_value_t = 1)]
        steps: usize,
        /// Print the SurrealQL that would run; write nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Record that every migration up to VERSION is already applied (the
    /// schema was made another way): history rows marked baseline, with
    /// today's checksums; nothing runs. Refused where the history goes beyond VERSION.
    Baseline {
        /// The last migration already in place.
        version: String,
        /// Say what would be recorded; write nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Turn oneiriq-surql's `_migration_history` into surql's: the same
    /// migrations (matched to the files `migrate import` made), their
    /// original `applied_at`; the old rows kept in `_migration_history_oneiriq`.
    Adopt {
        /// Say what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Convert another tool's migration files into surql files, keeping each
    /// version (as digits): `--from oneiriq` reads oneiriq-surql's `.surql`
    /// (`-- @up`/`-- @down`) and `.py` (`up()`/`down()` returning literal lists).
    Import {
        /// The tool whose files these are: `oneiriq`.
        #[arg(long = "from", value_name = "FORMAT")]
        from: String,
        /// Its migrations directory.
        source: PathBuf,
        /// Where the surql files go (created if missing; existing files are not overwritten).
        #[arg(long, default_value = "migrations")]
        out: PathBuf,
    },
    /// Show every migration: applied, pending, drifted, missing or baseline.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Check that every file parses and, with a database, that checksums match.
    Validate {
        #[command(flatten)]
        target: Target,
    },
    /// Run the `-- migrate:verify` sections of the migrations applied on the
    /// database, after checking every migration is applied with its checksum.
    Verify {
        #[command(flatten)]
        target: Target,
    },
    /// Remove the database's migration lock, naming the holder and asking first
    /// (for a lock whose holder is known to be gone; a crashed run's lock also expires).
    Unlock {
        /// Remove without asking (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// One database, from flags, SURQL_* variables, or an environments file.
#[derive(Debug, Args)]
pub struct Target {
    #[command(flatten)]
    pub dir: MigrationsDir,
    /// Database URL: mem://, surrealkv://PATH, ws://HOST:PORT[/rpc], wss://, http(s)://.
    #[arg(long, env = "SURQL_DB_URL")]
    pub db_url: Option<String>,
    /// Namespace.
    #[arg(long, env = "SURQL_NS")]
    pub ns: Option<String>,
    /// Database.
    #[arg(long, env = "SURQL_DB")]
    pub db: Option<String>,
    /// User name for sign-in.
    #[arg(long, env = "SURQL_USER")]
    pub user: Option<String>,
    /// Password for sign-in.
    #[arg(long, env = "SURQL_PASS", hide_env_values = true)]
    pub pass: Option<String>,
    /// Level of the user: root, namespace or database.
    #[arg(long, env = "SURQL_AUTH_LEVEL", value_parser = parse_auth_level)]
    pub auth_level: Option<AuthLevel>,
    /// Environments file to take the connection from (with --env).
    #[arg(long, env = "SURQL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Environment of --config to use.
    #[arg(long = "env", env = "SURQL_ENV")]
    pub environment: Option<String>,
    /// Seconds allowed to connect and sign in.
    #[arg(long, default_value = "5", env = "SURQL_CONNECT_TIMEOUT", value_parser = parse_seconds)]
    pub connect_timeout: Duration,
    /// Name recorded as the actor in the history (default: the OS user).
    #[arg(long, env = "SURQL_ACTOR")]
    pub actor: Option<String>,
    /// Seconds one query (one migration) may take.
    #[arg(long, default_value = "300", value_parser = parse_seconds)]
    pub operation_timeout: Duration,
    /// Seconds the migration lock lasts without renewal.
    #[arg(long, default_value = "300", value_parser = parse_lock_ttl)]
    pub lock_ttl: Duration,
    /// Apply a pending migration older than the newest applied one (refused by default).
    #[arg(long)]
    pub allow_out_of_order: bool,
    /// Deploy although an applied migration's file is gone (refused by default).
    #[arg(long)]
    pub allow_missing: bool,
}
