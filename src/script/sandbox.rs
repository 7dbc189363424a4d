//! The only place the Rhai engine's limits are set.

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{Engine, OptimizationLevel};

/// Operations a strategy may run; time inside a primitive counts as one.
pub const MAX_OPERATIONS: u64 = 5_000_000;
/// Nested function calls (deep recursion ends here, not in a stack overflow).
pub const MAX_CALL_LEVELS: usize = 48;
/// Longest string a script may build.
pub const MAX_STRING_SIZE: usize = 1 << 20;
/// Properties of one map.
pub const MAX_MAP_SIZE: usize = 10_000;

/// A Rhai engine with no file, module or network access and bounded work.
/// `fleet_size` sets the array limit: `envs` itself must fit.
pub fn hardened_engine(fleet_size: usize) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(64, 64)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(fleet_size.saturating_mul(4).max(10_000))
        .set_max_map_size(MAX_MAP_SIZE)
        .set_max_modules(0)
        .set_module_resolver(DummyModuleResolver::new())
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true)
        // The optimizer folds constant maps and would hide unknown-property errors.
        .set_optimization_level(OptimizationLevel::None);
    engine.disable_symbol("eval");
    engine
}
