//! An embedded state store (`surrealkv://PATH`) opens in one process at a
//! time. While a process holds it (a deployment running), it serves the
//! records to readers in other processes over a Unix socket beside the store
//! (`PATH.sock`, owner-only): `deployments` and `show` from a second
//! terminal. One JSON request per connection, one JSON answer; reads, and
//! the commands that steer a running deployment (`pause`, `abort` …).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use super::{STORE_DEADLINE, StateError};
use crate::connection::{ConnectionConfig, Db};

/// What a reader asks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Request {
    List {
        limit: usize,
    },
    Show {
        id: String,
    },
    /// An operator's command to a running deployment: the only write, and
    /// only to the record's control.
    Command {
        id: String,
        record: super::CommandRecord,
    },
    /// Versions that succeeded on these environments (promotion rules).
    Succeeded {
        environments: Vec<String>,
    },
    /// How long deployments took on these environments (estimates).
    Durations {
        environments: Vec<String>,
    },
}

/// The socket beside an embedded store on disk; `None` for anything else.
pub(super) fn socket_of(config: &ConnectionConfig) -> Option<PathBuf> {
    let path = config.db_url.strip_prefix("surrealkv://")?;
    (!path.is_empty()).then(|| PathBuf::from(format!("{}.sock", path.trim_end_matches('/'))))
}

/// Serving while it lives; dropping it stops serving and removes the socket.
pub(super) struct Serving {
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Serves `db`'s records on `socket`. This process holds the store, so a
/// socket file left there is a dead process's: it is replaced. `None` when
/// the socket cannot be made (the store still works; readers are refused).
#[cfg(unix)]
pub(super) fn serve(socket: PathBuf, db: Db, url: String) -> Option<Serving> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(&socket);
    let listener = match tokio::net::UnixListener::bind(&socket) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::debug!("cannot serve the state store on {}: {error}", socket.display());
            return None;
        }
    };
    // Records name environments and runners: the owner's only.
    let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600));
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = super::StateStore::direct(db.clone(), url.clone());
            tokio::spawn(async move {
                let _ = tokio::time::timeout(STORE_DEADLINE, answer(stream, &store)).await;
            });
        }
    });
    Some(Serving { socket, task })
}

#[cfg(not(unix))]
pub(super) fn serve(_socket: PathBuf, _db: Db, _url: String) -> Option<Serving> {
    None
}

#[cfg(unix)]
async fn answer(stream: tokio::net::UnixStream, store: &super::StateStore) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    // A request is a few bytes: read at most 64 KiB of it.
    BufReader::new(read).take(64 * 1024).read_line(&mut line).await?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(Request::List { limit }) => to_reply(store.list(limit).await),
        Ok(Request::Show { id }) => to_reply(store.show(&id).await),
        Ok(Request::Command { id, record }) => to_reply(store.command(&id, &record).await),
        Ok(Request::Durations { environments }) => to_reply(
            store
                .past_durations(&environments)
                .await
                .map(|found| found.into_iter().collect::<Vec<_>>()),
        ),
        Ok(Request::Succeeded { environments }) => to_reply(
            store
                .succeeded_versions(&environments)
                .await
                .map(|found| found.into_iter().collect::<Vec<_>>()),
        ),
        Err(error) => serde_json::json!({ "error": format!("unreadable request: {error}") }),
    };
    write.write_all(format!("{reply}\n").as_bytes()).await?;
    write.shutdown().await
}

fn to_reply<T: Serialize>(answer: Result<T, StateError>) -> serde_json::Value {
    match answer {
        Ok(value) => serde_json::json!({ "ok": value }),
        Err(StateError::NotFound(id)) => serde_json::json!({ "not_found": id }),
        Err(StateError::Refused(why)) => serde_json::json!({ "refused": why }),
        Err(error) => serde_json::json!({ "error": error.to_string() }),
    }
}

/// Asks the process serving the store at `socket` (within the store's deadline).
#[cfg(unix)]
pub(super) async fn ask<T: serde::de::DeserializeOwned>(
    socket: &Path,
    url: &str,
    request: &Request,
) -> Result<T, StateError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let unanswered = |why: String| StateError::Served {
        url: url.to_string(),
        socket: socket.display().to_string(),
        why,
    };
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await?;
        let line = serde_json::to_string(request).map_err(std::io::Error::other)?;
        stream.write_all(format!("{line}\n").as_bytes()).await?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    let reply = match tokio::time::timeout(STORE_DEADLINE, exchange).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(error)) => return Err(unanswered(error.to_string())),
        Err(_) => return Err(unanswered(format!("no answer within {}s", STORE_DEADLINE.as_secs()))),
    };
    let mut reply: serde_json::Value =
        serde_json::from_str(&reply).map_err(|e| unanswered(format!("unreadable answer: {e}")))?;
    if let Some(id) = reply.get("not_found").and_then(serde_json::Value::as_str) {
        return Err(StateError::NotFound(id.to_string()));
    }
    if let Some(why) = reply.get("refused").and_then(serde_json::Value::as_str) {
        return Err(StateError::Refused(why.to_string()));
    }
    if let Some(error) = reply.get("error").and_then(serde_json::Value::as_str) {
        return Err(unanswered(error.to_string()));
    }
    super::record::parse(reply["ok"].take())
}

#[cfg(not(unix))]
pub(super) async fn ask<T: serde::de::DeserializeOwned>(
    _socket: &Path,
    url: &str,
    _request: &Request,
) -> Result<T, StateError> {
    Err(StateError::Busy { url: url.to_string() })
}
