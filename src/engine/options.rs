//! The options of one deployment, as the guide names them.

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use super::{FailureBudget, simulate};
use crate::safety::ApprovalPolicy;

/// Options of one deployment, as the guide names them.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Rolling: environments per batch.
    pub batch_size: usize,
    /// Canary: percentage deployed first (0 < p ≤ 100).
    pub canary_percent: f64,
    /// Parallel: environments deployed at once.
    pub max_concurrent: usize,
    /// Check health before deploying each environment.
    pub verify_health: bool,
    /// Roll back what this run applied when an environment fails.
    pub auto_rollback: bool,
    /// Plan only; write nothing anywhere.
    pub dry_run: bool,
    /// Time allowed for one health check.
    pub health_timeout: Duration,
    /// Time allowed to connect and sign in.
    pub connect_timeout: Duration,
    /// Time allowed for any one query, one migration's transaction included.
    pub operation_timeout: Duration,
    /// Approvals given up front (`--approve`, `--yes`) and whether to prompt.
    pub approvals: ApprovalPolicy,
    /// Custom values for scripts (`--set key=value`).
    pub set: IndexMap<String, serde_json::Value>,
    /// Total time a strategy may spend in `pause` (`--max-pause`).
    pub max_pause: Duration,
    /// Failures after which a `deploy` call starts no more environments
    /// (`--max-failures`); a script's `deploy` may set its own.
    pub max_failures: Option<FailureBudget>,
    /// Answer every primitive from scripted outcomes and touch no database
    /// (`surql strategy simulate`).
    pub simulation: Option<Arc<simulate::Simulation>>,
    /// Instead of deploying, roll back what one recorded deployment applied
    /// (`surql orchestrate rollback ID`): each `deploy` call undoes it.
    pub undo: Option<UndoTarget>,
    /// At most this many environments at once against one database server
    /// (`--max-per-server`); a script's `deploy` may set its own.
    pub max_per_server: Option<usize>,
    /// New environments on a server whose recent round trips pass this wait
    /// until it recovers (`--max-server-latency-ms`).
    pub max_server_latency: Option<Duration>,
    /// Expand the discovery templates again before each wave: tenants
    /// created meanwhile join (`--refresh-discovery`).
    pub refresh_discovery: bool,
    /// Deploy frozen environments anyway, for this reason (`--override-freeze
    /// REASON`): recorded with who gave it, logged for each one deployed.
    pub override_freeze: Option<String>,
}

/// The deployment a rollback undoes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoTarget {
    /// Id of the recorded deployment to roll back.
    pub deployment_id: String,
    /// Roll back although a later deployment applied on top there.
    pub force: bool,
}

impl DeployOptions {
    /// The timeouts of every session this deployment opens.
    pub fn timeouts(&self) -> crate::connection::Timeouts {
        crate::connection::Timeouts {
            connect: self.connect_timeout,
            operation: self.operation_timeout,
        }
    }
}

impl Default for DeployOptions {
    fn default() -> Self {
        Self {
            batch_size: 1,
            canary_percent: 10.0,
            max_concurrent: 5,
            verify_health: true,
            auto_rollback: true,
            dry_run: false,
            health_timeout: crate::health::DEFAULT_HEALTH_TIMEOUT,
            connect_timeout: crate::connection::DEFAULT_CONNECT_TIMEOUT,
            operation_timeout: crate::connection::DEFAULT_OPERATION_TIMEOUT,
            approvals: ApprovalPolicy::default(),
            set: IndexMap::new(),
            max_pause: Duration::from_secs(86_400),
            max_failures: None,
            simulation: None,
            undo: None,
            max_per_server: None,
            max_server_latency: None,
            refresh_discovery: false,
            override_freeze: None,
        }
    }
}
