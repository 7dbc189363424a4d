//! When an environment may be deployed: its maintenance `window`, the
//! `freezes` that cover it, and a `hold` on it (environments.json). Pure
//! functions of a given "now": the engine asks [`gate`] as it plans or starts
//! an environment, so a plan, a dry run, a simulation and a real run decide alike.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Minutes in a day: an `end` of `24:00` closes the window at midnight.
const DAY: u32 = 24 * 60;

/// A weekly maintenance window: `{"days": ["sat", "sun"], "start": "22:00",
/// "end": "04:00", "timezone": "Europe/Berlin"}`. An `end` before `start`
/// spans midnight, and `days` name the day the window opens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "WindowSpec", into = "WindowSpec")]
pub struct Window {
    /// Days it opens on (Monday first); all seven when `days` is left out.
    days: [bool; 7],
    /// Minutes after local midnight.
    start: u32,
    end: u32,
    timezone: Tz,
}

/// How environments.json writes a window.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "Window")]
pub struct WindowSpec {
    /// Days the window opens on: `mon` … `sun` (or `monday` …). Default: every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    /// When it opens, `HH:MM` local time.
    pub start: String,
    /// When it closes, `HH:MM` (`24:00` for midnight); before `start`, it closes the next day.
    pub end: String,
    /// An IANA time zone such as `Europe/Berlin`. Default: `UTC`.
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".into()
}

/// Why a deploy window or a freeze was refused: the field at fault and what
/// to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct PolicyError {
    /// The field of the window or freeze: `days`, `start`, `end`,
    /// `timezone`, `reason` or `environments`.
    pub field: &'static str,
    /// What is wrong with it and how to fix it.
    pub message: String,
}

impl PolicyError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// `HH:MM` as minutes after midnight (`24:00` only where `end_of_day`).
fn minutes(text: &str, field: &'static str, end_of_day: bool) -> Result<u32, PolicyError> {
    let bad = || {
        PolicyError::new(
            field,
            format!("{field} '{text}' is not a time of day: write HH:MM, e.g. \"22:00\""),
        )
    };
    let (hours, mins) = text.split_once(':').ok_or_else(bad)?;
    if hours.len() != 2 || mins.len() != 2 {
        return Err(bad());
    }
    let (hours, mins): (u32, u32) = (hours.parse().map_err(|_| bad())?, mins.parse().map_err(|_| bad())?);
    match hours * 60 + mins {
        DAY if end_of_day && mins == 0 => Ok(DAY),
        total if hours < 24 && mins < 60 => Ok(total),
        _ => Err(bad()),
    }
}

impl TryFrom<WindowSpec> for Window {
    type Error = PolicyError;

    fn try_from(spec: WindowSpec) -> Result<Self, PolicyError> {
        let mut days = [spec.days.is_empty(); 7];
        for day in &spec.days {
            let weekday: Weekday = day.trim().parse().map_err(|_| {
                PolicyError::new("days", format!("days: '{day}' is not a day: use mon, tue, wed, thu, fri, sat, sun (or leave days out for every day)"))
            })?;
            days[weekday.num_days_from_monday() as usize] = true;
        }
        let start = minutes(&spec.start, "start", false)?;
        let end = minutes(&spec.end, "end", true)?;
        if start == end {
            return Err(PolicyError::new(
                "end",
                format!(
                    "start and end are both {}: the window would be empty (for a whole day write \"00:00\" to \"24:00\")",
                    spec.start
                ),
            ));
        }
        let timezone: Tz = spec.timezone.parse().map_err(|_| {
            PolicyError::new("timezone", format!(
                "timezone '{}' is not an IANA time zone: write e.g. \"Europe/Berlin\", \"America/New_York\" or \"UTC\"",
                spec.timezone
            ))
        })?;
        Ok(Self {
            days,
            start,
            end,
            timezone,
        })
    }
}

impl From<Window> for WindowSpec {
    fn from(window: Window) -> Self {
        let all = window.days.iter().all(|open| *open);
        let days = (0..7)
            .filter(|&i| window.days[i] && !all)
            .map(|i| weekday(i).to_string().to_lowercase())
            .collect();
        let time = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        Self {
            days,
            start: time(window.start),
            end: time(window.end),
            timezone: window.timezone.name().to_string(),
        }
    }
}

