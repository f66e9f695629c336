//! Deterministic synthetic raw partitions: a full load and nightly increments.
//!
//! The records come from [`RecordShape`] (the tests' synthetic-record generator, driven by
//! the production column-type dictionary), so every typed column holds text of its type. The
//! same arguments always give the same records; only the run ids differ between runs.
//!
//! Two update models ([`UpdateModel`]) say which ids a night re-sends and which of their values
//! change; paging duplicates ([`Generator::paging_duplicates`], on by default) put in each raw
//! partition what the API's offset paging does to real imports. docs/benchmarks.md states both.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::NaiveDate;
use common::dictionary::ColumnType;
use common::layout::{Layer, TableName};
use common::platform::Platform;
use common::publish::{PartitionWriter, new_run_id};
use common::raw::schema as raw_schema;
use serde_json::{Map, Value};
use tascomi_test_support::{RawPage, RecordShape, raw_batch};

/// Records per API page, and so per raw batch written.
pub const PAGE_RECORDS: usize = 1000;

/// One raw row in this many is served twice (0.05 %): the copy comes again at the start of the
/// next page, as when a record ahead of it is deleted between two page requests.
const COPY_EVERY_ROWS: u64 = 2000;
/// One updated id in this many (2 %) comes in two versions in one import: the older where the
/// id falls, the newer at the start of the next page (updated while the import paged).
const TWO_VERSIONS_EVERY_UPDATE: u64 = 50;

/// Where a night's updates fall, and what they change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum UpdateModel {
    /// The updated ids spread evenly over the whole id range; every value of an updated record
    /// but its id changes. The worst case for a snapshot: every file and every column chunk
    /// holds a change.
    #[default]
    Even,
    /// 80 % of the night's updates on the newest 10 % of ids, the rest spread evenly over the
    /// older ids; only the columns that change in planning data change (status, stage,
    /// decision, officers, dates: [`is_changing_column`]), the others are sent as they were.
    Realistic,
}

impl UpdateModel {
    pub fn name(self) -> &'static str {
        match self {
            UpdateModel::Even => "even",
            UpdateModel::Realistic => "realistic",
        }
    }
}

/// Whether a field of a record is one that changes after an application is made: its status
/// or stage, its decision, the officers handling it, its dates (`*_date`, `date_*`), and who
/// last updated it. Picked by name, so it works with any dictionary: with the council's, 61 of
/// the 752 fields of `applications` (`application_stage`, `decision_type_id`,
/// `case_officer_id`, `valid_date`, `decision_issued_date`, ...).
pub fn is_changing_column(name: &str) -> bool {
    name != "last_updated"
        && (["status", "stage", "decision", "officer", "updated_by"]
            .iter()
            .any(|word| name.contains(word))
            || name.ends_with("_date")
            || name.starts_with("date_"))
}

/// A table's synthetic raw partitions: the records' shape, the update model and whether paging
/// duplicates are put in.
#[derive(Debug, Clone)]
pub struct Generator {
    pub shape: RecordShape,
    pub updates: UpdateModel,
    pub paging_duplicates: bool,
}

impl Generator {
    pub fn new(shape: RecordShape, updates: UpdateModel, paging_duplicates: bool) -> Self {
        Self {
            shape,
            updates,
            paging_duplicates,
        }
    }

    /// The fields an update changes, with their types (never `id` or `last_updated`, which is
    /// set apart).
    pub fn changed_fields(&self) -> Vec<(usize, &str, Option<ColumnType>)> {
        self.shape
            .fields()
            .enumerate()
            .filter(|(_, (name, _))| *name != "id" && *name != "last_updated")
            .filter(|(_, (name, _))| self.updates == UpdateModel::Even || is_changing_column(name))
            .map(|(i, (name, t))| (i, name, t))
            .collect()
    }

