//! The Rhai side: loads built-in and custom strategies, gives them `envs`,
//! `options` and the primitives, and maps script errors to file:line:column.
//! Never touches SurrealDB directly: every primitive calls the engine.

pub mod api;
mod env;
pub mod helpers;
mod modules;
mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{Dynamic, EvalAltResult, Map, Position, Scope};
use tokio::runtime::Handle;

use crate::engine::Engine;
pub use env::ScriptEnv;

/// The strategies shipped in the binary.
pub const BUILT_IN: [(&str, &str); 4] = [
    ("sequential", include_str!("../../strategies/sequential.rhai")),
    ("parallel", include_str!("../../strategies/parallel.rhai")),
    ("rolling", include_str!("../../strategies/rolling.rhai")),
    ("canary", include_str!("../../strategies/canary.rhai")),
];

/// A strategy script ready to run.
#[derive(Debug, Clone)]
pub struct Strategy {
    /// Short name (`canary`, or the file stem of a custom script).
    pub name: String,
    /// Where it came from, used in error messages: a path or `built-in:NAME`.
    pub origin: String,
    /// The Rhai source.
    pub code: String,
    /// The folder of a strategy file, whose `lib/` it may import from;
    /// `None` for a built-in.
    pub dir: Option<PathBuf>,
}

/// A strategy that could not be found or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// No `strategies/NAME.rhai` and no built-in of that name (the name given).
    #[error(
        "strategy '{0}' not found: built-ins are sequential, parallel, rolling, canary; or put it in ./strategies/{0}.rhai, or pass a path to a .rhai file"
    )]
    NotFound(String),
    /// The strategy file could not be read.
    #[error("cannot read strategy {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why reading failed.
        error: std::io::Error,
    },
}

impl Strategy {
    /// A built-in strategy by name.
    pub fn built_in(name: &str) -> Option<Self> {
        BUILT_IN.iter().find(|(n, _)| *n == name).map(|(n, code)| Self {
            name: n.to_string(),
            origin: format!("built-in:{n}"),
            code: code.to_string(),
            dir: None,
        })
    }

    /// `--strategy NAME` looks in `<dir>/strategies/NAME.rhai`, then the built-ins;
    /// anything that looks like a path (has `/` or ends in `.rhai`) is read as a file.
    pub fn resolve(name_or_path: &str, dir: &Path) -> Result<Self, StrategyError> {
        let looks_like_path = name_or_path.contains('/') || name_or_path.ends_with(".rhai");
        let candidate = if looks_like_path {
            Some(dir.join(name_or_path))
        } else {
            Some(dir.join("strategies").join(format!("{name_or_path}.rhai"))).filter(|p| p.is_file())
        };
        match candidate {
            Some(path) => {
                let code = std::fs::read_to_string(&path).map_err(|error| StrategyError::Read {
                    path: path.clone(),
                    error,
                })?;
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| name_or_path.to_string());
                let origin = if looks_like_path {
                    name_or_path.to_string()
                } else {
                    format!("strategies/{name}.rhai")
                };
                let dir = path.parent().map(Path::to_path_buf);
                Ok(Self {
                    name,
                    origin,
                    code,
                    dir,
                })
            }
            None => Self::built_in(name_or_path).ok_or_else(|| StrategyError::NotFound(name_or_path.to_string())),
        }
    }
}

/// A strategy that failed to compile or run, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("strategy error at {origin}:{line}:{column}: {message}{}", source_line.as_ref().map(|l| format!("\n    | {l}")).unwrap_or_default())]
pub struct ScriptError {
    /// The file it is in: the strategy's origin, or a module file it imports.
    pub origin: String,
    /// Line, from 1; 0 when Rhai gave no position.
    pub line: usize,
    /// Column, from 1; 0 when Rhai gave no position.
    pub column: usize,
    /// What went wrong, without Rhai's own position suffix.
    pub message: String,
    /// The text of that line, when it could be read.
    pub source_line: Option<String>,
    /// Stopped by Ctrl-C between two operations, not by a fault of the script.
    pub interrupted: bool,
}

