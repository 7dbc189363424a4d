//! The default state store: deployment records as JSON files in a folder
//! (`files://.surql/deployments`). Any number of surql processes read and
//! write it at once; an exclusive lock on its `lock` file makes each change
//! one step, as a transaction does on a server, and readers take it shared.
//! It keeps SurrealDB's engine out of a process that only records a few rows.
//!
//! ```text
//! PATH/lock                      held while a change is made (flock)
//! PATH/deployments/KEY.json      one deployment (a shard of one: KEY is ID~shard-I-of-N)
//! PATH/environments/ID.jsonl     its environments: one line per write, merged in order
//! ```

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::record::{aggregate, in_selection_order, parse};
use super::{DeploymentRecord, EnvironmentRecord, HEARTBEAT_STALE, STORE_DEADLINE, StateError, WaveRecord};

/// The URL scheme of a folder of record files.
pub const FILES_SCHEME: &str = "files://";

/// A folder of record files.
#[derive(Clone)]
pub(super) struct FileStore {
    dir: PathBuf,
    url: String,
}

/// The parts (shards) of deployments, each under its key.
pub(super) type Parts = Vec<(String, Value)>;

impl FileStore {
    /// The store in `dir`, created when `create` (else it must exist).
    pub(super) fn open(dir: &Path, url: &str, create: bool) -> Result<Self, StateError> {
        let store = Self {
            dir: dir.to_path_buf(),
            url: url.to_string(),
        };
        if create {
            for sub in ["deployments", "environments"] {
                std::fs::create_dir_all(dir.join(sub)).map_err(|e| store.io("cannot create", &dir.join(sub), e))?;
            }
        } else if !dir.join("deployments").is_dir() {
            return Err(StateError::NotFound(format!("{url} (no deployments recorded there)")));
        }
        Ok(store)
    }

    fn io(&self, what: &str, path: &Path, error: std::io::Error) -> StateError {
        io_error(&self.url, what, path, error)
    }

    /// Writes `text` to a file beside `path`, synced, then renames it over
    /// `path`: a reader sees the old file or the new one, never half of one.
    fn replace(&self, path: &Path, extension: &str, text: &[u8]) -> Result<(), StateError> {
        let temporary = path.with_extension(extension);
        let written = std::fs::File::create(&temporary).and_then(|mut file| {
            file.write_all(text)?;
            file.sync_data()
        });
        written.map_err(|e| self.io("cannot write", &temporary, e))?;
        std::fs::rename(&temporary, path).map_err(|e| self.io("cannot replace", path, e))
    }

