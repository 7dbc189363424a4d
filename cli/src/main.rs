//! The `surql` binary: parses flags, calls the library's public API,
//! prints. No orchestration logic lives here.

// clap turns these doc comments into help texts, where `NAME[,NAME]` is not a link.
#![allow(rustdoc::broken_intra_doc_links)]

mod args;
mod execute;
mod flags;
mod migrate;
mod orchestrate;
mod progress;
mod record_args;
mod records;
mod reference;
mod render;
mod simulate;
mod unlock;

use clap::{CommandFactory, Parser};
use tracing_subscriber::Layer as _;

use args::{Cli, Command};
use surql::Error;
use surql::error::EXIT_USAGE;

// jemalloc where SurrealDB's own server uses it (x86 Linux and macOS): a
// third less client CPU reading 10,000 tenants than glibc's malloc
// (BENCHMARKS.md, ninth round). The library installs no allocator.
#[cfg(all(
    any(target_arch = "x86_64", target_arch = "x86"),
    any(target_os = "linux", target_os = "macos")
))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let traces = init_logging();
    // SurrealDB's parser and executor recurse deeply: give workers room.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(run());
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    if let Some(traces) = traces {
        traces.shutdown();
    }
    std::process::exit(code);
}

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
fn init_logging() -> Option<surql::observe::traces::TraceExport> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(|| surql::redact::RedactingWriter(std::io::stderr()))
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        );
    let (export, traces) = match surql::observe::traces::TraceExport::from_env() {
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
async fn run() -> i32 {
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
        Command::Reference { which } => {
            let text = match which {
                args::Reference::Commands => Ok(reference::commands()),
                args::Reference::Config => surql::json_schema()
                    .map(|schema| reference::config(&schema))
                    .map_err(|e| Error::io("cannot make the schema", e.into())),
            };
            text.map(|text| {
                print!("{text}");
                0
            })
        }
        Command::ConfigSchema => surql::json_schema()
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
            eprintln!("error: {}", surql::redact::redact(&error.report()));
            error.exit_code()
        }
    }
}
