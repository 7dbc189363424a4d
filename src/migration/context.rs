//! Who and which deployment a change is recorded under: the deployment id
//! and the actor (`--actor`, else the OS user).

use std::time::Duration;

use super::lock::DEFAULT_LOCK_TTL;

/// Who applies and under which deployment.
#[derive(Debug, Clone)]
pub struct ApplyContext {
    /// Stored in every history row this run writes.
    pub deployment_id: String,
    /// Stored in every history row this run writes.
    pub actor: String,
    /// Lease length of the lock; renewed between migrations.
    pub lock_ttl: Duration,
    /// Out-of-order versions and missing files tolerated.
    pub order: super::plan::OrderPolicy,
}

impl ApplyContext {
    /// A context with a fresh deployment id and the OS user as actor.
    pub fn new() -> Self {
        Self {
            deployment_id: new_deployment_id(),
            actor: default_actor(),
            lock_ttl: DEFAULT_LOCK_TTL,
            order: super::plan::OrderPolicy::default(),
        }
    }

    /// The lock owner string: actor, host, process and deployment.
    pub fn lock_owner(&self) -> String {
        super::holder::owner_string(&self.actor, &self.deployment_id, None)
    }

    /// The lock owner on one database of a deployment: two tasks of one
    /// deployment never share an owner.
    pub fn lock_owner_for(&self, environment: &str, connection: &crate::connection::ConnectionConfig) -> String {
        let target = format!("{environment}:{}/{}", connection.db_ns, connection.db);
        super::holder::owner_string(&self.actor, &self.deployment_id, Some(&target))
    }
}

impl Default for ApplyContext {
    fn default() -> Self {
        Self::new()
    }
}

/// A new deployment id: UTC time plus random bits, sortable and unique.
pub fn new_deployment_id() -> String {
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), &uuid[..8])
}

/// The OS user: from the environment, else (Linux, where containers and
/// cron often set no `USER`) the name of this process's user id, else "unknown".
pub fn default_actor() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(user_of_this_process)
        .unwrap_or_else(|| "unknown".into())
}

/// The name of this process's real user id from /etc/passwd (`uid N` when
/// it has none); `None` off Linux.
fn user_of_this_process() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid: u32 = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Some(user_name_in_passwd(&passwd, uid).unwrap_or_else(|| format!("uid {uid}")))
}

fn user_name_in_passwd(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_come_from_passwd_by_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\ndeploy:x:1001:1001::/home/deploy:/bin/sh\n";
        assert_eq!(user_name_in_passwd(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name_in_passwd(passwd, 1001).as_deref(), Some("deploy"));
        assert_eq!(user_name_in_passwd(passwd, 7), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_a_user_even_without_user_variables() {
        let name = user_of_this_process().unwrap();
        assert!(!name.is_empty() && name != "unknown", "{name}");
    }
}
