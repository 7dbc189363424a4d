//! oneiriq-surql's Python migrations read as Python reads them, never run:
//! `up()`/`down()` must `return` a list whose items are string literals
//! (Python's literal rules exactly: `'…'`, `"…"`, `'''…'''`, `"""…"""`,
//! the `r`/`u` prefixes, every escape, implicit concatenation of adjacent
//! literals, `+` between literals, parentheses). Anything that computes
//! (an f-string, a name, a call, a comprehension, a conditional, a second
//! `return`) is refused with why; so is what is not text (a bytes literal).

/// Why Python source is not read as string literals: Python would refuse
/// it, or only running it would tell its value.
#[derive(Debug, thiserror::Error)]
pub(super) enum PythonError {
    /// The literal's first line, cut to 60 characters.
    #[error("unterminated string literal `{0}`")]
    Unterminated(String),
    #[error(
        "`{prefix}{quote}…{quote}` is an f-string (or template string): it computes its value, so it cannot be converted without running Python"
    )]
    FString { prefix: String, quote: char },
    #[error("`{prefix}{quote}…{quote}` is a bytes literal, not a str: SurrealQL statements are text")]
    Bytes { prefix: String, quote: char },
    #[error(
        "`\\N{{…}}` (a character by its Unicode name) is not converted: write the character itself or its `\\uXXXX` escape"
    )]
    NamedEscape,
    #[error("truncated `{form}` escape (Python refuses it too)")]
    TruncatedEscape { form: &'static str },
    #[error("`{form}` escape {code:#x} is not a character that can be sent as text (a surrogate or beyond U+10FFFF)")]
    NotACharacter { form: &'static str, code: u32 },
    /// `at`: the first line of what follows.
    #[error(
        "`{at}` is not a string literal: it computes its statements, so it cannot be converted without running Python"
    )]
    Computed { at: String },
    #[error("no `def {function}()`: not an oneiriq-surql Python migration")]
    NoFunction { function: String },
    #[error(
        "{function}() does not return a literal list: it computes its statements, so it cannot be converted without running Python"
    )]
    NotALiteralList { function: String },
    #[error(
        "{function}() returns in {count} places: which list it returns is computed, so it cannot be converted without running Python"
    )]
    ManyReturns { function: String, count: usize },
    #[error(
        "{function}() returns the list combined with something else (`{tail}`): it computes its statements, so it cannot be converted without running Python"
    )]
    Combined { function: String, tail: String },
    #[error("{function}() returns something other than string literals (`{line}`): {why}")]
    NotStrings {
        function: String,
        line: String,
        why: Box<PythonError>,
    },
    #[error(
        "{function}() returns something other than string literals (`{line}`): it computes its statements, so it cannot be converted without running Python"
    )]
    ComputedItem { function: String, line: String },
}

/// A string literal as Python's tokenizer sees it, before its value.
struct Lexed<'a> {
    prefix: &'a str,
    quote: char,
    raw: bool,
    /// Between the quotes.
    body: &'a str,
    /// After the closing quote.
    rest: &'a str,
}

/// The string literal (of any kind: str, bytes, f-string) at the start of
/// `text`; `Ok(None)` when there is none; `Err` when it is not terminated.
fn lex(text: &str) -> Result<Option<Lexed<'_>>, PythonError> {
    let prefix_len = text.bytes().take_while(u8::is_ascii_alphabetic).count();
    let (prefix, after) = text.split_at(prefix_len);
    let Some(quote) = after.chars().next().filter(|c| *c == '\'' || *c == '"') else {
        return Ok(None);
    };
    let lower = prefix.to_ascii_lowercase();
    const PREFIXES: [&str; 12] = ["", "u", "r", "f", "fr", "rf", "t", "tr", "rt", "b", "br", "rb"];
    if !PREFIXES.contains(&lower.as_str()) {
        return Ok(None);
    }
    let closing = if after.starts_with(&quote.to_string().repeat(3)) {
        quote.to_string().repeat(3)
    } else {
        quote.to_string()
    };
    let body = &after[closing.len()..];
    let unterminated = || {
        let shown: String = text.lines().next().unwrap_or_default().chars().take(60).collect();
        PythonError::Unterminated(shown)
    };
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            // Whatever follows a backslash does not end the literal, raw or not.
            '\\' => {
                chars.next().ok_or_else(unterminated)?;
            }
            '\n' if closing.len() == 1 => return Err(unterminated()),
            _ if body[at..].starts_with(&closing) => {
                return Ok(Some(Lexed {
                    prefix,
                    quote,
                    raw: lower.contains('r'),
                    body: &body[..at],
                    rest: &body[at + closing.len()..],
                }));
            }
            _ => {}
        }
    }
    Err(unterminated())
}

