//! Synthetic raw partitions shaped like Tascomi's, for tests and benchmarks (not used by the
//! service itself).
//!
//! Records are JSON objects whose values are strings or null, with `id` and `last_updated`
//! (`YYYY-MM-DD HH:MM:SS`), as the API sends them; a [`RecordShape`] built from the column-type
//! dictionary gives each typed column a value of its type, so the whole pipeline can be driven
//! with the production dictionary's tables (752 fields for `applications`).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{NaiveDate, NaiveDateTime};
use common::dictionary::{ColumnType, ColumnTypes};
use common::layout::{Layer, PartitionRef, TableName};
use common::messages::PartitionReady;
use common::parquet_io::read_all;
use common::platform::Platform;
use common::publish::{PartitionWriter, PublishError, new_run_id};
use serde_json::{Map, Value};

use crate::schema::{BOOKKEEPING, STATUS_CODE};
use crate::source::published_files;

/// One API page as ingest-svc stores it: its records, or its failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPage {
    pub page: i32,
    pub status: i32,
    /// JSON texts (a failed page has none and is stored as one row with a null record).
    pub records: Vec<String>,
    pub exception: Option<String>,
}

impl RawPage {
    pub fn ok(page: i32, records: Vec<String>) -> Self {
        Self {
            page,
            status: 200,
            records,
            exception: None,
        }
    }

    pub fn failed(page: i32, status: i32, exception: &str) -> Self {
        Self {
            page,
            status,
            records: Vec::new(),
            exception: Some(exception.to_owned()),
        }
    }
}