    /// Record `id` as the API sends it after night `night`'s change: a newer `last_updated`
    /// and new values in the changed fields.
    fn updated_record(
        &self,
        changed: &[(usize, &str, Option<ColumnType>)],
        id: u64,
        night: u32,
        last_updated: &str,
    ) -> anyhow::Result<Map<String, Value>> {
        let mut record: Map<String, Value> =
            serde_json::from_str(&self.shape.record(id)).context("a generated record is JSON")?;
        record.insert("last_updated".into(), Value::String(last_updated.into()));
        for (column, name, column_type) in changed {
            let value = changed_value(name, *column_type, id, night, *column);
            record.insert((*name).to_owned(), Value::String(value));
        }
        Ok(record)
    }
}

/// A valid text of `column_type` for night `night`'s version of a value (never the full
/// load's: every value the generator gave it is in 2026, or differs in form).
fn changed_value(
    name: &str,
    column_type: Option<ColumnType>,
    id: u64,
    night: u32,
    column: usize,
) -> String {
    let k = id as usize + column + night as usize * 13;
    let day = night_date(night);
    match column_type {
        Some(ColumnType::Integer) => (k % 100_000).to_string(),
        Some(ColumnType::Long) => (5_400_000_000u64 + id + u64::from(night)).to_string(),
        Some(ColumnType::Float) => format!("{}.75", k % 1000),
        Some(ColumnType::Double) => format!("{}.125", k % 100_000),
        Some(ColumnType::Boolean) => ["true", "false"][k % 2].into(),
        Some(ColumnType::Timestamp) => format!("{day} 00:{:02}:{:02}", k % 60, id % 60),
        Some(ColumnType::Date) => day.to_string(),
        None => format!("{name} of record {id}, as of night {night}"),
    }
}

/// Which records one night's raw partition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NightPlan {
    /// Existing ids re-sent with a new `last_updated`.
    pub updated: u64,
    /// Ids `first_new..first_new + new` sent for the first time.
    pub first_new: u64,
    pub new: u64,
}

impl NightPlan {
    /// Night 0 is the full load of ids `1..=records`; night `n > 0` updates 1 % of the
    /// `existing` records and adds 0.2 % new ones (at least one of each).
    pub fn for_night(night: u32, records: u64, existing: u64) -> Self {
        if night == 0 {
            return Self {
                updated: 0,
                first_new: 1,
                new: records,
            };
        }
        Self {
            updated: (existing / 100).max(1).min(existing),
            first_new: existing + 1,
            new: (existing / 500).max(1),
        }
    }

    /// The ids night `night` updates among `existing` ids, distinct, as `model` spreads them.
    /// Even: over the whole id range (so the snapshot's nightly merge touches every file),
    /// shifted each night. Realistic: 80 % (rounded) on the newest 10 % of ids, the rest over
    /// the older ones, each share spread evenly over its range.
    pub fn updated_ids(&self, model: UpdateModel, night: u32, existing: u64) -> Vec<u64> {
        let spread = |count: u64, first: u64, len: u64| -> Vec<u64> {
            let stride = (len / count.max(1)).max(1);
            (0..count.min(len))
                .map(|i| first + (i * stride + u64::from(night) * 7) % len)
                .collect()
        };
        if self.updated == 0 || existing == 0 {
            return Vec::new();
        }
        match model {
            UpdateModel::Even => spread(self.updated, 1, existing),
            UpdateModel::Realistic => {
                let recent = (existing / 10).max(1);
                let older = existing - recent;
                let on_recent = if older == 0 {
                    self.updated
                } else {
                    ((self.updated * 8 + 5) / 10).min(recent)
                };
                let mut ids = spread(on_recent, older + 1, recent);
                ids.extend(spread(self.updated - on_recent, 1, older));
                ids
            }
        }
    }
}

