//! The in-process proof of an embedded database's lock. An embedded store
//! (`mem://`, `surrealkv://`) is open in one process only, so its lock
//! record changes only through this process's lock functions, which note
//! here who holds it. A migration's transaction then proves the lock is
//! still its own without reading the record — the read cost about a tenth
//! of an embedded deployment (BENCHMARKS.md). On a server, which other
//! processes share, the transaction reads it. Whatever this process cannot
//! vouch for is noted as unknown, and then the transaction reads the record
//! as on a server.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::connection::Db;

/// Who holds an embedded database's lock, as this process last set it.
type Holder = Arc<RwLock<Option<String>>>;

/// Process-wide on purpose, not a client's: an embedded store is open once per
/// process (whichever client opened it), so the proof is the process's.
static HOLDERS: LazyLock<Mutex<HashMap<String, Holder>>> = LazyLock::new(Default::default);

fn holder_of(database: &str) -> Holder {
    HOLDERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(database.to_string())
        .or_default()
        .clone()
}

/// A change of the lock record under way: the note reads "unknown" until it
/// is settled, and migrations relying on the note wait until the change is
/// done (an in-process takeover never overlaps a running migration).
pub(super) struct Changing(Option<OwnedRwLockWriteGuard<Option<String>>>);

impl Changing {
    /// The change is done and `holder` holds the lock (`None`: nobody, or unknown).
    pub(super) fn settle(mut self, holder: Option<&str>) {
        if let Some(note) = &mut self.0 {
            **note = holder.map(str::to_string);
        }
    }
}

/// Begins a change of `db`'s lock record (nothing to note on a server).
pub(super) async fn changing(db: &Db) -> Changing {
    match db.embedded_database() {
        None => Changing(None),
        Some(database) => {
            let mut note = holder_of(database).write_owned().await;
            *note = None;
            Changing(Some(note))
        }
    }
}

/// Notes that `owner` no longer holds `db`'s lock (released, or left to expire).
pub(super) async fn forget(db: &Db, owner: &str) {
    if let Some(database) = db.embedded_database() {
        let mut note = holder_of(database).write_owned().await;
        if note.as_deref() == Some(owner) {
            *note = None;
        }
    }
}

/// Proof that `owner` holds `db`'s lock, valid while it is kept: `None` when
/// this process cannot vouch for it (a server, another holder, or a state it
/// did not set), and then the transaction must read the lock record itself.
pub(super) async fn proof(db: &Db, owner: &str) -> Option<OwnedRwLockReadGuard<Option<String>>> {
    let database = db.embedded_database()?;
    let note = holder_of(database).read_owned().await;
    (note.as_deref() == Some(owner)).then_some(note)
}