/// The raw layer's columns for `table` exactly as ingest-svc writes them (`ingest_svc::raw::schema`,
/// which this crate cannot depend on: keep the two the same): the bookkeeping columns with the
/// record column (named after the table) after `import_exception_thrown`; only the status, the
/// exception and the record may be null.
pub fn raw_schema(table: &TableName) -> SchemaRef {
    let mut fields: Vec<Field> = BOOKKEEPING
        .iter()
        .map(|(name, t)| {
            let nullable = matches!(*name, STATUS_CODE | "import_exception_thrown");
            Field::new(*name, t.data_type(), nullable)
        })
        .collect();
    fields.insert(4, Field::new(table.as_str(), DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

/// The raw rows of `pages`: one per record, one per failed page.
pub fn raw_batch(table: &TableName, pages: &[RawPage], imported_at: NaiveDateTime) -> RecordBatch {
    let mut page_numbers = Vec::new();
    let mut urls = Vec::new();
    let mut statuses = Vec::new();
    let mut exceptions = Vec::new();
    let mut records = Vec::new();
    for page in pages {
        let url = format!(
            "https://example-planning.idoxcloud.com/rest/v1/{table}?page={}",
            page.page
        );
        let texts: Vec<Option<&str>> = if page.records.is_empty() {
            vec![None]
        } else {
            page.records.iter().map(|r| Some(r.as_str())).collect()
        };
        for text in texts {
            page_numbers.push(page.page);
            urls.push(url.clone());
            statuses.push(page.status);
            exceptions.push(page.exception.clone());
            records.push(text.map(str::to_owned));
        }
    }
    let rows = page_numbers.len();
    let micros = imported_at.and_utc().timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(page_numbers)),
        Arc::new(StringArray::from(urls)),
        Arc::new(Int32Array::from(statuses)),
        Arc::new(StringArray::from(exceptions)),
        Arc::new(StringArray::from(records)),
        Arc::new(TimestampMicrosecondArray::from(vec![micros; rows])),
        Arc::new(StringArray::from(vec![
            imported_at
                .and_utc()
                .timestamp()
                .to_string();
            rows
        ])),
    ];
    RecordBatch::try_new(raw_schema(table), columns).expect("raw columns match the raw schema")
}

/// Writes `pages` as the raw partition of `table` for `date` (one batch per page) and publishes
/// it, as ingest-svc would; returns the message parse-svc receives.
pub async fn publish_raw(
    platform: &Platform,
    table: &TableName,
    date: NaiveDate,
    pages: &[RawPage],
) -> Result<PartitionReady, PublishError> {
    let partition = platform.layout.partition(table, Layer::Raw, date);
    let run_id = new_run_id();
    let imported_at = date
        .succ_opt()
        .unwrap_or(date)
        .and_hms_opt(2, 30, 0)
        .expect("a valid time");
    let mut writer = PartitionWriter::new(
        platform.storage.clone(),
        partition.clone(),
        run_id.clone(),
        raw_schema(table),
        platform.write_options,
    );
    for page in pages {
        writer
            .write(&raw_batch(table, std::slice::from_ref(page), imported_at))
            .await?;
    }
    let published = writer
        .finish()
        .await?
        .publish(
            platform.catalog.as_ref(),
            &platform.layout,
            BTreeMap::new(),
            platform.orphan_grace,
        )
        .await?;
    Ok(PartitionReady::new(
        &partition,
        published.location,
        run_id,
        None,
    ))
}

/// Every row of a published partition, read whole (small test partitions only). `None` when
/// the catalog has no such partition.
pub async fn read_published(
    platform: &Platform,
    partition: &PartitionRef,
) -> Result<Option<Vec<RecordBatch>>, anyhow::Error> {
    let Some(published) = published_files(platform, partition).await? else {
        return Ok(None);
    };
    let mut batches = Vec::new();
    for file in &published.files {
        batches.extend(read_all(platform.storage.clone(), &published.bucket, &file.key).await?);
    }
    Ok(Some(batches))
}

/// The fields of a synthetic table's records, and what kind of value each gets.
#[derive(Debug, Clone)]
pub struct RecordShape {
    fields: Vec<(String, Option<ColumnType>)>,
    /// Fields never left null (the id, `last_updated`, a completeness column).
    required: Vec<String>,
}

impl RecordShape {
    /// `id`, `last_updated` and `required`, the dictionary's columns for `table`, and text
    /// fields `field_NNN` until there are `total_fields` fields, in a fixed shuffled order (the
    /// API's order is not alphabetical). `required` fields are never null (say, the table's
    /// completeness column).
    pub fn from_dictionary(
        dictionary: &ColumnTypes,
        table: &str,
        total_fields: usize,
        required: &[&str],
    ) -> Self {
        let mut fields: BTreeMap<String, Option<ColumnType>> = dictionary
            .columns(table)
            .map(|(c, t)| (c.to_owned(), Some(t)))
            .collect();
        fields
            .entry("id".into())
            .or_insert(Some(ColumnType::Integer));
        fields
            .entry("last_updated".into())
            .or_insert(Some(ColumnType::Timestamp));
        for field in required {
            fields.entry((*field).to_owned()).or_insert(None);
        }
        let mut n = 0;
        while fields.len() < total_fields {
            fields.entry(format!("field_{n:03}")).or_insert(None);
            n += 1;
        }
        let mut fields: Vec<_> = fields.into_iter().collect();
        // A deterministic shuffle: reverse every other chunk of seven.
        for (i, chunk) in fields.chunks_mut(7).enumerate() {
            if i % 2 == 1 {
                chunk.reverse();
            }
        }
        let mut required: Vec<String> = required.iter().map(|f| (*f).to_owned()).collect();
        required.extend(["id".to_owned(), "last_updated".to_owned()]);
        Self { fields, required }
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, Option<ColumnType>)> {
        self.fields.iter().map(|(n, t)| (n.as_str(), *t))
    }

    /// The record with this id, as the API sends it: every value a string or null.
    pub fn record(&self, id: u64) -> String {
        let mut object = Map::new();
        for (column, (name, column_type)) in self.fields.iter().enumerate() {
            let value = if name == "id" {
                Value::String(id.to_string())
            } else if !self.required.contains(name) && (id as usize + column).is_multiple_of(5) {
                Value::Null
            } else {
                Value::String(sample_value(name, *column_type, id, column))
            };
            object.insert(name.clone(), value);
        }
        Value::Object(object).to_string()
    }

    /// Records `first_id..first_id + count`.
    pub fn records(&self, first_id: u64, count: usize) -> Vec<String> {
        (first_id..first_id + count as u64)
            .map(|id| self.record(id))
            .collect()
    }
}

/// A valid text for a value of `column_type` that varies with the row and column.
fn sample_value(name: &str, column_type: Option<ColumnType>, id: u64, column: usize) -> String {
    let k = id as usize + column;
    match column_type {
        Some(ColumnType::Integer) => (k % 100_000).to_string(),
        Some(ColumnType::Long) => (5_300_000_000u64 + id).to_string(),
        Some(ColumnType::Float) => format!("{}.5", k % 1000),
        Some(ColumnType::Double) => format!("{}.25", k % 100_000),
        Some(ColumnType::Boolean) => {
            ["t", "f", "true", "false", "1", "0", "Yes", "no"][k % 8].into()
        }
        Some(ColumnType::Timestamp) => format!(
            "2026-{:02}-{:02} {:02}:{:02}:{:02}",
            k % 12 + 1,
            k % 28 + 1,
            k % 24,
            k % 60,
            id % 60
        ),
        Some(ColumnType::Date) => format!("2026-{:02}-{:02}", k % 12 + 1, k % 28 + 1),
        None => format!("{name} of record {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_rows_follow_the_pages() {
        let table = TableName::new("appeals").unwrap();
        let at = NaiveDate::from_ymd_opt(2026, 11, 22)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        let batch = raw_batch(
            &table,
            &[
                RawPage::ok(1, vec!["{}".into(), "{}".into()]),
                RawPage::failed(2, 500, "server error"),
            ],
            at,
        );
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.schema().field(4).name(), "appeals");
        assert_eq!(batch.column(4).null_count(), 1);
        // ingest-svc's raw schema (`ingest_svc::raw::schema`), column by column.
        let expected = [
            ("page_number", DataType::Int32, false),
            ("import_api_url_requested", DataType::Utf8, false),
            ("import_api_status_code", DataType::Int32, true),
            ("import_exception_thrown", DataType::Utf8, true),
            ("appeals", DataType::Utf8, true),
            (
                "import_datetime",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                false,
            ),
            ("import_timestamp", DataType::Utf8, false),
        ];
        let schema = raw_schema(&table);
        let found: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn shapes_give_typed_fields_valid_text() {
        let dictionary = ColumnTypes::parse(
            r#"[{"integer": {"t": ["n"]}, "boolean": {"t": ["b"]}, "timestamp": {"t": ["at"]}}]"#,
            "test",
        )
        .unwrap();
        let shape = RecordShape::from_dictionary(&dictionary, "t", 10, &["reference"]);
        assert_eq!(shape.len(), 10);
        let record: Map<String, Value> = serde_json::from_str(&shape.record(7)).unwrap();
        assert_eq!(record["id"], "7");
        assert!(record.values().all(|v| v.is_string() || v.is_null()));
        for id in 0..20 {
            let record: Map<String, Value> = serde_json::from_str(&shape.record(id)).unwrap();
            assert!(record["reference"].is_string());
            assert!(
                record["last_updated"]
                    .as_str()
                    .unwrap()
                    .starts_with("2026-")
            );
        }
    }
}
