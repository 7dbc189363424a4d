//! `MigrationCoordinator`: the public entry to orchestration. Selects
//! environments, builds the engine, runs the strategy script, and returns one
//! result per selected environment.

mod baseline;
mod claim;
mod estimate;
mod prepare;
mod promotion;
mod reconcile;
mod recording;
mod rediscover;
mod report;
mod request;
mod rerun;
mod run;
mod selection;
mod setup;
mod status;

pub use baseline::BaselineOutcome;
pub use claim::{ClaimOptions, ClaimOutcome};
pub use estimate::WaveEstimate;
pub use recording::PreparedDeployment;
pub use report::DeploymentReport;
pub use request::{CoordinatorError, DeployRequest, load_environments};
pub use rerun::{Continued, RecordedDeployment, RecordedOverrides, Rerun, RetrySelection};
pub use setup::MigrationCoordinator;
pub use status::EnvironmentStatus;
