//! `${VAR}` / `${VAR:-default}` in the strings of a config file.

/// Why a string's `${…}` could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VarError {
    /// A `${` without its `}`.
    #[error("unclosed '${{' in \"{start}\": write ${{NAME}}")]
    Unclosed {
        /// The first characters of the string, to find it by.
        start: String,
    },
    /// `${…}` whose body is no variable name.
    #[error("'${{{body}}}' is not a variable reference: names are letters, digits and '_'")]
    NotAName {
        /// What stood between the braces.
        body: String,
    },
    /// A variable that is not set and has no default.
    #[error("${{{name}}} is not set: export {name}=… or write ${{{name}:-default}}")]
    Unset {
        /// The variable.
        name: String,
    },
}

/// Expands `${VAR}` / `${VAR:-default}` in one string; a `$` not followed by
/// `{` is left as it is.
pub fn expand_vars(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, VarError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| VarError::Unclosed {
            start: input.chars().take(40).collect(),
        })?;
        let body = &after[..end];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(VarError::NotAName { body: body.to_string() });
        }
        match (lookup(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => return Err(VarError::Unset { name: name.to_string() }),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The environment the config tests expand against.
    pub(in crate::config) fn vars(name: &str) -> Option<String> {
        match name {
            "PASS" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion() {
        assert_eq!(expand_vars("a${PASS}b", &vars).unwrap(), "as3cretb");
        assert_eq!(expand_vars("${NOPE:-x}", &vars).unwrap(), "x");
        assert_eq!(expand_vars("${EMPTY:-x}", &vars).unwrap(), "");
        assert_eq!(expand_vars("$5 and $", &vars).unwrap(), "$5 and $");
        assert_eq!(
            expand_vars("${NOPE}", &vars),
            Err(VarError::Unset { name: "NOPE".into() })
        );
        assert!(
            expand_vars("${NOPE}", &vars)
                .unwrap_err()
                .to_string()
                .contains("export NOPE=")
        );
        assert!(matches!(expand_vars("${PASS", &vars), Err(VarError::Unclosed { .. })));
        assert!(matches!(expand_vars("${a b}", &vars), Err(VarError::NotAName { .. })));
    }
}
