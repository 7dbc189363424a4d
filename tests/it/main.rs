//! The integration tests: one binary (SurrealDB links once), a module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

mod adopt;
mod cli_migrate;
mod cli_orchestrate;
mod cli_tools;
#[macro_use]
mod common;
mod connection;
mod discovery;
mod distributed;
mod doc_examples;
mod fleet;
mod fleet_plugins;
mod import;
mod layers;
mod lock;
mod migrate;
mod observe;
mod orchestrate;
mod plugins;
mod policy;
mod promotion;
mod reliability;
mod rollout;
mod scale;
mod shards;
mod simulate;
mod state;
mod state_files;
mod steer;
mod surrealdb4;
