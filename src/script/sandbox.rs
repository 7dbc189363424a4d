//! The only place the Rhai engine's limits are set.
//!
//! Rhai checks the size of every value a function returns, counting nested
//! arrays, maps and strings together: `deploy(envs)` over 10,000 tenants
//! returns 10,000 maps of five properties. So every data limit, and the
//! operation budget, grows with the fleet; a floor keeps small fleets as
//! strict as before, and the per-environment allowance keeps a hostile script
//! stoppable within seconds at any size.

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{Engine, OptimizationLevel};

/// Nested function calls (deep recursion ends here, not in a stack overflow).
pub const MAX_CALL_LEVELS: usize = 48;

/// The limits of one strategy run, derived from the number of environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Operations a strategy may run; time inside a primitive counts as one.
    pub operations: u64,
    /// Elements of one array, nested arrays and maps counted in.
    pub array_size: usize,
    /// Properties of one map, nested maps counted in (an array of result maps too).
    pub map_size: usize,
    /// Bytes of one string, or of all strings inside one array or map.
    pub string_size: usize,
    /// Primitive calls a strategy may make, each costing one plus the
    /// environments it names: Rhai counts a call as one operation however
    /// long it runs, so `loop { health(envs) }` needs a bound of its own.
    pub primitive_budget: u64,
}

impl Limits {
    /// Operations before the first environment; an endless loop of a small
    /// fleet stops after these (about a second).
    const BASE_OPERATIONS: u64 = 5_000_000;
    /// Operations each environment adds: a strategy that touches every
    /// environment a few hundred times still fits.
    const OPERATIONS_PER_ENV: u64 = 1_000;
    const BASE_ARRAY: usize = 10_000;
    /// Every environment may sit in several arrays at once (waves, chunks).
    const ARRAY_PER_ENV: usize = 16;
    const BASE_MAP: usize = 10_000;
    /// A result, health or verify map has up to six properties; a script may
    /// hold several of them per environment in one value.
    const MAP_PER_ENV: usize = 64;
    const BASE_STRING: usize = 1 << 20;
    /// Names, statuses and error texts of one environment's results.
    const STRING_PER_ENV: usize = 4 << 10;
    const BASE_PRIMITIVES: u64 = 10_000;
    /// Every environment may be named by a few dozen primitive calls.
    const PRIMITIVES_PER_ENV: u64 = 50;

    /// Limits for a strategy over `fleet_size` environments.
    pub fn for_fleet(fleet_size: usize) -> Self {
        Self {
            operations: Self::BASE_OPERATIONS
                .saturating_add(Self::OPERATIONS_PER_ENV.saturating_mul(fleet_size as u64)),
            array_size: Self::BASE_ARRAY.saturating_add(Self::ARRAY_PER_ENV.saturating_mul(fleet_size)),
            map_size: Self::BASE_MAP.saturating_add(Self::MAP_PER_ENV.saturating_mul(fleet_size)),
            string_size: Self::BASE_STRING.saturating_add(Self::STRING_PER_ENV.saturating_mul(fleet_size)),
            primitive_budget: Self::BASE_PRIMITIVES
                .saturating_add(Self::PRIMITIVES_PER_ENV.saturating_mul(fleet_size as u64)),
        }
    }
}

/// A primitive call or pause over what the run may spend; a Rhai runtime
/// error at the call site.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum BudgetError {
    #[error(
        "{function}: the strategy's budget of {total} primitive calls (one per call plus one per environment named) is spent; a loop of primitives must end"
    )]
    Spent { function: String, total: u64 },
    #[error("pause({seconds}): the run would pause {paused:.0}s in total, over --max-pause {max}s")]
    Pause { seconds: f64, paused: f64, max: f64 },
}

/// What a strategy run may still spend on primitives and pauses.
#[derive(Debug)]
pub struct Budget {
    primitives_left: std::sync::atomic::AtomicU64,
    total: u64,
    paused_ms: std::sync::atomic::AtomicU64,
    max_pause: std::time::Duration,
}

impl Budget {
    pub fn new(limits: Limits, max_pause: std::time::Duration) -> Self {
        Self {
            primitives_left: limits.primitive_budget.into(),
            total: limits.primitive_budget,
            paused_ms: 0.into(),
            max_pause,
        }
    }

    /// Charges one call of `function` naming `environments`.
    pub fn spend(&self, function: &str, environments: usize) -> Result<(), BudgetError> {
        let cost = 1 + environments as u64;
        let left = &self.primitives_left;
        let spent = left.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |l| l.checked_sub(cost),
        );
        spent.map(|_| ()).map_err(|_| BudgetError::Spent {
            function: function.to_string(),
            total: self.total,
        })
    }

    /// Charges a pause of `seconds` against `--max-pause`.
    pub fn pause(&self, seconds: f64) -> Result<(), BudgetError> {
        let asked = (seconds * 1000.0) as u64;
        let max = self.max_pause.as_millis() as u64;
        let total = self
            .paused_ms
            .fetch_add(asked, std::sync::atomic::Ordering::Relaxed)
            .saturating_add(asked);
        if total > max {
            return Err(BudgetError::Pause {
                seconds,
                paused: total as f64 / 1000.0,
                max: self.max_pause.as_secs_f64(),
            });
        }
        Ok(())
    }
}

/// A Rhai engine with no file, module or network access and bounded work.
pub fn hardened_engine(limits: Limits) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(limits.operations)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(64, 64)
        .set_max_string_size(limits.string_size)
        .set_max_array_size(limits.array_size)
        .set_max_map_size(limits.map_size)
        // Only `lib/` modules of a strategy file (see `modules.rs`) are ever resolved.
        .set_max_modules(64)
        .set_module_resolver(DummyModuleResolver::new())
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true)
        // The optimizer folds constant maps and would hide unknown-property errors.
        .set_optimization_level(OptimizationLevel::None);
    engine.disable_symbol("eval");
    engine
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_fleets_keep_the_old_limits_and_large_ones_grow_linearly() {
        let small = Limits::for_fleet(0);
        assert_eq!(small.operations, 5_000_000);
        assert_eq!(small.map_size, 10_000);
        let fleet = Limits::for_fleet(10_000);
        // 10,000 result maps of five properties and their strings fit, with room.
        assert!(fleet.map_size >= 10_000 * 6 * 4);
        assert!(fleet.array_size >= 10_000 * 4);
        assert!(fleet.string_size >= 10_000 * 1_024);
        assert!(
            fleet.operations <= 20_000_000,
            "a hostile loop must still stop within seconds"
        );
        assert_eq!(Limits::for_fleet(usize::MAX).array_size, usize::MAX);
    }
}
