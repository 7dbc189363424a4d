//! Live progress from engine events: spinners on a terminal, plain lines otherwise.
//! Also the y/N approval prompt, which pauses the spinners while it asks.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use surql::ApprovalDecision;
use surql::{ApprovalRequest, Approver, DeploymentStatus, Event};

/// Whether progress should be drawn as live spinners.
pub fn is_interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// Above this many environments, progress is one summary bar (or a line
/// every 10 %) plus a line per failure, instead of a line per environment.
pub const COMPACT_ABOVE: usize = 20;

/// Renders events until the channel closes.
pub struct Progress {
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    quiet: bool,
    /// Compact mode: the one bar (on a terminal) and the running counts.
    overall: Option<ProgressBar>,
    compact: bool,
    total: usize,
    done: usize,
    failed: usize,
    skipped: usize,
    running: std::collections::HashSet<String>,
    /// The last result of each environment: a rollback, or a wave going on
    /// after a `to_version` one, finishes an environment a second time.
    finished: std::collections::HashMap<String, DeploymentStatus>,
    next_report: usize,
    /// When the first environment started, and how many were deployed
    /// (not skipped) since: the estimate of the time left.
    first_started: Option<std::time::Instant>,
    deployed: usize,
}

impl Progress {
    /// Spinners when stderr is a terminal; lines otherwise. `quiet` prints only
    /// failures; more than [`COMPACT_ABOVE`] environments switch to a summary.
    pub fn new(quiet: bool, total: usize) -> Self {
        let multi = is_interactive().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let compact = total > COMPACT_ABOVE;
        let overall = match (&multi, compact) {
            (Some(multi), true) => {
                let bar = multi.add(ProgressBar::new(total as u64));
                bar.set_style(
                    ProgressStyle::with_template("{bar:30} {pos}/{len} environments · {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.enable_steady_tick(Duration::from_millis(200));
                Some(bar)
            }
            _ => None,
        };
        Self {
            multi,
            bars: HashMap::new(),
            quiet,
            overall,
            compact,
            total,
            done: 0,
            failed: 0,
            skipped: 0,
            running: Default::default(),
            finished: Default::default(),
            next_report: total.div_ceil(10).max(1),
            first_started: None,
            deployed: 0,
        }
    }

    fn summary(&self) -> String {
        let mut summary = format!(
            "{} running, {} failed, {} skipped",
            self.running.len(),
            self.failed,
            self.skipped
        );
        if let Some(left) = self.time_left() {
            summary.push_str(&format!(", ~{} left", render_seconds(left)));
        }
        summary
    }

    /// The time left at the pace so far: the environments still to finish,
    /// at the rate environments were deployed (skips take no time).
    fn time_left(&self) -> Option<Duration> {
        let remaining = self.total.saturating_sub(self.done);
        let started = self.first_started?;
        if remaining == 0 || self.deployed == 0 {
            return None;
        }
        Some(started.elapsed().mul_f64(remaining as f64 / self.deployed as f64))
    }

    fn compact_event(&mut self, event: Event) {
        match event {
            Event::Started { environment } => {
                self.first_started.get_or_insert_with(std::time::Instant::now);
                self.running.insert(environment);
            }
            Event::Finished { result } => {
                self.running.remove(&result.environment);
                if result.status != DeploymentStatus::Skipped && !self.finished.contains_key(&result.environment) {
                    self.deployed += 1;
                }
                let previous = self.finished.insert(result.environment.clone(), result.status);
                match previous {
                    Some(DeploymentStatus::Success) => {}
                    Some(DeploymentStatus::Skipped) => self.skipped -= 1,
                    Some(_) => self.failed -= 1,
                    None => {
                        self.done += 1;
                        if let Some(bar) = &self.overall {
                            bar.inc(1);
                        }
                    }
                }
                match result.status {
                    DeploymentStatus::Success => {}
                    DeploymentStatus::Skipped => self.skipped += 1,
                    _ => self.failed += 1,
                }
                if result.status != DeploymentStatus::Success && result.status != DeploymentStatus::Skipped {
                    self.line(format!(
                        "[{}] {}: {}",
                        result.environment,
                        result.status.label(),
                        result.error.as_deref().unwrap_or("")
                    ));
                }
                let first = previous.is_none();
                if first && self.overall.is_none() && (self.done >= self.next_report || self.done == self.total) {
                    self.line(format!(
                        "progress: {}/{} environments done ({})",
                        self.done,
                        self.total,
                        self.summary()
                    ));
                    self.next_report = self.done + self.total.div_ceil(10).max(1);
                }
            }
            Event::Log { message } if !self.quiet => self.line(format!("strategy: {message}")),
            Event::Joined { .. } => {
                self.total += 1;
                if let Some(bar) = &self.overall {
                    bar.inc_length(1);
                }
            }
            _ => {}
        }
        if let Some(bar) = &self.overall {
            bar.set_message(self.summary());
        }
    }

    /// The spinner group, shared with the approval prompt.
    pub fn multi(&self) -> Option<MultiProgress> {
        self.multi.clone()
    }

    fn line(&self, text: String) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn bar(&mut self, environment: &str) -> Option<&ProgressBar> {
        let multi = self.multi.as_ref()?;
        Some(self.bars.entry(environment.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(environment.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }))
    }

    /// Consumes events until every sender is gone.
    pub async fn run(mut self, mut events: UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            if self.compact {
                self.compact_event(event);
            } else {
                self.handle(event);
            }
        }
        if let Some(bar) = &self.overall {
            bar.finish_and_clear();
        }
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            // Without a terminal, phases would be noise: lines show outcomes only.
            Event::Started { environment } => {
                if let Some(bar) = self.bar(&environment) {
                    bar.set_message("starting");
                }
            }
            Event::Phase { environment, phase } => {
                if let Some(bar) = self.bar(&environment) {
                    bar.set_message(phase);
                }
            }
            Event::MigrationApplied {
                environment,
                migration,
                duration_ms,
            } if !self.quiet => {
                self.line(format!("[{environment}] applied {migration} ({duration_ms} ms)"));
            }
            Event::Finished { result } => {
                let summary = match (&result.status, &result.error) {
                    (DeploymentStatus::Success, _) if result.migrations_rolled_back > 0 => {
                        format!("SUCCESS ({} rolled back)", result.migrations_rolled_back)
                    }
                    (DeploymentStatus::Success, _) => {
                        format!("{} ({} applied)", result.status.label(), result.migrations_applied)
                    }
                    (status, Some(error)) => format!("{}: {error}", status.label()),
                    (status, None) => status.label().to_string(),
                };
                if let Some(bar) = self.bars.remove(&result.environment) {
                    bar.finish_and_clear();
                }
                if !self.quiet || result.status != DeploymentStatus::Success {
                    self.line(format!("[{}] {summary}", result.environment));
                }
            }
            Event::Joined { .. } => self.total += 1,
            Event::WaveStarted { .. } | Event::WaveFinished { .. } => {}
            Event::Log { message } if !self.quiet => self.line(format!("strategy: {message}")),
            // Quiet, or a kind of event added later: nothing to show.
            _ => {}
        }
    }
}

