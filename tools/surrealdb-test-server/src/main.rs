//! A SurrealDB server built from the `surrealdb-server` crate at the exact
//! version surql's SDK uses. Tests start it as
//! `surrealdb-test-server start --bind 127.0.0.1:PORT --user root --pass root memory`.
#![recursion_limit = "256"]

use std::process::ExitCode;

// As the official binary (SurrealDB's `allocator` feature).
#[cfg(all(
    any(target_arch = "x86_64", target_arch = "x86"),
    any(target_os = "linux", target_os = "macos")
))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
