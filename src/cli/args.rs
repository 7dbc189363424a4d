//! Command-line flags (clap). Turned into library requests by the command modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::connection::AuthLevel;

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
    /// Show every migration: applied, pending, drifted or missing.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Check that every file parses and, with a database, that checksums match.
    Validate {
        #[command(flatten)]
        target: Target,
    },
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
    #[arg(long, default_value_t = 5.0, env = "SURQL_CONNECT_TIMEOUT")]
    pub connect_timeout: f64,
    /// Name recorded as the actor in the history (default: the OS user).
    #[arg(long, env = "SURQL_ACTOR")]
    pub actor: Option<String>,
}

fn parse_auth_level(value: &str) -> Result<AuthLevel, String> {
    match value.to_ascii_lowercase().as_str() {
        "root" => Ok(AuthLevel::Root),
        "namespace" | "ns" => Ok(AuthLevel::Namespace),
        "database" | "db" => Ok(AuthLevel::Database),
        other => Err(format!(
            "'{other}' is not an auth level: use root, namespace or database"
        )),
    }
}
