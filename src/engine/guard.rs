//! Database operations that fail fast when the server goes away meanwhile.

use crate::connection::{QueryError, QueryErrorKind, wait_until_unreachable};
use crate::registry::EnvironmentConfig;

/// Runs a database operation, failing fast if the server goes away meanwhile.
pub(super) async fn guarded<T, E: From<QueryError>>(
    environment: &EnvironmentConfig,
    operation: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    tokio::select! {
        result = operation => result,
        lost = wait_until_unreachable(&environment.connection) => Err(QueryError::new(QueryErrorKind::ConnectionLost, lost).into()),
    }
}
