//! The `surql` binary: logging, runtime, CLI, exit code.

// jemalloc where SurrealDB's own server uses it: a third less client CPU
// reading 10,000 tenants than glibc's malloc (BENCHMARKS.md, ninth round).
surql::jemalloc_where_surrealdb_uses_it!();

fn main() {
    let traces = surql::cli::init_logging();
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
    let code = runtime.block_on(surql::cli::run());
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    if let Some(traces) = traces {
        traces.shutdown();
    }
    std::process::exit(code);
}
