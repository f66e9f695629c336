//! Synthetic raw partitions shaped like Tascomi's: the pages of an import, as ingest-svc stores
//! them ([`common::raw`]), or as it stored them before it took the old jobs' types
//! ([`with_earlier_types`]).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use chrono::{NaiveDate, NaiveDateTime};
use common::layout::{Layer, TableName};
use common::messages::PartitionReady;
use common::platform::Platform;
use common::publish::PublishError;

use crate::publish::publish_batches;

/// One API page as ingest-svc stores it: its records, or its failure. The page number and
/// status are numbers here; the raw layer holds them as `bigint` and text (`"200"`).
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
            page_numbers.push(i64::from(page.page));
            urls.push(url.clone());
            statuses.push(page.status.to_string());
            exceptions.push(page.exception.clone());
            records.push(text.map(str::to_owned));
        }
    }
    let rows = page_numbers.len();
    let micros = imported_at.and_utc().timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(page_numbers)),
        Arc::new(StringArray::from(urls)),
        Arc::new(StringArray::from(statuses)),
        Arc::new(StringArray::from(exceptions)),
        Arc::new(StringArray::from(records)),
        Arc::new(TimestampMicrosecondArray::from(vec![micros; rows])),
        Arc::new(StringArray::from(vec![
            common::bookkeeping::import_timestamp_text(
                imported_at.and_utc()
            );
            rows
        ])),
    ];
    RecordBatch::try_new(common::raw::schema(table), columns)
        .expect("raw columns match the raw schema")
}

/// Writes `pages` as the raw partition of `table` for `date` (one batch per page) and publishes
/// it, as ingest-svc would; returns the message parse-svc receives.
pub async fn publish_raw(
    platform: &Platform,
    table: &TableName,
    date: NaiveDate,
    pages: &[RawPage],
) -> Result<PartitionReady, PublishError> {
    publish_pages(platform, table, date, pages, RecordBatch::clone).await
}

/// [`publish_raw`], the files written with the types of our raw partitions before this
/// pipeline took the old jobs' ([`with_earlier_types`]).
pub async fn publish_raw_with_earlier_types(
    platform: &Platform,
    table: &TableName,
    date: NaiveDate,
    pages: &[RawPage],
) -> Result<PartitionReady, PublishError> {
    publish_pages(platform, table, date, pages, with_earlier_types).await
}

/// [`publish_raw`], each page's batch in the types `types` gives it (the same for every page:
/// it is also the partition's schema).
async fn publish_pages(
    platform: &Platform,
    table: &TableName,
    date: NaiveDate,
    pages: &[RawPage],
    types: impl Fn(&RecordBatch) -> RecordBatch,
) -> Result<PartitionReady, PublishError> {
    let at = imported_at(date);
    let schema = types(&raw_batch(table, &[], at)).schema();
    let batches = pages
        .iter()
        .map(|page| types(&raw_batch(table, std::slice::from_ref(page), at)));
    let partition = platform.layout.partition(table, Layer::Raw, date);
    let (_, ready) = publish_batches(platform, &partition, schema, batches).await?;
    Ok(ready)
}

/// A raw batch in the types ingest-svc wrote before it took the old jobs' (what the raw
/// partitions of our earlier runs hold): `page_number` and `import_api_status_code` 32-bit
/// ints, `import_timestamp` whole epoch seconds (`"1795314600"`).
pub fn with_earlier_types(batch: &RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let (field, column) = match field.name().as_str() {
            common::raw::PAGE_NUMBER | common::raw::STATUS => {
                let column = cast(column, &DataType::Int32).expect("a number");
                (
                    field.as_ref().clone().with_data_type(DataType::Int32),
                    column,
                )
            }
            common::raw::IMPORT_TIMESTAMP => {
                let texts = column.as_any().downcast_ref::<StringArray>().expect("text");
                let whole: StringArray = texts
                    .iter()
                    .map(|t| t.map(|t| t.split('.').next().unwrap_or(t).to_owned()))
                    .collect();
                (field.as_ref().clone(), Arc::new(whole) as ArrayRef)
            }
            _ => (field.as_ref().clone(), column.clone()),
        };
        fields.push(field);
        columns.push(column);
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    RecordBatch::try_new(schema, columns).expect("the same rows")
}

/// When the import of `date` ran in these partitions: 02:30 the next day.
pub fn imported_at(date: NaiveDate) -> NaiveDateTime {
    date.succ_opt()
        .unwrap_or(date)
        .and_hms_opt(2, 30, 0)
        .expect("a valid time")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int32Type;

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
        // The raw schema, whose columns common::raw's tests name one by one.
        assert_eq!(batch.schema(), common::raw::schema(&table));
    }

    #[test]
    fn raw_rows_hold_the_old_jobs_types_or_our_earlier_ones() {
        let table = TableName::new("appeals").unwrap();
        let at = imported_at(NaiveDate::from_ymd_opt(2026, 11, 21).unwrap());
        let pages = [
            RawPage::ok(1, vec!["{}".into()]),
            RawPage::failed(2, 500, "server error"),
        ];
        let batch = raw_batch(&table, &pages, at);
        let text = |b: &RecordBatch, name: &str, row: usize| {
            b.column_by_name(name)
                .unwrap()
                .as_string::<i32>()
                .value(row)
                .to_owned()
        };
        assert_eq!(text(&batch, "import_api_status_code", 0), "200");
        assert_eq!(text(&batch, "import_api_status_code", 1), "500");
        // 2026-11-22 02:30 UTC, as Python prints the float.
        assert_eq!(text(&batch, "import_timestamp", 0), "1795314600.0");

        let earlier = with_earlier_types(&batch);
        let statuses = earlier
            .column_by_name("import_api_status_code")
            .unwrap()
            .as_primitive::<Int32Type>();
        assert_eq!(statuses.values().to_vec(), [200, 500]);
        let pages = earlier
            .column_by_name("page_number")
            .unwrap()
            .as_primitive::<Int32Type>();
        assert_eq!(pages.values().to_vec(), [1, 2]);
        assert_eq!(text(&earlier, "import_timestamp", 0), "1795314600");
        // Cast back, the rows are today's again, but for the whole seconds.
        let back = common::raw::conform(&table, &earlier).unwrap();
        assert_eq!(back.columns()[..6], batch.columns()[..6]);
    }
}