fn weekday(index_from_monday: usize) -> Weekday {
    (0..index_from_monday).fold(Weekday::Mon, |day, _| day.succ())
}

impl Window {
    /// The time zone its times are in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The instant the local wall clock first reads `minutes` on `date` (or
    /// later: in a spring-forward gap, the first minute after it).
    fn instant(&self, date: NaiveDate, minutes: u32) -> Option<DateTime<Utc>> {
        let midnight = NaiveDateTime::new(date, NaiveTime::MIN);
        let local = midnight + Duration::minutes(i64::from(minutes));
        // Gaps are at most a few hours long (usually one).
        (0..=240).find_map(|shift| {
            self.timezone
                .from_local_datetime(&(local + Duration::minutes(shift)))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        })
    }

    /// The window that opens on local `date`, if it opens that day: [open, close).
    fn opening_on(&self, date: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.days[date.weekday().num_days_from_monday() as usize] {
            return None;
        }
        let open = self.instant(date, self.start)?;
        let close = match self.end > self.start {
            true => self.instant(date, self.end)?,
            false => self.instant(date.succ_opt()?, self.end)?,
        };
        Some((open, close))
    }

    /// The openings from the local day before `now` on, for `days` days.
    fn openings(&self, now: DateTime<Utc>, days: i64) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let today = now.with_timezone(&self.timezone).date_naive();
        (-1..days).filter_map(move |offset| self.opening_on(today + Duration::days(offset)))
    }

    /// Whether the window is open at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.openings(now, 1).any(|(open, close)| open <= now && now < close)
    }

    /// When it next opens: `now` while it is open.
    pub fn next_open(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.is_open(now) {
            return now;
        }
        // Some day of every week opens it (`days` is never empty).
        self.openings(now, 9)
            .map(|(open, _)| open)
            .find(|open| *open > now)
            .unwrap_or(now)
    }

    /// `2026-12-12T22:00:00+01:00 Europe/Berlin`: an instant in the window's zone.
    pub fn describe(&self, instant: DateTime<Utc>) -> String {
        format!(
            "{} {}",
            instant.with_timezone(&self.timezone).to_rfc3339(),
            self.timezone.name()
        )
    }
}

/// A change freeze: `{"start": RFC 3339, "end": RFC 3339, "reason": "…",
/// "environments": "tag:production"}`; every environment it selects is
/// skipped from `start` until `end` unless the deployment overrides it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "FreezeSpec", into = "FreezeSpec")]
pub struct Freeze {
    /// When it comes into force (inclusive).
    pub start: DateTime<Utc>,
    /// When it is lifted (exclusive); after `start`.
    pub end: DateTime<Utc>,
    /// Why it is in force; never empty, shown for every environment it skips.
    pub reason: String,
    /// The selection, as `-e` writes it: `all`, `tag:TAG`, names, comma-separated.
    pub environments: String,
}

/// How environments.json writes a freeze.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename = "Freeze")]
pub struct FreezeSpec {
    /// When it starts, RFC 3339 (`2026-12-20T00:00:00+01:00`).
    pub start: String,
    /// When it ends, RFC 3339; after `start`.
    pub end: String,
    /// Why: shown in every environment it skips.
    pub reason: String,
    /// The environments it covers, as `-e` selects them: `all` (the default),
    /// `tag:TAG`, names; comma-separated. Matching none is allowed.
    #[serde(default = "all")]
    pub environments: String,
}

fn all() -> String {
    "all".into()
}

impl TryFrom<FreezeSpec> for Freeze {
    type Error = PolicyError;

