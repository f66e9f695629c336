//! What ingest remembers per table: its imports, which days they fetched completely, and the
//! pages that failed. The watermark comes from here, never from whether data arrived, so a quiet
//! table does not look back further each night.
//!
//! One small JSON document per table in the raw bucket, `planning/tascomi/_state/ingest/<table>.json`,
//! written only after the import's partition is published. An import is keyed by its import date
//! (the raw partition's date); the plan for a day is computed from the imports *before* that day
//! only, so handling the same request twice plans the same fetches and publishes the same rows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use common::TableName;
use common::storage::{Storage, StorageError};
use serde::{Deserialize, Serialize};

/// Key prefix of the state documents in the raw bucket.
pub const STATE_PREFIX: &str = "planning/tascomi/_state/ingest/";
/// The state format this build reads and writes.
pub const STATE_VERSION: u32 = 1;
/// Imports kept at most (the oldest incremental ones go first).
const MAX_IMPORTS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("ingest state of table {table}: {source}")]
    Storage {
        table: String,
        #[source]
        source: StorageError,
    },
    #[error("ingest state of table {table} at s3://{bucket}/{key} is unreadable: {message}")]
    Corrupt {
        table: String,
        bucket: String,
        key: String,
        message: String,
    },
}

impl StateError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StateError::Storage { source, .. } if source.is_transient())
    }
}

/// How an import fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    /// The whole table.
    Full,
    /// One query per London day.
    Incremental,
}

/// A page that failed after retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedPage {
    /// The `last_updated` day of the query; `None` for a full load.
    pub day: Option<NaiveDate>,
    pub page_number: u32,
    pub url: String,
    pub status_code: Option<u16>,
    pub error: String,
    /// The query's first page (the count request) failed, so its other pages were never
    /// fetched either: a retry fetches the whole query.
    #[serde(default)]
    pub whole_query: bool,
}

/// One import: one published raw partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRecord {
    pub import_date: NaiveDate,
    pub kind: ImportKind,
    pub run_id: String,
    /// `s3://bucket/<run folder>/` of the published files.
    pub location: String,
    pub finished_at: DateTime<Utc>,
    /// Days queried (incremental).
    #[serde(default)]
    pub days_requested: Vec<NaiveDate>,
    /// Days all of whose pages succeeded (incremental).
    #[serde(default)]
    pub days_completed: Vec<NaiveDate>,
    /// Days the lookback cap cut off: never fetched, given up (a full load fills the gap).
    #[serde(default)]
    pub days_cut: Vec<NaiveDate>,
    pub records_written: u64,
    pub records_skipped_today: u64,
    pub failed_pages: Vec<FailedPage>,
}

impl ImportRecord {
    /// Every page succeeded.
    pub fn is_complete(&self) -> bool {
        self.failed_pages.is_empty()
    }

    /// Recomputes the completed days from the requested days and the failed pages.
    pub fn settle_days(&mut self) {
        let failed: BTreeSet<Option<NaiveDate>> = self.failed_pages.iter().map(|p| p.day).collect();
        self.days_completed = self
            .days_requested
            .iter()
            .copied()
            .filter(|day| !failed.contains(&Some(*day)))
            .collect();
    }
}

/// A table's ingest state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    pub version: u32,
    pub table: TableName,
    /// Imports by import date, oldest first.
    pub imports: BTreeMap<NaiveDate, ImportRecord>,
}

/// What a run on a given day fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Full {
        reason: String,
    },
    Incremental {
        /// Days to query, oldest first (may be empty: everything is fetched already).
        days: Vec<NaiveDate>,
        /// Days not fetched yet but older than the lookback cap allows.
        cut: Vec<NaiveDate>,
        /// The day of the last successful full load the increments build on.
        since: NaiveDate,
    },
}

impl TableState {
    pub fn new(table: TableName) -> Self {
        Self {
            version: STATE_VERSION,
            table,
            imports: BTreeMap::new(),
        }
    }

    pub fn key(table: &TableName) -> String {
        format!("{STATE_PREFIX}{table}.json")
    }

    /// The latest import (by import date).
    pub fn latest(&self) -> Option<&ImportRecord> {
        self.imports.values().next_back()
    }

    /// The latest import before `day` in which every page succeeded.
    pub fn last_successful_import(&self, before: NaiveDate) -> Option<NaiveDate> {
        self.imports
            .range(..before)
            .rev()
            .find(|(_, import)| import.is_complete())
            .map(|(date, _)| *date)
    }