/// The import date of night `night` (night 0: the full load). The dates are after every
/// `last_updated` the generator gives a full-load record (all in 2026), so an update is
/// always the newer version.
pub fn night_date(night: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 1, 4)
        .and_then(|d| d.checked_add_days(chrono::Days::new(u64::from(night))))
        .unwrap_or(NaiveDate::MIN)
}

/// The rows of one raw partition, page by page: a row deferred (a copy, a newer version) opens
/// the next page.
#[derive(Debug)]
struct Pages {
    page: Vec<String>,
    deferred: Vec<String>,
    number: i32,
    /// Rows pushed so far (not counting deferred ones), for choosing the copies.
    pushed: u64,
}

impl Pages {
    fn push(&mut self, record: String, copy: bool) {
        if copy {
            self.deferred.push(record.clone());
        }
        self.page.push(record);
        self.pushed += 1;
    }

    /// A page's worth of rows, if there is one to write; `last` takes what is left.
    fn take(&mut self, last: bool) -> Option<(i32, Vec<String>)> {
        if last {
            self.page.append(&mut self.deferred);
        } else if self.page.len() < PAGE_RECORDS {
            return None;
        }
        if self.page.is_empty() {
            return None;
        }
        let next = std::mem::take(&mut self.deferred);
        let page = std::mem::replace(&mut self.page, next);
        self.number += 1;
        Some((self.number - 1, page))
    }
}

