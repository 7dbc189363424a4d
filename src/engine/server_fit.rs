//! Which pending migrations an environment's server can take: those whose
//! `-- migrate:requires surrealdb >= N` its version meets (the others are
//! passed over), and none with a clause only SurrealDB 4 understands when
//! the server is older (the environment is refused before anything runs).

use super::Engine;
use crate::connection::ServerVersion;
use crate::migration::dialect::Fit;

/// The pending migrations (indexes) a server takes, and the ones passed
/// over, each with its reason.
pub(super) struct Fitted {
    pub(super) pending: Vec<usize>,
    pub(super) passed_over: Vec<String>,
}

impl Fitted {
    /// Why the environment has nothing to do but what its server is too old
    /// for (SKIPPED then); `None` when something applies or nothing was passed over.
    pub(super) fn nothing_fits(&self, name: &str, version: Option<&ServerVersion>) -> Option<String> {
        (self.pending.is_empty() && !self.passed_over.is_empty()).then(|| {
            format!(
                "nothing to apply on '{name}' (SurrealDB {}): {}",
                version.map_or_else(|| "?".into(), ToString::to_string),
                self.passed_over.join("; ")
            )
        })
    }
}

/// Whether any pending migration asks something of the server's version.
pub(super) fn asks_server_version(engine: &Engine, pending: &[usize]) -> bool {
    (pending.iter()).any(|&i| engine.migrations[i].requires.asks_server_version())
}

/// Fits `pending` to the server `version` of environment `name`. `Err`
/// names the first migration the server cannot run, where, and what to do.
pub(super) fn fit(
    engine: &Engine,
    name: &str,
    pending: Vec<usize>,
    version: Option<&ServerVersion>,
) -> Result<Fitted, String> {
    let mut fitted = Fitted {
        pending: Vec::with_capacity(pending.len()),
        passed_over: Vec::new(),
    };
    let place = format!("'{name}'");
    for index in pending {
        match engine.migrations[index].fit(version, &place) {
            Fit::Applies => fitted.pending.push(index),
            Fit::PassedOver(reason) => fitted.passed_over.push(reason),
            Fit::Refused(refusal) => return Err(refusal),
        }
    }
    Ok(fitted)
}
