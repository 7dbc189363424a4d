//! Exit codes of the `surql` binary, documented in docs/cli.md.

pub use crate::exit::*;

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::connection::{ConnectionError, QueryError};
use crate::coordinator::CoordinatorError;
use crate::discovery::DiscoveryError;
use crate::migration::{ApplyError, LockError, MigrationFileError};
use crate::plugin::PluginError;
use crate::registry::RegistryError;

/// Any error of the library, with the exit code the `surql` binary gives it
/// (cargo-nextest's pattern): the CLI never decides a code on its own.
/// Display shows this layer's message; the causes are its `source()` chain
/// (print them with [`Error::report`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Flags or names that cannot be used; nothing ran.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}", config.display())]
    Discovery {
        config: PathBuf,
        #[source]
        source: DiscoveryError,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An environment that is not in the config file.
    #[error("{}", config.display())]
    NotInConfig {
        config: PathBuf,
        #[source]
        source: RegistryError,
    },
    #[error(transparent)]
    MigrationFile(#[from] MigrationFileError),
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The deployment records could not be read or written.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Observe(#[from] crate::observe::ObserveError),
    /// A file or stream surql had to write or read, with what it was for.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The documented exit code of this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_)
            | Error::Config(_)
            | Error::Discovery { .. }
            | Error::Registry(_)
            | Error::NotInConfig { .. }
            | Error::MigrationFile(_)
            | Error::Coordinator(_) => EXIT_USAGE,
            // A store that is down or failing is a failure, not a usage error.
            Error::State(
                crate::state::StateError::Connect { .. }
                | crate::state::StateError::Query(_)
                | crate::state::StateError::Served { .. },
            ) => EXIT_FAILURE,
            Error::State(_) => EXIT_USAGE,
            Error::Observe(
                crate::observe::ObserveError::MetricsFile { .. } | crate::observe::ObserveError::Serve { .. },
            ) => EXIT_FAILURE,
            Error::Observe(_) => EXIT_USAGE,
            Error::Plugin(_) => EXIT_PLUGIN,
            Error::Connection(_) | Error::Query(_) | Error::Apply(_) | Error::Lock(_) | Error::Io { .. } => {
                EXIT_FAILURE
            }
        }
    }

    /// An I/O error with what surql was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The message and every cause, joined with `: `.
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            let message = error.to_string();
            // Transparent layers repeat their inner message: say it once.
            if !text.ends_with(&message) {
                text.push_str(": ");
                text.push_str(&message);
            }
            cause = error.source();
        }
        text
    }
}