/// `45s`, `3m05s`, `2h10m`.
pub(super) fn render_seconds(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// Asks on the terminal: `Deploy to 'production'? [y/N]`.
pub struct TerminalApprover {
    pub multi: Option<MultiProgress>,
}

/// Asks `question` on stderr and reads a yes/no answer from stdin (`y`/`yes`).
pub fn ask_yes(question: &str) -> std::io::Result<bool> {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// One prompt at a time, whatever the concurrency.
static PROMPT: Mutex<()> = Mutex::new(());

/// The prompt: the group, what it would get, and the risks, then the question.
fn approval_question(request: &ApprovalRequest) -> String {
    let mut text = format!("Deployment {} — {}\n", request.deployment_id, request.summary);
    let names: Vec<&str> = request.environments.iter().map(|e| e.name.as_str()).collect();
    let shown = names.len().min(10);
    text.push_str(&format!("  environments: {}", names[..shown].join(", ")));
    if names.len() > shown {
        text.push_str(&format!(" and {} more", names.len() - shown));
    }
    text.push('\n');
    for migration in &request.migrations {
        text.push_str(&format!("  + {}_{}\n", migration.version, migration.name));
    }
    for statement in &request.destructive {
        text.push_str(&format!("  ! destructive: {statement}\n"));
    }
    for id in &request.irreversible {
        text.push_str(&format!("  ! no down section: {id}\n"));
    }
    match names.as_slice() {
        [one] => text.push_str(&format!("Deploy to '{one}'?")),
        _ => text.push_str(&format!("Deploy to these {} environments?", names.len())),
    }
    text
}

impl Approver for TerminalApprover {
    fn approve(&self, request: &ApprovalRequest) -> ApprovalDecision {
        let _one_at_a_time = PROMPT.lock().unwrap_or_else(|e| e.into_inner());
        let ask = || {
            let question = approval_question(request);
            match ask_yes(&question) {
                Ok(true) => ApprovalDecision::Approved,
                Ok(false) => ApprovalDecision::Denied("approval declined at the prompt".into()),
                Err(e) => ApprovalDecision::Denied(format!("approval prompt failed: {e}")),
            }
        };
        match &self.multi {
            Some(multi) => multi.suspend(ask),
            None => ask(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use surql::DeploymentResult;

    /// The estimate is the pace of deployed environments over those left;
    /// skipped ones take no time and none is shown before one finished.
    #[test]
    fn the_time_left_follows_the_pace_of_deployed_environments() {
        let mut progress = Progress::new(false, 40);
        assert_eq!(progress.time_left(), None);
        progress.compact_event(Event::Started {
            environment: "t0".into(),
        });
        assert_eq!(progress.time_left(), None, "nothing finished yet");
        progress.first_started = Some(std::time::Instant::now() - Duration::from_secs(10));
        let finished = |name: &str, status| Event::Finished {
            result: DeploymentResult::finished(name, status, 1, None, chrono::Utc::now()),
        };
        progress.compact_event(finished("t0", DeploymentStatus::Success));
        progress.compact_event(finished("t1", DeploymentStatus::Skipped));
        // 10 s for one deployed, 38 left.
        let left = progress.time_left().unwrap().as_secs_f64();
        assert!((379.0..=385.0).contains(&left), "{left}");
        assert!(progress.summary().contains(", ~6m2"), "{}", progress.summary());
        assert_eq!(render_seconds(Duration::from_secs(45)), "45s");
        assert_eq!(render_seconds(Duration::from_secs(185)), "3m05s");
        assert_eq!(render_seconds(Duration::from_secs(7800)), "2h10m");
    }
}