    fn try_from(spec: FreezeSpec) -> Result<Self, PolicyError> {
        let time = |text: &str, field: &'static str| {
            DateTime::parse_from_rfc3339(text.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    PolicyError::new(
                        field,
                        format!("{field} '{text}' is not an RFC 3339 time: write e.g. \"2026-12-20T00:00:00+01:00\""),
                    )
                })
        };
        let (start, end) = (time(&spec.start, "start")?, time(&spec.end, "end")?);
        if end <= start {
            return Err(PolicyError::new(
                "end",
                format!("end '{}' is not after start '{}'", spec.end, spec.start),
            ));
        }
        if spec.reason.trim().is_empty() {
            return Err(PolicyError::new(
                "reason",
                "reason is empty: say why (it is shown in every environment the freeze skips)",
            ));
        }
        if spec.environments.split(',').all(|item| item.trim().is_empty()) {
            return Err(PolicyError::new(
                "environments",
                "environments is empty: write \"all\", \"tag:TAG\" or names",
            ));
        }
        Ok(Self {
            start,
            end,
            reason: spec.reason,
            environments: spec.environments,
        })
    }
}

impl From<Freeze> for FreezeSpec {
    fn from(freeze: Freeze) -> Self {
        Self {
            start: freeze.start.to_rfc3339(),
            end: freeze.end.to_rfc3339(),
            reason: freeze.reason,
            environments: freeze.environments,
        }
    }
}

impl Freeze {
    /// Whether it covers the environment `name` with `tags`.
    pub fn selects(&self, name: &str, tags: &[String]) -> bool {
        self.environments.split(',').map(str::trim).any(|item| match item {
            "all" => true,
            _ => match item.strip_prefix("tag:") {
                Some(tag) => tags.iter().any(|t| t == tag),
                None => item == name,
            },
        })
    }

    /// Whether it is in force at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.start <= now && now < self.end
    }

    /// `frozen until END: REASON`.
    pub fn describe(&self) -> String {
        format!("frozen until {}: {}", self.end.to_rfc3339(), self.reason)
    }
}

/// Of `freezes`, the one in force at `now` that lasts longest.
pub fn active_freeze(freezes: &[Freeze], now: DateTime<Utc>) -> Option<&Freeze> {
    freezes.iter().filter(|f| f.is_active(now)).max_by_key(|f| f.end)
}

/// What the policy says about deploying an environment now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Deploy.
    Go,
    /// SKIPPED with this reason; nothing touches it.
    Skip(String),
    /// Frozen (`frozen until …: REASON`), but the deployment overrides freezes.
    Overridden(String),
}

