//! How every table stands as of a date: what `tascomi status` summarises and `tascomi report`
//! draws.
//!
//! Everything here comes from what the stages already record, never from the tables' data:
//! the catalog's partition parameters (rows, files, bytes, run id, publication time, failed
//! pages, cast failures), the data-quality reports (JSON lines under the refined bucket's
//! metrics prefix, read only for the nights shown), and the queues.
//!
//! A table is
//! - **failing** when something it needs is broken and will not mend by itself: a hole (a raw
//!   import without its later layers), a snapshot behind its latest import, a message of it in a
//!   dead-letter queue, pages that failed in its latest import, a failed data-quality gate;
//! - **stale** when its latest snapshot is older than the as-of date: every table has a
//!   snapshot every night (a weekly table's is carried forward on the days it is not fetched);
//! - **fresh** otherwise. A fresh table may still carry warnings (it shrank, a column started
//!   failing to cast, a stage got much slower): odd, not broken.
//!
//! Stage durations are not recorded as such; each is derived from the partition's parameters:
//! the run id is a UUIDv7, made when the run starts, and `published_at` is when it ended.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use common::config::Schedule;
use common::layout::{Layer, TableName};
use common::queue::QueueDepth;

mod collect;
mod findings;

pub use collect::collect;

use crate::local::DeadLetter;
use crate::ops;
use crate::stage::Stage;
use crate::verdict::Repair;

/// How many nights the report shows by default.
pub const DEFAULT_NIGHTS: u32 = 14;

/// How many dead letters per stage are read (on AWS, received and released again).
pub const MAX_LETTERS_PER_STAGE: usize = 100;

/// What to collect.
#[derive(Debug, Clone)]
pub struct Options {
    /// The date the schedule is judged against (default: see [`Health::as_of_reason`]).
    pub as_of: Option<NaiveDate>,
    /// How many nights of history, ending on the as-of date (fewer when the data begins later).
    pub nights: u32,
    /// Read the data-quality reports of those nights.
    pub quality: bool,
    /// Read the dead letters themselves (on the embedded default they are always read: they are
    /// files). On AWS this receives them and makes them visible again at once.
    pub letters: bool,
    /// The flags that make a suggested command act where this one did.
    pub repair: Repair,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            as_of: None,
            nights: DEFAULT_NIGHTS,
            quality: false,
            letters: false,
            repair: Repair::default(),
        }
    }
}

/// One published partition, as the catalog describes it.
#[derive(Debug, Clone)]
pub struct PartitionFacts {
    pub date: NaiveDate,
    pub rows: Option<u64>,
    pub files: Option<u64>,
    pub bytes: Option<u64>,
    pub run_id: String,
    pub published_at: Option<DateTime<Utc>>,
    /// From the run's start (its UUIDv7 run id) to its publication.
    pub duration: Option<Duration>,
    pub parameters: BTreeMap<String, String>,
}

impl PartitionFacts {
    fn from_published(p: &ops::Published) -> Self {
        let parameters = p.info.parameters.clone();
        let number = |key: &str| parameters.get(key).and_then(|v| v.parse::<u64>().ok());
        let run_id = parameters.get("run_id").cloned().unwrap_or_default();
        let published_at = parameters
            .get("published_at")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let duration = match (run_started(&run_id), published_at) {
            (Some(start), Some(end)) if end >= start => (end - start).to_std().ok(),
            _ => None,
        };
        Self {
            date: p.date,
            rows: number("rows"),
            files: number("files"),
            bytes: number("bytes"),
            run_id,
            published_at,
            duration,
            parameters,
        }
    }

    /// A numeric parameter (`failed_pages`, `cast_failures`, ...).
    pub fn number(&self, key: &str) -> Option<u64> {
        self.parameters.get(key)?.parse().ok()
    }
}

/// When a run started, from its run id: a UUIDv7 (as `common::publish::new_run_id` makes
/// them) begins with its creation time in milliseconds since the epoch.
pub fn run_started(run_id: &str) -> Option<DateTime<Utc>> {
    let hex: String = run_id.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || hex.as_bytes()[12] != b'7' {
        return None;
    }
    let millis = u64::from_str_radix(&hex[..12], 16).ok()?;
    DateTime::from_timestamp_millis(i64::try_from(millis).ok()?)
}

/// One check of a data-quality report.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFacts {
    pub name: String,
    pub passed: bool,
    pub value: f64,
    pub threshold: f64,
    pub examples: Vec<String>,
}

