//! The `surql` binary's logging, installed in a benchmark process so both
//! sides measure what the binary runs. Without a subscriber, `tracing`'s `log`
//! feature (switched on in this workspace by the SurrealDB server's axum)
//! makes every trace-level span of the embedded engine build its fields,
//! formatting each key it reads or writes: CPU of both sides of an embedded
//! benchmark (a quarter of it in a release build) that the binary never
//! spends (BENCHMARKS.md, fifteenth round).

/// Logs to stderr at `RUST_LOG`, default `warn`, as `cli/src/main.rs` does.
pub fn as_the_binary() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        );
    tracing_subscriber::registry().with(logs).init();
}
