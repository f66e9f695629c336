//! What ingest remembers per table: its imports, which days they fetched completely, the pages
//! that failed, and the pages of the last full load still outstanding. The watermark comes from
//! here, never from whether data arrived, so a quiet table does not look back further each night.
//!
//! Continuity: a full load whose count request succeeded is the base for increments even when
//! some of its pages failed. Those pages stay outstanding, and each following incremental run
//! fetches them (query "all records", page N) beside its days, until one succeeds: one failed page
//! never makes every following night another full load (repeated full loads got the council
//! blocked by the vendor). Only an operator's `full` request loads the table in full again.
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
    /// fetched either, or its pages did not add up after the re-queries (drift): a retry
    /// fetches the whole query.
    #[serde(default)]
    pub whole_query: bool,
}

impl FailedPage {
    /// A page of a full load ("all records") that can be fetched on its own later.
    pub fn is_full_load_page(&self) -> bool {
        self.day.is_none() && !self.whole_query
    }
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
    /// Days an operator asked to fetch again (`since`), whatever earlier imports fetched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_refetched: Vec<NaiveDate>,
    /// Pages of the base full load fetched by this incremental import (they had failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub full_pages_requested: Vec<u32>,
    /// Pages of the base full load still outstanding after this import: for a full load, its
    /// failed pages; for an incremental import, the full-load pages it fetched that failed again.
    /// The next incremental run fetches them. Derived from `failed_pages` ([`ImportRecord::settle`]),
    /// so documents written before this field existed read the same.
    #[serde(default)]
    pub full_pages_outstanding: Vec<u32>,
    pub records_written: u64,
    pub records_skipped_today: u64,
    /// Records kept although their `last_updated` is after the import date.
    #[serde(default)]
    pub records_future_dated: u64,
    /// Re-queries made because a query's pages did not add up (paging drift).
    #[serde(default)]
    pub requeries: u32,
    /// Records first received in a re-query: without it, lost.
    #[serde(default)]
    pub records_recovered_by_requery: u64,
    pub failed_pages: Vec<FailedPage>,
}

impl ImportRecord {
    /// Every page succeeded.
    pub fn is_complete(&self) -> bool {
        self.failed_pages.is_empty()
    }

    /// A full load whose count request succeeded (no whole-query failure): increments build on
    /// it, and its failed pages are fetched on their own by the following nights.
    pub fn is_base(&self) -> bool {
        self.kind == ImportKind::Full && !self.failed_pages.iter().any(|p| p.whole_query)
    }

