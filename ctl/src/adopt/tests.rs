use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use bytes::Bytes;
use chrono::NaiveDate;
use common::layout::{Layer, TableName, partition_values};

use super::*;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

/// Rows of (page, status, exception), as the old job wrote them: one file directly in the Hive
/// folder of `date`, or in a run folder when `run` is given.
async fn raw_folder(
    platform: &Platform,
    date: NaiveDate,
    rows: &[(i64, Option<&str>, Option<&str>)],
    run: Option<&str>,
) {
    let table = TableName::new("appeals").unwrap();
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new(PAGE_NUMBER, DataType::Int64, false),
        arrow::datatypes::Field::new(URL, DataType::Utf8, false),
        arrow::datatypes::Field::new(STATUS, DataType::Utf8, true),
        arrow::datatypes::Field::new(EXCEPTION, DataType::Utf8, true),
        arrow::datatypes::Field::new("appeals", DataType::Utf8, true),
        arrow::datatypes::Field::new(
            "import_datetime",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            false,
        ),
    ]));
    let n = rows.len();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(
                rows.iter()
                    .map(|r| format!("https://api/appeals?page={}", r.0)),
            )),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.2))),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("{{\"id\":\"{i}\"}}")),
            )),
            Arc::new(TimestampMicrosecondArray::from(vec![0; n])),
        ],
    )
    .unwrap();
    let mut body = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut body, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let folder = Layer::Raw
        .partition_keys()
        .iter()
        .zip(partition_values(date))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("/");
    let run = run.map_or(String::new(), |r| format!("run-{r}/"));
    let key = format!(
        "{}{folder}/{run}part-00000.snappy.parquet",
        Layer::Raw.table_prefix(&table)
    );
    platform
        .storage
        .put(&platform.layout.raw_bucket, &key, Bytes::from(body))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_base_is_the_last_import_that_answered_200_and_its_other_rows_are_failed_pages() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::local(dir.path());
    let table = TableName::new("appeals").unwrap();
    raw_folder(
        &platform,
        day(20),
        &[(1, Some("200"), None), (2, Some("200"), None)],
        None,
    )
    .await;
    raw_folder(
        &platform,
        day(21),
        &[
            (1, Some("200"), None),
            (3, Some("500"), Some("Internal Server Error")),
            (3, Some("500"), Some("Internal Server Error")),
            (4, None, Some("timed out")),
        ],
        None,
    )
    .await;
    // Nothing answered: not a base.
    raw_folder(&platform, day(22), &[(1, Some("503"), None)], None).await;
    // A run folder of ours (unpublished): never adopted, never the base.
    raw_folder(&platform, day(23), &[(1, Some("200"), None)], Some("0190")).await;

    let found = plan(&platform, std::slice::from_ref(&table)).await.unwrap();
    let raw = &found[0].layers[0];
    assert_eq!(
        raw.folders.iter().map(|f| f.date).collect::<Vec<_>>(),
        [day(20), day(21), day(22)]
    );
    assert_eq!(raw.to_register, [day(20), day(21), day(22)]);
    assert!(!raw.table_exists);
    let StateFinding::Derived { import } = &found[0].state else {
        panic!("{:?}", found[0].state)
    };
    assert_eq!(import.import_date, day(21));
    assert_eq!(import.kind, ImportKind::Full);
    assert_eq!(import.records_written, 1);
    let failed: Vec<(u32, Option<u16>, &str)> = import
        .failed_pages
        .iter()
        .map(|p| (p.page_number, p.status_code, p.error.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            (3, Some(500), "Internal Server Error"),
            (4, None, "timed out")
        ]
    );
    assert_eq!(import.full_pages_outstanding, [3, 4]);
    assert!(found[0].describe(true).contains("would register 3"));

    execute(&platform, &found).await.unwrap();
    let state = state::load(&platform.storage, &platform.layout.raw_bucket, &table)
        .await
        .unwrap();
    assert_eq!(state.latest().map(|i| i.import_date), Some(day(21)));
    let again = plan(&platform, std::slice::from_ref(&table)).await.unwrap();
    assert!(again[0].layers.iter().all(|l| l.to_register.is_empty()));
    assert!(matches!(again[0].state, StateFinding::Kept { latest: Some(d) } if d == day(21)));
}

#[tokio::test]
async fn a_raw_layer_that_never_answered_200_leaves_the_first_night_a_full_load() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::local(dir.path());
    let table = TableName::new("appeals").unwrap();
    raw_folder(&platform, day(20), &[(1, Some("401"), None)], None).await;
    let found = plan(&platform, std::slice::from_ref(&table)).await.unwrap();
    assert!(matches!(found[0].state, StateFinding::NoSuccessfulImport));
    assert!(
        found[0]
            .describe(false)
            .contains("the first night is a full load")
    );
}
