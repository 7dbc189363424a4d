//! Secrets never reach output: every password and token read from the config
//! or flags is registered here, and every line surql prints, logs, reports or
//! sends to a plugin passes through [`redact`].

use std::io::Write;
use std::sync::{LazyLock, RwLock};

static SECRETS: LazyLock<RwLock<Vec<String>>> = LazyLock::new(|| RwLock::new(Vec::new()));

/// Text shown instead of a secret.
pub const MASK: &str = "***";

/// Remembers a secret (too-short values are ignored: masking "a" everywhere
/// would garble output without protecting anything).
pub fn register_secret(secret: &str) {
    if secret.chars().count() < 3 {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_string());
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Registers the string values of `config` whose key names a secret
/// (`password`, `token`, `secret`, `key`, `webhook`), at any depth.
pub fn register_secrets_in(config: &serde_json::Value) {
    match config {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let key = key.to_ascii_lowercase();
                let secret_key = ["password", "pass", "token", "secret", "key", "webhook", "credential"]
                    .iter()
                    .any(|k| key.contains(k));
                match value {
                    serde_json::Value::String(s) if secret_key => register_secret(s),
                    other => register_secrets_in(other),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(register_secrets_in),
        _ => {}
    }
}

/// `text` with every registered secret replaced by `***`.
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// A log writer that masks secrets in everything written through it.
pub struct RedactingWriter<W: Write>(pub W);

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_masked() {
        register_secret("hunter2-unit");
        register_secrets_in(
            &serde_json::json!({"plugins": [{"config": {"bot_token": "xoxb-unit-1", "channel": "#c"}}]}),
        );
        let text = redact("pw hunter2-unit and xoxb-unit-1 in #c");
        assert_eq!(text, "pw *** and *** in #c");
        register_secret("ab");
        assert_eq!(redact("ab"), "ab");
    }
}
