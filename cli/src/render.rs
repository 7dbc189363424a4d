//! Terminal rendering: tables.

use comfy_table::presets::UTF8_FULL;
use comfy_table::{ContentArrangement, Table};

use surql::health::HealthStatus;
use surql::migration::MigrationStatusRow;
use surql::{DeploymentReport, EnvironmentStatus};
use surql::{DeploymentResult, DeploymentStatus};

/// The `migrate status` table.
pub fn migration_table(rows: &[MigrationStatusRow]) -> Table {
    let mut table = table(&["Version", "Name", "Applied at", "State"]);
    for row in rows {
        table.add_row([
            row.version.as_str(),
            row.name.as_str(),
            row.applied_at.as_deref().unwrap_or("-"),
            row.state.label(),
        ]);
    }
    table
}

pub(super) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL).set_header(header.iter().copied());
    // Wrap to the terminal only when it is wide enough to be worth it (a
    // pseudo-terminal may report a width of 0).
    let arrangement = match table.width() {
        Some(width) if width >= 60 => ContentArrangement::Dynamic,
        _ => ContentArrangement::Disabled,
    };
    table.set_content_arrangement(arrangement);
    table
}

/// Rows shown in the results table of a large deployment.
pub const LARGE_TABLE_ROWS: usize = 50;

/// The results table: environment, status, migrations applied, duration,
/// error. Small deployments show every environment in order; large ones show
/// the environments that did not succeed, failures first, up to
/// [`LARGE_TABLE_ROWS`] (`--output json` has the full list).
pub fn results_table(report: &DeploymentReport) -> Option<Table> {
    let mut table = table(&["Environment", "Status", "Migrations", "Duration", "Error"]);
    let mut rows: Vec<&DeploymentResult> = report.results.values().collect();
    let large = rows.len() > super::progress::COMPACT_ABOVE;
    if large {
        let rank = |status: DeploymentStatus| match status {
            DeploymentStatus::Failed => 0,
            DeploymentStatus::RolledBack => 1,
            DeploymentStatus::Skipped => 2,
            DeploymentStatus::Success => 3,
            _ => 2,
        };
        rows.retain(|r| r.status != DeploymentStatus::Success);
        rows.sort_by_key(|r| rank(r.status));
        if rows.is_empty() {
            return None;
        }
    }
    let hidden = rows.len().saturating_sub(LARGE_TABLE_ROWS);
    if large {
        rows.truncate(LARGE_TABLE_ROWS);
    }
    for result in rows {
        table.add_row([
            result.environment.clone(),
            result.status.label().to_string(),
            match result.migrations_rolled_back {
                0 => result.migrations_applied.to_string(),
                n => format!("{n} rolled back"),
            },
            result
                .duration_seconds
                .map(|d| format!("{d:.2}s"))
                .unwrap_or_else(|| "-".into()),
            result.error.clone().unwrap_or_default(),
        ]);
    }
    if large && hidden > 0 {
        table.add_row([
            format!("… {hidden} more not shown"),
            String::new(),
            String::new(),
            String::new(),
            "use --output json or --report FILE for every environment".into(),
        ]);
    }
    Some(table)
}

/// `orchestrate baseline` and `adopt`: what was (or would be) recorded where.
pub fn existing_table(outcomes: &[surql::BaselineOutcome], heading: &str) -> Table {
    let mut table = table(&["Environment", heading, "Error"]);
    for outcome in outcomes {
        let recorded = match (outcome.recorded.as_slice(), &outcome.error) {
            ([], None) => "nothing (already in the history)".to_string(),
            (ids, _) => ids.join(", "),
        };
        table.add_row([
            outcome.environment.clone(),
            recorded,
            outcome.error.clone().unwrap_or_default(),
        ]);
    }
    table
}

/// `deployment … (strategy): 2 success, 1 failed, …`.
pub fn summary_line(report: &DeploymentReport) -> String {
    let mut counts: Vec<String> = Vec::new();
    for status in [
        DeploymentStatus::Success,
        DeploymentStatus::Failed,
        DeploymentStatus::RolledBack,
        DeploymentStatus::Skipped,
    ] {
        let n = report.results.values().filter(|r| r.status == status).count();
        if n > 0 {
            counts.push(format!("{n} {}", status.value()));
        }
    }
    format!(
        "deployment {} ({}): {} environment(s): {}",
        report.deployment_id,
        report.strategy,
        report.results.len(),
        counts.join(", ")
    )
}

