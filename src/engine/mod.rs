//! The engine behind every strategy primitive: one per-environment state
//! machine (gates, lock, apply, rollback), concurrency bounds, and the ledger
//! that gives every selected environment exactly one result. Knows nothing of Rhai.

mod approval;
mod control;
mod env_run;
pub mod event;
mod gate;
mod guard;
mod join;
mod ledger;
mod options;
mod plan;
mod policy;
mod primitives;
mod promotion;
mod recorded_rollback;
pub mod result;
mod schedule;
mod server_fit;
mod shared;
pub mod simulate;
mod stop;
mod trace;
mod undo;
mod verify;
pub mod wave;

pub use approval::{ApprovalRequest, ApprovalTarget, Approver, PendingMigration};
pub use event::{Event, EventSink};
pub use gate::GateHalt;
pub use join::{DiscoverFailed, Discoverer};
pub use options::{DeployOptions, UndoTarget};
pub use plan::PlanReport;
pub use policy::check_pins;
pub use primitives::VerifyResult;
pub use promotion::Promotions;
pub use result::{DeploymentResult, DeploymentStatus, EnvironmentPlan, FailureKind};
pub use shared::{Engine, EngineError, EngineParts};
pub use wave::{FailureBudget, Wave, WaveOptions};
