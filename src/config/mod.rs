//! environments.json: parsing, `${VAR}` / `${VAR:-default}` expansion in every
//! string, and validation. Never talks to a database.
//!
//! | file | owns |
//! |---|---|
//! | `file.rs` | the file's types, parsing, validation, the JSON Schema |
//! | `vars.rs` | `${VAR}` expansion |

mod file;
mod vars;

pub use file::*;
#[cfg(test)]
pub(crate) use vars::expand_vars;