    /// What an incremental run on `today` fetches, from the imports before `today` only.
    ///
    /// Without an earlier complete full load, a full load. Otherwise every London day from that
    /// full load's day (whose records it skipped as "today") up to yesterday that no earlier
    /// import fetched completely (or gave up), at most `max_lookback_days` days back.
    pub fn plan_incremental(&self, today: NaiveDate, max_lookback_days: u32) -> Plan {
        let prior = || self.imports.range(..today).map(|(_, import)| import);
        let Some(since) = prior()
            .filter(|i| i.kind == ImportKind::Full && i.is_complete())
            .map(|i| i.import_date)
            .next_back()
        else {
            return Plan::Full {
                reason: "no earlier complete full import".into(),
            };
        };
        let covered: BTreeSet<NaiveDate> = prior()
            .filter(|i| i.import_date >= since)
            .flat_map(|i| i.days_completed.iter().chain(&i.days_cut).copied())
            .collect();
        let earliest = today - chrono::Duration::days(i64::from(max_lookback_days));
        let (days, cut): (Vec<NaiveDate>, Vec<NaiveDate>) = since
            .iter_days()
            .take_while(|day| *day < today)
            .filter(|day| !covered.contains(day))
            .partition(|day| *day >= earliest);
        Plan::Incremental { days, cut, since }
    }

    /// Records an import (replacing one of the same date) and forgets what no plan needs any
    /// more: imports before the latest complete full load.
    pub fn record(&mut self, import: ImportRecord) {
        self.imports.insert(import.import_date, import);
        if let Some(full) = self
            .imports
            .values()
            .filter(|i| i.kind == ImportKind::Full && i.is_complete())
            .map(|i| i.import_date)
            .next_back()
        {
            self.imports.retain(|date, _| *date >= full);
        }
        while self.imports.len() > MAX_IMPORTS {
            let oldest = self
                .imports
                .iter()
                .find(|(_, i)| i.kind == ImportKind::Incremental)
                .map(|(date, _)| *date);
            match oldest {
                Some(date) => self.imports.remove(&date),
                None => break,
            };
        }
    }
}

/// Reads a table's state; a table never imported has an empty one.
pub async fn load(
    storage: &Arc<dyn Storage>,
    bucket: &str,
    table: &TableName,
) -> Result<TableState, StateError> {
    let key = TableState::key(table);
    let body = match storage.get(bucket, &key).await {
        Ok(body) => body,
        Err(StorageError::NotFound { .. }) => return Ok(TableState::new(table.clone())),
        Err(source) => {
            return Err(StateError::Storage {
                table: table.to_string(),
                source,
            });
        }
    };
    let corrupt = |message: String| StateError::Corrupt {
        table: table.to_string(),
        bucket: bucket.to_owned(),
        key: key.clone(),
        message,
    };
    let state: TableState = serde_json::from_slice(&body).map_err(|e| corrupt(e.to_string()))?;
    if state.version != STATE_VERSION {
        return Err(corrupt(format!(
            "version {} is not supported (this build reads {STATE_VERSION})",
            state.version
        )));
    }
    if &state.table != table {
        return Err(corrupt(format!("it belongs to table {}", state.table)));
    }
    Ok(state)
}

/// Writes a table's state (one object, replaced whole).
pub async fn save(
    storage: &Arc<dyn Storage>,
    bucket: &str,
    state: &TableState,
) -> Result<(), StateError> {
    let body = serde_json::to_vec_pretty(state).map_err(|e| StateError::Corrupt {
        table: state.table.to_string(),
        bucket: bucket.to_owned(),
        key: TableState::key(&state.table),
        message: e.to_string(),
    })?;
    storage
        .put(bucket, &TableState::key(&state.table), Bytes::from(body))
        .await
        .map_err(|source| StateError::Storage {
            table: state.table.to_string(),
            source,
        })
}

