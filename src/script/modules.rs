//! `import "lib/NAME"`: shared helpers from the `lib/` folder next to the
//! strategy file, and nothing else of the file system.

use std::path::{Path, PathBuf};

use rhai::{Engine, EvalAltResult, Module, Position, Scope, Shared};

/// Resolves `lib/NAME` (letters, digits, `_`, `-`, and `/` between them) to
/// `<strategy folder>/lib/NAME.rhai`; any other path, one that leaves the
/// folder (`..`, a symbolic link out of it), or a built-in strategy's import
/// is refused.
pub struct LibResolver {
    /// `<strategy folder>/lib`, or `None` for a built-in strategy.
    lib: Option<PathBuf>,
    loaded: std::sync::Mutex<std::collections::HashMap<String, Shared<Module>>>,
}

impl LibResolver {
    pub fn new(strategy_dir: Option<&Path>) -> Self {
        Self {
            lib: strategy_dir.map(|dir| dir.join("lib")),
            loaded: std::sync::Mutex::default(),
        }
    }

    /// The file `path` names, checked to stay inside the lib folder.
    fn file_of(&self, path: &str) -> Result<PathBuf, ModuleError> {
        let lib = self
            .lib
            .as_ref()
            .ok_or_else(|| ModuleError::BuiltIn { path: path.into() })?;
        let name = path
            .strip_prefix("lib/")
            .filter(|name| {
                !name.is_empty()
                    && name.split('/').all(|part| {
                        !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    })
            })
            .ok_or_else(|| ModuleError::NotInLib {
                path: path.into(),
                lib: lib.clone(),
            })?;
        let file = lib.join(format!("{name}.rhai"));
        let inside = match (file.canonicalize(), lib.canonicalize()) {
            (Ok(file), Ok(lib)) => file.starts_with(lib),
            _ => {
                return Err(ModuleError::Missing {
                    path: path.into(),
                    file,
                });
            }
        };
        if !inside {
            return Err(ModuleError::LeadsOut {
                path: path.into(),
                file,
            });
        }
        Ok(file)
    }
}

/// An `import` refused before any file is read (a Rhai runtime error at it).
#[derive(Debug, thiserror::Error)]
enum ModuleError {
    #[error("import \"{path}\": modules are for strategy files; a built-in strategy has no lib folder")]
    BuiltIn { path: String },
    #[error(
        "import \"{path}\": modules are imported as \"lib/NAME\" from the lib folder next to the strategy ({})",
        lib.display()
    )]
    NotInLib { path: String, lib: PathBuf },
    #[error("import \"{path}\": {} does not exist", file.display())]
    Missing { path: String, file: PathBuf },
    #[error("import \"{path}\": {} leads out of the lib folder", file.display())]
    LeadsOut { path: String, file: PathBuf },
}

impl rhai::ModuleResolver for LibResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        position: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        if let Some(module) = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
        {
            return Ok(module.clone());
        }
        let refused = |message: String| Box::new(EvalAltResult::ErrorRuntime(message.into(), position));
        let file = self.file_of(path).map_err(|e| refused(e.to_string()))?;
        let code = std::fs::read_to_string(&file).map_err(|e| refused(format!("import \"{path}\": {e}")))?;
        let in_module = |error: Box<EvalAltResult>| {
            Box::new(EvalAltResult::ErrorInModule(
                file.display().to_string(),
                error,
                position,
            ))
        };
        let mut ast = engine
            .compile(&code)
            .map_err(|e| in_module(Box::new(EvalAltResult::ErrorParsing(*e.0, e.1))))?;
        ast.set_source(file.display().to_string());
        let module: Shared<Module> = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(in_module)?
            .into();
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path.to_string(), module.clone());
        Ok(module)
    }
}