/// The `--output json` document.
pub fn report_json(report: &DeploymentReport) -> String {
    let results: Vec<&DeploymentResult> = report.results.values().collect();
    // The whole document: `--set` values and paths may carry secrets too.
    let mut document = serde_json::json!({
        "deployment_id": report.deployment_id,
        "strategy": report.strategy,
        "waves": report.waves,
        "results": results,
    });
    if let Some(estimates) = &report.estimates {
        document["estimates"] = serde_json::json!(estimates);
    }
    serde_json::to_string_pretty(&surql::redact::redact_json(document))
        .unwrap_or_else(|e| serde_json::json!({ "error": format!("cannot serialize the results: {e}") }).to_string())
}

/// `Estimated: canary ~4s, rest ~1m10s; in all ~1m14s (…)`.
pub fn estimate_line(estimates: &[surql::WaveEstimate]) -> String {
    let seconds = |s: f64| super::progress::render_seconds(std::time::Duration::from_secs_f64(s.max(0.0)));
    let waves: Vec<String> = estimates
        .iter()
        .map(|e| format!("{} ~{}", e.label, seconds(e.seconds)))
        .collect();
    let total: f64 = estimates.iter().map(|e| e.seconds).sum();
    let known: usize = estimates.iter().map(|e| e.known).sum();
    let assumed: usize = estimates.iter().map(|e| e.assumed).sum();
    format!(
        "Estimated: {}; in all ~{} (past durations of {known} environment(s), the fleet's median for {assumed}; pauses not included)\n",
        waves.join(", "),
        seconds(total)
    )
}

/// The waves of a rollout in order: environments, concurrency, failure
/// budget, the version it stops at, and the pause after it.
pub fn waves_table(waves: &[surql::Wave]) -> Table {
    let mut out = table(&["#", "Wave", "Environments", "At once", "Max failures", "Then pause"]);
    for (number, wave) in waves.iter().enumerate() {
        const SHOWN: usize = 5;
        let mut names = wave
            .environments
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if wave.environments.len() > SHOWN {
            names.push_str(&format!(", … {} more", wave.environments.len() - SHOWN));
        }
        let mut label = wave.label.clone();
        if let Some(version) = &wave.to_version {
            label.push_str(&format!(" (up to {version})"));
        }
        out.add_row(vec![
            (number + 1).to_string(),
            label,
            format!("{}: {names}", wave.environments.len()),
            wave.max_concurrent.to_string(),
            wave.max_failures.map_or("-".to_string(), |n| n.to_string()),
            if wave.pause_seconds_after > 0.0 {
                format!("{}s", wave.pause_seconds_after)
            } else {
                "-".to_string()
            },
        ]);
    }
    out
}

/// The dry-run plan: per environment what would happen, then each distinct
/// migration's SurrealQL once.
pub fn dry_run_plan(report: &DeploymentReport) -> String {
    let mut out = String::from("Dry run: nothing was written.\n");
    if !report.waves.is_empty() {
        out.push_str(&format!(
            "\nThe rollout ({}):\n{}\n",
            report.strategy,
            waves_table(&report.waves)
        ));
    }
    if let Some(estimates) = &report.estimates {
        out.push_str(&estimate_line(estimates));
    }
    let mut scripts: indexmap::IndexMap<String, String> = indexmap::IndexMap::new();
    for result in report.results.values() {
        let Some(plan) = &result.plan else {
            let why = result.error.as_deref().unwrap_or("");
            out.push_str(&format!(
                "\n{} — {}: {why}\n",
                result.environment,
                result.status.label()
            ));
            continue;
        };
        let what = if plan.rollback { "to roll back" } else { "pending" };
        out.push_str(&format!("\n{} — {} {what}", result.environment, plan.pending.len()));
        if let Some(version) = &result.server_version {
            out.push_str(&format!(" (SurrealDB {version})"));
        }
        if plan.approval_required {
            out.push_str(", approval required");
        }
        out.push('\n');
        for id in &plan.pending {
            out.push_str(&format!("  - {id}\n"));
        }
        for statement in &plan.destructive {
            out.push_str(&format!("  destructive: {statement}\n"));
        }
        for conversion in &plan.row_migrations {
            out.push_str(&format!("  runs once: {conversion}\n"));
        }
        for reason in &plan.passed_over {
            out.push_str(&format!("  passed over: {reason}\n"));
        }
        for id in &plan.irreversible {
            out.push_str(&format!("  no down section (cannot be rolled back): {id}\n"));
        }
        for (id, script) in plan.pending.iter().zip(&plan.statements) {
            scripts.entry(id.clone()).or_insert_with(|| script.to_string());
        }
    }
    for (id, script) in scripts {
        out.push_str(&format!("\n-- {id}\n{script}\n"));
    }
    out.push('\n');
    out
}

/// `verify`: each environment's verdict and, for a failed check, where it is.
pub fn verify_table(results: &[surql::VerifyResult]) -> Table {
    let mut out = table(&["Environment", "Verify", "Detail"]);
    for result in results {
        out.add_row(vec![
            result.environment.clone(),
            if result.ok { "OK" } else { "FAILED" }.to_string(),
            result.error.clone().unwrap_or_default(),
        ]);
    }
    out
}

