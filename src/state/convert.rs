//! The records of an older surql, kept embedded at `.surql/state`
//! (`surrealkv://`), moved once into the folder of record files that is the
//! default now, so `deployments`, `resume` and `retry` still find them.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::files::{FileStore, io_error};
use super::{StateError, StateStore};
use crate::connection::{Client, ConnectionConfig};

/// Where an older surql kept its records by default, beside `files_dir`.
pub(super) fn old_default_of(files_dir: &Path) -> PathBuf {
    files_dir.with_file_name("state")
}

/// Whether `files_dir` is still to be made from an older surql's store beside it.
pub(super) fn needs_conversion(files_dir: &Path) -> bool {
    !files_dir.exists() && old_default_of(files_dir).is_dir()
}

/// When `files_dir` does not exist and an older surql's embedded store is
/// beside it, copies every deployment and environment record into a new
/// folder (built aside, then renamed into place: a run cut short converts
/// again from the start) and renames the old store to `state.converted`.
/// Runners started together convert once: one at a time, under a lock
/// file, each looking again once it holds it. An older surql still running
/// there holds its store: [`StateError::Busy`]. Returns what to tell the operator.
pub(super) async fn convert_old_default(
    client: &Client,
    files_dir: &Path,
    url: &str,
    timeout: std::time::Duration,
) -> Result<Option<String>, StateError> {
    if !needs_conversion(files_dir) {
        return Ok(None);
    }
    let lock_path = files_dir.with_extension("converting.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_error(url, "cannot open", &lock_path, e))?;
    let started = std::time::Instant::now();
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < CONVERSION_PATIENCE => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StateError::Files {
                    url: url.to_string(),
                    why: format!(
                        "another surql process has been converting the old store for over {}s ({} is locked); try again",
                        CONVERSION_PATIENCE.as_secs(),
                        lock_path.display()
                    ),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(url, "cannot lock", &lock_path, e)),
        }
    }
    // Another runner converted it while this one waited.
    if !needs_conversion(files_dir) {
        return Ok(None);
    }
    let converted = convert(client, files_dir, url, timeout).await;
    let _ = std::fs::remove_file(&lock_path);
    drop(lock);
    converted.map(Some)
}

/// How long a runner waits for another one converting the old store.
const CONVERSION_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

async fn convert(
    client: &Client,
    files_dir: &Path,
    url: &str,
    timeout: std::time::Duration,
) -> Result<String, StateError> {
    let old = old_default_of(files_dir);
    let old_url = format!("surrealkv://{}", old.display());
    // Boxed: opening a store may convert one, which opens a store.
    let opening = StateStore::open(client, ConnectionConfig::new(&old_url, "surql", "state"), timeout);
    let store = Box::pin(opening).await?;
    let answer = store
        .run(
            "SELECT record::id(id) AS key, * OMIT id FROM deployment; SELECT * OMIT id FROM deployment_env;",
            json!({}),
        )
        .await?;
    drop(store);
    let mut answer = answer.into_iter();
    let parts = answer.next().unwrap_or_default();
    let environments = answer.next().unwrap_or_default();

    let building = files_dir.with_extension(format!("converting-{}", std::process::id()));
    if building.exists() {
        std::fs::remove_dir_all(&building).map_err(|e| io_error(url, "cannot clear", &building, e))?;
    }
    let files = FileStore::open(&building, url, true)?;
    let mut converted = 0;
    for mut part in parts.as_array().cloned().unwrap_or_default() {
        let key = part.get("key").and_then(Value::as_str).map(str::to_string);
        let Some(key) = key else {
            continue;
        };
        if let Some(object) = part.as_object_mut() {
            object.remove("key");
        }
        files.save(&key, &part)?;
        converted += 1;
    }
    let mut by_deployment: indexmap::IndexMap<String, Vec<Value>> = Default::default();
    for row in environments.as_array().cloned().unwrap_or_default() {
        if let Some(id) = row.get("deployment").and_then(Value::as_str) {
            by_deployment.entry(id.to_string()).or_default().push(row.clone());
        }
    }
    for (id, rows) in &by_deployment {
        files.append_environments(id, rows)?;
    }
    std::fs::rename(&building, files_dir).map_err(|e| io_error(url, "cannot rename", &building, e))?;
    let kept = old.with_file_name("state.converted");
    std::fs::rename(&old, &kept).map_err(|e| io_error(url, "cannot rename", &old, e))?;
    Ok(format!(
        "state store: {converted} deployment record(s) of {old_url} moved to {url}; the old store is kept at {}",
        kept.display()
    ))
}
