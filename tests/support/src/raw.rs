//! Synthetic raw partitions shaped like Tascomi's: the pages of an import, as ingest-svc stores
//! them ([`common::raw`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::{NaiveDate, NaiveDateTime};
use common::layout::{Layer, TableName};
use common::messages::PartitionReady;
use common::platform::Platform;
use common::publish::{PartitionWriter, PublishError, new_run_id};

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
    let partition = platform.layout.partition(table, Layer::Raw, date);
    let run_id = new_run_id();
    let imported_at = imported_at(date);
    let mut writer = PartitionWriter::new(
        platform.storage.clone(),
        partition.clone(),
        run_id.clone(),
        common::raw::schema(table),
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
    use arrow::array::Array;
    use arrow::datatypes::DataType;

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
        // The raw schema (`common::raw::schema`), column by column.
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
        let schema = common::raw::schema(&table);
        let found: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
            .collect();
        assert_eq!(found, expected);
    }
}