impl ScriptError {
    fn new(strategy: &Strategy, position: Position, message: String) -> Self {
        let line = position.line().unwrap_or(0);
        let source_line = line
            .checked_sub(1)
            .and_then(|i| strategy.code.lines().nth(i))
            .map(|l| l.trim_end().to_string());
        Self {
            origin: strategy.origin.clone(),
            line,
            column: position.position().unwrap_or(0),
            message,
            source_line,
            interrupted: false,
        }
    }
}

/// The innermost error, its position, and the module file it is in, if
/// any (errors inside script functions and modules nest).
fn innermost(error: &EvalAltResult) -> (&EvalAltResult, Position, Option<&str>) {
    match error {
        // A function keeps the source of the file it was defined in.
        EvalAltResult::ErrorInFunctionCall(_, source, inner, _) => {
            let (error, position, file) = innermost(inner);
            (
                error,
                position,
                file.or((!source.is_empty()).then_some(source.as_str())),
            )
        }
        EvalAltResult::ErrorInModule(module, inner, _) => {
            let (error, position, file) = innermost(inner);
            (error, position, file.or(Some(module.as_str())))
        }
        other => (other, other.position(), None),
    }
}

fn message_of(error: &EvalAltResult, limits: &sandbox::Limits) -> String {
    match error {
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "the script ran more than {} operations (an endless loop?) and was stopped",
            limits.operations
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => format!(
            "{what} over the sandbox's limit for this fleet (arrays {}, maps {}, strings {} bytes, nested values counted in)",
            limits.array_size, limits.map_size, limits.string_size
        ),
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "function calls nested deeper than {} (endless recursion?)",
            sandbox::MAX_CALL_LEVELS
        ),
        EvalAltResult::ErrorTerminated(_, _) => "interrupted".into(),
        EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
        other => {
            // Drop rhai's own " (line x, position y)" suffix: we print the position.
            let text = other.to_string();
            match text.rfind(" (line ") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}

fn options_map(engine: &Engine, strategy: &Strategy) -> Map {
    let o = engine.options();
    let mut map = Map::new();
    map.insert("strategy".into(), strategy.name.clone().into());
    map.insert("batch_size".into(), (o.batch_size as rhai::INT).into());
    map.insert("canary_percent".into(), (o.canary_percent as rhai::FLOAT).into());
    map.insert("max_concurrent".into(), (o.max_concurrent as rhai::INT).into());
    map.insert("verify_health".into(), o.verify_health.into());
    map.insert("auto_rollback".into(), o.auto_rollback.into());
    map.insert("dry_run".into(), o.dry_run.into());
    for (key, value) in &o.set {
        map.insert(key.as_str().into(), json_to_dynamic(value));
    }
    map
}

fn json_to_dynamic(value: &serde_json::Value) -> Dynamic {
    match value {
        serde_json::Value::Null => Dynamic::UNIT,
        serde_json::Value::Bool(b) => (*b).into(),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(0.0).into(),
        },
        serde_json::Value::String(s) => s.clone().into(),
        serde_json::Value::Array(items) => Dynamic::from_array(items.iter().map(json_to_dynamic).collect()),
        serde_json::Value::Object(map) => Dynamic::from_map(
            map.iter()
                .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
                .collect(),
        ),
    }
}

/// Compiles and runs `strategy` against `engine`. Call it on a blocking thread:
/// primitives block on `handle`.
pub fn run_strategy(strategy: &Strategy, engine: Arc<Engine>, handle: Handle) -> Result<(), ScriptError> {
    // A resumed deployment's strategy runs over what is left.
    let kept: std::collections::HashSet<String> = engine.kept().into_iter().collect();
    let envs: rhai::Array = engine
        .environments()
        .iter()
        .filter(|e| !kept.contains(&e.name))
        .map(|e| Dynamic::from(ScriptEnv::from(&**e)))
        .collect();
    let limits = sandbox::Limits::for_fleet(envs.len());
    let mut rhai = sandbox::hardened_engine(limits);
    let options = options_map(&engine, strategy);
    let budget = Arc::new(sandbox::Budget::new(limits, engine.options().max_pause));
    api::register(&mut rhai, engine, handle, budget);
    rhai.set_module_resolver(modules::LibResolver::new(strategy.dir.as_deref()));

    let mut scope = Scope::new();
    scope.push_constant("envs", envs);
    scope.push_constant("options", options);
    let mut ast = rhai
        .compile_with_scope(&scope, &strategy.code)
        .map_err(|e| ScriptError::new(strategy, e.position(), e.err_type().to_string()))?;
    ast.set_source(strategy.origin.as_str());
    rhai.run_ast_with_scope(&mut scope, &ast).map_err(|error| {
        let (inner, position, module) = innermost(&error);
        let mut script_error = match module.filter(|file| *file != strategy.origin) {
            // A fault inside a module is shown in the module's file.
            Some(file) => ScriptError::new(
                &Strategy {
                    name: strategy.name.clone(),
                    origin: file.to_string(),
                    code: std::fs::read_to_string(file).unwrap_or_default(),
                    dir: None,
                },
                position,
                message_of(inner, &limits),
            ),
            None => ScriptError::new(strategy, position, message_of(inner, &limits)),
        };
        script_error.interrupted = matches!(inner, EvalAltResult::ErrorTerminated(..));
        script_error
    })
}