/// One stage's data-quality report on one partition (the newest run of that date).
#[derive(Debug, Clone, PartialEq)]
pub struct QualityRun {
    pub stage: Stage,
    pub date: NaiveDate,
    pub run_id: String,
    pub rows: u64,
    pub recorded_at: Option<DateTime<Utc>>,
    pub checks: Vec<CheckFacts>,
}

impl QualityRun {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The values that failed to cast, per column (`cast_failures_<column>` checks).
    pub fn cast_failures(&self) -> impl Iterator<Item = (&str, &CheckFacts)> {
        self.checks
            .iter()
            .filter_map(|c| Some((c.name.strip_prefix("cast_failures_")?, c)))
    }

    /// Parses the JSON lines `QualityReport::record` writes (one line per check).
    pub fn parse(stage: Stage, body: &[u8]) -> Option<Self> {
        let mut run: Option<QualityRun> = None;
        for line in body.split(|b| *b == b'\n') {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            let run = run.get_or_insert_with(|| QualityRun {
                stage,
                date: value
                    .get("partition_date")
                    .and_then(|d| d.as_str())
                    .and_then(common::layout::parse_date)
                    .unwrap_or(NaiveDate::MIN),
                run_id: text(&value, "run_id"),
                rows: value.get("rows").and_then(|r| r.as_u64()).unwrap_or(0),
                recorded_at: value
                    .get("recorded_at")
                    .and_then(|t| t.as_str())
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc)),
                checks: Vec::new(),
            });
            if let Some(check) = value.get("check") {
                run.checks.push(CheckFacts {
                    name: text(check, "check"),
                    passed: check
                        .get("passed")
                        .and_then(|p| p.as_bool())
                        .unwrap_or(true),
                    value: check.get("value").and_then(|v| v.as_f64()).unwrap_or(0.0),
                    threshold: check
                        .get("threshold")
                        .and_then(|v| v.as_f64())
                        .unwrap_or(0.0),
                    examples: check
                        .get("examples")
                        .and_then(|e| e.as_array())
                        .map(|e| {
                            e.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
        run.filter(|r| r.date != NaiveDate::MIN)
    }
}

fn text(value: &serde_json::Value, key: &str) -> String {
    value
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A message in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub stage: Stage,
    pub table: Option<String>,
    /// The date the message's run takes as today, when it carries one.
    pub date: Option<NaiveDate>,
    pub reason: String,
}

impl Letter {
    pub fn new(stage: Stage, letter: &DeadLetter) -> Self {
        Self {
            stage,
            table: letter.table(),
            date: letter.as_of(),
            reason: letter.reason().to_owned(),
        }
    }
}

/// How bad a finding is; a table's condition is its worst finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Odd, not broken.
    Warning,
    /// Its latest snapshot is older than the as-of date (every table has one every night).
    Stale,
    /// Broken: will not mend by itself.
    Failing,
}

/// A table's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    Fresh,
    Stale,
    Failing,
}

impl Condition {
    pub fn name(self) -> &'static str {
        match self {
            Condition::Fresh => "fresh",
            Condition::Stale => "stale",
            Condition::Failing => "failing",
        }
    }
}

/// Something that needs a look, with the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// `HOLE`, `BEHIND`, `FAILED`, `STALE`, `WARN`.
    pub label: &'static str,
    pub what: String,
    pub fix: String,
}

/// One table.
#[derive(Debug, Clone)]
pub struct TableHealth {
    pub table: TableName,
    pub schedule: Schedule,
    /// The snapshot date promised by the as-of date: that date, for every table.
    pub promised: NaiveDate,
    /// The import date the schedule promised by the as-of date (for a weekly table, the Sunday
    /// on or before it): what the raw, parsed and increment layers are judged by.
    pub fetched_by: NaiveDate,
    /// Per layer (in [`Layer::ALL`] order) every published partition, oldest first.
    pub layers: Vec<(Layer, Vec<PartitionFacts>)>,
    /// The data-quality reports of the nights shown, oldest first (empty unless read).
    pub quality: Vec<QualityRun>,
    /// The dead letters naming this table (those read).
    pub letters: Vec<Letter>,
    pub findings: Vec<Finding>,
}

impl TableHealth {
    pub fn partitions(&self, layer: Layer) -> &[PartitionFacts] {
        self.layers
            .iter()
            .find(|(l, _)| *l == layer)
            .map_or(&[], |(_, p)| p.as_slice())
    }

