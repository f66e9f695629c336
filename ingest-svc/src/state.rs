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
use common::failure::Transience;
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

impl Transience for StateError {
    /// Storage trouble may go away; an unreadable document does not.
    fn is_transient(&self) -> bool {
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
        Plan::Incremental {
            days,
            cut,
            base,
            full_pages: self.full_pages_outstanding(base, today),
            refetched,
        }
    }

    /// The pages of the full load of `base` still outstanding before `today`, as the latest
    /// import that knows recorded them: the base, or an incremental run since (a full load after
    /// the base whose count request failed fetched no page on its own).
    fn full_pages_outstanding(&self, base: NaiveDate, today: NaiveDate) -> Vec<u32> {
        self.imports
            .range(base..today)
            .map(|(_, import)| import)
            .rfind(|i| i.import_date == base || i.kind == ImportKind::Incremental)
            .map(|latest| latest.full_pages_outstanding.clone())
            .unwrap_or_default()
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
mod tests;
