//! Deterministic synthetic raw partitions: a full load and nightly increments.
//!
//! The records come from [`RecordShape`] (the tests' synthetic-record generator, driven by
//! the production column-type dictionary), so every typed column holds text of its type. The
//! same arguments always give the same records; only the run ids differ between runs.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::NaiveDate;
use common::layout::{Layer, TableName};
use common::platform::Platform;
use common::publish::{PartitionWriter, new_run_id};
use common::raw::schema as raw_schema;
use serde_json::{Map, Value};
use tascomi_test_support::{RawPage, RecordShape, raw_batch};

/// Records per API page, and so per raw batch written.
pub const PAGE_RECORDS: usize = 1000;

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

    /// The `i`-th updated id of night `night` among `existing` ids: spread over the whole id
    /// range (so the snapshot's nightly merge touches many files, as production updates do),
    /// shifted each night.
    fn updated_id(&self, night: u32, i: u64, existing: u64) -> u64 {
        let stride = (existing / self.updated.max(1)).max(1);
        (i * stride + u64::from(night) * 7) % existing + 1
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

/// Writes and publishes the raw partition of `table` for night `night`, page by page (memory
/// bounded by one page); returns the rows and bytes published.
pub async fn publish_night(
    platform: &Platform,
    table: &TableName,
    shape: &RecordShape,
    night: u32,
    plan: NightPlan,
    existing: u64,
) -> anyhow::Result<(u64, u64)> {
    let date = night_date(night);
    let partition = platform.layout.partition(table, Layer::Raw, date);
    let imported_at = date.and_hms_opt(2, 30, 0).context("a valid import time")?;
    let last_updated = format!("{date} 01:15:00");
    let mut writer = PartitionWriter::new(
        platform.storage.clone(),
        partition.clone(),
        new_run_id(),
        raw_schema(table),
        platform.write_options,
    );
    let ids = (0..plan.updated)
        .map(|i| (plan.updated_id(night, i, existing), true))
        .chain((plan.first_new..plan.first_new + plan.new).map(|id| (id, false)));
    let mut page = Vec::with_capacity(PAGE_RECORDS);
    let mut page_number = 1;
    for (id, updated) in ids {
        page.push(if updated {
            updated_record(shape, id, &last_updated)?
        } else {
            shape.record(id)
        });
        if page.len() == PAGE_RECORDS {
            let records = std::mem::replace(&mut page, Vec::with_capacity(PAGE_RECORDS));
            let batch = raw_batch(table, &[RawPage::ok(page_number, records)], imported_at);
            writer.write(&batch).await?;
            page_number += 1;
        }
    }
    if !page.is_empty() {
        let batch = raw_batch(table, &[RawPage::ok(page_number, page)], imported_at);
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

/// Record `id` as the API sends it after a change: a newer `last_updated`.
fn updated_record(shape: &RecordShape, id: u64, last_updated: &str) -> anyhow::Result<String> {
    let mut record: Map<String, Value> =
        serde_json::from_str(&shape.record(id)).context("a generated record is JSON")?;
    record.insert("last_updated".into(), Value::String(last_updated.into()));
    Ok(Value::Object(record).to_string())
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
        let ids: std::collections::BTreeSet<u64> = (0..night.updated)
            .map(|i| night.updated_id(1, i, 100_000))
            .collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| (1..=100_000).contains(id)));
    }
}