/// `orchestrate status`: health, server, applied version, pending, drift,
/// and the run-once row conversions where any environment ran one.
pub fn status_table<'a>(statuses: impl Iterator<Item = &'a EnvironmentStatus>) -> Table {
    let statuses: Vec<&EnvironmentStatus> = statuses.collect();
    let conversions = statuses.iter().any(|s| !s.row_migrations.is_empty());
    let mut header = vec![
        "Environment",
        "Status",
        "Server",
        "Applied version",
        "Applied",
        "Pending",
        "Drift",
    ];
    if conversions {
        header.push("Row migrations run");
    }
    let mut table = table(&header);
    for s in statuses {
        let health = match &s.health.error {
            Some(error) => format!("{}: {error}", s.health.label()),
            None => s.health.label().to_string(),
        };
        let mut row = vec![
            s.environment.clone(),
            health,
            server_version(s.health.server_version.as_ref()),
            s.applied_version.clone().unwrap_or_else(|| "-".into()),
            match s.baseline_count {
                0 => s.applied_count.to_string(),
                n => format!("{} ({n} baseline)", s.applied_count),
            },
            match (&s.pinned, s.passed_over.len()) {
                (Some(pin), _) => format!("{} (pinned at {pin})", s.pending_count),
                (None, 0) => s.pending_count.to_string(),
                (None, n) => format!("{} ({n} for a newer server)", s.pending_count),
            },
            if s.drift.is_empty() {
                "-".into()
            } else {
                s.drift.join(", ")
            },
        ];
        if conversions {
            row.push(match s.row_migrations.as_slice() {
                [] => "-".into(),
                names => names.join(", "),
            });
        }
        table.add_row(row);
    }
    table
}

/// A server's SurrealDB version as the tables show it.
fn server_version(version: Option<&surql::ServerVersion>) -> String {
    version.map_or_else(|| "-".into(), |v| format!("SurrealDB {v}"))
}

/// `orchestrate validate`: the guide's table.
pub fn validation_table<'a>(statuses: impl Iterator<Item = &'a HealthStatus>) -> Table {
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    let mut table = table(&["Environment", "Connectivity", "Migration Table", "Status"]);
    for s in statuses {
        table.add_row([
            s.environment.clone(),
            mark(s.can_connect && s.authenticated).to_string(),
            mark(s.migration_table_exists).to_string(),
            s.label().to_string(),
        ]);
    }
    table
}

/// The `--report FILE` document: the whole run.
pub fn run_report(
    report: &DeploymentReport,
    args: &crate::args::DeployArgs,
    started_at: chrono::DateTime<chrono::Utc>,
) -> String {
    let results: Vec<&DeploymentResult> = report.results.values().collect();
    // The whole document: `--set` values and paths may carry secrets too.
    serde_json::to_string_pretty(&surql::redact::redact_json(serde_json::json!({
        "deployment_id": report.deployment_id,
        "strategy": report.strategy,
        "actor": report.actor,
        "started_at": started_at,
        "completed_at": chrono::Utc::now(),
        "interrupted": report.interrupted,
        "script_error": report.script_error.as_ref().map(|e| e.to_string()),
        "options": {
            "environments": args.environments,
            "batch_size": args.rollout.batch_size,
            "canary_percent": args.rollout.canary_percent,
            "max_concurrent": args.rollout.max_concurrent,
            "dry_run": args.dry_run,
            "verify_health": !args.skip_health_check,
            "auto_rollback": !args.no_rollback,
            "approved": args.approvals.approve,
            "approve_all": args.approvals.yes,
            "set": args.set,
            "config": args.common.config,
            "migrations_dir": args.common.dir.migrations_dir,
            "override_freeze": args.override_freeze,
        },
        "results": results,
    })))
    .unwrap_or_else(|e| serde_json::json!({ "error": format!("cannot serialize the report: {e}") }).to_string())
}