/// The value of the Python string literal at the start of `text` and the
/// text after it; `Ok(None)` when `text` does not start with one; `Err`
/// when it starts with one Python would not accept, or that is not a `str`
/// whose value is written out (an f-string, a bytes literal).
pub(super) fn string_literal(text: &str) -> Result<Option<(String, &str)>, PythonError> {
    let Some(Lexed {
        prefix,
        quote,
        raw,
        body,
        rest,
    }) = lex(text)?
    else {
        return Ok(None);
    };
    let lower = prefix.to_ascii_lowercase();
    if lower.contains('f') || lower.contains('t') {
        return Err(PythonError::FString {
            prefix: prefix.into(),
            quote,
        });
    }
    if lower.contains('b') {
        return Err(PythonError::Bytes {
            prefix: prefix.into(),
            quote,
        });
    }
    if raw {
        // A raw string keeps every backslash (and the character after it).
        return Ok(Some((body.to_string(), rest)));
    }
    let mut value = String::with_capacity(body.len());
    let mut chars = body.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        match chars.next() {
            Some((_, escaped)) => escape(escaped, &mut chars, &mut value)?,
            // `lex` pairs every backslash with the character after it.
            None => value.push(c),
        }
    }
    Ok(Some((value, rest)))
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// One escape of a non-raw literal, the backslash read already.
fn escape(escaped: char, chars: &mut Chars, value: &mut String) -> Result<(), PythonError> {
    let simple = match escaped {
        '\n' => return Ok(()), // a backslash at the end of a line joins the next
        '\\' | '\'' | '"' => escaped,
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        '0'..='7' => {
            let mut code = escaped.to_digit(8).unwrap_or_default();
            for _ in 0..2 {
                match chars.peek().and_then(|(_, c)| c.to_digit(8)) {
                    Some(digit) => {
                        code = code * 8 + digit;
                        chars.next();
                    }
                    None => break,
                }
            }
            // At most 0o777: always a character.
            char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
        }
        'x' => hex_escape(chars, 2, "\\xXX")?,
        'u' => hex_escape(chars, 4, "\\uXXXX")?,
        'U' => hex_escape(chars, 8, "\\UXXXXXXXX")?,
        'N' => return Err(PythonError::NamedEscape),
        // Python keeps an unknown escape as it is: `\d` is a backslash and `d`.
        other => {
            value.push('\\');
            other
        }
    };
    value.push(simple);
    Ok(())
}

fn hex_escape(chars: &mut Chars, digits: usize, form: &'static str) -> Result<char, PythonError> {
    let mut code = 0u32;
    for _ in 0..digits {
        let digit = chars
            .peek()
            .and_then(|(_, c)| c.to_digit(16))
            .ok_or(PythonError::TruncatedEscape { form })?;
        code = code * 16 + digit;
        chars.next();
    }
    char::from_u32(code).ok_or(PythonError::NotACharacter { form, code })
}

/// Skips whitespace, newlines, `#` comments and backslash-newline joins:
/// what may stand between the tokens of one bracketed expression.
pub(super) fn skip_trivia(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        if let Some(comment) = text.strip_prefix('#') {
            text = comment.split_once('\n').map_or("", |(_, rest)| rest);
        } else if let Some(joined) = text.strip_prefix("\\\n") {
            text = joined;
        } else {
            return text;
        }
    }
}

/// One string expression made only of literals: adjacent literals
/// (concatenated, as Python does), `+` between them, parentheses around
/// them. `Ok(None)` when `text` does not start with one.
pub(super) fn string_expression(text: &str) -> Result<Option<(String, &str)>, PythonError> {
    let Some((mut value, mut rest)) = string_atom(text)? else {
        return Ok(None);
    };
    loop {
        let next = skip_trivia(rest);
        if let Some((more, after)) = string_atom(next)? {
            value.push_str(&more);
            rest = after;
            continue;
        }
        if let Some(operand) = next.strip_prefix('+') {
            match string_atom(skip_trivia(operand))? {
                Some((more, after)) => {
                    value.push_str(&more);
                    rest = after;
                    continue;
                }
                None => return Err(computed(operand.trim_start())),
            }
        }
        return Ok(Some((value, rest)));
    }
}