/// Options the CLI sets itself; `--set` cannot override them.
const RESERVED_OPTIONS: [&str; 7] = [
    "strategy",
    "batch_size",
    "canary_percent",
    "max_concurrent",
    "verify_health",
    "auto_rollback",
    "dry_run",
];

/// Parses one `--set key=value`: integers, floats and `true`/`false` become
/// numbers and booleans, anything else a string.
pub fn parse_script_option(text: &str) -> Result<(String, serde_json::Value), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("--set '{text}': expected KEY=VALUE, for example --set bake_seconds=30"))?;
    let key = key.trim();
    let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "--set '{text}': '{key}' is not a valid option name (letters, digits and '_', not starting with a digit)"
        ));
    }
    if RESERVED_OPTIONS.contains(&key) {
        return Err(format!(
            "--set '{text}': '{key}' has its own flag (--{})",
            key.replace('_', "-")
        ));
    }
    let parsed = if let Ok(i) = value.parse::<i64>() {
        serde_json::Value::from(i)
    } else if let Some(f) = value.parse::<f64>().ok().filter(|f| f.is_finite()) {
        serde_json::Value::from(f)
    } else if value == "true" || value == "false" {
        serde_json::Value::Bool(value == "true")
    } else {
        serde_json::Value::String(value.to_string())
    };
    Ok((key.to_string(), parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_options_are_typed() {
        assert_eq!(
            parse_script_option("bake_seconds=30").unwrap(),
            ("bake_seconds".into(), 30.into())
        );
        assert_eq!(parse_script_option("ratio=0.5").unwrap().1, serde_json::json!(0.5));
        assert_eq!(parse_script_option("strict=true").unwrap().1, serde_json::json!(true));
        assert_eq!(parse_script_option("label=a=b").unwrap().1, serde_json::json!("a=b"));
        assert_eq!(parse_script_option("empty=").unwrap().1, serde_json::json!(""));
        assert_eq!(parse_script_option("x=NaN").unwrap().1, serde_json::json!("NaN"));
        assert!(parse_script_option("novalue").is_err());
        assert!(parse_script_option("1abc=2").is_err());
        assert!(parse_script_option("a-b=2").is_err());
        assert!(
            parse_script_option("batch_size=2")
                .unwrap_err()
                .contains("--batch-size")
        );
    }

    #[test]
    fn strategies_resolve_local_first_then_built_in() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Strategy::resolve("canary", dir.path()).unwrap().origin,
            "built-in:canary"
        );
        std::fs::create_dir(dir.path().join("strategies")).unwrap();
        std::fs::write(dir.path().join("strategies/canary.rhai"), "log(1);").unwrap();
        let local = Strategy::resolve("canary", dir.path()).unwrap();
        assert_eq!(
            (local.origin.as_str(), local.code.as_str()),
            ("strategies/canary.rhai", "log(1);")
        );
        std::fs::write(dir.path().join("mine.rhai"), "log(2);").unwrap();
        assert_eq!(Strategy::resolve("mine.rhai", dir.path()).unwrap().name, "mine");
        assert!(
            Strategy::resolve("nope", dir.path())
                .unwrap_err()
                .to_string()
                .contains("built-ins are")
        );
        assert!(Strategy::resolve("missing/file.rhai", dir.path()).is_err());
    }
}
