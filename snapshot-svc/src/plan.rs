//! What goes into today's snapshot of a table, from the catalog: the plan of a run.
//!
//! - **The base** is the table's latest published snapshot before today, however old.
//! - **The increments applied** are the published increment partitions with `import_date` from
//!   the base's date up to today that the base does not already hold (a snapshot records the
//!   increments it holds with their run ids, [`parameters::INCLUDED_INCREMENTS`], so a
//!   re-published increment is applied again). Without a base, every increment from the latest
//!   full load up to today.
//! - **Nothing to do** (`Plan::up_to_date`): today's snapshot already holds the triggering
//!   increment run, or exactly what the plan would apply on the same base.
//! - **Never on a hole** (`Plan::check_coverage`, the rule in [`crate::coverage`]): every raw
//!   import of the window must have its increment published.
//! - **Still current** at publication (`Plan::check_no_race`): no other run published today's
//!   snapshot since the plan was made.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use common::catalog::PartitionInfo;
use common::layout::{Layer, PartitionRef, TableName, date_value, parse_date};
use common::platform::Platform;
use common::publish::published_partitions;

use crate::coverage::{Published as Catalogued, Window, find_holes, full_load_command};
use crate::error::{Result, SnapshotError};

/// Partition parameters this stage records on each snapshot partition.
pub mod parameters {
    /// `YYYYMMDD=<run id>,...`: the increment partitions (date and run) the snapshot holds,
    /// from the base's date on. Decides whether a message is already in today's snapshot.
    pub const INCLUDED_INCREMENTS: &str = "included_increments";
    /// `YYYYMMDD=<run id>,...`: the increments this run applied.
    pub const APPLIED_INCREMENTS: &str = "applied_increments";
    /// `YYYYMMDD` of the previous snapshot merged into this one, or empty.
    pub const BASE_SNAPSHOT_DATE: &str = "base_snapshot_date";
    /// The run id of that previous snapshot, or empty.
    pub const BASE_RUN_ID: &str = "base_run_id";
    pub const COPIED_FILES: &str = "copied_files";
    pub const REWRITTEN_FILES: &str = "rewritten_files";
    /// Files of the base merged in place (some column chunks copied as encoded).
    pub const PATCHED_FILES: &str = "patched_files";
    /// Column chunks the in-place merges copied as encoded bytes.
    pub const COPIED_COLUMN_CHUNKS: &str = "copied_column_chunks";
    pub const INCREMENT_ROWS: &str = "increment_rows";
    pub const REPLACED_ROWS: &str = "replaced_rows";
}

/// An increment partition as the snapshot knows it: its import date and the run that
/// published it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IncrementRun {
    pub date: NaiveDate,
    pub run_id: String,
}

/// The increments a snapshot holds, one run per import date.
pub(crate) type Included = BTreeMap<NaiveDate, String>;

