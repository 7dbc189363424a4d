//! An environment as a strategy script sees it: a leaf the primitives and
//! the helpers share.

use crate::registry::EnvironmentConfig;

/// An environment as a script sees it: read-only, and only the ones the user
/// selected (scripts cannot construct one).
#[derive(Debug, Clone)]
pub struct ScriptEnv {
    pub name: String,
    pub priority: i64,
    pub tags: Vec<String>,
    pub require_approval: bool,
    pub allow_destructive: bool,
    /// The server (`db1:8000`; never credentials), namespace and database.
    pub host: String,
    pub namespace: String,
    pub database: String,
    pub window: Option<crate::policy::Window>,
    pub hold: Option<String>,
    pub freezes: Vec<crate::policy::Freeze>,
    pub pin_version: Option<String>,
}

impl From<&EnvironmentConfig> for ScriptEnv {
    fn from(e: &EnvironmentConfig) -> Self {
        Self {
            name: e.name.clone(),
            priority: e.priority,
            tags: e.tags.clone(),
            require_approval: e.require_approval,
            allow_destructive: e.allow_destructive,
            host: e.connection.host(),
            namespace: e.connection.db_ns.clone(),
            database: e.connection.db.clone(),
            window: e.window.clone(),
            hold: e.hold.clone(),
            freezes: e.freezes.clone(),
            pin_version: e.pin_version.clone(),
        }
    }
}

impl ScriptEnv {
    /// `window_opens`: the next opening (RFC 3339) while the window is closed; "" otherwise.
    pub(super) fn window_opens(&self) -> String {
        let now = chrono::Utc::now();
        match &self.window {
            Some(window) if !window.is_open(now) => {
                let opens = window.next_open(now).with_timezone(&window.timezone());
                opens.to_rfc3339()
            }
            _ => String::new(),
        }
    }
}
