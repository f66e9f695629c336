//! The rows of the raw layer: one per record, the record kept as JSON text, or one per page that
//! failed (with its URL, status and error, and no record). The columns are
//! [`common::raw::schema`]'s, defined once for ingest-svc, which writes them, and parse-svc, which
//! reads them.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use chrono::{DateTime, NaiveDate, Utc};
use common::TableName;
use common::bookkeeping::{import_timestamp_text, status_text};
use common::layout::parse_london_timestamp;
use common::raw::schema;
use serde_json::{Map, Value};

/// The field dropped from every record (large, useless in the lake).
pub const DROPPED_FIELD: &str = "gis_map_image_base64";

/// What one page contributes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PageRows {
    /// Rows written (future-dated records included).
    pub written: u64,
    /// Records updated on the run's "today" (tomorrow's run fetches them whole).
    pub skipped_today: u64,
    /// Records whose `last_updated` is after the run's today: kept (a date typed wrong in
    /// Tascomi would otherwise keep them out of the lake for ever), and counted.
    pub future_dated: u64,
}

/// Builds the rows of one import: every row carries the same import instant.
#[derive(Debug, Clone)]
pub struct RowBuilder {
    schema: SchemaRef,
    import_datetime: DateTime<Utc>,
    /// The run's today: records whose `last_updated` falls on this London day are skipped.
    today: NaiveDate,
}

