//! Why migration files cannot be used: a leaf the file reader and the
//! section parser both report through.

use std::path::PathBuf;

/// Why the migration files cannot be used. Nothing is touched when this happens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationFileError {
    #[error("migrations directory '{}' does not exist (set it with -m/--migrations-dir)", .0.display())]
    MissingDir(PathBuf),
    #[error("'{}' is a file, not a migrations directory (set the directory with -m/--migrations-dir)", .0.display())]
    NotADir(PathBuf),
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    /// A file in the folder that looks meant as a migration but cannot be one.
    #[error("{}: {reason}", path.display())]
    Unusable { path: PathBuf, reason: String },
    #[error(
        "{}: file name must be <digits>_<name>.surql (for example 20250101120000_create_users.surql)",
        .0.display()
    )]
    BadName(PathBuf),
    #[error("duplicate migration version {version}: {} and {}", first.display(), second.display())]
    DuplicateVersion {
        version: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{}:{line}: {message}", path.display())]
    Format {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A statement surql cannot run safely inside its transaction.
    #[error("{}:{line}:{column}: {section} section: {message}", path.display())]
    Refused {
        path: PathBuf,
        section: &'static str,
        line: usize,
        column: usize,
        message: &'static str,
    },
    #[error("{}:{line}:{column}: {section} section does not parse: {message}", path.display())]
    Parse {
        path: PathBuf,
        section: &'static str,
        line: usize,
        column: usize,
        message: String,
    },
}
