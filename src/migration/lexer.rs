//! SurrealQL tokens with their place and bracket depth, from SurrealDB's own
//! lexer (strings and comments are never mistaken for words).

use surrealdb_syn::lexer::Lexer;
use surrealdb_syn::token::TokenKind;

/// One token of a section.
#[derive(Debug, Clone, Copy)]
pub(super) struct Token<'a> {
    pub(super) text: &'a str,
    /// Byte offsets in the section.
    pub(super) start: usize,
    pub(super) end: usize,
    /// Brackets open around it: `(`, `[` and `{` (a closing one counts at its inner depth).
    pub(super) depth: usize,
}

/// Every token of `text`, comments left out.
pub(super) fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut depth = 0usize;
    let mut found = Vec::new();
    for token in Lexer::new(text.as_bytes()) {
        let start = token.span.offset as usize;
        let end = (start + token.span.len as usize).min(text.len());
        let Some(slice) = text.get(start..end) else {
            continue;
        };
        let at = match token.kind {
            TokenKind::OpenDelim(_) => {
                depth += 1;
                depth - 1
            }
            TokenKind::CloseDelim(_) => {
                depth = depth.saturating_sub(1);
                depth + 1
            }
            _ => depth,
        };
        found.push(Token {
            text: slice,
            start,
            end,
            depth: at,
        });
    }
    found
}
