//! Which statements a migration may hold: surql runs each migration with its
//! history row in one transaction, so nothing may end that transaction early,
//! manage it, or change the scope or options of the rest of the request.

use surrealdb_sql::{Expr, TopLevelExpr};

/// Why a top-level statement cannot run inside surql's transaction, if so.
/// SurrealDB 3.3.5 commits what ran before a top-level `RETURN` (even one
/// inside an IF or a block) and skips the rest, history row included.
pub(super) fn refused(statement: &TopLevelExpr) -> Option<&'static str> {
    match statement {
        TopLevelExpr::Begin | TopLevelExpr::Commit | TopLevelExpr::Cancel => {
            Some("BEGIN/COMMIT/CANCEL are not allowed: surql runs each migration in one transaction itself")
        }
        TopLevelExpr::Use(_) => {
            Some("USE is not allowed: the namespace and database come from the connection settings")
        }
        TopLevelExpr::Option(_) => Some(
            "OPTION is not allowed: it would change every later statement of the request, the history row included",
        ),
        TopLevelExpr::Expr(expr) => ends_early(expr, false),
        _ => None,
    }
}

/// A `RETURN` that reaches the top level (it ends the transaction early:
/// what ran before it commits, the rest and the history row do not), or a
/// `BREAK`/`CONTINUE` outside a FOR loop. Function and closure bodies contain
/// their own `RETURN`, so they are not searched.
fn ends_early(expr: &Expr, in_loop: bool) -> Option<&'static str> {
    const RETURN: &str = "RETURN is not allowed at the top level: SurrealDB would commit the statements before it and skip the rest, history row included; use it inside a function, or drop it";
    match expr {
        Expr::Return(_) => Some(RETURN),
        Expr::Break | Expr::Continue if !in_loop => {
            Some("BREAK/CONTINUE outside a FOR loop is not allowed: it fails the statement but not the transaction")
        }
        Expr::Block(block) => block.0.iter().find_map(|e| ends_early(e, in_loop)),
        Expr::IfElse(statement) => statement
            .exprs
            .iter()
            .flat_map(|(condition, body)| [condition, body])
            .chain(statement.close.as_ref())
            .find_map(|e| ends_early(e, in_loop)),
        Expr::Foreach(statement) => {
            ends_early(&statement.range, in_loop).or_else(|| statement.block.0.iter().find_map(|e| ends_early(e, true)))
        }
        Expr::Let(statement) => ends_early(&statement.what, in_loop),
        // `true AND RETURN 1` returns from the query too.
        Expr::Binary { left, right, .. } => ends_early(left, in_loop).or_else(|| ends_early(right, in_loop)),
        Expr::Prefix { expr, .. } | Expr::Postfix { expr, .. } => ends_early(expr, in_loop),
        _ => None,
    }
}

/// Where each top-level statement of `text` starts: (line, column), both from
/// 1, in the order of the parsed statements. Empty when the statement parser
/// disagrees with the full parser (the caller then points at the section).
pub(crate) fn statement_starts(text: &str) -> Vec<(usize, usize)> {
    use surrealdb_syn::error::Location;
    use surrealdb_syn::token::{Span, TokenKind};
    let mut stream = surrealdb_syn::parser::StatementStream::new();
    let mut buffer = bytes::BytesMut::from(text.as_bytes());
    let mut starts = Vec::new();
    loop {
        let consumed = text.len() - buffer.len();
        let first_token = {
            let mut parser = surrealdb_syn::Parser::new(&buffer[..]);
            while parser.eat(TokenKind::SemiColon) {}
            parser.peek().span.offset as usize
        };
        match stream.parse_complete(&mut buffer) {
            Ok(Some(_)) => {
                let offset = u32::try_from(consumed + first_token).unwrap_or(u32::MAX);
                let at = Location::range_of_span(text, Span { offset, len: 1 }).start;
                starts.push((at.line, at.column));
            }
            Ok(None) => return starts,
            Err(_) => return Vec::new(),
        }
    }
}
