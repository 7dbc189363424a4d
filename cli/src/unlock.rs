//! `surql migrate unlock` and `surql orchestrate unlock`: name the holder,
//! ask (or `--yes`), remove.

use std::io::IsTerminal;

use surql::Error;
use surql::connection::{Client, ConnectionConfig, Timeouts, connect_read_only};
use surql::migration::{current_lock, lock::remove_lock_of};

/// What happened to one database's lock.
pub enum Unlocked {
    NotLocked,
    Removed(String),
    Kept(String),
}

/// Shows the holder of `name`'s lock and removes it when confirmed.
pub async fn unlock(
    client: &Client,
    name: &str,
    connection: &ConnectionConfig,
    timeouts: Timeouts,
    yes: bool,
) -> Result<Unlocked, Error> {
    let Some(db) = connect_read_only(client, connection, timeouts).await? else {
        return Ok(Unlocked::NotLocked);
    };
    let Some(lock) = current_lock(&db).await? else {
        return Ok(Unlocked::NotLocked);
    };
    let holder = format!(
        "{} (since {}, lease until {})",
        lock.owner, lock.acquired_at, lock.expires_at
    );
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::Usage(format!(
                "{name} is locked by {holder}; pass --yes to remove the lock without asking"
            )));
        }
        let question = format!("{name} is locked by {holder}.\nRemove this lock? Only if that run is gone.");
        if !super::progress::ask_yes(&question).map_err(|e| Error::io("cannot read the answer", e))? {
            return Ok(Unlocked::Kept(holder));
        }
    }
    Ok(if remove_lock_of(&db, &lock.owner).await? {
        Unlocked::Removed(holder)
    } else {
        Unlocked::Kept(format!("{holder}: it changed hands meanwhile"))
    })
}

/// Prints the outcome; true when the database is now unlocked.
pub fn report(name: &str, outcome: &Unlocked) -> bool {
    match outcome {
        Unlocked::NotLocked => {
            println!("{name}: not locked");
            true
        }
        Unlocked::Removed(holder) => {
            println!("{name}: removed the lock held by {holder}");
            true
        }
        Unlocked::Kept(holder) => {
            println!("{name}: kept the lock held by {holder}");
            false
        }
    }
}
