//! The rule that a snapshot is never built on a hole.
//!
//! Every import of a table is a published raw partition (`api_response_<table>`, one per
//! `import_date`). A snapshot may be published only when every import it should hold has
//! reached the increment layer:
//!
//! - with a base snapshot of date B, the imports dated after B up to today;
//! - without one (the table's first snapshot, or after a reset of every snapshot), the imports
//!   from the latest full load up to today: a first snapshot made of increments alone would be a
//!   fraction of the table (the night whose full load never reached the increment layer). With
//!   no full load at all, a first snapshot is refused.
//!
//! A raw import whose increment is not published is a *hole*. The stage then publishes nothing
//! and stops with [`Holes`], which names each missing partition (the first layer of the chain
//! raw → parsed → increment that is not published) and the `tascomi` command that publishes it.
//!
//! A hole is *in flight* when the work that fills it has probably started (see
//! [`MissingPartition::in_flight`]): the partition it is made from was published within the
//! grace period (`TASCOMI_SNAPSHOT_HOLE_GRACE_SECS`), or the stage that makes it published a
//! partition of an earlier import of the same window within the grace period (a replay of
//! several days works through them in date order). A hole made only of missing partitions in
//! flight is transient (the message is retried, and ends in the dead-letter queue with this
//! reason if the retries run out); any other is permanent (dead-lettered at once).
//!
//! Publication times are the `published_at` parameter `common::publish` records on every
//! partition it publishes. A partition without one was published before that parameter existed,
//! so it is older than any grace period: it never makes a hole in flight.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use common::catalog::PartitionInfo;
use common::layout::{Layer, TableName, date_value};

/// Raw partition parameter written by ingest-svc: `full` or `incremental`.
pub const IMPORT_KIND: &str = "import_kind";
/// Raw partition parameter of older ingest runs: `full`, `incremental` or `retry-failed`. Read
/// only when [`IMPORT_KIND`] is absent.
pub const MODE: &str = "mode";
/// Partition parameter `common::publish` records: when the partition was published (RFC 3339).
pub const PUBLISHED_AT: &str = "published_at";

/// Whether a raw partition is a full load of its table: `import_kind=full`, or, on a partition
/// written before ingest recorded `import_kind`, `mode=full`.
pub fn is_full_load(raw: &PartitionInfo) -> bool {
    match raw.parameters.get(IMPORT_KIND) {
        Some(kind) => kind == "full",
        None => raw.parameters.get(MODE).is_some_and(|mode| mode == "full"),
    }
}

/// When a partition was published, if it says.
pub fn published_at(info: &PartitionInfo) -> Option<DateTime<Utc>> {
    let text = info.parameters.get(PUBLISHED_AT)?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// The imports a snapshot must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The imports dated after the base snapshot's date (not on it) up to today.
    AfterBase(NaiveDate),
    /// No base: the imports from this full load (on it) up to today.
    FromFullLoad(NaiveDate),
    /// No base and no full load up to today: no first snapshot can be made.
    NoFullLoad,
}

impl Window {
    /// The window of a snapshot with this base (its date), given the table's raw imports up to
    /// today (in any order).
    pub fn of(base: Option<NaiveDate>, raw: &[(NaiveDate, PartitionInfo)]) -> Self {
        if let Some(base) = base {
            return Window::AfterBase(base);
        }
        raw.iter()
            .filter(|(_, info)| is_full_load(info))
            .map(|(date, _)| *date)
            .max()
            .map_or(Window::NoFullLoad, Window::FromFullLoad)
    }

    /// Whether an import of `date` (at most today) is one the snapshot must hold.
    pub fn holds(self, date: NaiveDate) -> bool {
        match self {
            Window::AfterBase(base) => date > base,
            Window::FromFullLoad(full) => date >= full,
            Window::NoFullLoad => false,
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::AfterBase(base) => write!(
                f,
                "those after the base snapshot_date={}",
                date_value(*base)
            ),
            Window::FromFullLoad(full) => write!(
                f,
                "no base: those from the latest full load, import_date={}",
                date_value(*full)
            ),
            Window::NoFullLoad => f.write_str("no base and no full load"),
        }
    }
}

/// One import of the window that has not reached the increment layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingPartition {
    pub table: TableName,
    /// The first layer of the chain raw → parsed → increment that is not published for this
    /// import: [`Layer::Parsed`] (and so the increment too) or [`Layer::Increment`].
    pub layer: Layer,
    pub import_date: NaiveDate,
    /// Why the work that publishes it has probably started, if it has: the hole may close by
    /// itself.
    pub in_flight: Option<String>,
}