/// Writes and publishes the raw partition of `table` for night `night`, page by page (memory
/// bounded by one page); returns the rows and bytes published.
pub async fn publish_night(
    platform: &Platform,
    table: &TableName,
    generator: &Generator,
    night: u32,
    plan: NightPlan,
    existing: u64,
) -> anyhow::Result<(u64, u64)> {
    let date = night_date(night);
    let partition = platform.layout.partition(table, Layer::Raw, date);
    let imported_at = date.and_hms_opt(2, 30, 0).context("a valid import time")?;
    let last_updated = format!("{date} 01:15:00");
    let earlier = format!("{date} 00:40:00");
    let mut writer = PartitionWriter::new(
        platform.storage.clone(),
        partition.clone(),
        new_run_id(),
        raw_schema(table),
        platform.write_options,
    );
    let duplicates = generator.paging_duplicates;
    let changed = generator.changed_fields();
    let mut pages = Pages {
        page: Vec::with_capacity(PAGE_RECORDS),
        deferred: Vec::new(),
        number: 1,
        pushed: 0,
    };
    let updated = plan.updated_ids(generator.updates, night, existing);
    let new = plan.first_new..plan.first_new + plan.new;
    let ids = updated.into_iter().map(|id| (id, true));
    for (i, (id, is_update)) in ids.chain(new.map(|id| (id, false))).enumerate() {
        let copy = duplicates && pages.pushed.is_multiple_of(COPY_EVERY_ROWS);
        if is_update {
            let mut record = generator.updated_record(&changed, id, night, &last_updated)?;
            if duplicates && (i as u64).is_multiple_of(TWO_VERSIONS_EVERY_UPDATE) {
                let newer = Value::Object(record.clone()).to_string();
                record.insert("last_updated".into(), Value::String(earlier.clone()));
                pages.push(Value::Object(record).to_string(), false);
                pages.deferred.push(newer);
            } else {
                pages.push(Value::Object(record).to_string(), copy);
            }
        } else {
            pages.push(generator.shape.record(id), copy);
        }
        if let Some((number, records)) = pages.take(false) {
            let batch = raw_batch(table, &[RawPage::ok(number, records)], imported_at);
            writer.write(&batch).await?;
        }
    }
    while let Some((number, records)) = pages.take(true) {
        let batch = raw_batch(table, &[RawPage::ok(number, records)], imported_at);
        writer.write(&batch).await?;
    }
    let staged = writer.finish().await?;
    let published = staged
        .publish(
            platform.catalog.as_ref(),
            &platform.layout,
            // As ingest-svc marks its imports: night 0 is the full load a first snapshot needs.
            BTreeMap::from([(
                "import_kind".to_owned(),
                if night == 0 { "full" } else { "incremental" }.to_owned(),
            )]),
            platform.orphan_grace,
        )
        .await?;
    Ok((published.rows, published.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nights_update_one_percent_and_add_a_fifth_of_a_percent() {
        let full = NightPlan::for_night(0, 100_000, 0);
        assert_eq!((full.updated, full.first_new, full.new), (0, 1, 100_000));
        let night = NightPlan::for_night(1, 100_000, 100_000);
        assert_eq!(
            (night.updated, night.first_new, night.new),
            (1000, 100_001, 200)
        );
        for model in [UpdateModel::Even, UpdateModel::Realistic] {
            let ids: std::collections::BTreeSet<u64> =
                night.updated_ids(model, 1, 100_000).into_iter().collect();
            assert_eq!(ids.len(), 1000, "{model:?}");
            assert!(ids.iter().all(|id| (1..=100_000).contains(id)));
            let recent = ids.iter().filter(|id| **id > 90_000).count();
            let expected = if model == UpdateModel::Even { 100 } else { 800 };
            assert_eq!(recent, expected, "{model:?}");
        }
        // The full load updates nothing; a tiny table still gets distinct ids.
        assert!(full.updated_ids(UpdateModel::Realistic, 0, 0).is_empty());
        let small = NightPlan::for_night(2, 300, 301);
        let ids = small.updated_ids(UpdateModel::Realistic, 2, 301);
        assert_eq!(ids.len(), 3);
        assert!(ids.iter().all(|id| (1..=301).contains(id)));
    }

    #[test]
    fn realistic_updates_change_status_dates_and_officers_only() {
        let dictionary = common::dictionary::ColumnTypes::parse(
            r#"[{"integer": {"t": ["id", "case_officer_id", "ward_id"]},
                 "timestamp": {"t": ["decision_date", "last_updated"]},
                 "date": {"t": ["target_date"]}}]"#,
            "test",
        )
        .unwrap();
        let shape = RecordShape::from_dictionary(&dictionary, "t", 12, &[]);
        let realistic = Generator::new(shape.clone(), UpdateModel::Realistic, true);
        let names: Vec<&str> = realistic
            .changed_fields()
            .into_iter()
            .map(|(_, n, _)| n)
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, ["case_officer_id", "decision_date", "target_date"]);
        let even = Generator::new(shape, UpdateModel::Even, true);
        assert_eq!(even.changed_fields().len(), 10);
        let changed = realistic.changed_fields();
        let before: Map<String, Value> = serde_json::from_str(&realistic.shape.record(7)).unwrap();
        let after = realistic
            .updated_record(&changed, 7, 1, "2027-01-05 01:15:00")
            .unwrap();
        let differing: Vec<&str> = before
            .keys()
            .filter(|k| before[k.as_str()] != after[k.as_str()])
            .map(String::as_str)
            .collect();
        let mut expected = sorted.clone();
        expected.push("last_updated");
        let mut differing_sorted = differing.clone();
        differing_sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(differing_sorted, expected);
        assert_eq!(after["target_date"], "2027-01-05");
    }

    #[test]
    fn copies_and_newer_versions_open_the_next_page() {
        let mut pages = Pages {
            page: Vec::new(),
            deferred: Vec::new(),
            number: 1,
            pushed: 0,
        };
        for i in 0..PAGE_RECORDS {
            pages.push(format!("r{i}"), i == 0);
        }
        let (number, first) = pages.take(false).unwrap();
        assert_eq!((number, first.len()), (1, PAGE_RECORDS));
        pages.push("last".into(), false);
        let (number, second) = pages.take(true).unwrap();
        assert_eq!(
            (number, second),
            (2, vec!["r0".to_owned(), "last".to_owned()])
        );
        assert!(pages.take(true).is_none());
    }
}
