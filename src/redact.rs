//! Secrets never reach output: every password and token read from the config
//! or flags is registered here, and every line surql prints, logs, reports or
//! sends to a plugin passes through [`redact`].

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, LazyLock, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};

/// The registered secrets and one matcher for all of them: a fleet with a
/// password per tenant has thousands, and every line is searched for each in
/// one pass, not once per secret.
#[derive(Default)]
struct Secrets {
    known: HashSet<String>,
    /// Built on the first `redact` after a change.
    matcher: Option<Arc<AhoCorasick>>,
}

/// Process-wide on purpose, not a client's: a secret is masked in everything
/// this process prints, logs or sends, whoever registered it.
static SECRETS: LazyLock<RwLock<Secrets>> = LazyLock::new(Default::default);

/// Text shown instead of a secret.
pub const MASK: &str = "***";

/// Remembers a secret (too-short values are ignored: masking "a" everywhere
/// would garble output without protecting anything).
pub fn register_secret(secret: &str) {
    if secret.chars().count() < 3 {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if secrets.known.insert(secret.to_string()) {
        secrets.matcher = None;
    }
}

/// The matcher of every registered secret (`None`: there are none).
fn matcher() -> Option<Arc<AhoCorasick>> {
    {
        let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        if secrets.known.is_empty() {
            return None;
        }
        if let Some(matcher) = &secrets.matcher {
            return Some(matcher.clone());
        }
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if secrets.matcher.is_none() {
        // Leftmost-longest: a secret containing another is masked whole.
        let built = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(secrets.known.iter())
            .ok()?;
        secrets.matcher = Some(Arc::new(built));
    }
    secrets.matcher.clone()
}

/// Masks without a matcher, longest secret first: used if one cannot be
/// built, so a failure never leaves secrets in the output.
fn redact_one_by_one(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut known: Vec<&String> = secrets.known.iter().collect();
    known.sort_by_key(|s| std::cmp::Reverse(s.len()));
    known
        .into_iter()
        .fold(text.to_string(), |out, secret| out.replace(secret.as_str(), MASK))
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
                    serde_json::Value::String(url) if key == "db_url" => register_url_secret(url),
                    other => register_secrets_in(other),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(register_secrets_in),
        _ => {}
    }
}

/// Registers the password of a URL's user-info (`ws://user:pass@host`),
/// which may itself contain `/` or `@`.
pub fn register_url_secret(url: &str) {
    if let Some((_, rest)) = url.split_once("://")
        && let Some((user_info, _)) = rest.rsplit_once('@')
        && let Some((_, password)) = user_info.split_once(':')
    {
        register_secret(password);
    }
}

/// Masks JSON Web Tokens (`eyJ….….…`), registered or not: session tokens
/// come back from sign-in inside the SDK, before surql could register them.
fn mask_tokens(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("eyJ") {
        return std::borrow::Cow::Borrowed(text);
    }
    let token_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("eyJ") {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let end = candidate.find(|c: char| !token_char(c)).unwrap_or(candidate.len());
        let token = &candidate[..end];
        if token.matches('.').count() >= 2 && token.len() >= 20 {
            out.push_str(MASK);
        } else {
            out.push_str(token);
        }
        rest = &candidate[end..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Every string of `value` redacted: plugin payloads and reports.
pub fn redact_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(redact(&text)),
        // A numeric secret (`--set api_key=12345678`) is still a secret.
        Value::Number(number) => {
            let text = number.to_string();
            match redact(&text) {
                masked if masked != text => Value::String(masked),
                _ => Value::Number(number),
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(redact_json).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(key, value)| (key, redact_json(value))).collect()),
        other => other,
    }
}

/// `text` with every registered secret, and any session token, replaced by `***`.
pub fn redact(text: &str) -> String {
    let text = &*mask_tokens(text);
    let Some(matcher) = matcher() else {
        return redact_one_by_one(text);
    };
    let mut out = String::with_capacity(text.len());
    matcher.replace_all_with(text, &mut out, |_, _, out| {
        out.push_str(MASK);
        true
    });
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
        // A secret containing another is masked whole.
        register_secret("long-secret-unit");
        register_secret("secret-unit");
        assert_eq!(redact("x long-secret-unit y secret-unit"), "x *** y ***");
    }

    #[test]
    fn session_tokens_and_url_passwords_are_masked() {
        let jwt = "eyJhbGciOiJIUzUxMiJ9.eyJleHAiOjE3MDB9.c2lnbmF0dXJlLXVuaXQ";
        assert_eq!(redact(&format!("token {jwt}, done")), "token ***, done");
        assert_eq!(redact("eyJ alone"), "eyJ alone");
        register_url_secret("ws://deployer:pa/ss@w0rd-unit@db.example:8000/rpc");
        assert_eq!(redact("pa/ss@w0rd-unit"), "***");
        let payload = serde_json::json!({"a": ["x pa/ss@w0rd-unit"], "b": 1});
        assert_eq!(redact_json(payload), serde_json::json!({"a": ["x ***"], "b": 1}));
    }

    #[test]
    fn thousands_of_secrets_are_each_masked() {
        for i in 0..5_000 {
            register_secret(&format!("tenant-pass-{i:05}-unit"));
        }
        assert_eq!(
            redact("a tenant-pass-00042-unit b tenant-pass-04999-unit"),
            "a *** b ***"
        );
    }
}