    /// Runs `change` holding the store's lock (shared for reads), off the
    /// async threads; waits for another process's change up to
    /// [`STORE_DEADLINE`].
    pub(super) async fn locked<T: Send + 'static>(
        &self,
        exclusive: bool,
        change: impl FnOnce(&FileStore) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let store = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let path = store.dir.join("lock");
            // A reader creates nothing (a dry run writes nothing anywhere):
            // where no writer ever made the lock file, nothing can change.
            let opened = match exclusive {
                true => std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path),
                false => std::fs::File::open(&path),
            };
            let file = match opened {
                Ok(file) => file,
                Err(e) if !exclusive && e.kind() == std::io::ErrorKind::NotFound => return change(&store),
                Err(e) => return Err(store.io("cannot open", &path, e)),
            };
            let started = Instant::now();
            loop {
                let taken = match exclusive {
                    true => file.try_lock(),
                    false => file.try_lock_shared(),
                };
                match taken {
                    Ok(()) => break,
                    Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < STORE_DEADLINE => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(std::fs::TryLockError::WouldBlock) => {
                        return Err(StateError::Files {
                            url: store.url.clone(),
                            why: format!(
                                "another process has held {} for over {}s; try again",
                                path.display(),
                                STORE_DEADLINE.as_secs()
                            ),
                        });
                    }
                    Err(std::fs::TryLockError::Error(e)) => return Err(store.io("cannot lock", &path, e)),
                }
            }
            // The lock ends when `file` is dropped, after the change.
            let answer = change(&store);
            drop(file);
            answer
        });
        // Waiting for the lock has its deadline; so has the change (a
        // filesystem that stops answering must not hang the runner).
        match tokio::time::timeout(STORE_DEADLINE * 2, task).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => Err(StateError::Files {
                url: self.url.clone(),
                why: format!("a store task ended: {e}"),
            }),
            Err(_) => Err(StateError::Files {
                url: self.url.clone(),
                why: format!(
                    "no answer from {} within {}s",
                    self.dir.display(),
                    (STORE_DEADLINE * 2).as_secs()
                ),
            }),
        }
    }

    /// `name` as a file name in the store: a deployment id or record key
    /// never names a path outside it.
    fn file_name(&self, name: &str, extension: &str) -> Result<String, StateError> {
        let safe = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
        match safe {
            true => Ok(format!("{name}.{extension}")),
            false => Err(StateError::Files {
                url: self.url.clone(),
                why: format!("'{name}' cannot name a record: no '/', '\\' or NUL, not '.' or '..'"),
            }),
        }
    }

    fn part_path(&self, key: &str) -> Result<PathBuf, StateError> {
        Ok(self.dir.join("deployments").join(self.file_name(key, "json")?))
    }

    fn environments_path(&self, id: &str) -> Result<PathBuf, StateError> {
        Ok(self.dir.join("environments").join(self.file_name(id, "jsonl")?))
    }

    fn read_part(&self, path: &Path) -> Result<Value, StateError> {
        let text = std::fs::read_to_string(path).map_err(|e| self.io("cannot read", path, e))?;
        let not_a_record = |why: String| StateError::Files {
            url: self.url.clone(),
            why: format!(
                "{} is not a deployment record ({why}): surql did not write it so; move it aside",
                path.display()
            ),
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(part) if part.is_object() => Ok(part),
            Ok(_) => Err(not_a_record("not a JSON object".into())),
            Err(e) => Err(not_a_record(e.to_string())),
        }
    }

    /// The part under `key`, if recorded.
    pub(super) fn part(&self, key: &str) -> Result<Option<Value>, StateError> {
        let path = self.part_path(key)?;
        match path.exists() {
            true => self.read_part(&path).map(Some),
            false => Ok(None),
        }
    }

    /// Every part of every deployment (`of`: of deployment `of` only).
    pub(super) fn parts(&self, of: Option<&str>) -> Result<Parts, StateError> {
        let folder = self.dir.join("deployments");
        let entries = std::fs::read_dir(&folder).map_err(|e| self.io("cannot read", &folder, e))?;
        let mut parts = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| self.io("cannot read", &folder, e))?.path();
            let Some(key) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue; // a file being written (`.json.tmp`), or not surql's
            };
            let id = key.split_once("~shard-").map_or(key, |(id, _)| id);
            if of.is_some_and(|of| of != id) {
                continue;
            }
            parts.push((key.to_string(), self.read_part(&path)?));
        }
        // As SurrealDB answers: by key (a sharded deployment's first part first).
        parts.sort_by(|(a, _), (b, _)| a.cmp(b));
        Ok(parts)
    }

    /// Writes a part whole: to a file beside it, then renamed over it, so a
    /// reader sees the old record or the new one, never half of one.
    pub(super) fn save(&self, key: &str, part: &Value) -> Result<(), StateError> {
        let path = self.part_path(key)?;
        self.replace(&path, "json.tmp", &serde_json::to_vec_pretty(part).unwrap_or_default())?;
        // The rename itself survives a crash once the folder is synced.
        let folder = self.dir.join("deployments");
        std::fs::File::open(&folder)
            .and_then(|folder| folder.sync_all())
            .map_err(|e| self.io("cannot sync", &folder, e))
    }

    /// Appends environment rows of deployment `id` (each merged over what
    /// the environment had, as an `UPSERT … MERGE` does).
    pub(super) fn append_environments(&self, id: &str, rows: &[Value]) -> Result<(), StateError> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.environments_path(id)?;
        let mut text = json_lines(rows);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| {
                // A line a crash cut short ends here first, so it stays a
                // line of its own (read as not written) and this one is whole.
                if file.seek(SeekFrom::End(0))? > 0 {
                    let mut last = [0u8; 1];
                    file.seek(SeekFrom::End(-1))?;
                    file.read_exact(&mut last)?;
                    if last[0] != b'\n' {
                        text.insert(0, b'\n');
                    }
                }
                file.write_all(&text)?;
                file.sync_data()
            });
        written.map_err(|e| self.io("cannot write", &path, e))
    }

    /// The environments of deployment `id`, in the order first written.
    pub(super) fn environments(&self, id: &str) -> Result<indexmap::IndexMap<String, Value>, StateError> {
        let path = self.environments_path(id)?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(self.io("cannot read", &path, e)),
        };
        let mut environments: indexmap::IndexMap<String, Value> = Default::default();
        for (number, line) in text.lines().enumerate() {
            let row: Value = match serde_json::from_str(line) {
                Ok(row) => row,
                // A write a crash cut short: that line was never written.
                Err(e) if e.is_eof() => continue,
                Err(e) => {
                    return Err(StateError::Files {
                        url: self.url.clone(),
                        why: format!(
                            "{}:{}: not an environment record ({e}): surql did not write it so; move it aside",
                            path.display(),
                            number + 1
                        ),
                    });
                }
            };
            let Some(name) = row.get("environment").and_then(Value::as_str) else {
                continue;
            };
            // Marking a wave updates an environment, never creates one.
            if row.get(FIRST_WAVE).is_some() && !environments.contains_key(name) {
                continue;
            }
            let merged = environments.entry(name.to_string()).or_insert_with(|| json!({}));
            if let (Some(merged), Some(row)) = (merged.as_object_mut(), row.as_object()) {
                for (field, value) in row {
                    match field.as_str() {
                        // A wave's mark applies only to an environment in no wave yet.
                        FIRST_WAVE if merged.get("wave").is_none_or(Value::is_null) => {
                            merged.insert("wave".into(), value.clone());
                        }
                        FIRST_WAVE => {}
                        _ => {
                            merged.insert(field.clone(), value.clone());
                        }
                    }
                }
            }
        }
        Ok(environments)
    }

    /// Rewrites the log of deployment `id` as one line per environment (what
    /// reading it merges to), aside and renamed over it: a finished
    /// deployment's log stops growing with the writes it took.
    pub(super) fn compact_environments(&self, id: &str) -> Result<(), StateError> {
        let path = self.environments_path(id)?;
        if !path.exists() {
            return Ok(());
        }
        let rows: Vec<Value> = self.environments(id)?.into_values().collect();
        self.replace(&path, "jsonl.tmp", &json_lines(&rows))
    }

    /// The ids of every deployment with environments recorded.
    fn deployments_with_environments(&self) -> Result<Vec<String>, StateError> {
        let folder = self.dir.join("environments");
        let entries = std::fs::read_dir(&folder).map_err(|e| self.io("cannot read", &folder, e))?;
        let mut ids = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| self.io("cannot read", &folder, e))?.path();
            if let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jsonl"))
            {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }

    /// Every environment row of every deployment that names one of `environments`.
    pub(super) fn rows_of(&self, environments: &[String]) -> Result<Vec<Value>, StateError> {
        let wanted: HashSet<&str> = environments.iter().map(String::as_str).collect();
        let mut rows = Vec::new();
        for id in self.deployments_with_environments()? {
            rows.extend(
                self.environments(&id)?
                    .into_values()
                    .filter(|row| row["environment"].as_str().is_some_and(|e| wanted.contains(e))),
            );
        }
        Ok(rows)
    }
}