    pub fn latest(&self, layer: Layer) -> Option<&PartitionFacts> {
        self.partitions(layer).last()
    }

    /// The partition of a layer dated `date`, if published.
    pub fn on(&self, layer: Layer, date: NaiveDate) -> Option<&PartitionFacts> {
        self.partitions(layer).iter().find(|p| p.date == date)
    }

    pub fn condition(&self) -> Condition {
        match self.findings.iter().map(|f| f.severity).max() {
            Some(Severity::Failing) => Condition::Failing,
            Some(Severity::Stale) => Condition::Stale,
            _ => Condition::Fresh,
        }
    }

    pub fn warnings(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count()
    }

    /// The date a layer's partition is promised for by the as-of date: the snapshot's, or the
    /// scheduled import's for the other layers.
    pub fn promised_for(&self, layer: Layer) -> NaiveDate {
        if layer == Layer::Snapshot {
            self.promised
        } else {
            self.fetched_by
        }
    }

    pub fn layer_is_fresh(&self, layer: Layer) -> bool {
        self.latest(layer)
            .is_some_and(|p| p.date >= self.promised_for(layer))
    }
}

/// A stage's queues.
#[derive(Debug, Clone)]
pub struct QueueFacts {
    pub stage: Stage,
    pub depth: QueueDepth,
    pub dead_letters: Option<u64>,
}

/// Every table as of a date, and the queues.
#[derive(Debug, Clone)]
pub struct Health {
    pub as_of: NaiveDate,
    /// Why this as-of date: given, the newest import, or today.
    pub as_of_reason: String,
    pub nights: u32,
    pub generated_at: DateTime<Utc>,
    /// Where the facts come from: the data directory, or "the AWS deployment".
    pub source: String,
    pub tables: Vec<TableHealth>,
    pub queues: Vec<QueueFacts>,
    /// Whether the dead letters were read (else only counted).
    pub letters_read: bool,
    /// Dead letters that name no table of the pipeline file.
    pub other_letters: Vec<Letter>,
    /// Whether the data-quality reports were read.
    pub quality_read: bool,
}

impl Health {
    /// The nights shown, oldest first.
    pub fn nights(&self) -> Vec<NaiveDate> {
        (0..i64::from(self.nights.max(1)))
            .rev()
            .map(|back| self.as_of - chrono::Duration::days(back))
            .collect()
    }

    pub fn count(&self, condition: Condition) -> usize {
        self.tables
            .iter()
            .filter(|t| t.condition() == condition)
            .count()
    }

    pub fn warnings(&self) -> usize {
        self.tables.iter().map(TableHealth::warnings).sum()
    }

    pub fn dead_letters(&self) -> u64 {
        self.queues.iter().filter_map(|q| q.dead_letters).sum()
    }

    /// True when every table is fresh and no dead letter waits.
    pub fn all_fresh(&self) -> bool {
        self.count(Condition::Fresh) == self.tables.len() && self.dead_letters() == 0
    }

    /// The one-line summary: `5 tables: 4 fresh, 1 stale, 0 failing; 2 dead letters`.
    pub fn summary_line(&self) -> String {
        let warnings = self.warnings();
        format!(
            "{} tables: {} fresh, {} stale, {} failing; {} dead letter(s){}",
            self.tables.len(),
            self.count(Condition::Fresh),
            self.count(Condition::Stale),
            self.count(Condition::Failing),
            self.dead_letters(),
            if warnings > 0 {
                format!("; {warnings} warning(s)")
            } else {
                String::new()
            }
        )
    }
}

/// The import date a schedule promises by `as_of`: that date for a daily table, the Sunday on
/// or before it for a weekly one (the snapshot is promised for `as_of` either way).
pub fn fetched_by(schedule: Schedule, as_of: NaiveDate) -> NaiveDate {
    match schedule {
        Schedule::Daily => as_of,
        Schedule::Weekly => {
            as_of - chrono::Duration::days(i64::from(as_of.weekday().num_days_from_sunday()))
        }
    }
}