/// A literal, or a parenthesised string expression.
fn string_atom(text: &str) -> Result<Option<(String, &str)>, PythonError> {
    if let Some(inner) = text.strip_prefix('(') {
        return match string_expression(skip_trivia(inner))? {
            Some((value, rest)) => match skip_trivia(rest).strip_prefix(')') {
                Some(after) => Ok(Some((value, after))),
                None => Err(computed(skip_trivia(rest))),
            },
            None => Ok(None),
        };
    }
    string_literal(text)
}

fn computed(at: &str) -> PythonError {
    PythonError::Computed {
        at: at.lines().next().unwrap_or_default().trim().into(),
    }
}

/// The code of `text` (outside strings and comments): the byte offset of
/// each character of code (a whole string literal counts as one), and
/// whether it is the first of a line at column 0 outside brackets.
fn code_points(text: &str) -> Vec<(usize, bool)> {
    let mut points = Vec::new();
    let (mut at, mut depth, mut column0) = (0, 0usize, true);
    while let Some(c) = text[at..].chars().next() {
        let rest = &text[at..];
        if c == '#' {
            at += rest.find('\n').unwrap_or(rest.len());
            continue;
        }
        let starts_token = !text[..at].ends_with(|p: char| p.is_alphanumeric() || p == '_');
        if starts_token && let Ok(Some(literal)) = lex(rest) {
            points.push((at, column0));
            column0 = false;
            at = text.len() - literal.rest.len();
            continue;
        }
        if c == '\\' && rest[1..].starts_with('\n') {
            column0 = false;
            at += 2;
            continue;
        }
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if !c.is_whitespace() {
            points.push((at, column0));
        }
        column0 = c == '\n' && depth == 0;
        at += c.len_utf8();
    }
    points
}

/// Whether the code at `at` starts a line at column 0.
fn at_column0(points: &[(usize, bool)], at: usize) -> bool {
    points.binary_search_by_key(&at, |p| p.0).is_ok_and(|i| points[i].1)
}

