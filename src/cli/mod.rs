//! The `surql` command line: parses flags, calls the library, prints. No
//! orchestration logic lives here.

pub mod args;
mod migrate;
mod orchestrate;
mod progress;
mod render;

use clap::Parser;

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
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {}", crate::redact::redact(&format!("{:#}", failure.error)));
            failure.code
        }
    }
}
