//! The texts Slack shows: short, counts first, and only the environments
//! that need a person (failed, rolled back) named.

use serde_json::Value;

use super::Progress;

/// Environments named in one message at most; the rest are counted.
const LISTED: usize = 500;
/// Environments named in an approval question.
const ASKED_NAMES: usize = 20;

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("?")
}

/// `:x: *tenant-7* FAILED: why`.
pub fn failure_line(failure: &Value) -> String {
    let icon = match failure["status"].as_str() {
        Some("rolled_back") => ":leftwards_arrow_with_hook:",
        _ => ":x:",
    };
    let mut line = format!(
        "{icon} *{}* {}",
        text(failure, "environment"),
        text(failure, "status").to_uppercase()
    );
    if let Some(error) = failure["error"].as_str() {
        line.push_str(&format!(": {error}"));
    }
    line
}

fn list(lines: &[String]) -> String {
    let mut out = String::new();
    for line in lines.iter().take(LISTED) {
        out.push('\n');
        out.push_str(line);
    }
    if lines.len() > LISTED {
        out.push_str(&format!("\n… and {} more", lines.len() - LISTED));
    }
    out
}

fn counts(success: u64, failed: u64, rolled_back: u64, skipped: u64) -> String {
    format!("{success} success, {failed} failed, {rolled_back} rolled back, {skipped} skipped")
}

/// The live message while a deployment runs.
pub fn progress_text(deployment: &str, progress: &Progress) -> String {
    let [success, failed, rolled_back, skipped] = progress.counts;
    let mut out = format!(
        ":rocket: surql deployment `{deployment}` ({}): {} of {} environments done — {}",
        progress.strategy,
        progress.finished,
        progress.total,
        counts(success, failed, rolled_back, skipped)
    );
    if let Some(halted) = &progress.halted {
        out.push_str(&format!("\n:octagonal_sign: {halted}"));
    }
    out.push_str(&list(&progress.failures));
    out
}

/// One wave's message (webhook only).
pub fn wave_text(event: &Value) -> String {
    let number = |key: &str| event[key].as_u64().unwrap_or(0);
    let failures: Vec<String> = event["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .map(failure_line)
        .collect();
    format!(
        ":ocean: surql deployment `{}` {}: {} environments — {} ({} of {} done){}",
        text(event, "deployment_id"),
        text(event, "label"),
        number("environments"),
        counts(
            number("success"),
            number("failed"),
            number("rolled_back"),
            number("skipped")
        ),
        number("finished"),
        number("total"),
        list(&failures)
    )
}

/// The final summary: counts, then every environment that failed or was rolled back.
pub fn summary_text(event: &Value) -> String {
    let number = |key: &str| event[key].as_u64().unwrap_or(0);
    let failures: Vec<String> = event["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| matches!(r["status"].as_str(), Some("failed" | "rolled_back")))
        .map(failure_line)
        .collect();
    let icon = if failures.is_empty() {
        ":white_check_mark:"
    } else {
        ":warning:"
    };
    let mut out = format!(
        "{icon} surql deployment `{}` ({}) finished: {}",
        text(event, "deployment_id"),
        text(event, "strategy"),
        counts(
            number("success"),
            number("failed"),
            number("rolled_back"),
            number("skipped")
        )
    );
    if let Some(error) = event["script_error"].as_str() {
        out.push_str(&format!("\n:x: strategy error: {error}"));
    }
    out.push_str(&list(&failures));
    out
}

/// The approval question: what, where, and the risks, highlighted.
pub fn approval_text(request: &Value) -> String {
    let names = surql_plugin_sdk::requested_environments(request);
    let mut out = format!(
        ":rotating_light: surql asks to deploy to {}",
        match names.as_slice() {
            [one] => format!("*{one}*"),
            many => format!("*{}* ({} environments)", text(request, "label"), many.len()),
        }
    );
    out.push_str(&format!(
        "\n{}\nDeployment `{}` by {} ({})",
        request["summary"].as_str().unwrap_or(""),
        text(request, "deployment_id"),
        text(request, "actor"),
        text(request, "strategy")
    ));
    if names.len() > 1 {
        let shown = names.len().min(ASKED_NAMES);
        out.push_str(&format!("\nEnvironments: {}", names[..shown].join(", ")));
        if names.len() > shown {
            out.push_str(&format!(" and {} more", names.len() - shown));
        }
    }
    for migration in request["migrations"].as_array().into_iter().flatten() {
        let checksum = text(migration, "checksum");
        out.push_str(&format!(
            "\n• `{}_{}` (checksum `{}`)",
            text(migration, "version"),
            text(migration, "name"),
            &checksum[..checksum.len().min(12)]
        ));
    }
    for statement in request["destructive"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n:warning: *destructive* `{}:{}` {}: `{}`",
            text(statement, "file"),
            statement["line"],
            text(statement, "kind"),
            text(statement, "statement")
        ));
    }
    for id in request["irreversible"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n:no_entry: no down section: `{}`",
            id.as_str().unwrap_or("?")
        ));
    }
    out.push_str("\nReact :white_check_mark: to approve or :x: to deny.");
    out
}
