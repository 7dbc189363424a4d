//! Why migration files cannot be used: a leaf the file reader and the
//! section parser both report through.

use std::path::PathBuf;

/// Why the migration files cannot be used. Nothing is touched when this happens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationFileError {
    /// The migrations directory does not exist.
    #[error("migrations directory '{}' does not exist (set it with -m/--migrations-dir)", .0.display())]
    MissingDir(PathBuf),
    /// The migrations directory given is a file.
    #[error("'{}' is a file, not a migrations directory (set the directory with -m/--migrations-dir)", .0.display())]
    NotADir(PathBuf),
    /// The directory or a file in it could not be read.
    #[error("{}: {error}", path.display())]
    Io {
        /// The directory or file being read.
        path: PathBuf,
        /// The error reading it.
        error: std::io::Error,
    },
    /// A file in the folder that looks meant as a migration but cannot be one.
    #[error("{}: {reason}", path.display())]
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why it cannot be a migration, and what to do.
        reason: String,
    },
    /// A `.surql` file whose name is not `<digits>_<name>.surql`.
    #[error(
        "{}: file name must be <digits>_<name>.surql (for example 20250101120000_create_users.surql)",
        .0.display()
    )]
    BadName(PathBuf),
    /// Two files with the same version (leading zeros ignored).
    #[error("duplicate migration version {version}: {} and {}", first.display(), second.display())]
    DuplicateVersion {
        /// The version, as the second file writes it.
        version: String,
        /// One of the files.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A run-once row conversion's name given to a second, different
    /// conversion of the same table (SurrealDB 4 would refuse it on every
    /// database that ran the first).
    #[error(
        "{}:{second_line}: MIGRATE EXISTING ROWS AS {name} on table {table} is not the conversion {}:{first_line} named so; a name runs once per table: give this conversion a new name",
        second.display(),
        first.display()
    )]
    RowMigrationReused {
        /// The name.
        name: String,
        /// The table.
        table: String,
        /// The file that names it first, and the line.
        first: PathBuf,
        /// Its line there.
        first_line: usize,
        /// The file that reuses it, and the line.
        second: PathBuf,
        /// Its line there.
        second_line: usize,
    },
    /// A file whose section markers are wrong, or whose up section is empty.
    #[error("{}:{line}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The line (from 1) the problem is on.
        line: usize,
        /// What is wrong, and what to do.
        message: String,
    },
    /// A statement surql cannot run safely inside its transaction.
    #[error("{}:{line}:{column}: {section} section: {message}", path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// The section holding the statement: `up`, `down` or `verify`.
        section: &'static str,
        /// The file line (from 1) the statement starts on.
        line: usize,
        /// The column (from 1) the statement starts at.
        column: usize,
        /// Why the statement is refused.
        message: &'static str,
    },
    /// A section SurrealDB's parser rejects.
    #[error("{}:{line}:{column}: {section} section does not parse: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The section that does not parse: `up`, `down` or `verify`.
        section: &'static str,
        /// The file line (from 1) of the error.
        line: usize,
        /// The column (from 1) of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
}