/// `850 ms`, `12.3 s`, `4 min 05 s`, `1 h 02 min`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{} ms", d.as_millis())
    } else if secs < 60.0 {
        format!("{secs:.1} s")
    } else if secs < 3600.0 {
        format!("{} min {:02} s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!(
            "{} h {:02} min",
            d.as_secs() / 3600,
            d.as_secs() % 3600 / 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use findings::warnings;

    #[test]
    fn a_weekly_table_is_fetched_by_the_sunday_on_or_before() {
        let tuesday = NaiveDate::from_ymd_opt(2026, 11, 10).unwrap();
        let sunday = NaiveDate::from_ymd_opt(2026, 11, 8).unwrap();
        assert_eq!(fetched_by(Schedule::Weekly, tuesday), sunday);
        assert_eq!(fetched_by(Schedule::Weekly, sunday), sunday);
        assert_eq!(fetched_by(Schedule::Daily, tuesday), tuesday);
    }

    #[test]
    fn a_run_starts_when_its_uuidv7_says() {
        let id = uuid_v7_at(1_700_000_000_123);
        assert_eq!(
            run_started(&id).unwrap().timestamp_millis(),
            1_700_000_000_123
        );
        assert!(run_started("replay").is_none());
        assert!(run_started("0123456789abcdef0123456789abcdef").is_none());
    }

    fn uuid_v7_at(millis: u64) -> String {
        format!("{millis:012x}7abc8def0123456789ab")
    }

    #[test]
    fn quality_reports_parse_from_their_json_lines() {
        let body = br#"{"stage":"recast","table":"appeals","layer":"increment","partition_date":"20261110","run_id":"r1","rows":12,"recorded_at":"2026-11-10T02:10:00+00:00","passed":true,"check":{"check":"unique_id","passed":true,"value":0.0,"threshold":0.0}}
{"stage":"recast","table":"appeals","layer":"increment","partition_date":"20261110","run_id":"r1","rows":12,"recorded_at":"2026-11-10T02:10:00+00:00","passed":true,"check":{"check":"cast_failures_officer_id","passed":true,"value":2.0,"threshold":0.0,"examples":["seven","7.5"]}}
"#;
        let run = QualityRun::parse(Stage::Recast, body).unwrap();
        assert_eq!(run.date, NaiveDate::from_ymd_opt(2026, 11, 10).unwrap());
        assert_eq!(run.rows, 12);
        assert!(run.passed());
        let casts: Vec<_> = run.cast_failures().map(|(c, f)| (c, f.value)).collect();
        assert_eq!(casts, [("officer_id", 2.0)]);
        assert!(QualityRun::parse(Stage::Recast, b"not json\n").is_none());
    }

    fn partition(day: u32, rows: u64, took_secs: u64) -> PartitionFacts {
        PartitionFacts {
            date: NaiveDate::from_ymd_opt(2026, 11, day).unwrap(),
            rows: Some(rows),
            files: Some(1),
            bytes: Some(1000),
            run_id: String::new(),
            published_at: None,
            duration: Some(Duration::from_secs(took_secs)),
            parameters: BTreeMap::new(),
        }
    }

    fn table(snapshots: Vec<PartitionFacts>) -> TableHealth {
        let promised = snapshots.last().map_or(NaiveDate::MIN, |p| p.date);
        TableHealth {
            table: TableName::new("appeals").unwrap(),
            schedule: Schedule::Daily,
            promised,
            fetched_by: promised,
            layers: vec![(Layer::Snapshot, snapshots)],
            quality: vec![],
            letters: vec![],
            findings: vec![],
        }
    }

    #[test]
    fn a_shrunk_snapshot_and_a_much_slower_stage_are_warnings() {
        let usual = table(vec![
            partition(1, 100, 60),
            partition(2, 101, 65),
            partition(3, 102, 55),
            partition(4, 103, 70),
        ]);
        assert!(warnings(&usual, "").is_empty());
        let odd = table(vec![
            partition(1, 100, 60),
            partition(2, 101, 65),
            partition(3, 102, 55),
            partition(4, 90, 400),
        ]);
        let found = warnings(&odd, "");
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0]
                .what
                .contains("shrank from 102 rows (20261103) to 90 (20261104)")
        );
        assert!(
            found[1]
                .what
                .contains("snapshot took 6 min 40 s on 20261104")
        );
        // Twice as slow but by less than a minute: the usual noise of short runs.
        let noisy = table(vec![
            partition(1, 100, 2),
            partition(2, 100, 3),
            partition(3, 100, 2),
            partition(4, 100, 30),
        ]);
        assert!(warnings(&noisy, "").is_empty());
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(human_duration(Duration::from_millis(12_340)), "12.3 s");
        assert_eq!(human_duration(Duration::from_secs(245)), "4 min 05 s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1 h 02 min");
    }
}