impl RowBuilder {
    pub fn new(table: &TableName, import_datetime: DateTime<Utc>, today: NaiveDate) -> Self {
        Self {
            schema: schema(table),
            import_datetime,
            today,
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The rows of a fetched page: records updated "today" skipped, future-dated ones kept and
    /// counted, the dropped field removed, every other field kept as the JSON text of the record.
    pub fn page(
        &self,
        page_number: u32,
        url: &str,
        status: u16,
        records: Vec<Map<String, Value>>,
    ) -> Result<(RecordBatch, PageRows), ArrowError> {
        let mut rows = PageRows::default();
        let mut texts = Vec::with_capacity(records.len());
        for mut record in records {
            match updated_when(&record, self.today) {
                Updated::Today => {
                    rows.skipped_today += 1;
                    continue;
                }
                Updated::After => rows.future_dated += 1,
                Updated::Before | Updated::Unknown => {}
            }
            record.shift_remove(DROPPED_FIELD);
            texts.push(Some(Value::Object(record).to_string()));
        }
        rows.written = texts.len() as u64;
        let n = texts.len();
        let batch = self.batch(
            vec![i64::from(page_number); n],
            vec![url; n],
            vec![status_text(Some(status)); n],
            vec![None; n],
            texts,
        )?;
        Ok((batch, rows))
    }

    /// The one row of a page that failed.
    pub fn failed_page(
        &self,
        page_number: u32,
        url: &str,
        status: Option<u16>,
        error: &str,
    ) -> Result<RecordBatch, ArrowError> {
        self.batch(
            vec![i64::from(page_number)],
            vec![url],
            vec![status_text(status)],
            vec![Some(error.to_owned())],
            vec![None],
        )
    }

    fn batch(
        &self,
        pages: Vec<i64>,
        urls: Vec<&str>,
        statuses: Vec<Option<String>>,
        errors: Vec<Option<String>>,
        records: Vec<Option<String>>,
    ) -> Result<RecordBatch, ArrowError> {
        let n = pages.len();
        let micros = self.import_datetime.timestamp_micros();
        let seconds = import_timestamp_text(self.import_datetime);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(pages)),
            Arc::new(StringArray::from(urls)),
            Arc::new(StringArray::from(statuses)),
            Arc::new(StringArray::from(errors)),
            Arc::new(StringArray::from(records)),
            Arc::new(TimestampMicrosecondArray::from(vec![micros; n])),
            Arc::new(StringArray::from(vec![seconds.as_str(); n])),
        ];
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

/// When a record was last updated, compared with the run's today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updated {
    Before,
    /// On the run's today: skipped, tomorrow's run fetches the record whole.
    Today,
    /// After the run's today (a wrong date, or a clock ahead): kept and counted.
    After,
    /// Null, or not a date: kept (it cannot be "today").
    Unknown,
}

/// The London day of a record's `last_updated`, compared with `today`.
///
/// Read with [`common::layout::parse_london_timestamp`], the reading every stage uses: Tascomi's
/// `YYYY-MM-DD HH:MM:SS` is London wall-clock as written, and a timestamp with a zone (`Z`,
/// `+01:00`) is converted to London wall-clock first, so `2026-07-05T23:30:00Z` is 6 July. Any
/// other text whose first ten characters are a date is read as that date.
pub fn updated_when(record: &Map<String, Value>, today: NaiveDate) -> Updated {
    let Some(text) = record.get("last_updated").and_then(Value::as_str) else {
        return Updated::Unknown;
    };
    let day = parse_london_timestamp(text)
        .map(|at| at.date())
        .or_else(|| {
            text.get(..10)
                .and_then(|date| NaiveDate::parse_from_str(date, "%Y-%m-%d").ok())
        });
    match day {
        None => Updated::Unknown,
        Some(day) if day < today => Updated::Before,
        Some(day) if day == today => Updated::Today,
        Some(_) => Updated::After,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    fn record(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn today_is_the_london_day_and_the_future_is_kept() {
        let today = NaiveDate::from_ymd_opt(2026, 7, 6).unwrap();
        let at =
            |text: &str| updated_when(&record(&format!(r#"{{"last_updated":"{text}"}}"#)), today);
        assert_eq!(at("2026-07-05 23:59:59"), Updated::Before);
        assert_eq!(at("2026-07-06 00:00:00"), Updated::Today);
        assert_eq!(at("2026-07-07 00:00:00"), Updated::After);
        assert_eq!(at("2099-01-01 00:00:00"), Updated::After);
        // 23:30 UTC on the 5th is 00:30 on the 6th in London (British Summer Time): today.
        assert_eq!(at("2026-07-05T23:30:00Z"), Updated::Today);
        assert_eq!(at("2026-07-05 22:30:00+00:00"), Updated::Before);
        assert_eq!(at("2026-07-06T23:30:00Z"), Updated::After);
        // Another format: its first ten characters as a date.
        assert_eq!(at("2026-07-06"), Updated::Today);
        assert_eq!(at("2026-07-05 at noon"), Updated::Before);
        assert_eq!(at("yesterday"), Updated::Unknown);
        assert_eq!(
            updated_when(&record(r#"{"last_updated":null}"#), today),
            Updated::Unknown
        );
        assert_eq!(
            updated_when(&record(r#"{"id":"1"}"#), today),
            Updated::Unknown
        );
    }

    #[test]
    fn pages_keep_records_as_json_without_the_image_and_without_today() {
        let table: TableName = "applications".parse().unwrap();
        let at: DateTime<Utc> = "2026-11-21T02:00:00.25Z".parse().unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let builder = RowBuilder::new(&table, at, today);
        let records = vec![
            record(
                r#"{"id":"1","last_updated":"2026-11-20 23:59:59","gis_map_image_base64":"AAAA","z":"é \"q\"","a":null}"#,
            ),
            record(r#"{"id":"2","last_updated":"2026-11-21 00:00:01"}"#),
            record(r#"{"id":"3","last_updated":null}"#),
            record(r#"{"id":"4","last_updated":"2031-01-01 10:00:00"}"#),
        ];
        let (batch, rows) = builder
            .page(4, "http://x/applications?page=4", 200, records)
            .unwrap();
        assert_eq!(
            rows,
            PageRows {
                written: 3,
                skipped_today: 1,
                future_dated: 1,
            }
        );
        assert_eq!(batch.schema().field(4).name(), "applications");
        let json = batch
            .column(4)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        // Field order and values are kept; only the image is gone.
        assert_eq!(
            json.value(0),
            r#"{"id":"1","last_updated":"2026-11-20 23:59:59","z":"é \"q\"","a":null}"#
        );
        assert_eq!(json.value(1), r#"{"id":"3","last_updated":null}"#);
        assert_eq!(
            json.value(2),
            r#"{"id":"4","last_updated":"2031-01-01 10:00:00"}"#
        );
        let seconds = batch
            .column(6)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        // As Python prints the float of the epoch seconds, as the old jobs wrote it.
        assert_eq!(seconds.value(0), "1795226400.25");
        let statuses = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(statuses.value(0), "200");
        let pages = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(pages.value(2), 4);
        assert!(batch.column(3).is_null(0));
    }

    #[test]
    fn a_failed_page_is_one_row_with_its_error_and_no_record() {
        let table: TableName = "appeals".parse().unwrap();
        let builder = RowBuilder::new(&table, Utc::now(), NaiveDate::MAX);
        let batch = builder
            .failed_page(7, "http://x/appeals?page=7", Some(500), "http 500")
            .unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert!(batch.column(4).is_null(0));
        let status = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(status.value(0), "500");
        let none = builder
            .failed_page(1, "u", None, "connection failed")
            .unwrap();
        assert!(none.column(2).is_null(0));
    }
}