pub(crate) fn encode_included<'a>(
    runs: impl IntoIterator<Item = (&'a NaiveDate, &'a String)>,
) -> String {
    runs.into_iter()
        .map(|(date, run)| format!("{}={run}", date_value(*date)))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn decode_included(text: Option<&String>) -> Included {
    text.map(|t| {
        t.split(',')
            .filter_map(|entry| {
                let (date, run) = entry.split_once('=')?;
                Some((parse_date(date)?, run.to_owned()))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The run that published a partition (its `run_id` parameter, else its location).
pub(crate) fn run_of(info: &PartitionInfo) -> String {
    info.parameters
        .get("run_id")
        .cloned()
        .unwrap_or_else(|| info.location.clone())
}

/// What to snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    pub table: TableName,
    /// The snapshot's date: the run's "today".
    pub today: NaiveDate,
    /// The increment whose arrival triggered the run, if any: when today's snapshot already
    /// holds it, the run does nothing.
    pub increment: Option<IncrementRun>,
    /// Merge and publish even when today's snapshot is up to date (an operator's rebuild).
    pub force: bool,
}

/// What the catalog says a run must do.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) snapshot: PartitionRef,
    /// Today's snapshot as published before this run, if any.
    pub(crate) today: Option<PartitionInfo>,
    pub(crate) base: Option<(NaiveDate, PartitionInfo)>,
    pub(crate) apply: Vec<(NaiveDate, PartitionInfo)>,
    pub(crate) included: Included,
    /// The imports the snapshot must hold (see [`crate::coverage`]).
    pub(crate) window: Window,
    /// The table's raw imports up to today, by date.
    pub(crate) raw: BTreeMap<NaiveDate, PartitionInfo>,
    /// The table's published increments, by date.
    pub(crate) increments: BTreeMap<NaiveDate, PartitionInfo>,
}

impl Plan {
    /// The plan of `request`, from the catalog. A triggering increment that is not published
    /// is [`SnapshotError::NotPublished`] (poison: nothing to wait for).
    pub(crate) async fn make(platform: &Platform, request: &SnapshotRequest) -> Result<Self> {
        let layout = &platform.layout;
        let catalog = platform.catalog.as_ref();
        let catalog_error = |source| SnapshotError::Catalog {
            table: request.table.to_string(),
            source: Box::new(source),
        };
        let snapshot = layout.partition(&request.table, Layer::Snapshot, request.today);
        let snapshots = published_partitions(catalog, &snapshot)
            .await
            .map_err(catalog_error)?;
        let today = snapshots
            .iter()
            .find(|(date, _)| *date == request.today)
            .map(|(_, info)| info.clone());
        let base = snapshots
            .into_iter()
            .rfind(|(date, _)| *date < request.today);
        let increment_of = layout.partition(&request.table, Layer::Increment, request.today);
        let increments = published_partitions(catalog, &increment_of)
            .await
            .map_err(catalog_error)?;
        let raw_of = layout.partition(&request.table, Layer::Raw, request.today);
        let raw: Vec<(NaiveDate, PartitionInfo)> = published_partitions(catalog, &raw_of)
            .await
            .map_err(catalog_error)?
            .into_iter()
            .filter(|(date, _)| *date <= request.today)
            .collect();
        let window = Window::of(base.as_ref().map(|(date, _)| *date), &raw);
        // A message naming an increment that does not exist is poison, not "nothing to do":
        // it goes to the dead-letter queue where an operator sees it.
        if let Some(increment) = &request.increment
            && !increments.iter().any(|(date, _)| *date == increment.date)
        {
            return Err(SnapshotError::NotPublished {
                partition: layout
                    .partition(&request.table, Layer::Increment, increment.date)
                    .describe(),
            });
        }
        let held: Included = base
            .as_ref()
            .map(|(date, info)| {
                decode_included(info.parameters.get(parameters::INCLUDED_INCREMENTS))
                    .into_iter()
                    .filter(|(d, _)| d >= date)
                    .collect()
            })
            .unwrap_or_default();
        let mut included = held.clone();
        let mut apply = Vec::new();
        // From the base's date (its increments not yet held), or without a base from the latest
        // full load: an older increment is already in that load.
        let from = match window {
            Window::AfterBase(date) | Window::FromFullLoad(date) => Some(date),
            Window::NoFullLoad => None,
        };
        for (date, info) in &increments {
            let (date, info) = (*date, info.clone());
            if from.is_some_and(|from| date < from) || date > request.today {
                continue;
            }
            let run = run_of(&info);
            if held.get(&date) != Some(&run) {
                included.insert(date, run);
                apply.push((date, info));
            }
        }
        Ok(Plan {
            snapshot,
            today,
            base,
            apply,
            included,
            window,
            raw: raw.into_iter().collect(),
            increments: increments.into_iter().collect(),
        })
    }

    /// The increments the plan applies, with the runs that published them.
    pub(crate) fn applied(&self) -> Vec<IncrementRun> {
        self.apply
            .iter()
            .map(|(date, info)| IncrementRun {
                date: *date,
                run_id: run_of(info),
            })
            .collect()
    }

    /// Why the run has nothing to do, if so: today's snapshot holds the triggering increment run,
    /// or holds exactly what the plan would apply on the same base.
    pub(crate) fn up_to_date(&self, request: &SnapshotRequest) -> Option<String> {
        let today = self.today.as_ref()?;
        let held = decode_included(today.parameters.get(parameters::INCLUDED_INCREMENTS));
        let snapshot_date = date_value(request.today);
        if let Some(increment) = &request.increment
            && held.get(&increment.date) == Some(&increment.run_id)
        {
            return Some(format!(
                "increment {} import_date={} run {} is already in today's snapshot (snapshot_date={snapshot_date})",
                request.table,
                date_value(increment.date),
                increment.run_id
            ));
        }
        let same_base = today
            .parameters
            .get(parameters::BASE_RUN_ID)
            .map(String::as_str)
            .unwrap_or_default()
            == self
                .base
                .as_ref()
                .map(|(_, info)| run_of(info))
                .unwrap_or_default();
        (same_base && held == self.included).then(|| {
            format!(
                "{}: every published increment is already in today's snapshot (snapshot_date={snapshot_date})",
                request.table
            )
        })
    }

    /// `Ok` when every import of the plan's window has its increment published; otherwise the
    /// error that names what is missing and how to repair it. Lists the parsed partitions only
    /// when there is a hole.
    pub(crate) async fn check_coverage(
        &self,
        platform: &Platform,
        request: &SnapshotRequest,
        hole_grace: Duration,
    ) -> Result<()> {
        let table = &request.table;
        let snapshot_date = date_value(request.today);
        if self.window == Window::NoFullLoad {
            let err = SnapshotError::NoFullLoad {
                table: table.to_string(),
                snapshot_date,
                repair: full_load_command(table),
            };
            tracing::error!(table = %table, error = %err, "first snapshot refused: no full load");
            return Err(err);
        }
        let lacking = self
            .raw
            .keys()
            .any(|date| self.window.holds(*date) && !self.increments.contains_key(date));
        if !lacking {
            return Ok(());
        }
        let parsed_of = platform
            .layout
            .partition(table, Layer::Parsed, request.today);
        let parsed: BTreeMap<NaiveDate, PartitionInfo> =
            published_partitions(platform.catalog.as_ref(), &parsed_of)
                .await
                .map_err(|source| SnapshotError::Catalog {
                    table: table.to_string(),
                    source: Box::new(source),
                })?
                .into_iter()
                .collect();
        let published = Catalogued {
            raw: &self.raw,
            parsed: &parsed,
            increments: &self.increments,
        };
        let Some(holes) = find_holes(
            table,
            request.today,
            self.window,
            published,
            Utc::now(),
            hole_grace,
        ) else {
            return Ok(());
        };
        let err = SnapshotError::Hole(Box::new(holes));
        if err.is_transient() {
            tracing::warn!(table = %table, snapshot_date, error = %err, "snapshot waits for work in flight");
        } else {
            tracing::error!(table = %table, snapshot_date, error = %err, "snapshot refused: a hole");
        }
        Err(err)
    }

    /// `Err(Raced)` when today's snapshot was published by another run since the plan was made
    /// (another process merging the same table): publishing now could drop what it applied.
    pub(crate) async fn check_no_race(
        &self,
        platform: &Platform,
        request: &SnapshotRequest,
    ) -> Result<()> {
        let now = published_partitions(platform.catalog.as_ref(), &self.snapshot)
            .await
            .map_err(|source| SnapshotError::Catalog {
                table: request.table.to_string(),
                source: Box::new(source),
            })?
            .into_iter()
            .find(|(date, _)| *date == request.today)
            .map(|(_, info)| run_of(&info));
        if now == self.today.as_ref().map(run_of) {
            return Ok(());
        }
        Err(SnapshotError::Raced {
            table: request.table.to_string(),
            snapshot_date: date_value(request.today),
            other_run: now.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn included_increments_round_trip_and_skip_garbage() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let included: Included = [(day(20), "a".to_string()), (day(21), "b".to_string())].into();
        let text = encode_included(&included);
        assert_eq!(text, "20261120=a,20261121=b");
        assert_eq!(decode_included(Some(&text)), included);
        assert_eq!(
            decode_included(Some(&"junk,2026=x,20261121=b".to_string())).len(),
            1
        );
        assert!(decode_included(None).is_empty());
    }
}
