//! Who holds a lock, and whether that holder is provably gone: only then may
//! its lock be taken over before the lease expires.
//!
//! A holder is `actor@host pid N boot B pidns P deployment D [target T]`.
//! Two containers may share a host name and pid numbers; they never share
//! both the kernel's boot id and the pid namespace unless they also share
//! `/proc`, which is what the pid check reads.

use std::collections::HashMap;
use std::sync::LazyLock;

/// Owners of locks this process holds right now. Process-wide on purpose,
/// not a client's: whether a holder is gone is a question about this process.
static HELD_HERE: LazyLock<std::sync::Mutex<std::collections::HashSet<String>>> = LazyLock::new(Default::default);

fn held_here() -> std::sync::MutexGuard<'static, std::collections::HashSet<String>> {
    HELD_HERE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Notes `owner` as held by this process (before its lock can exist; a
/// deployment record while it runs here).
pub(crate) fn note_held(owner: &str) {
    held_here().insert(owner.to_string());
}

/// Forgets `owner`: released, or never taken.
pub(crate) fn note_released(owner: &str) {
    held_here().remove(owner);
}

/// What identifies this process to another runner on the same machine.
struct Identity {
    host: Option<String>,
    boot: Option<String>,
    pid_namespace: Option<String>,
}

/// Process-wide on purpose, not a client's: it is this process's identity.
static THIS_PROCESS: LazyLock<Identity> = LazyLock::new(|| Identity {
    host: std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace)),
    boot: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty()),
    pid_namespace: std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|link| link.to_string_lossy().replace(' ', "")),
});

/// The lock owner for `actor`'s `deployment_id`, on `target` (one database)
/// when given.
pub fn owner_string(actor: &str, deployment_id: &str, target: Option<&str>) -> String {
    let me = &*THIS_PROCESS;
    let mut owner = format!(
        "{actor}@{} pid {} boot {} pidns {} deployment {deployment_id}",
        me.host.as_deref().unwrap_or("unknown-host"),
        std::process::id(),
        me.boot.as_deref().unwrap_or("-"),
        me.pid_namespace.as_deref().unwrap_or("-"),
    );
    if let Some(target) = target {
        owner.push_str(" target ");
        owner.push_str(target);
    }
    owner
}

/// True only when the holder is provably gone: a process of this very
/// machine (same host name, boot and pid namespace) whose pid no longer
/// exists or belongs to a process started after the lock was taken, or a
/// finished deployment of this process. Anything else waits for the lease.
pub fn holder_is_gone(owner: &str, acquired_at: &str) -> bool {
    let Some(fields) = parse(owner) else {
        return false;
    };
    let me = &*THIS_PROCESS;
    let same_machine = |key: &str, ours: &Option<String>| {
        ours.as_deref()
            .is_some_and(|ours| ours != "-" && fields.get(key) == Some(&ours))
    };
    if !(same_machine("host", &me.host) && same_machine("boot", &me.boot) && same_machine("pidns", &me.pid_namespace)) {
        return false;
    }
    let Some(pid) = fields.get("pid").and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    if pid == std::process::id() {
        return !held_here().contains(owner);
    }
    match process_started_at(pid) {
        None => !std::path::Path::new(&format!("/proc/{pid}")).exists() && std::path::Path::new("/proc/self").exists(),
        Some(started) => chrono::DateTime::parse_from_rfc3339(acquired_at)
            // Start times count in whole seconds of boot time: a margin.
            .is_ok_and(|acquired| started > acquired.with_timezone(&chrono::Utc) + chrono::Duration::seconds(2)),
    }
}

/// `host`, `pid`, `boot`, `pidns`, `deployment` of an owner string.
fn parse(owner: &str) -> Option<HashMap<&str, &str>> {
    let (_, rest) = owner.rsplit_once('@')?;
    let mut words = rest.split(' ');
    let mut fields = HashMap::from([("host", words.next()?)]);
    while let (Some(key), Some(value)) = (words.next(), words.next()) {
        if key == "target" {
            break;
        }
        fields.insert(key, value);
    }
    Some(fields)
}

/// When process `pid` started, from `/proc` (Linux).
fn process_started_at(pid: u32) -> Option<chrono::DateTime<chrono::Utc>> {
    const TICKS_PER_SECOND: i64 = 100; // USER_HZ, fixed for /proc on Linux
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the command name (which may contain spaces).
    let after_name = &stat[stat.rfind(')')? + 2..];
    let ticks: i64 = after_name.split(' ').nth(19)?.parse().ok()?;
    let boot_time: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())?;
    chrono::DateTime::from_timestamp(boot_time, 0)
        .map(|boot| boot + chrono::Duration::milliseconds(ticks * 1000 / TICKS_PER_SECOND))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    const LONG_AGO: &str = "2000-01-01T00:00:00Z";

    fn now() -> String {
        chrono::Utc::now().to_rfc3339()
    }

    /// This process's owner string, with `pid` in place of its own.
    fn owner_of(pid: u32) -> String {
        owner_string("ci", "d", None).replace(&format!(" pid {} ", std::process::id()), &format!(" pid {pid} "))
    }

    /// The pid of a process that has ended.
    #[allow(clippy::unwrap_used)] // a test helper: stop at the first surprise
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_finished_deployment_of_this_process_is_gone_a_running_one_is_not() {
        let owner = owner_string("ci", "d1", Some("app/main"));
        note_held(&owner);
        assert!(!holder_is_gone(&owner, &now()));
        note_released(&owner);
        assert!(holder_is_gone(&owner, &now()));
    }

    #[test]
    fn a_dead_pid_of_this_machine_is_gone() {
        assert!(holder_is_gone(&owner_of(dead_pid()), &now()));
    }

    #[test]
    fn a_live_pid_is_kept_unless_it_started_after_the_lock() {
        let owner = owner_of(std::os::unix::process::parent_id());
        assert!(!holder_is_gone(&owner, &now()), "a live holder");
        // The pid was reused: the process with it started after the lock was taken.
        assert!(holder_is_gone(&owner, LONG_AGO));
    }

    #[test]
    fn another_pid_namespace_or_boot_or_an_old_owner_format_waits_for_the_lease() {
        let pid = dead_pid();
        let ours = owner_of(pid);
        let other_namespace = ours.replace(" pidns pid:", " pidns pid:9");
        assert!(!holder_is_gone(&other_namespace, &now()), "{other_namespace}");
        let me = &*THIS_PROCESS;
        let other_boot = ours.replace(me.boot.as_deref().unwrap(), "another-boot");
        assert!(!holder_is_gone(&other_boot, &now()));
        let old_format = format!("ci@{} pid {pid} deployment d", me.host.as_deref().unwrap_or("x"));
        assert!(!holder_is_gone(&old_format, &now()));
    }
}