impl MissingPartition {
    /// The `tascomi replay` stage that publishes the missing layer from the one before it.
    pub fn stage(&self) -> &'static str {
        match self.layer {
            Layer::Parsed => "parse",
            _ => "recast",
        }
    }
}

impl fmt::Display for MissingPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} import_date={} is not published",
            self.table,
            self.layer,
            date_value(self.import_date)
        )?;
        if self.layer == Layer::Parsed {
            f.write_str(" (nor its increment)")?;
        }
        if let Some(why) = &self.in_flight {
            write!(f, " (probably in flight: {why})")?;
        }
        Ok(())
    }
}

/// Why a snapshot was not built: the imports of its window that did not reach the increment
/// layer, and the commands that repair them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holes {
    pub table: TableName,
    pub snapshot_date: NaiveDate,
    pub window: Window,
    /// In import date order.
    pub missing: Vec<MissingPartition>,
    /// `tascomi replay ...` commands that publish the missing partitions, one per stage and run
    /// of consecutive missing imports.
    pub repairs: Vec<String>,
}

impl Holes {
    /// True when every missing partition is in flight: retrying later may find them published.
    pub fn is_transient(&self) -> bool {
        self.missing.iter().all(|m| m.in_flight.is_some())
    }
}

impl fmt::Display for Holes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let missing: Vec<String> = self.missing.iter().map(ToString::to_string).collect();
        write!(
            f,
            "{} snapshot snapshot_date={}: not built on a hole, nothing published: {} import{} it must hold ({}, up to today) did not reach the increment layer: {}; repair: {}",
            self.table,
            date_value(self.snapshot_date),
            self.missing.len(),
            if self.missing.len() == 1 { "" } else { "s" },
            self.window,
            missing.join("; "),
            self.repairs.join(" and "),
        )?;
        if self.is_transient() {
            f.write_str(" (retried: the missing work is probably in flight)")?;
        }
        Ok(())
    }
}

/// The command that loads a table in full, starting a new window for a first snapshot.
pub fn full_load_command(table: &TableName) -> String {
    format!("tascomi ingest --table {table} --mode full")
}

/// The catalog's partitions of one table, by layer, as the hole check reads them.
#[derive(Debug, Clone, Copy)]
pub struct Published<'a> {
    /// Raw imports, by date.
    pub raw: &'a BTreeMap<NaiveDate, PartitionInfo>,
    pub parsed: &'a BTreeMap<NaiveDate, PartitionInfo>,
    pub increments: &'a BTreeMap<NaiveDate, PartitionInfo>,
}

impl Published<'_> {
    fn layer(&self, layer: Layer) -> &BTreeMap<NaiveDate, PartitionInfo> {
        match layer {
            Layer::Raw => self.raw,
            Layer::Parsed => self.parsed,
            _ => self.increments,
        }
    }
}

