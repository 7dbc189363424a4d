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
    /// environments.json cannot be read, parsed or validated.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A `discover` template of the config file could not be expanded.
    #[error("{}", config.display())]
    Discovery {
        /// The config file holding the template.
        config: PathBuf,
        /// Which template, on which server, and why.
        #[source]
        source: DiscoveryError,
    },
    /// An `-e` selection names an unknown environment or tag or selects nothing,
    /// or a name was registered twice.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An environment that is not in the config file.
    #[error("{}", config.display())]
    NotInConfig {
        /// The config file that lacks it.
        config: PathBuf,
        /// The name asked for and the known ones.
        #[source]
        source: RegistryError,
    },
    /// The migration files cannot be used; nothing was touched.
    #[error(transparent)]
    MigrationFile(#[from] MigrationFileError),
    /// A deployment that could not start; nothing was touched.
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    /// A plugin is misconfigured, could not be loaded, or a hook call failed.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A database could not be reached or signed in to.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// `up`/`down` refused to run or stopped; what it committed first is in the error.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The migration lock was not taken, or was lost.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The deployment records could not be read or written.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The dashboard or the metrics could not be served or written.
    #[error(transparent)]
    Observe(#[from] crate::observe::ObserveError),
    /// A file or stream surql had to write or read, with what it was for.
    #[error("{context}")]
    Io {
        /// What surql was reading or writing, and what for.
        context: String,
        /// The underlying I/O error.
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
                | crate::state::StateError::Served { .. }
                | crate::state::StateError::Files { .. },
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
