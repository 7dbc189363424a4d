//! The `surql` command line: parses flags, calls the library, prints. No
//! orchestration logic lives here.

// clap turns these doc comments into help texts, where `NAME[,NAME]` is not a link.
#![allow(rustdoc::broken_intra_doc_links)]

pub mod args;
mod continued;
mod execute;
mod flags;
mod migrate;
mod orchestrate;
mod progress;
mod record_args;
mod records;
mod render;
mod simulate;
mod unlock;

use clap::{CommandFactory, Parser};
use tracing_subscriber::Layer as _;

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

/// Logs to stderr at `RUST_LOG` (default `warn`), every line redacted; and
/// exports traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (flush them
/// with the returned export's `shutdown` before exiting).
pub fn init_logging() -> Option<crate::observe::traces::TraceExport> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(|| crate::redact::RedactingWriter(std::io::stderr()))
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        );
    let (export, traces) = match crate::observe::traces::TraceExport::from_env() {
        Ok(Some((export, layer))) => (Some(export), Some(layer)),
        Ok(None) => (None, None),
        Err(reason) => {
            eprintln!("warning: no traces exported: {reason}");
            (None, None)
        }
    };
    tracing_subscriber::registry().with(logs).with(traces).init();
    export
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