/// The field of an environment row that sets its wave unless it has one
/// (an `UPDATE … SET wave = N WHERE wave = NONE`), without reading the log.
const FIRST_WAVE: &str = "first_wave";

/// When the runner of a recorded part took it: its `resumed_at`, else its `started_at`.
pub(super) fn taken_at(part: &Value) -> &str {
    match field(part, "resumed_at") {
        "" => field(part, "started_at"),
        resumed => resumed,
    }
}

/// `rows` as JSON lines.
fn json_lines(rows: &[Value]) -> Vec<u8> {
    let mut text = Vec::new();
    for row in rows {
        serde_json::to_writer(&mut text, row).unwrap_or_default();
        text.push(b'\n');
    }
    text
}

/// What failed on which file of the store at `url`.
pub(super) fn io_error(url: &str, what: &str, path: &Path, error: std::io::Error) -> StateError {
    StateError::Files {
        url: url.to_string(),
        why: format!("{what} {}: {error}", path.display()),
    }
}

/// Now, as the store writes time (what SurrealDB's `time::now()` reads back as).
pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn field<'v>(part: &'v Value, name: &str) -> &'v str {
    part.get(name).and_then(Value::as_str).unwrap_or_default()
}

fn names(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Its heartbeat is younger than [`HEARTBEAT_STALE`].
fn fresh(part: &Value) -> bool {
    chrono::DateTime::parse_from_rfc3339(field(part, "heartbeat_at")).is_ok_and(|at| {
        chrono::Utc::now()
            .signed_duration_since(at)
            .to_std()
            .unwrap_or_default()
            < HEARTBEAT_STALE
    })
}

/// What [`claim`] records.
pub(super) struct Claim {
    /// The record, redacted.
    pub(super) content: Value,
    /// The record as written.
    pub(super) record: DeploymentRecord,
    /// It continues a recorded run (environments kept): its record is updated, not replaced.
    pub(super) continues: bool,
    /// The runner the caller last saw holding it.
    pub(super) expected: Option<String>,
}

/// Claims a deployment as [`super::StateStore::begin`] does on a server,
/// holding the lock over every part: runs of provably dead runners on
/// these environments are settled first, then the claim is refused when
/// another runner holds this key or a live deployment holds one of the
/// environments.
pub(super) fn claim(store: &FileStore, claim: Claim) -> Result<(), StateError> {
    let record = &claim.record;
    let key = record.key();
    let selection: HashSet<&str> = record.selection.iter().map(String::as_str).collect();
    let mut parts = store.parts(None)?;
    // Another deployment running on some of these environments.
    let rival = |part: &Value| {
        field(part, "state") == "running"
            && field(part, "deployment_id") != record.id
            && names(&part["selection"]).iter().any(|e| selection.contains(e.as_str()))
    };
    for (other, part) in parts.iter_mut() {
        if rival(part) && crate::migration::holder::holder_is_gone(field(part, "runner"), taken_at(part)) {
            part["state"] = json!("interrupted");
            part["finished_at"] = json!(now());
            store.save(other, part)?;
        }
    }
    if let Some((_, mine)) = parts.iter().find(|(k, _)| *k == key)
        && Some(field(mine, "runner")) != claim.expected.as_deref()
    {
        return Err(StateError::Claimed {
            what: match &record.shard {
                Some(shard) => format!("deployment {} shard {shard}", record.id),
                None => format!("deployment {}", record.id),
            },
            holder: format!("{} ({})", field(mine, "runner"), field(mine, "state")),
        });
    }
    let busy = parts
        .iter()
        .map(|(_, part)| part)
        .find(|part| rival(part) && fresh(part));
    if let Some(busy) = busy {
        let shared: Vec<String> = names(&busy["selection"])
            .into_iter()
            .filter(|e| selection.contains(e.as_str()))
            .collect();
        return Err(StateError::Overlap(format!(
            "{} ({}) is running on {}",
            field(busy, "deployment_id"),
            field(busy, "runner"),
            shared.join(", ")
        )));
    }
    let now = now();
    match (claim.continues, parts.into_iter().find(|(k, _)| *k == key)) {
        (false, _) => {
            let mut part = claim.content;
            part["heartbeat_at"] = json!(now);
            store.save(&key, &part)
        }
        (true, Some((_, mut part))) => {
            let content = &claim.content;
            part["state"] = json!("running");
            part["runner"] = content["runner"].clone();
            if let Some(object) = part.as_object_mut() {
                // A field the record leaves out is removed, as `SET f = NONE` does.
                for name in ["options", "plan", "plan_changes"] {
                    match content.get(name) {
                        Some(value) => object.insert(name.to_string(), value.clone()),
                        None => object.remove(name),
                    };
                }
                object.remove("finished_at");
                object.remove("control");
            }
            part["resumed_at"] = json!(now);
            part["heartbeat_at"] = json!(now);
            store.save(&key, &part)
        }
        // Nothing recorded to continue: as an `UPDATE` of no record, nothing.
        (true, None) => Ok(()),
    }
}

/// Changes the part under `key`, when recorded.
pub(super) fn update(store: &FileStore, key: &str, change: impl FnOnce(&mut Value)) -> Result<(), StateError> {
    if let Some(mut part) = store.part(key)? {
        change(&mut part);
        store.save(key, &part)?;
    }
    Ok(())
}

/// Adds waves to the part under `key`, and marks each wave's environments
/// of deployment `id` not in a wave yet.
pub(super) fn add_waves(
    store: &FileStore,
    id: &str,
    key: &str,
    waves: &[WaveRecord],
    members: &[(usize, Vec<String>)],
) -> Result<(), StateError> {
    let numbers: HashSet<usize> = waves.iter().map(|w| w.number).collect();
    let added = serde_json::to_value(waves).unwrap_or_default();
    update(store, key, |part| {
        let mut kept: Vec<Value> = part["waves"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|w| w["number"].as_u64().is_none_or(|n| !numbers.contains(&(n as usize))))
            .cloned()
            .collect();
        kept.extend(added.as_array().into_iter().flatten().cloned());
        part["waves"] = Value::Array(kept);
    })?;
    let rows: Vec<Value> = members
        .iter()
        .flat_map(|(wave, names)| {
            names
                .iter()
                .map(move |name| json!({ "environment": name, FIRST_WAVE: wave }))
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    store.append_environments(id, &rows)
}

/// One deployment, its parts as a whole, and its environments in the order selected.
pub(super) fn show(store: &FileStore, id: &str) -> Result<(DeploymentRecord, Vec<EnvironmentRecord>), StateError> {
    let parts: Vec<DeploymentRecord> = store
        .parts(Some(id))?
        .into_iter()
        .map(|(_, part)| parse(part))
        .collect::<Result<_, _>>()?;
    let deployment = aggregate(parts).ok_or_else(|| StateError::NotFound(id.to_string()))?;
    let rows: Vec<Value> = store
        .environments(id)?
        .into_values()
        .map(|mut row| {
            if let Some(object) = row.as_object_mut() {
                object.remove("deployment");
            }
            row
        })
        .collect();
    let mut environments: Vec<EnvironmentRecord> = parse(Value::Array(rows))?;
    in_selection_order(&deployment, &mut environments);
    Ok((deployment, environments))
}

/// The newest `limit` deployments, newest first.
pub(super) fn list(store: &FileStore, limit: usize) -> Result<Vec<DeploymentRecord>, StateError> {
    let mut parts: Vec<DeploymentRecord> = store
        .parts(None)?
        .into_iter()
        .map(|(_, part)| parse(part))
        .collect::<Result<_, _>>()?;
    parts.sort_by(|a, b| b.started_at.cmp(&a.started_at));
    let mut ids: Vec<String> = Vec::new();
    for part in &parts {
        if !ids.contains(&part.id) {
            ids.push(part.id.clone());
        }
        // As SurrealDB's list: a limit of 0 lists them all.
        if ids.len() == limit {
            break;
        }
    }
    Ok(ids
        .iter()
        .filter_map(|id| aggregate(parts.iter().filter(|p| &p.id == id).cloned().collect()))
        .collect())
}

#[cfg(test)]
mod tests;
