//! The `surql` command line: parses flags, calls the library, prints. No
//! orchestration logic lives here.

pub mod args;
mod continued;
mod migrate;
mod orchestrate;
mod progress;
mod record_args;
mod records;
mod render;
mod simulate;
mod unlock;

use clap::{CommandFactory, Parser};

use crate::Error;
use crate::error::EXIT_USAGE;
use args::{Cli, Command};

/// The man page on stdout, or one page per command (`surql-orchestrate-deploy.1`) in `out_dir`.
fn man_pages(out_dir: Option<&std::path::Path>) -> Result<i32, Error> {
    let command = Cli::command();
    let written = match out_dir {
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout()),
        Some(dir) => std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command, dir)),
    };
    written
        .map(|()| 0)
        .map_err(|e| Error::io("cannot write the man page", e))
}

/// Logs to stderr at `RUST_LOG` (default `warn`), every line redacted.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(|| crate::redact::RedactingWriter(std::io::stderr()))
        .init();
}

/// Parses the process arguments, runs the command, returns the exit code.
pub async fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    let result = match cli.command {
        Command::Migrate(command) => migrate::run(command).await,
        Command::Orchestrate(command) => orchestrate::run(command).await,
        Command::Strategy(command) => simulate::run(command).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "surql", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { out_dir } => man_pages(out_dir.as_deref()),
        Command::ConfigSchema => crate::config::json_schema()
            .and_then(|schema| serde_json::to_string_pretty(&schema))
            .map(|text| {
                println!("{text}");
                0
            })
            .map_err(|e| Error::io("cannot write the schema", e.into())),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", crate::redact::redact(&error.report()));
            error.exit_code()
        }
    }
}
