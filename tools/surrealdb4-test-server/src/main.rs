//! A SurrealDB 4.0.0-beta.1 server built from the `surrealdb-server` crate,
//! for tests that deploy over 3.x and 4.x servers at once. Tests start it as
//! `surrealdb4-test-server start --bind 127.0.0.1:PORT --user root --pass root memory`.
#![recursion_limit = "256"]

use std::process::ExitCode;

fn main() -> ExitCode {
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