/// Offsets of `word` as a whole token of code in `text`.
fn tokens<'a>(text: &'a str, points: &'a [(usize, bool)], word: &'a str) -> impl Iterator<Item = usize> + 'a {
    points.iter().map(|p| p.0).filter(move |&at| {
        text[at..].starts_with(word)
            && (at == 0 || !text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
            && !text[at + word.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
    })
}

/// The strings of `def name(...)`'s one `return [ ... ]`, which must be a
/// list of string expressions made of literals only.
pub(super) fn returned_list(text: &str, function: &str) -> Result<Vec<String>, PythonError> {
    let points = code_points(text);
    let start = tokens(text, &points, "def")
        .filter(|&at| at_column0(&points, at))
        .find(|&at| {
            let name = text[at + 3..].trim_start();
            name.strip_prefix(function)
                .is_some_and(|rest| rest.trim_start().starts_with('('))
        })
        .ok_or_else(|| PythonError::NoFunction {
            function: function.into(),
        })?;
    // The body ends where the code goes back to column 0.
    let end = points.iter().find(|p| p.0 > start && p.1).map_or(text.len(), |p| p.0);
    let returns: Vec<usize> = tokens(text, &points, "return")
        .filter(|&at| at > start && at < end)
        .collect();
    let not_literal = || PythonError::NotALiteralList {
        function: function.into(),
    };
    let [at] = returns[..] else {
        return Err(match returns.len() {
            0 => not_literal(),
            count => PythonError::ManyReturns {
                function: function.into(),
                count,
            },
        });
    };
    let after_return = &text[at + "return".len()..];
    let mut rest = after_return
        .trim_start_matches([' ', '\t'])
        .strip_prefix('[')
        .ok_or_else(not_literal)?;
    let mut items = Vec::new();
    loop {
        rest = skip_trivia(rest);
        if let Some(after) = rest.strip_prefix(']') {
            let line_end = after.find('\n').unwrap_or(after.len());
            let tail = after[..line_end].trim();
            if !(tail.is_empty() || tail.starts_with('#')) {
                return Err(PythonError::Combined {
                    function: function.into(),
                    tail: tail.into(),
                });
            }
            return Ok(items);
        }
        let line = rest.lines().next().unwrap_or_default().trim();
        let (item, after) = string_expression(rest)
            .map_err(|why| PythonError::NotStrings {
                function: function.into(),
                line: line.into(),
                why: Box::new(why),
            })?
            .ok_or_else(|| PythonError::ComputedItem {
                function: function.into(),
                line: line.into(),
            })?;
        items.push(item);
        rest = skip_trivia(after);
        match rest.strip_prefix(',') {
            Some(after) => rest = after,
            None if rest.starts_with(']') => {}
            None => {
                return Err(PythonError::ComputedItem {
                    function: function.into(),
                    line: rest.lines().next().unwrap_or_default().trim().into(),
                });
            }
        }
    }
}

/// The string value of `key` in the top-level dict `name = { … }`, when it
/// is written as a string literal.
pub(super) fn dict_string(text: &str, name: &str, key: &str) -> Option<String> {
    let points = code_points(text);
    let at = tokens(text, &points, name).find(|&at| at_column0(&points, at))?;
    let mut rest = skip_trivia(text[at + name.len()..].trim_start().strip_prefix('=')?).strip_prefix('{')?;
    loop {
        rest = skip_trivia(rest);
        let (found, after) = string_expression(rest).ok()??;
        let after = skip_trivia(skip_trivia(after).strip_prefix(':')?);
        if found == key {
            return string_expression(after).ok()?.map(|(value, _)| value);
        }
        rest = skip_value(after)?;
    }
}

/// The text after one dict value and its comma.
fn skip_value(text: &str) -> Option<&str> {
    let mut depth = 0usize;
    let mut rest = text;
    loop {
        rest = skip_trivia(rest);
        if let Ok(Some((_, after))) = string_literal(rest) {
            rest = after;
            continue;
        }
        let c = rest.chars().next()?;
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth > 0 => depth -= 1,
            '}' => return None,
            ',' if depth == 0 => return Some(&rest[1..]),
            _ => {}
        }
        rest = &rest[c.len_utf8()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(literal: &str) -> String {
        let (value, rest) = string_expression(literal).unwrap().unwrap();
        assert_eq!(rest, "", "{literal}");
        value
    }

    fn refused(literal: &str) -> String {
        string_expression(literal).unwrap_err().to_string()
    }

    #[test]
    fn quotes_and_prefixes() {
        assert_eq!(value("'a\"b'"), "a\"b");
        assert_eq!(value("\"a'b\""), "a'b");
        assert_eq!(value("'''a\n'b'\n''c'''"), "a\n'b'\n''c");
        assert_eq!(value("\"\"\"x \"y\" \"\"z\"\"\""), "x \"y\" \"\"z");
        assert_eq!(value("u'x'"), "x");
        assert_eq!(value("U\"x\""), "x");
        assert_eq!(value("r'\\d'"), "\\d");
        assert_eq!(
            value("R'a\\'b'"),
            "a\\'b",
            "a raw string keeps the backslash, and goes on"
        );
        assert_eq!(value("r'''a\\\nb'''"), "a\\\nb");
        assert_eq!(value("''"), "");
        assert_eq!(value("''''''"), "");
    }

    #[test]
    fn every_escape() {
        assert_eq!(value(r#"'\\ \' \"'"#), "\\ ' \"");
        assert_eq!(value(r"'\a\b\f\n\r\t\v'"), "\u{7}\u{8}\u{c}\n\r\t\u{b}");
        assert_eq!(value(r"'\0'"), "\0");
        assert_eq!(value(r"'\101\7\08'"), "A\u{7}\u{0}8");
        assert_eq!(value(r"'\x41\x7e'"), "A~");
        assert_eq!(value(r"'\u00e9\U0001F600'"), "é😀");
        assert_eq!(value("'a\\\nb'"), "ab", "backslash-newline joins lines");
        assert_eq!(value(r"'/^\d{3}-\d{4}$/'"), r"/^\d{3}-\d{4}$/", "unknown escapes stay");
        assert_eq!(value(r"'\q\.\ '"), r"\q\.\ ");
        // Values CPython gives (checked against it).
        assert_eq!(value(r"'\1\12\123\1234\8\9'"), "\u{1}\nSS4\\8\\9");
        assert_eq!(value(r"'''tri \''' end'''"), "tri ''' end");
        assert_eq!(value(r"r'''raw \''' '''"), "raw \\''' ");
        assert!(refused(r"'\x4'").contains("truncated `\\xXX`"));
        assert!(refused(r"'\u12'").contains("truncated `\\uXXXX`"));
        assert!(refused(r"'\U0011ffff'").contains("not a character"));
        assert!(refused(r"'\ud800'").contains("surrogate"));
        assert!(refused(r"'\N{BULLET}'").contains("Unicode name"));
    }

    #[test]
    fn concatenation_and_what_is_not_a_literal() {
        assert_eq!(value("'a' \"b\"  '''c'''"), "abc");
        assert_eq!(value("('a'\n  # note\n  'b')"), "ab");
        assert_eq!(value("'a' + r'\\b'"), "a\\b");
        assert_eq!(value("'a' \\\n 'b'"), "ab");
        assert!(refused("f'{x}'").contains("f-string"));
        assert!(refused("'a' F'b'").contains("f-string"));
        assert!(refused("b'x'").contains("bytes"));
        assert!(refused("rb'x'").contains("bytes"));
        assert!(refused("'a' + name").contains("computes"));
        assert!(refused("'unterminated").contains("unterminated"));
        assert!(refused("'line\nbreak'").contains("unterminated"));
        assert_eq!(string_expression("name").unwrap(), None);
        assert_eq!(string_expression("ur'x'").unwrap(), None, "not a Python 3 prefix");
    }

    #[test]
    fn lists_of_literals_are_read_and_anything_computed_is_refused() {
        let text = "\"\"\"Migration: x\n\ndef up(): return ['no']\n\"\"\"\n\ndef up() -> list[str]:\n  \"\"\"Apply.\n\n  return the statements\n  \"\"\"\n  return [\n    'DEFINE TABLE user SCHEMAFULL;',  # the table\n    \"DEFINE FIELD name ON user \"\n    'TYPE string;',\n    '''DEFINE FIELD note ON user\n  TYPE string DEFAULT 'x';''',\n    r'DEFINE FIELD phone ON user TYPE string ASSERT $value = /^\\d{3}-\\d{4}$/;'\n  ]\n\n\ndef down() -> list[str]:\n  return [\n    # nothing\n  ]\n\nmetadata = {\n  'version': '20260102_120000',\n  'depends_on': ['a', 'b'],\n  \"description\": 'Create ' 'user',\n}\n";
        let up = returned_list(text, "up").unwrap();
        assert_eq!(
            up,
            [
                "DEFINE TABLE user SCHEMAFULL;",
                "DEFINE FIELD name ON user TYPE string;",
                "DEFINE FIELD note ON user\n  TYPE string DEFAULT 'x';",
                r"DEFINE FIELD phone ON user TYPE string ASSERT $value = /^\d{3}-\d{4}$/;",
            ]
        );
        assert_eq!(returned_list(text, "down").unwrap(), Vec::<String>::new());
        assert_eq!(
            dict_string(text, "metadata", "version").as_deref(),
            Some("20260102_120000")
        );
        assert_eq!(
            dict_string(text, "metadata", "description").as_deref(),
            Some("Create user")
        );
        assert_eq!(dict_string(text, "metadata", "author"), None);

        let refused = |body: &str| {
            returned_list(&format!("def up():\n{body}\n"), "up")
                .unwrap_err()
                .to_string()
        };
        assert!(refused("  return [f'DEFINE TABLE {name};']").contains("f-string"));
        assert!(refused("  statements = []\n  return statements").contains("does not return a literal list"));
        assert!(refused("  return [name]").contains("something other than string literals"));
        assert!(refused("  return ['a'] + extra").contains("combined with something else"));
        assert!(refused("  return [s for s in x]").contains("something other than string literals"));
        assert!(refused("  if x:\n    return ['a']\n  return ['b']").contains("returns in 2 places"));
        assert!(refused("  return [b'DEFINE TABLE a;']").contains("bytes"));
        assert!(refused("  pass").contains("does not return a literal list"));
        assert!(returned_list("def upgrade():\n  return []\n", "up").is_err());
    }
}
