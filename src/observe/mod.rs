//! Seeing a deployment from outside: Prometheus metrics counted from its
//! events, a read-only web dashboard over the state store, and OpenTelemetry
//! traces of its spans. Nothing here writes to a target or the state store.

pub mod dashboard;
mod exposition;
mod listen;
pub mod metrics;
pub mod traces;
pub mod view;

pub use dashboard::{Dashboard, DashboardOptions};
pub use exposition::{MetricsExport, MetricsOptions};
pub use listen::ObserveError;
pub use metrics::Metrics;
pub use view::DeploymentView;
