//! What the benchmarks that run the `surql` binary share: finding it, and
//! a folder of N tenants on one server for it to deploy.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `surql` binary built beside the running example (`target/<profile>/surql`).
pub fn surql_binary() -> PathBuf {
    let example = std::env::current_exe().unwrap();
    let profile_dir = example.parent().and_then(|d| d.parent()).unwrap();
    let binary = profile_dir.join("surql");
    assert!(
        binary.exists(),
        "build it first: cargo build --bin surql ({})",
        binary.display()
    );
    binary
}

/// Writes `dir/environments.json` with `tenants` environments `t00000`, …,
/// each its own namespace `benchI` on the server at `ws_url` (root/root).
pub fn write_tenants(dir: &Path, ws_url: &str, tenants: usize) {
    let environments: Vec<serde_json::Value> = (0..tenants)
        .map(|i| {
            serde_json::json!({ "name": format!("t{i:05}"), "connection": { "db_url": ws_url,
                "db_ns": format!("bench{i}"), "db": "main", "username": "root", "password": "root" } })
        })
        .collect();
    std::fs::write(
        dir.join("environments.json"),
        serde_json::json!({ "environments": environments }).to_string(),
    )
    .unwrap();
}

/// `surql orchestrate deploy` of every environment in `dir` with the
/// migrations at `migrations`: parallel, 16 at once, JSON output.
pub fn deploy_command(dir: &Path, migrations: &Path) -> Command {
    let mut command = Command::new(surql_binary());
    command.current_dir(dir).args([
        "orchestrate",
        "deploy",
        "-e",
        "all",
        "-m",
        migrations.to_str().unwrap(),
        "--strategy",
        "parallel",
        "--max-concurrent",
        "16",
        "--output",
        "json",
    ]);
    command
}
