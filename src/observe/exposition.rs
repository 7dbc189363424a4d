//! Where a deployment's metrics go: an HTTP endpoint Prometheus scrapes while
//! it runs (`--metrics-listen`), and a file node-exporter's textfile
//! collector reads (`--metrics-file`), rewritten every few seconds and at the end.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::listen::{ObserveError, bind};
use super::metrics::Metrics;

/// How often the metrics file is rewritten while the deployment runs.
const FILE_EVERY: Duration = Duration::from_secs(5);
/// How often each server's round trip is measured for the metrics.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// The longest a round-trip probe waits (a slower server reports this).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where to export a deployment's metrics.
#[derive(Debug, Clone, Default)]
pub struct MetricsOptions {
    /// `host:port` to serve `/metrics` on while the deployment runs.
    pub listen: Option<String>,
    /// A file to write the metrics to (atomically), periodically and at the end.
    pub file: Option<PathBuf>,
}

impl MetricsOptions {
    /// True when metrics go nowhere: neither `listen` nor `file` is set.
    pub fn is_empty(&self) -> bool {
        self.listen.is_none() && self.file.is_none()
    }
}

/// A deployment's metrics being exported; [`MetricsExport::finish`] writes the last.
pub struct MetricsExport {
    metrics: Arc<Metrics>,
    file: Option<PathBuf>,
    /// Where `/metrics` is served (the port chosen when `:0` was asked).
    pub address: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Writes `text` to `path` whole: a reader never sees half a file.
fn write_atomically(path: &Path, text: &str) -> Result<(), ObserveError> {
    let error = |source| ObserveError::MetricsFile {
        path: path.to_path_buf(),
        source,
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, text).map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}

impl MetricsExport {
    /// Starts serving and writing `metrics` as `options` ask; fails before
    /// anything is deployed when the address cannot be bound or the file written.
    pub async fn start(options: &MetricsOptions, metrics: Arc<Metrics>) -> Result<Self, ObserveError> {
        let mut tasks = Vec::new();
        let mut address = None;
        if let Some(listen) = &options.listen {
            let listener = bind("--metrics-listen", listen).await?;
            address = listener.local_addr().ok();
            let served = metrics.clone();
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let served = served.clone();
                    async move {
                        (
                            [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                            served.render(),
                        )
                    }
                }),
            );
            tasks.push(tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, app).await {
                    tracing::warn!("the metrics endpoint stopped: {error}");
                }
            }));
        }
        if let Some(path) = &options.file {
            write_atomically(path, &metrics.render())?;
            let (path, written) = (path.clone(), metrics.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(FILE_EVERY).await;
                    if let Err(error) = write_atomically(&path, &written.render()) {
                        tracing::warn!("{error}");
                    }
                }
            }));
        }
        let probed = metrics.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                for server in probed.servers() {
                    crate::connection::probe_round_trip(probed.client(), &server, PROBE_TIMEOUT).await;
                }
                tokio::time::sleep(PROBE_EVERY).await;
            }
        }));
        Ok(Self {
            metrics,
            file: options.file.clone(),
            address,
            tasks,
        })
    }

    /// The deployment ended: marks it finished, writes the file a last time,
    /// and stops serving.
    pub fn finish(self) -> Result<(), ObserveError> {
        self.metrics.finish();
        for task in &self.tasks {
            task.abort();
        }
        match &self.file {
            Some(path) => write_atomically(path, &self.metrics.render()),
            None => Ok(()),
        }
    }
}
