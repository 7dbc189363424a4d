//! Running many futures with a bound on how many run at once.

use futures::StreamExt;

/// Runs futures at most `limit` at a time and returns their outputs in input
/// order. (`buffered` would keep finished outputs queued behind a slow first
/// one, holding their slots: fewer than `limit` would really run.)
pub async fn bounded<T>(
    futures: impl IntoIterator<Item = impl std::future::Future<Output = T>>,
    limit: usize,
) -> Vec<T> {
    let mut indexed: Vec<(usize, T)> = futures::stream::iter(
        futures
            .into_iter()
            .enumerate()
            .map(|(i, f)| async move { (i, f.await) }),
    )
    .buffer_unordered(limit.max(1))
    .collect()
    .await;
    indexed.sort_by_key(|(i, _)| *i);
    indexed.into_iter().map(|(_, output)| output).collect()
}
