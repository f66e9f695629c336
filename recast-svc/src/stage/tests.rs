//! The recast stage through its public face: parsed partitions in, increments and messages
//! out.

use super::*;
use arrow::array::{Array, AsArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Float64Type, Int32Type, TimeUnit, TimestampMicrosecondType};
use chrono::NaiveDate;
use tascomi_test_support::{RawPage, publish_parsed, publish_raw, read_published};

const PIPELINE: &str = "\
tables:
  appeals: daily
  notes: { schedule: daily, keep_as_text: true }
";

const DICTIONARY: &str = r#"[{
    "integer": {"appeals": ["id", "officer_id", "never_sent"], "notes": ["id"]},
    "long": {"appeals": ["location_x"]},
    "double": {"appeals": ["costs"]},
    "float": {"appeals": ["area"]},
    "boolean": {"appeals": ["ceased"]},
    "timestamp": {"appeals": ["last_updated"]},
    "date": {"appeals": ["hearing_day"]}
}]"#;

struct Fixture {
    _dir: tempfile::TempDir,
    platform: Platform,
    recast: RecastStage,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::local(dir.path());
    let pipeline = PipelineFile::parse(PIPELINE, "pipeline.yaml").unwrap();
    let dictionary = ColumnTypes::parse(DICTIONARY, "dictionary.json").unwrap();
    Fixture {
        recast: RecastStage::new(
            platform.clone(),
            pipeline,
            dictionary,
            RecastSettings::default(),
        ),
        platform,
        _dir: dir,
    }
}

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
}

fn table(name: &str) -> TableName {
    TableName::new(name).unwrap()
}

fn appeal(id: &str, officer: &str, ceased: &str) -> String {
    serde_json::json!({
        "id": id,
        "officer_id": officer,
        "location_x": "533123",
        "costs": "1250.75",
        "area": "0.1",
        "ceased": ceased,
        "last_updated": "2026-11-20 17:45:12",
        "hearing_day": "2026-12-01",
        "reference": "APP/2026/1",
    })
    .to_string()
}

/// The parsed partition of `records` (what parse-svc makes of one page of them); returns
/// the message for recast-svc.
async fn parsed(f: &Fixture, table_name: &str, records: Vec<String>) -> PartitionReady {
    let pages = [RawPage::ok(1, records)];
    publish_parsed(&f.platform, &table(table_name), date(), &pages)
        .await
        .unwrap()
        .next
}

async fn increment(f: &Fixture, table_name: &str) -> Option<RecordBatch> {
    let partition = f
        .platform
        .layout
        .partition(&table(table_name), Layer::Increment, date());
    let batches = read_published(&f.platform, &partition).await.unwrap()?;
    let schema = batches.first().map(|b| b.schema())?;
    Some(concat_batches(&schema, &batches).unwrap())
}

fn check<'r>(report: &'r QualityReport, name: &str) -> Option<&'r CheckResult> {
    report.checks.iter().find(|c| c.check == name)
}