/// The decision for one environment: its hold first, then a freeze in force
/// (unless `override_freeze`), then its window.
pub fn gate(
    hold: Option<&str>,
    freezes: &[Freeze],
    window: Option<&Window>,
    now: DateTime<Utc>,
    override_freeze: bool,
) -> Verdict {
    if let Some(reason) = hold {
        return Verdict::Skip(format!("held: {reason}"));
    }
    let frozen = active_freeze(freezes, now).map(Freeze::describe);
    if let (Some(frozen), false) = (&frozen, override_freeze) {
        return Verdict::Skip(frozen.clone());
    }
    if let Some(window) = window.filter(|w| !w.is_open(now)) {
        let opens = window.describe(window.next_open(now));
        return Verdict::Skip(format!("outside its maintenance window (opens {opens})"));
    }
    frozen.map_or(Verdict::Go, Verdict::Overridden)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(days: &[&str], start: &str, end: &str, timezone: &str) -> Result<Window, PolicyError> {
        Window::try_from(WindowSpec {
            days: days.iter().map(|d| d.to_string()).collect(),
            start: start.into(),
            end: end.into(),
            timezone: timezone.into(),
        })
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_window_spanning_midnight_belongs_to_the_day_it_opens() {
        // 2026-12-12 is a Saturday; Berlin is UTC+1 in December.
        let w = window(&["sat", "sun"], "22:00", "04:00", "Europe/Berlin").unwrap();
        assert!(!w.is_open(at("2026-12-12T20:59:00Z")), "Sat 21:59 Berlin");
        assert!(w.is_open(at("2026-12-12T21:00:00Z")), "Sat 22:00 Berlin");
        assert!(
            w.is_open(at("2026-12-13T02:59:00Z")),
            "Sun 03:59 Berlin: Saturday's window"
        );
        assert!(!w.is_open(at("2026-12-13T03:00:00Z")), "Sun 04:00 Berlin: closed");
        assert!(
            w.is_open(at("2026-12-14T01:00:00Z")),
            "Mon 02:00 Berlin: Sunday's window"
        );
        assert!(
            !w.is_open(at("2026-12-14T21:30:00Z")),
            "Mon 22:30: Monday is not a day of it"
        );
        assert!(
            !w.is_open(at("2026-12-11T23:00:00Z")),
            "Sat 00:00: Friday did not open it"
        );
        assert_eq!(w.next_open(at("2026-12-13T03:00:00Z")), at("2026-12-13T21:00:00Z"));
        assert_eq!(
            w.next_open(at("2026-12-12T21:30:00Z")),
            at("2026-12-12T21:30:00Z"),
            "open: now"
        );
    }

    #[test]
    fn next_open_goes_across_the_week() {
        let w = window(&["mon"], "09:00", "10:00", "UTC").unwrap();
        // Monday 10:00 just closed: the next is a week later.
        assert_eq!(w.next_open(at("2026-12-14T10:00:00Z")), at("2026-12-21T09:00:00Z"));
        assert_eq!(w.next_open(at("2026-12-19T12:00:00Z")), at("2026-12-21T09:00:00Z"));
        let every_day = window(&[], "00:00", "24:00", "UTC").unwrap();
        assert!(every_day.is_open(at("2026-12-19T23:59:59Z")));
        assert!(every_day.is_open(at("2026-12-20T00:00:00Z")));
    }

    #[test]
    fn daylight_saving_edges() {
        // Berlin springs forward on 2026-03-29 (02:00 → 03:00) and falls back
        // on 2026-10-25 (03:00 → 02:00); both are Sundays.
        let w = window(&["sun"], "02:30", "05:00", "Europe/Berlin").unwrap();
        // 02:30 does not exist that day: the window opens as the clock passes it, at 03:00 CEST.
        assert_eq!(w.next_open(at("2026-03-29T00:00:00Z")), at("2026-03-29T01:00:00Z"));
        assert!(!w.is_open(at("2026-03-29T00:59:00Z")));
        assert!(w.is_open(at("2026-03-29T01:00:00Z")));
        assert!(!w.is_open(at("2026-03-29T03:00:00Z")), "05:00 CEST");
        // 02:30 happens twice: it opens the first time.
        assert_eq!(w.next_open(at("2026-10-24T12:00:00Z")), at("2026-10-25T00:30:00Z"));
        assert!(w.is_open(at("2026-10-25T03:59:00Z")), "04:59 CET");
        assert!(!w.is_open(at("2026-10-25T04:00:00Z")), "05:00 CET");
        // A summer window is at a different UTC time than a winter one.
        let daily = window(&[], "22:00", "23:00", "Europe/Berlin").unwrap();
        assert!(daily.is_open(at("2026-07-01T20:30:00Z")));
        assert!(daily.is_open(at("2026-12-01T21:30:00Z")));
        assert!(!daily.is_open(at("2026-12-01T20:30:00Z")));
    }

    #[test]
    fn windows_are_validated_with_the_fix() {
        let err =
            |days: &[&str], start: &str, end: &str, tz: &str| window(days, start, end, tz).unwrap_err().to_string();
        assert!(err(&["sat", "sundy"], "22:00", "04:00", "UTC").contains("'sundy' is not a day"));
        assert!(err(&[], "25:00", "04:00", "UTC").contains("start '25:00' is not a time of day: write HH:MM"));
        assert!(err(&[], "9:00", "10:00", "UTC").contains("HH:MM"));
        assert!(err(&[], "22:00", "22:60", "UTC").contains("end '22:60'"));
        assert!(err(&[], "24:00", "04:00", "UTC").contains("start '24:00'"));
        assert!(err(&[], "10:00", "10:00", "UTC").contains("empty"));
        assert!(err(&[], "10:00", "11:00", "Europe/Berlinn").contains("'Europe/Berlinn' is not an IANA time zone"));
        let field = |days: &[&str], start: &str, end: &str| window(days, start, end, "UTC").unwrap_err().field;
        assert_eq!(field(&["sundy"], "01:00", "02:00"), "days");
        assert_eq!(field(&[], "25:00", "02:00"), "start");
        assert_eq!(field(&[], "01:00", "22:60"), "end");
        let w = window(&["Saturday", "SUN"], "22:00", "04:00", "Europe/Berlin").unwrap();
        let spec = WindowSpec::from(w.clone());
        assert_eq!(
            (spec.days, spec.start.as_str(), spec.end.as_str()),
            (vec!["sat".to_string(), "sun".to_string()], "22:00", "04:00")
        );
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(serde_json::from_value::<Window>(json).unwrap(), w);
        let json = serde_json::json!({"start": "01:00", "end": "02:00", "tz": "UTC"});
        assert!(
            serde_json::from_value::<Window>(json)
                .unwrap_err()
                .to_string()
                .contains("tz")
        );
    }

    fn freeze(start: &str, end: &str, environments: &str) -> Result<Freeze, PolicyError> {
        Freeze::try_from(FreezeSpec {
            start: start.into(),
            end: end.into(),
            reason: "year-end".into(),
            environments: environments.into(),
        })
    }

    #[test]
    fn freezes_select_like_dash_e_and_are_validated() {
        let f = freeze(
            "2026-12-20T00:00:00+01:00",
            "2027-01-02T00:00:00+01:00",
            "tag:production, staging",
        )
        .unwrap();
        let prod = vec!["production".to_string()];
        assert!(f.selects("eu", &prod));
        assert!(f.selects("staging", &[]));
        assert!(!f.selects("dev", &["dev".to_string()]));
        assert!(
            freeze("2026-12-20T00:00:00Z", "2026-12-21T00:00:00Z", "all")
                .unwrap()
                .selects("x", &[])
        );
        assert!(f.is_active(at("2026-12-19T23:00:00Z")));
        assert!(!f.is_active(at("2027-01-01T23:00:00Z")), "ends at its end");
        assert!(!f.is_active(at("2026-12-19T22:59:59Z")));
        assert_eq!(f.describe(), "frozen until 2027-01-01T23:00:00+00:00: year-end");
        let err = freeze("2026-12-21T00:00:00Z", "2026-12-20T00:00:00Z", "all").unwrap_err();
        assert!(err.to_string().contains("is not after start"), "{err}");
        assert_eq!(err.field, "end");
        let err = freeze("2026-12-20", "2026-12-21T00:00:00Z", "all").unwrap_err();
        assert!(
            err.to_string().contains("start '2026-12-20' is not an RFC 3339 time"),
            "{err}"
        );
        assert_eq!(
            freeze("2026-12-20T00:00:00Z", "2026-12-21T00:00:00Z", " , ")
                .unwrap_err()
                .field,
            "environments"
        );
    }

    #[test]
    fn the_gate_takes_hold_then_freeze_then_window() {
        let now = at("2026-12-14T12:00:00Z"); // a Monday
        let closed = window(&["sat"], "22:00", "04:00", "Europe/Berlin").unwrap();
        let open = window(&["mon"], "12:00", "13:00", "UTC").unwrap();
        let freezes = vec![
            freeze("2026-12-14T00:00:00Z", "2026-12-15T00:00:00Z", "all").unwrap(),
            freeze("2026-12-14T00:00:00Z", "2026-12-16T00:00:00Z", "all").unwrap(),
            freeze("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z", "all").unwrap(),
        ];
        assert_eq!(
            gate(Some("incident 42"), &freezes, Some(&closed), now, true),
            Verdict::Skip("held: incident 42".into())
        );
        let frozen = "frozen until 2026-12-16T00:00:00+00:00: year-end".to_string();
        assert_eq!(
            gate(None, &freezes, Some(&closed), now, false),
            Verdict::Skip(frozen.clone())
        );
        assert_eq!(
            gate(None, &freezes, Some(&closed), now, true),
            Verdict::Skip("outside its maintenance window (opens 2026-12-19T22:00:00+01:00 Europe/Berlin)".into())
        );
        assert_eq!(
            gate(None, &freezes, Some(&open), now, true),
            Verdict::Overridden(frozen)
        );
        assert_eq!(gate(None, &freezes[2..], Some(&open), now, false), Verdict::Go);
        assert_eq!(gate(None, &[], None, now, false), Verdict::Go);
    }
}