/// A change of output is a reviewed diff: every table and document people or
/// scripts read is a snapshot (`src/cli/snapshots/`).
/// What a run that lost its state store tells the operator.
pub fn record_lost(report: &DeploymentReport, why: &str) -> String {
    let not_started = report
        .results
        .values()
        .filter(|r| r.error.as_deref().is_some_and(|e| e.starts_with("not started: ")))
        .count();
    let id = &report.deployment_id;
    format!(
        "the record of deployment {id} could not be kept: {why}. {not_started} environment(s) not started (SKIPPED, untouched); those already running finished. Once the state store is back, `surql orchestrate resume {id}` completes the deployment: what finished meanwhile is read from the databases and not deployed again",
        why = surql::redact::redact(why)
    )
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use indexmap::IndexMap;

    use super::*;

    fn result(name: &str, status: DeploymentStatus, applied: usize, error: Option<&str>) -> DeploymentResult {
        let started = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let mut result = DeploymentResult::finished(name, status, applied, error.map(str::to_string), started);
        result.completed_at = Some(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 2).unwrap());
        result.duration_seconds = Some(2.0);
        result
    }

    fn report(results: Vec<DeploymentResult>) -> DeploymentReport {
        DeploymentReport {
            waves: Vec::new(),
            deployment_id: "20261201T090000Z-0000abcd".into(),
            strategy: "sequential".into(),
            actor: "ci".into(),
            results: results
                .into_iter()
                .map(|r| (r.environment.clone(), r))
                .collect::<IndexMap<_, _>>(),
            script_error: None,
            interrupted: false,
            record_lost: None,
            stopped: None,
            estimates: None,
        }
    }

    fn plain(mut table: Table) -> String {
        table
            .force_no_tty()
            .set_content_arrangement(ContentArrangement::Disabled);
        table.to_string()
    }

    /// What a person sees after a deployment: the table, then the summary.
    fn shown(report: &DeploymentReport) -> String {
        format!("{}\n{}", plain(results_table(report).unwrap()), summary_line(report))
    }

    fn three() -> DeploymentReport {
        report(vec![
            result("staging", DeploymentStatus::Success, 3, None),
            result(
                "qa",
                DeploymentStatus::RolledBack,
                0,
                Some(
                    "migration 2_orders failed: statement 1 failed: boom; rolled back 1 migration(s) applied by this run",
                ),
            ),
            result(
                "production",
                DeploymentStatus::Skipped,
                0,
                Some("not deployed: 'qa' failed and sequential stops at the first failure"),
            ),
        ])
    }

    #[test]
    fn a_small_deployment_shows_every_environment_in_order() {
        insta::assert_snapshot!(shown(&three()));
    }

    #[test]
    fn a_large_deployment_shows_only_what_did_not_succeed_failures_first() {
        let results = (0..100)
            .map(|i| match i {
                7 => result("tenant-007", DeploymentStatus::Skipped, 0, Some("approval required")),
                42 => result(
                    "tenant-042",
                    DeploymentStatus::Failed,
                    0,
                    Some("unhealthy: connection refused"),
                ),
                _ => result(&format!("tenant-{i:03}"), DeploymentStatus::Success, 1, None),
            })
            .collect();
        insta::assert_snapshot!(shown(&report(results)));
    }

    #[test]
    fn the_json_document_has_every_field_of_every_environment() {
        let document: serde_json::Value = serde_json::from_str(&report_json(&three())).unwrap();
        insta::assert_json_snapshot!(document);
    }

    fn health(name: &str, connect: bool, table: bool, error: Option<&str>) -> HealthStatus {
        HealthStatus {
            environment: name.into(),
            is_healthy: error.is_none(),
            can_connect: connect,
            authenticated: connect,
            migration_table_exists: table,
            error: error.map(str::to_string),
            checked_at: Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap(),
            server_version: connect.then(|| surql::ServerVersion::parse("3.3.5").unwrap()),
        }
    }

    #[test]
    fn status_and_validate_tables() {
        let statuses = [
            EnvironmentStatus {
                environment: "staging".into(),
                health: health("staging", true, true, None),
                applied_version: Some("20250101090200".into()),
                applied_count: 3,
                baseline_count: 0,
                pending_count: 0,
                drift: vec![],
                pinned: Some("20250101090200".into()),
                row_migrations: vec!["account.age_int".into()],
                passed_over: vec![],
            },
            EnvironmentStatus {
                environment: "qa".into(),
                health: health("qa", true, true, None),
                applied_version: Some("20250101090100".into()),
                applied_count: 2,
                baseline_count: 0,
                pending_count: 1,
                drift: vec!["20250101090000_create_users (drifted)".into()],
                pinned: None,
                row_migrations: vec![],
                passed_over: vec!["20250101090300_age_int".into()],
            },
            EnvironmentStatus {
                environment: "production".into(),
                health: health(
                    "production",
                    false,
                    false,
                    Some("cannot connect to ws://db:8000/rpc: refused"),
                ),
                applied_version: None,
                applied_count: 0,
                baseline_count: 0,
                pending_count: 3,
                drift: vec![],
                pinned: None,
                row_migrations: vec![],
                passed_over: vec![],
            },
        ];
        let healths: Vec<HealthStatus> = statuses.iter().map(|s| s.health.clone()).collect();
        insta::assert_snapshot!(format!(
            "{}\n{}",
            plain(status_table(statuses.iter())),
            plain(validation_table(healths.iter()))
        ));
    }
}