#[tokio::test]
async fn dictionary_columns_are_typed_and_the_rest_stay_text() {
    let f = fixture();
    let mut message = parsed(
        &f,
        "appeals",
        vec![appeal("1", "7", "t"), appeal("2", " 8 ", "No")],
    )
    .await;
    message.as_of = Some(date());
    let outcome = f.recast.recast(&message).await.unwrap();
    assert_eq!(outcome.next.layer, Layer::Increment);
    assert_eq!(outcome.next.as_of, Some(date()));
    assert_eq!(outcome.cast_columns, 8);
    assert_eq!(outcome.cast_failures, 0);
    assert!(outcome.report.passed());

    let batch = increment(&f, "appeals").await.unwrap();
    let schema = batch.schema();
    let type_of = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
    assert_eq!(type_of("id"), DataType::Int32);
    assert_eq!(type_of("officer_id"), DataType::Int32);
    assert_eq!(type_of("location_x"), DataType::Int64);
    assert_eq!(type_of("costs"), DataType::Float64);
    // The dictionary's `float` is a double, as in the old jobs' tables.
    assert_eq!(type_of("area"), DataType::Float64);
    assert_eq!(type_of("ceased"), DataType::Boolean);
    assert_eq!(
        type_of("last_updated"),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(type_of("hearing_day"), DataType::Date32);
    assert_eq!(type_of("reference"), DataType::Utf8);
    assert_eq!(type_of("page_number"), DataType::Int64);
    assert_eq!(type_of("import_api_status_code"), DataType::Utf8);
    assert_eq!(
        type_of("import_datetime"),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(type_of("import_timestamp"), DataType::Utf8);

    let officers = batch
        .column_by_name("officer_id")
        .unwrap()
        .as_primitive::<Int32Type>();
    assert_eq!(officers.values().to_vec(), [7, 8]);
    let area = batch
        .column_by_name("area")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(area.value(0), 0.1, "the double nearest 0.1, not a float's");
    let statuses = batch
        .column_by_name("import_api_status_code")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(statuses.iter().collect::<Vec<_>>(), [Some("200"); 2]);
    let ceased = batch.column_by_name("ceased").unwrap().as_boolean();
    assert_eq!(ceased.iter().collect::<Vec<_>>(), [Some(true), Some(false)]);
    let updated = batch
        .column_by_name("last_updated")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    let expected = NaiveDate::from_ymd_opt(2026, 11, 20)
        .unwrap()
        .and_hms_opt(17, 45, 12)
        .unwrap();
    assert_eq!(updated.value(0), expected.and_utc().timestamp_micros());

    // The refined table in the catalog carries the typed schema.
    let def = f
        .platform
        .catalog
        .table("local-tascomi-refined-zone", "increment_appeals")
        .await
        .unwrap()
        .unwrap();
    let hive = |name: &str| {
        def.columns
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .hive_type
            .clone()
    };
    assert_eq!(hive("id"), "int");
    assert_eq!(hive("location_x"), "bigint");
    assert_eq!(hive("costs"), "double");
    assert_eq!(hive("area"), "double");
    assert_eq!(hive("page_number"), "bigint");
    assert_eq!(hive("import_api_status_code"), "string");
    assert_eq!(hive("import_timestamp"), "string");
    assert_eq!(hive("ceased"), "boolean");
    assert_eq!(hive("last_updated"), "timestamp");
    assert_eq!(hive("hearing_day"), "date");
    assert_eq!(hive("reference"), "string");
}

#[tokio::test]
async fn values_that_do_not_cast_become_null_and_are_counted_per_column() {
    let f = fixture();
    let records = vec![
        appeal("1", "7", "t"),
        appeal("2", "seven", "maybe"),
        appeal("3", "7.5", "Y"),
        appeal("4", "", "f"),
        appeal("5", "8.0", "n"),
    ];
    let message = parsed(&f, "appeals", records).await;
    let outcome = f.recast.recast(&message).await.unwrap();
    assert!(outcome.report.passed(), "cast failures are informational");
    assert_eq!(outcome.cast_failures, 3);
    let officer = check(&outcome.report, "cast_failures_officer_id").unwrap();
    assert_eq!(officer.value, 2.0);
    assert_eq!(officer.examples, ["seven", "7.5"]);
    assert!(officer.passed);
    assert_eq!(
        check(&outcome.report, "cast_failures_ceased")
            .unwrap()
            .examples,
        ["maybe"]
    );
    assert_eq!(check(&outcome.report, "cast_failures").unwrap().value, 3.0);
    assert!(check(&outcome.report, "cast_failures_id").is_none());

    let batch = increment(&f, "appeals").await.unwrap();
    let officers = batch.column_by_name("officer_id").unwrap();
    // "7.5" is 7 as Spark casts it, yet counted: its fraction was truncated. "8.0" is 8,
    // clean; "seven" is null and counted; "" is null and not a failure.
    let officers = officers.as_primitive::<Int32Type>();
    assert_eq!(
        officers.iter().collect::<Vec<_>>(),
        [Some(7), None, Some(7), None, Some(8)]
    );
    let ceased = batch.column_by_name("ceased").unwrap().as_boolean();
    assert_eq!(
        ceased.iter().collect::<Vec<_>>(),
        [Some(true), None, Some(true), Some(false), Some(false)]
    );
    assert_eq!(outcome.published.rows, 5);
}

#[tokio::test]
async fn missing_dictionary_columns_are_reported_not_fatal() {
    let f = fixture();
    let message = parsed(&f, "appeals", vec![appeal("1", "7", "t")]).await;
    let outcome = f.recast.recast(&message).await.unwrap();
    let missing = check(&outcome.report, "missing_dictionary_columns").unwrap();
    assert!(missing.passed);
    assert_eq!(missing.value, 1.0);
    assert_eq!(missing.examples, ["never_sent"]);
}

#[tokio::test]
async fn keep_as_text_tables_pass_through_as_text() {
    let f = fixture();
    let message = parsed(&f, "notes", vec![r#"{"id":"1","body":"x"}"#.into()]).await;
    let outcome = f.recast.recast(&message).await.unwrap();
    assert_eq!(outcome.cast_columns, 0);
    let batch = increment(&f, "notes").await.unwrap();
    assert_eq!(
        batch.column_by_name("id").unwrap().data_type(),
        &DataType::Utf8
    );
    assert_eq!(
        batch.column_by_name("page_number").unwrap().data_type(),
        &DataType::Int64
    );
}

#[tokio::test]
async fn an_id_that_will_not_cast_fails_the_gate_and_publishes_nothing() {
    let f = fixture();
    // Unique as text, so parse passes; too large for the dictionary's integer, so the
    // increment would have a row without an id.
    let message = parsed(
        &f,
        "appeals",
        vec![appeal("1", "7", "t"), appeal("3000000000", "8", "f")],
    )
    .await;
    let err = f.recast.recast(&message).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("appeals increment import_date=20261121: data-quality gate failed, nothing published: missing_id = 1"),
        "{text}"
    );
    assert!(matches!(err.into_failure(), Failure::Permanent(_)));
    assert!(increment(&f, "appeals").await.is_none());
    let partition = f
        .platform
        .layout
        .partition(&table("appeals"), Layer::Increment, date());
    let left = f
        .platform
        .storage
        .list(&partition.bucket, &partition.key_prefix())
        .await
        .unwrap();
    assert!(
        left.is_empty(),
        "the failed run's files are removed: {left:?}"
    );
    let recorded = f
        .platform
        .storage
        .list(
            &f.platform.layout.refined_bucket,
            &format!("{}recast/appeals/", f.platform.metrics_prefix),
        )
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1, "the failed run's results are recorded");
}

#[tokio::test]
async fn the_same_message_twice_publishes_the_partition_once() {
    let f = fixture();
    let message = parsed(
        &f,
        "appeals",
        vec![appeal("1", "7", "t"), appeal("2", "8", "f")],
    )
    .await;
    let first = f.recast.recast(&message).await.unwrap();
    let second = f.recast.recast(&message).await.unwrap();
    assert_eq!(
        second.published.replaced.as_deref(),
        Some(first.published.location.as_str())
    );
    assert_eq!(increment(&f, "appeals").await.unwrap().num_rows(), 2);
}

#[tokio::test]
async fn a_quiet_day_publishes_an_empty_increment() {
    let f = fixture();
    let message = publish_parsed(&f.platform, &table("appeals"), date(), &[])
        .await
        .unwrap()
        .next;
    let outcome = f.recast.recast(&message).await.unwrap();
    assert_eq!(outcome.published.rows, 0);
    assert!(outcome.report.passed());
    assert!(check(&outcome.report, "missing_dictionary_columns").is_none());
}

#[tokio::test]
async fn messages_for_other_layers_are_refused() {
    let f = fixture();
    let raw = publish_raw(&f.platform, &table("appeals"), date(), &[])
        .await
        .unwrap();
    let err = f.recast.recast(&raw).await.unwrap_err().to_string();
    assert!(
        err.contains("reads parsed partitions, but the message names the raw layer of appeals"),
        "{err}"
    );
    assert_eq!(f.recast.stage(), "recast");
    assert!(f.recast.is_known_table(&table("notes")));
    assert!(!f.recast.is_known_table(&table("wards")));
}