    /// Recomputes what follows from the requested days and the failed pages: the completed days
    /// and the full-load pages outstanding.
    pub fn settle(&mut self) {
        let failed: BTreeSet<Option<NaiveDate>> = self.failed_pages.iter().map(|p| p.day).collect();
        self.days_completed = self
            .days_requested
            .iter()
            .copied()
            .filter(|day| !failed.contains(&Some(*day)))
            .collect();
        let outstanding: BTreeSet<u32> = self
            .failed_pages
            .iter()
            .filter(|p| p.is_full_load_page())
            .map(|p| p.page_number)
            .collect();
        self.full_pages_outstanding = outstanding.into_iter().collect();
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
        /// The day of the full load the increments build on (the base).
        base: NaiveDate,
        /// Pages of the base full load still outstanding: fetched again (query "all records").
        full_pages: Vec<u32>,
        /// Of `days`, those fetched only because the request's `since` asked for them.
        refetched: Vec<NaiveDate>,
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
    /// Without an earlier base (a full load whose count request succeeded), a full load.
    /// Otherwise:
    /// - every London day from the base's day (whose records it skipped as "today") up to
    ///   yesterday that no import since the base fetched completely (or gave up), at most
    ///   `max_lookback_days` days back;
    /// - with `since`, also every day from `since` up to yesterday, whatever earlier imports
    ///   fetched, and not capped (an operator asked for them);
    /// - the base's pages still outstanding after the latest import since the base.
    pub fn plan_incremental(
        &self,
        today: NaiveDate,
        max_lookback_days: u32,
        since: Option<NaiveDate>,
    ) -> Plan {
        let prior = || self.imports.range(..today).map(|(_, import)| import);
        let Some(base) = prior()
            .filter(|i| i.is_base())
            .map(|i| i.import_date)
            .next_back()
        else {
            return Plan::Full {
                reason: "no earlier full import whose count request succeeded".into(),
            };
        };
        let covered: BTreeSet<NaiveDate> = prior()
            .filter(|i| i.import_date >= base)
            .flat_map(|i| i.days_completed.iter().chain(&i.days_cut).copied())
            .collect();
        let earliest = today - chrono::Duration::days(i64::from(max_lookback_days));
        let (mut days, mut cut): (Vec<NaiveDate>, Vec<NaiveDate>) = base
            .iter_days()
            .take_while(|day| *day < today)
            .filter(|day| !covered.contains(day))
            .partition(|day| *day >= earliest);
        let mut refetched = Vec::new();
        if let Some(since) = since {
            for day in since.iter_days().take_while(|day| *day < today) {
                if !days.contains(&day) {
                    days.push(day);
                    refetched.push(day);
                }
            }
            cut.retain(|day| *day < since);
            days.sort_unstable();
        }
        // The latest import that knows: the base, or an incremental run since (a full load
        // after the base whose count request failed fetched no page on its own).
        let full_pages = prior()
            .rfind(|i| i.import_date == base || i.kind == ImportKind::Incremental)
            .filter(|latest| latest.import_date >= base)
            .map(|latest| latest.full_pages_outstanding.clone())
            .unwrap_or_default();
        Plan::Incremental {
            days,
            cut,
            base,
            full_pages,
            refetched,
        }
    }

    /// Records an import (replacing one of the same date) and forgets what no plan needs any
    /// more: imports before the latest base full load.
    pub fn record(&mut self, import: ImportRecord) {
        self.imports.insert(import.import_date, import);
        if let Some(full) = self
            .imports
            .values()
            .filter(|i| i.is_base())
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
    let mut state: TableState =
        serde_json::from_slice(&body).map_err(|e| corrupt(e.to_string()))?;
    if state.version != STATE_VERSION {
        return Err(corrupt(format!(
            "version {} is not supported (this build reads {STATE_VERSION})",
            state.version
        )));
    }
    if &state.table != table {
        return Err(corrupt(format!("it belongs to table {}", state.table)));
    }
    // Derived fields, from what each import recorded (documents older than a field included).
    for import in state.imports.values_mut() {
        import.settle();
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

    fn failed_page(day: Option<NaiveDate>, page_number: u32, whole_query: bool) -> FailedPage {
        FailedPage {
            day,
            page_number,
            url: "u".into(),
            status_code: Some(500),
            error: "http 500".into(),
            whole_query,
        }
    }

    /// An import whose failed pages are page 2 of each query in `failed` (`None`: all records).
    fn import(
        date: NaiveDate,
        kind: ImportKind,
        days: &[NaiveDate],
        failed: &[Option<NaiveDate>],
    ) -> ImportRecord {
        let pages: Vec<FailedPage> = failed
            .iter()
            .map(|day| failed_page(*day, 2, false))
            .collect();
        import_with(date, kind, days, pages)
    }

    fn import_with(
        date: NaiveDate,
        kind: ImportKind,
        days: &[NaiveDate],
        failed_pages: Vec<FailedPage>,
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
            days_refetched: Vec::new(),
            full_pages_requested: Vec::new(),
            full_pages_outstanding: Vec::new(),
            records_written: 0,
            records_skipped_today: 0,
            records_future_dated: 0,
            requeries: 0,
            records_recovered_by_requery: 0,
            failed_pages,
        };
        record.settle();
        record
    }

    fn state() -> TableState {
        TableState::new("appeals".parse().unwrap())
    }

    fn incremental(days: Vec<NaiveDate>, base: NaiveDate) -> Plan {
        Plan::Incremental {
            days,
            cut: vec![],
            base,
            full_pages: vec![],
            refetched: vec![],
        }
    }

    #[test]
    fn a_table_without_a_base_full_load_is_loaded_in_full() {
        let mut s = state();
        assert!(matches!(
            s.plan_incremental(d(10), 60, None),
            Plan::Full { .. }
        ));
        // The count request of the full load failed: nothing to build on.
        s.record(import_with(
            d(10),
            ImportKind::Full,
            &[],
            vec![failed_page(None, 1, true)],
        ));
        assert!(matches!(
            s.plan_incremental(d(11), 60, None),
            Plan::Full { .. }
        ));
        // An incremental import is no base either.
        let mut s = state();
        s.record(import(d(10), ImportKind::Incremental, &[d(9)], &[]));
        assert!(matches!(
            s.plan_incremental(d(11), 60, None),
            Plan::Full { .. }
        ));
    }

    #[test]
    fn increments_run_from_the_full_load_day_to_yesterday() {
        let mut s = state();
        s.record(import(d(10), ImportKind::Full, &[], &[]));
        assert_eq!(
            s.plan_incremental(d(11), 60, None),
            incremental(vec![d(10)], d(10))
        );
        // Missed nights are caught up.
        assert_eq!(
            s.plan_incremental(d(13), 60, None),
            incremental(vec![d(10), d(11), d(12)], d(10))
        );
    }

    #[test]
    fn a_full_load_with_failed_pages_is_followed_by_those_pages_and_the_increment() {
        let mut s = state();
        let mut full = import(d(10), ImportKind::Full, &[], &[None]);
        full.failed_pages.push(failed_page(None, 7, false));
        full.settle();
        assert_eq!(full.full_pages_outstanding, [2, 7]);
        assert!(full.is_base() && !full.is_complete());
        s.record(full);
        assert_eq!(
            s.plan_incremental(d(11), 60, None),
            Plan::Incremental {
                days: vec![d(10)],
                cut: vec![],
                base: d(10),
                full_pages: vec![2, 7],
                refetched: vec![],
            }
        );
        // The next night fetched both; page 7 failed again: it stays outstanding, page 2 is done.
        let mut night = import_with(
            d(11),
            ImportKind::Incremental,
            &[d(10)],
            vec![failed_page(None, 7, false)],
        );
        night.full_pages_requested = vec![2, 7];
        assert_eq!(night.days_completed, [d(10)], "a full-load page is no day");
        s.record(night);
        let Plan::Incremental {
            days, full_pages, ..
        } = s.plan_incremental(d(12), 60, None)
        else {
            panic!()
        };
        assert_eq!((days, full_pages), (vec![d(11)], vec![7]));
        // Page 7 succeeds on day 12: nothing outstanding after it.
        s.record(import(d(12), ImportKind::Incremental, &[d(11)], &[]));
        assert_eq!(
            s.plan_incremental(d(13), 60, None),
            incremental(vec![d(12)], d(10))
        );
        // The plans of days already run are unchanged (idempotent re-runs).
        let Plan::Incremental { full_pages, .. } = s.plan_incremental(d(11), 60, None) else {
            panic!()
        };
        assert_eq!(full_pages, [2, 7]);
    }

    #[test]
    fn a_full_load_after_the_base_whose_count_failed_keeps_the_base_pages_outstanding() {
        let mut s = state();
        s.record(import(d(10), ImportKind::Full, &[], &[None]));
        s.record(import_with(
            d(11),
            ImportKind::Full,
            &[],
            vec![failed_page(None, 1, true)],
        ));
        let Plan::Incremental {
            days,
            base,
            full_pages,
            ..
        } = s.plan_incremental(d(12), 60, None)
        else {
            panic!()
        };
        assert_eq!(
            (days, base, full_pages),
            (vec![d(10), d(11)], d(10), vec![2])
        );
    }

    #[test]
    fn since_fetches_every_day_again_uncapped() {
        let mut s = state();
        s.record(import(d(1), ImportKind::Full, &[], &[]));
        for night in 2..=10 {
            s.record(import(
                d(night),
                ImportKind::Incremental,
                &[d(night - 1)],
                &[],
            ));
        }
        assert_eq!(
            s.plan_incremental(d(11), 3, None),
            incremental(vec![d(10)], d(1))
        );
        // Beyond the lookback of 3 days: asked for, so fetched.
        assert_eq!(
            s.plan_incremental(d(11), 3, Some(d(5))),
            Plan::Incremental {
                days: (5..=10).map(d).collect(),
                cut: vec![],
                base: d(1),
                full_pages: vec![],
                refetched: (5..=9).map(d).collect(),
            }
        );
        // Without a base, still a full load.
        assert!(matches!(
            state().plan_incremental(d(11), 3, Some(d(5))),
            Plan::Full { .. }
        ));
    }

    #[test]
    fn a_quiet_table_does_not_look_back_further_each_night() {
        let mut s = state();
        s.record(import(d(1), ImportKind::Full, &[], &[]));
        for night in 2..=20 {
            let Plan::Incremental { days, .. } = s.plan_incremental(d(night), 60, None) else {
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
            s.plan_incremental(d(5), 60, None),
            incremental(vec![d(2), d(4)], d(1))
        );
    }

    #[test]
    fn the_plan_for_a_day_ignores_that_days_own_import() {
        let mut s = state();
        s.record(import(d(1), ImportKind::Full, &[], &[]));
        let first = s.plan_incremental(d(3), 60, None);
        s.record(import(d(3), ImportKind::Incremental, &[d(1), d(2)], &[]));
        assert_eq!(s.plan_incremental(d(3), 60, None), first);
        // A repeated full load of the first day is planned as a full load again.
        let mut s = state();
        s.record(import(d(1), ImportKind::Full, &[], &[]));
        assert!(matches!(
            s.plan_incremental(d(1), 60, None),
            Plan::Full { .. }
        ));
    }

    #[test]
    fn the_lookback_cap_cuts_old_days_once_and_names_them() {
        let mut s = state();
        s.record(import(d(1), ImportKind::Full, &[], &[]));
        let Plan::Incremental { days, cut, .. } = s.plan_incremental(d(11), 3, None) else {
            panic!()
        };
        assert_eq!(days, vec![d(8), d(9), d(10)]);
        assert_eq!(cut, (1..=7).map(d).collect::<Vec<_>>());
        assert_eq!(describe_days(&cut), "2026-11-01..2026-11-07 (7 days)");
        let mut record = import(d(11), ImportKind::Incremental, &days, &[]);
        record.days_cut = cut;
        s.record(record);
        let Plan::Incremental { days, cut, .. } = s.plan_incremental(d(12), 3, None) else {
            panic!()
        };
        assert_eq!((days, cut), (vec![d(11)], vec![]));
        assert_eq!(
            describe_days(&[d(1), d(2), d(5)]),
            "2026-11-01..2026-11-02 (2 days), 2026-11-05"
        );
    }

    #[test]
    fn old_imports_are_forgotten_after_a_base_full_load() {
        let mut s = state();
        s.record(import(d(1), ImportKind::Full, &[], &[]));
        s.record(import(d(2), ImportKind::Incremental, &[d(1)], &[]));
        s.record(import(d(5), ImportKind::Full, &[], &[]));
        assert_eq!(s.imports.keys().copied().collect::<Vec<_>>(), vec![d(5)]);
        assert_eq!(s.last_successful_import(d(6)), Some(d(5)));
        assert_eq!(s.latest().unwrap().import_date, d(5));
        // A base with a failed page is the base too: what came before is forgotten.
        s.record(import(d(7), ImportKind::Full, &[], &[None]));
        assert_eq!(s.imports.keys().copied().collect::<Vec<_>>(), vec![d(7)]);
    }

    #[tokio::test]
    async fn a_state_document_written_before_the_new_fields_reads_the_same() {
        // Version 1 as written before full_pages_outstanding, requeries and the rest existed.
        let old = r#"{"version":1,"table":"appeals","imports":{"2026-11-06":{
            "import_date":"2026-11-06","kind":"full","run_id":"r","location":"s3://raw/x/",
            "finished_at":"2026-11-06T06:10:00Z","records_written":100,"records_skipped_today":2,
            "failed_pages":[{"day":null,"page_number":3,"url":"u","status_code":500,
            "error":"http 500"}]}}}"#;
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(common::storage::LocalStorage::new(dir.path()));
        let table: TableName = "appeals".parse().unwrap();
        storage
            .put("raw", &TableState::key(&table), Bytes::from(old))
            .await
            .unwrap();
        let s = load(&storage, "raw", &table).await.unwrap();
        let import = &s.imports[&d(6)];
        assert_eq!(import.full_pages_outstanding, [3]);
        assert_eq!((import.requeries, import.records_future_dated), (0, 0));
        let Plan::Incremental { full_pages, .. } = s.plan_incremental(d(7), 60, None) else {
            panic!()
        };
        assert_eq!(full_pages, [3]);
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
