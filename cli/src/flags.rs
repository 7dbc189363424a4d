//! Flag groups and value parsers that many commands share: a leaf that
//! `args` (the command tree) and `record_args` both build on.
// Doc comments here are the `--help` text, not rustdoc.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use surql::connection::AuthLevel;
use surql::migration::lock::MIN_LOCK_TTL;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Progress and a table for people.
    Table,
    /// One JSON document on stdout.
    Json,
}

#[derive(Debug, Args)]
pub struct OrchestrateCommon {
    /// Environments file.
    #[arg(long, default_value = "environments.json", env = "SURQL_CONFIG")]
    pub config: PathBuf,
    #[command(flatten)]
    pub dir: MigrationsDir,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Seconds allowed for one environment's health check.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    pub health_timeout: Duration,
}

/// The shape of a rollout, shared by `deploy` and `strategy simulate`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// Rolling: environments per batch.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// Canary: percentage deployed first (0 < p <= 100; at least one environment).
    #[arg(long, default_value_t = 10.0)]
    pub canary_percent: f64,
    /// Parallel: environments deployed at once.
    #[arg(long, default_value_t = 5)]
    pub max_concurrent: usize,
    /// At most N environments at once against one database server (grouped
    /// by the server they connect to), under --max-concurrent. Default: the
    /// environments file's "max_per_server", else no cap.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_per_server: Option<u64>,
    /// Stop starting environments once N of a wave failed, or P% of it
    /// (`3`, `10%`); the rest are SKIPPED untouched. Default: no budget.
    #[arg(long, value_name = "N|P%", value_parser = parse_failure_budget)]
    pub max_failures: Option<surql::FailureBudget>,
}

#[derive(Debug, Args)]
pub struct MigrationsDir {
    /// Directory of <version>_<name>.surql files.
    #[arg(
        short = 'm',
        long = "migrations-dir",
        default_value = "migrations",
        env = "SURQL_MIGRATIONS_DIR"
    )]
    pub migrations_dir: PathBuf,
}

/// A number of seconds surql can wait for: at least a millisecond (`1e-300`
/// would be a timeout of 0), at most a week (`NaN`, `inf` or `1e300` would
/// overflow the clock). The same upper bound as plugin durations.
pub fn parse_seconds(value: &str) -> Result<Duration, String> {
    match value.trim().parse::<f64>() {
        Ok(seconds) => seconds_in_range(seconds).ok_or_else(|| {
            format!(
                "'{value}' is not a number of seconds from 0.001 to {} (one week)",
                surql_plugin_sdk::MAX_SECONDS
            )
        }),
        Err(_) => Err(format!(
            "'{value}' is not a number of seconds from 0.001 to {} (one week)",
            surql_plugin_sdk::MAX_SECONDS
        )),
    }
}

/// `seconds` as a duration when it is from a millisecond to a week.
fn seconds_in_range(seconds: f64) -> Option<Duration> {
    (seconds.is_finite() && (0.001..=surql_plugin_sdk::MAX_SECONDS).contains(&seconds))
        .then(|| Duration::from_secs_f64(seconds))
}

/// A lease no shorter than [`MIN_LOCK_TTL`]: a shorter one could expire
/// between two renewals while a migration still runs.
pub fn parse_lock_ttl(value: &str) -> Result<Duration, String> {
    let ttl = parse_seconds(value)?;
    if ttl < MIN_LOCK_TTL {
        return Err(format!(
            "'{value}' is below the floor of {}s: a shorter lease could expire while a migration still runs",
            MIN_LOCK_TTL.as_secs()
        ));
    }
    Ok(ttl)
}

pub(super) fn parse_auth_level(value: &str) -> Result<AuthLevel, String> {
    match value.to_ascii_lowercase().as_str() {
        "root" => Ok(AuthLevel::Root),
        "namespace" | "ns" => Ok(AuthLevel::Namespace),
        "database" | "db" => Ok(AuthLevel::Database),
        other => Err(format!(
            "'{other}' is not an auth level: use root, namespace or database"
        )),
    }
}

pub(super) fn parse_failure_budget(text: &str) -> Result<surql::FailureBudget, String> {
    surql::FailureBudget::parse(text)
}
