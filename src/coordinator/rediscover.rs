//! `--refresh-discovery`: the environments file's `discover` templates
//! expanded again before each wave, so tenants created after the
//! deployment started join the waves still to come.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::config::EnvironmentsFile;
use crate::engine::{DiscoverFailed, Discoverer};
use crate::registry::{EnvironmentConfig, Shard};

/// Expands a file's templates again and selects as the deployment did.
pub(super) struct Rediscovery {
    /// The file as loaded, its templates kept.
    pub(super) file: EnvironmentsFile,
    /// The deployment's `-e` items.
    pub(super) selection: Vec<String>,
    pub(super) shard: Option<Shard>,
    pub(super) timeout: Duration,
    /// The coordinator's client.
    pub(super) client: crate::connection::Client,
}

impl Discoverer for Rediscovery {
    fn discover(&self) -> BoxFuture<'_, Result<Vec<EnvironmentConfig>, DiscoverFailed>> {
        Box::pin(async move {
            let mut again = self.file.clone();
            again.environments.truncate(again.listed_environments);
            again.templates = std::mem::take(&mut again.expanded_templates);
            crate::discovery::expand_templates(&self.client, &mut again, self.timeout).await?;
            let registry = again.registry();
            let selected =
                super::selection::select_environments(&registry, &self.client, &self.selection, self.timeout).await?;
            Ok(selected
                .into_iter()
                .filter(|e| self.shard.is_none_or(|shard| shard.contains(&e.name)))
                .collect())
        })
    }
}
