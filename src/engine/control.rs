//! Stopping and holding a running deployment: Ctrl-C, an operator's pause
//! or abort, the state store away. The engine obeys before it starts the
//! next environment, never in the middle of one.

use super::Engine;

impl Engine {
    /// Stops starting new environments (Ctrl-C).
    pub fn cancel(&self) {
        self.cancelled.send_replace(true);
    }

    /// True once [`Engine::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    /// Resolves once [`Engine::cancel`] is called.
    pub async fn cancellation(&self) {
        let mut cancelled = self.cancelled.subscribe();
        let _ = cancelled.wait_for(|&c| c).await;
    }

    /// Ctrl-C: it also stops an environment between two of its migrations
    /// (rolled back per policy). A stop for a reason (an operator's abort, the
    /// state store lost) starts nothing new but lets running environments finish.
    pub(crate) fn is_interrupted(&self) -> bool {
        self.is_cancelled() && self.stop_reason().is_none()
    }

    /// Resolves once the run is interrupted by Ctrl-C (never for a stop for a reason).
    pub(crate) async fn interruption(&self) {
        self.cancellation().await;
        if self.stop_reason().is_some() {
            std::future::pending::<()>().await;
        }
    }

    /// Stops starting new environments (not Ctrl-C): those not started end
    /// SKIPPED with `reason` (`aborted by …`, `not started: state store …`);
    /// running ones finish. The first reason stays.
    pub fn stop(&self, reason: impl Into<String>) {
        let _ = self.stop_reason.set(reason.into());
        self.cancel();
    }

    /// Why [`Engine::stop`] stopped the run; `None` for Ctrl-C or a run not stopped.
    pub fn stop_reason(&self) -> Option<&str> {
        self.stop_reason.get().map(String::as_str)
    }

    /// The reason an environment the run never started is SKIPPED with.
    pub(crate) fn not_started_reason(&self) -> String {
        match self.stop_reason() {
            Some(reason) => reason.to_string(),
            None => "interrupted before it started".into(),
        }
    }

    /// Holds every environment not yet started, for `reason`, until
    /// [`Engine::release`] of the same `key` (a run may be held for several
    /// reasons at once: its state store away, an operator's pause); running
    /// ones go on.
    pub fn hold(&self, key: &str, reason: impl Into<String>) {
        let reason = reason.into();
        self.held.send_modify(|held| {
            held.insert(key.to_string(), reason);
        });
    }

    /// Ends the hold of `key`.
    pub fn release(&self, key: &str) {
        self.held.send_if_modified(|held| held.remove(key).is_some());
    }

    /// Why new environments are held, if they are.
    pub fn held(&self) -> Vec<String> {
        self.held.borrow().values().cloned().collect()
    }

    /// Returns once nothing holds new environments, or the run is stopped.
    pub(super) async fn wait_while_held(&self) {
        let mut held = self.held.subscribe();
        tokio::select! {
            _ = held.wait_for(std::collections::BTreeMap::is_empty) => {}
            _ = self.cancellation() => {}
        }
    }

    /// An operator's throttle: at most `max_concurrent` environments at once,
    /// in the wave running and every wave to come (overriding their own).
    pub fn throttle(&self, max_concurrent: usize) {
        self.throttle.send_replace(Some(max_concurrent.max(1)));
    }

    /// How many environments of a wave asking for `wave_max` may run at once now.
    pub(super) fn concurrency(&self, wave_max: usize) -> usize {
        self.throttle.borrow().unwrap_or(wave_max).max(1)
    }
}
