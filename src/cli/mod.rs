//! The `surql` command line: parses flags, calls the library, prints. No
//! orchestration logic lives here.

pub mod args;
mod migrate;
mod orchestrate;
mod progress;
mod render;

use clap::{CommandFactory, Parser};

use crate::error::{EXIT_FAILURE, EXIT_USAGE};
use args::{Cli, Command};

/// A command that did not succeed, with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

impl Failure {
    /// Nothing ran: usage, config or migration-file error.
    pub fn usage(error: anyhow::Error) -> Self {
        Self {
            code: EXIT_USAGE,
            error,
        }
    }

    /// Something ran and did not succeed.
    pub fn failed(error: anyhow::Error) -> Self {
        Self {
            code: EXIT_FAILURE,
            error,
        }
    }
}

/// The man page on stdout, or one page per command (`surql-orchestrate-deploy.1`) in `out_dir`.
fn man_pages(out_dir: Option<&std::path::Path>) -> Result<i32, Failure> {
    let command = Cli::command();
    let written = match out_dir {
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout()),
        Some(dir) => std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command, dir)),
    };
    written
        .map(|()| 0)
        .map_err(|e| Failure::failed(anyhow::anyhow!("cannot write the man page: {e}")))
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
            .map_err(|e| Failure::failed(anyhow::anyhow!("cannot write the schema: {e}"))),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {}", crate::redact::redact(&format!("{:#}", failure.error)));
            failure.code
        }
    }
}