/// The holes of a snapshot of `today` with this window, or `None` when every import of the
/// window has its increment. `now` and `grace` decide which missing partitions are in flight.
/// The window must not be [`Window::NoFullLoad`] (which has no imports: `None`).
pub fn find_holes(
    table: &TableName,
    today: NaiveDate,
    window: Window,
    published: Published<'_>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Option<Holes> {
    let imports: Vec<NaiveDate> = published
        .raw
        .keys()
        .copied()
        .filter(|date| *date <= today && window.holds(*date))
        .collect();
    let recent = |info: &PartitionInfo| -> Option<String> {
        let at = published_at(info)?;
        let age = now.signed_duration_since(at);
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        (age < grace).then(|| format!("{}s ago", age.num_seconds().max(0)))
    };
    let mut missing = Vec::new();
    // Runs of consecutive imports (in the window) missing the same layer: (stage, from, to).
    let mut runs: Vec<(&'static str, NaiveDate, NaiveDate)> = Vec::new();
    let mut previous_missing: Option<&'static str> = None;
    for date in &imports {
        if published.increments.contains_key(date) {
            previous_missing = None;
            continue;
        }
        let layer = if published.parsed.contains_key(date) {
            Layer::Increment
        } else {
            Layer::Parsed
        };
        let upstream = layer.upstream().unwrap_or(Layer::Raw);
        let from_upstream = published
            .layer(upstream)
            .get(date)
            .and_then(recent)
            .map(|age| {
                format!(
                    "{upstream} import_date={} published {age}",
                    date_value(*date)
                )
            });
        let working_through = || {
            published
                .layer(layer)
                .range(..*date)
                .rev()
                .filter(|(d, _)| window.holds(**d))
                .find_map(|(d, info)| recent(info).map(|age| (d, age)))
                .map(|(d, age)| {
                    format!(
                        "{layer} import_date={} was published {age}, an earlier import of the same window: a replay working through the days in order",
                        date_value(*d)
                    )
                })
        };
        let part = MissingPartition {
            table: table.clone(),
            layer,
            import_date: *date,
            in_flight: from_upstream.or_else(working_through),
        };
        let stage = part.stage();
        match runs.last_mut() {
            Some((run_stage, _, to)) if previous_missing == Some(stage) && *run_stage == stage => {
                *to = *date
            }
            _ => runs.push((stage, *date, *date)),
        }
        previous_missing = Some(stage);
        missing.push(part);
    }
    if missing.is_empty() {
        return None;
    }
    let repairs = runs
        .into_iter()
        .map(|(stage, from, to)| {
            format!("tascomi replay --stage {stage} --table {table} --from {from} --to {to}")
        })
        .collect();
    Some(Holes {
        table: table.clone(),
        snapshot_date: today,
        window,
        missing,
        repairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn at(hours_ago: i64) -> DateTime<Utc> {
        now() - chrono::Duration::hours(hours_ago)
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-10T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn info(parameters: &[(&str, String)]) -> PartitionInfo {
        PartitionInfo {
            values: vec![],
            location: "s3://b/k/".into(),
            parameters: parameters
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    fn published(hours_ago: i64) -> PartitionInfo {
        info(&[(PUBLISHED_AT, at(hours_ago).to_rfc3339())])
    }

    fn raw(kind: &str, hours_ago: i64) -> PartitionInfo {
        info(&[
            (IMPORT_KIND, kind.to_string()),
            (PUBLISHED_AT, at(hours_ago).to_rfc3339()),
        ])
    }

    fn table() -> TableName {
        TableName::new("applications").unwrap()
    }

    const GRACE: Duration = Duration::from_secs(1800);

    /// The holes of `table()`'s snapshot of `today`, in the window after the base of day 1.
    fn holes_after_day_1(
        today: NaiveDate,
        published: Published<'_>,
        now: DateTime<Utc>,
        grace: Duration,
    ) -> Holes {
        let window = Window::AfterBase(day(1));
        find_holes(&table(), today, window, published, now, grace).expect("holes")
    }

    #[test]
    fn full_loads_are_read_from_import_kind_then_mode() {
        assert!(is_full_load(&info(&[(IMPORT_KIND, "full".into())])));
        assert!(!is_full_load(&info(&[(IMPORT_KIND, "incremental".into())])));
        assert!(is_full_load(&info(&[(MODE, "full".into())])));
        assert!(!is_full_load(&info(&[(MODE, "retry-failed".into())])));
        assert!(!is_full_load(&info(&[
            (IMPORT_KIND, "incremental".into()),
            (MODE, "full".into())
        ])));
        assert!(!is_full_load(&info(&[])));
    }

    #[test]
    fn the_window_starts_after_the_base_or_at_the_latest_full_load() {
        let raws = vec![
            (day(1), raw("full", 200)),
            (day(2), raw("incremental", 100)),
            (day(3), raw("full", 50)),
            (day(4), raw("incremental", 1)),
        ];
        assert_eq!(Window::of(Some(day(2)), &raws), Window::AfterBase(day(2)));
        assert_eq!(Window::of(None, &raws), Window::FromFullLoad(day(3)));
        assert_eq!(Window::of(None, &raws[1..2]), Window::NoFullLoad);
        assert!(!Window::AfterBase(day(2)).holds(day(2)));
        assert!(Window::AfterBase(day(2)).holds(day(3)));
        assert!(Window::FromFullLoad(day(3)).holds(day(3)));
        assert!(!Window::FromFullLoad(day(3)).holds(day(2)));
        assert!(!Window::NoFullLoad.holds(day(3)));
    }

    /// A killed night (raw of day 2 only), a night whose recast did not run (day 4), and days
    /// 5-6 never parsed: each named with the command that repairs it; all old, so permanent.
    #[test]
    fn holes_name_each_missing_partition_and_its_repair() {
        let raw_parts: BTreeMap<_, _> = (1..=7)
            .map(|d| {
                (
                    day(d),
                    raw(if d == 1 { "full" } else { "incremental" }, 200),
                )
            })
            .collect();
        let parsed: BTreeMap<_, _> = [1, 3, 4, 7].map(|d| (day(d), published(190))).into();
        let increments: BTreeMap<_, _> = [1, 3, 7].map(|d| (day(d), published(180))).into();
        let published = Published {
            raw: &raw_parts,
            parsed: &parsed,
            increments: &increments,
        };
        let holes = holes_after_day_1(day(7), published, now(), GRACE);
        let missing: Vec<_> = holes
            .missing
            .iter()
            .map(|m| (m.layer, m.import_date))
            .collect();
        assert_eq!(
            missing,
            [
                (Layer::Parsed, day(2)),
                (Layer::Increment, day(4)),
                (Layer::Parsed, day(5)),
                (Layer::Parsed, day(6)),
            ]
        );
        assert_eq!(
            holes.repairs,
            [
                "tascomi replay --stage parse --table applications --from 2026-11-02 --to 2026-11-02",
                "tascomi replay --stage recast --table applications --from 2026-11-04 --to 2026-11-04",
                "tascomi replay --stage parse --table applications --from 2026-11-05 --to 2026-11-06",
            ]
        );
        assert!(!holes.is_transient());
        let text = holes.to_string();
        assert!(
            text.starts_with("applications snapshot snapshot_date=20261107: not built on a hole, nothing published: 4 imports it must hold (those after the base snapshot_date=20261101, up to today) did not reach the increment layer: "),
            "{text}"
        );
        assert!(
            text.contains(
                "applications parsed import_date=20261102 is not published (nor its increment)"
            ),
            "{text}"
        );
        assert!(
            text.contains("applications increment import_date=20261104 is not published;"),
            "{text}"
        );
        assert!(!text.contains("in flight"), "{text}");
    }

    #[test]
    fn no_hole_when_every_import_has_its_increment() {
        let raw_parts: BTreeMap<_, _> = [(day(1), raw("full", 5)), (day(2), raw("full", 0))].into();
        let increments: BTreeMap<_, _> = [(day(1), published(4)), (day(2), published(0))].into();
        let published = Published {
            raw: &raw_parts,
            parsed: &increments,
            increments: &increments,
        };
        let window = Window::FromFullLoad(day(1));
        assert_eq!(
            find_holes(&table(), day(2), window, published, now(), GRACE),
            None
        );
        // Imports after today (a backfill's today) are not the snapshot's concern.
        let raw_parts: BTreeMap<_, _> = [(day(1), raw("full", 5)), (day(3), raw("full", 0))].into();
        let published = Published {
            raw: &raw_parts,
            ..published
        };
        assert_eq!(
            find_holes(&table(), day(2), window, published, now(), GRACE),
            None
        );
    }

    /// In flight: a replay of several days that has reached an earlier day of the window
    /// (so the later days are coming), or today's raw import just published (parse runs).
    /// Transient only when every missing partition is in flight.
    #[test]
    fn recent_work_makes_a_hole_in_flight() {
        let raw_parts: BTreeMap<_, _> = [
            (day(1), raw("full", 100)),
            (day(2), raw("incremental", 50)),
            (day(3), raw("incremental", 30)),
            (day(4), info(&[(MODE, "incremental".into())])),
        ]
        .into();
        let parsed: BTreeMap<_, _> = [(day(1), published(99)), (day(2), published(0))].into();
        let replaying = Published {
            raw: &raw_parts,
            parsed: &parsed,
            increments: &parsed,
        };
        let holes = holes_after_day_1(day(4), replaying, now(), GRACE);
        assert_eq!(holes.missing.len(), 2, "{holes}");
        assert!(holes.is_transient(), "{holes}");
        assert!(
            holes
                .to_string()
                .contains("parsed import_date=20261102 was published 0s ago"),
            "{holes}"
        );
        // The parse of day 2 long done: the same holes are permanent.
        let parsed: BTreeMap<_, _> = [(day(1), published(99)), (day(2), published(49))].into();
        let done = Published {
            parsed: &parsed,
            increments: &parsed,
            ..replaying
        };
        let holes = holes_after_day_1(day(4), done, now(), GRACE);
        assert!(
            holes.missing.iter().all(|m| m.in_flight.is_none()),
            "{holes}"
        );

        // Today's import published 40 seconds ago, not parsed yet.
        let raw_parts: BTreeMap<_, _> =
            [(day(1), raw("full", 100)), (day(2), raw("incremental", 0))].into();
        let parsed: BTreeMap<_, _> = [(day(1), published(99))].into();
        let tonight = Published {
            raw: &raw_parts,
            parsed: &parsed,
            increments: &parsed,
        };
        let later = now() + chrono::Duration::seconds(40);
        let holes = holes_after_day_1(day(2), tonight, later, GRACE);
        assert!(holes.is_transient(), "{holes}");
        let text = holes.to_string();
        assert!(
            text.contains("(probably in flight: raw import_date=20261102 published 40s ago)"),
            "{text}"
        );
        assert!(text.ends_with("(retried: the missing work is probably in flight)"));
        // With no grace, the same hole is permanent.
        let holes = holes_after_day_1(day(2), tonight, later, Duration::ZERO);
        assert!(!holes.is_transient());
    }
}