/// Days as compact ranges for logs: `2026-01-01..2026-01-05 (5 days), 2026-01-09`.
pub fn describe_days(days: &[NaiveDate]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < days.len() {
        let start = days[i];
        let mut end = start;
        while i + 1 < days.len() && days[i + 1] == end.succ_opt().unwrap_or(end) {
            i += 1;
            end = days[i];
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        if start == end {
            let _ = write!(out, "{start}");
        } else {
            let n = (end - start).num_days() + 1;
            let _ = write!(out, "{start}..{end} ({n} days)");
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap() + chrono::Duration::days(i64::from(day) - 1)
    }

    fn import(
        date: NaiveDate,
        kind: ImportKind,
        days: &[NaiveDate],
        failed: &[Option<NaiveDate>],
    ) -> ImportRecord {
        let mut record = ImportRecord {
            import_date: date,
            kind,
            run_id: format!("run-{date}"),
            location: format!("s3://raw/x/{date}/"),
            finished_at: Utc::now(),
            days_requested: days.to_vec(),
            days_completed: Vec::new(),
            days_cut: Vec::new(),
            records_written: 0,
            records_skipped_today: 0,
            failed_pages: failed
                .iter()
                .map(|day| FailedPage {
                    day: *day,
                    page_number: 2,
                    url: "u".into(),
                    status_code: Some(500),
                    error: "http 500".into(),
                    whole_query: false,
                })
                .collect(),
        };
        record.settle_days();
        record
    }

    fn state() -> TableState {
        TableState::new("appeals".parse().unwrap())
    }

    #[test]
    fn a_table_without_a_complete_full_load_is_loaded_in_full() {
        let mut s = state();
        assert!(matches!(s.plan_incremental(d(10), 60), Plan::Full { .. }));
        s.record(import(d(10), ImportKind::Full, &[], &[None]));
        assert!(matches!(s.plan_incremental(d(11), 60), Plan::Full { .. }));
    }

    #[test]
    fn increments_run_from_the_full_load_day_to_yesterday() {
        let mut s = state();
        s.record(import(d(10), ImportKind::Full, &[], &[]));
        assert_eq!(
            s.plan_incremental(d(11), 60),
            Plan::Incremental {
                days: vec![d(10)],
                cut: vec![],
                since: d(10)
            }
        );
        // Missed nights are caught up.
        assert_eq!(
            s.plan_incremental(d(13), 60),
            Plan::Incremental {
                days: vec![d(10), d(11), d(12)],
                cut: vec![],
                since: d(10)
            }
        );
    }

    #[test]
    fn a_quiet_table_does_not_look_back_further_each_night() {
        let mut s = state();
        s.record(import(d(1), ImportKind::Full, &[], &[]));
        for night in 2..=20 {
            let Plan::Incremental { days, .. } = s.plan_incremental(d(night), 60) else {
                panic!()
            };
            assert_eq!(days, vec![d(night - 1)], "night {night}");
            // Nothing arrived, but every page (none) succeeded: the day is done.
            s.record(import(d(night), ImportKind::Incremental, &days, &[]));
        }
    }

    #[test]
    fn a_day_with_a_failed_page_is_fetched_again_and_others_are_not() {
        let mut s = state();
        s.record(import(d(1), ImportKind::Full, &[], &[]));
        s.record(import(
            d(4),
            ImportKind::Incremental,
            &[d(1), d(2), d(3)],
            &[Some(d(2))],
        ));
        assert_eq!(
            s.plan_incremental(d(5), 60),
            Plan::Incremental {
                days: vec![d(2), d(4)],
                cut: vec![],
                since: d(1)
            }
        );
    }

    #[test]
    fn the_plan_for_a_day_ignores_that_days_own_import() {
        let mut s = state();
        s.record(import(d(1), ImportKind::Full, &[], &[]));
        let first = s.plan_incremental(d(3), 60);
        s.record(import(d(3), ImportKind::Incremental, &[d(1), d(2)], &[]));
        assert_eq!(s.plan_incremental(d(3), 60), first);
        // A repeated full load of the first day is planned as a full load again.
        let mut s = state();
        s.record(import(d(1), ImportKind::Full, &[], &[]));
        assert!(matches!(s.plan_incremental(d(1), 60), Plan::Full { .. }));
    }

    #[test]
    fn the_lookback_cap_cuts_old_days_once_and_names_them() {
        let mut s = state();
        s.record(import(d(1), ImportKind::Full, &[], &[]));
        let Plan::Incremental { days, cut, .. } = s.plan_incremental(d(11), 3) else {
            panic!()
        };
        assert_eq!(days, vec![d(8), d(9), d(10)]);
        assert_eq!(cut, (1..=7).map(d).collect::<Vec<_>>());
        assert_eq!(describe_days(&cut), "2026-11-01..2026-11-07 (7 days)");
        let mut record = import(d(11), ImportKind::Incremental, &days, &[]);
        record.days_cut = cut;
        s.record(record);
        let Plan::Incremental { days, cut, .. } = s.plan_incremental(d(12), 3) else {
            panic!()
        };
        assert_eq!((days, cut), (vec![d(11)], vec![]));
        assert_eq!(
            describe_days(&[d(1), d(2), d(5)]),
            "2026-11-01..2026-11-02 (2 days), 2026-11-05"
        );
    }

    #[test]
    fn old_imports_are_forgotten_after_a_complete_full_load() {
        let mut s = state();
        s.record(import(d(1), ImportKind::Full, &[], &[]));
        s.record(import(d(2), ImportKind::Incremental, &[d(1)], &[]));
        s.record(import(d(5), ImportKind::Full, &[], &[]));
        assert_eq!(s.imports.keys().copied().collect::<Vec<_>>(), vec![d(5)]);
        assert_eq!(s.last_successful_import(d(6)), Some(d(5)));
        assert_eq!(s.latest().unwrap().import_date, d(5));
    }

    #[tokio::test]
    async fn state_round_trips_through_storage_and_rejects_a_foreign_document() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(common::storage::LocalStorage::new(dir.path()));
        let table: TableName = "appeals".parse().unwrap();
        assert_eq!(load(&storage, "raw", &table).await.unwrap(), state());
        let mut s = state();
        s.record(import(d(1), ImportKind::Full, &[], &[None]));
        save(&storage, "raw", &s).await.unwrap();
        assert_eq!(load(&storage, "raw", &table).await.unwrap(), s);
        let other: TableName = "notes".parse().unwrap();
        storage
            .put(
                "raw",
                &TableState::key(&other),
                storage.get("raw", &TableState::key(&table)).await.unwrap(),
            )
            .await
            .unwrap();
        let err = load(&storage, "raw", &other).await.unwrap_err().to_string();
        assert!(err.contains("belongs to table appeals"), "{err}");
    }
}
