//! environments.json: parsing, `${VAR}` / `${VAR:-default}` expansion in every
//! string, and validation. Never talks to a database.
//!
//! | file | owns |
//! |---|---|
//! | `file.rs` | the file's types, parsing, validation, the JSON Schema |
//! | `template.rs` | discovery templates: an entry with `discover`, read as an environment |
//! | `vars.rs` | `${VAR}` expansion |

mod file;
mod template;
mod vars;

pub use file::*;
pub use template::{Discover, DiscoverConnection, EnvironmentTemplate};
#[cfg(test)]
pub(crate) use vars::expand_vars;
