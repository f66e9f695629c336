//! The parse stage through its public face: raw partitions in, parsed partitions and
//! messages out.

use super::*;
use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Int64Type};
use chrono::NaiveDate;
use common::source::published_files;
use tascomi_test_support::raw::publish_raw_with_earlier_types;
use tascomi_test_support::{RawPage, publish_raw, read_published};

mod duplicates;

struct Fixture {
    _dir: tempfile::TempDir,
    platform: Platform,
    stage: ParseStage,
}

const PIPELINE: &str = "\
tables:
  appeals: daily
  applications: { schedule: daily, completeness_column: application_reference_number }
";

fn fixture_with(settings: ParseSettings) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::local(dir.path());
    let pipeline = PipelineFile::parse(PIPELINE, "pipeline.yaml").unwrap();
    let stage = ParseStage::new(platform.clone(), pipeline, settings);
    Fixture {
        _dir: dir,
        platform,
        stage,
    }
}

fn fixture() -> Fixture {
    fixture_with(ParseSettings::default())
}

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
}

fn table(name: &str) -> TableName {
    TableName::new(name).unwrap()
}

fn appeal(id: u32) -> String {
    format!(
        r#"{{"id":"{id}","last_updated":"2026-11-20 10:00:00","reference":"A/{id}","ward":null}}"#
    )
}

async fn parsed_rows(f: &Fixture, table_name: &str) -> Option<RecordBatch> {
    let partition = f
        .platform
        .layout
        .partition(&table(table_name), Layer::Parsed, date());
    let batches = read_published(&f.platform, &partition).await.unwrap()?;
    let schema = batches.first().map(|b| b.schema())?;
    Some(concat_batches(&schema, &batches).unwrap())
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> &'b StringArray {
    batch.column_by_name(name).unwrap().as_string::<i32>()
}

async fn reports(f: &Fixture, table_name: &str) -> Vec<serde_json::Value> {
    let prefix = format!("{}parse/{table_name}/", f.platform.metrics_prefix);
    let bucket = &f.platform.layout.refined_bucket;
    let mut lines = Vec::new();
    for object in f.platform.storage.list(bucket, &prefix).await.unwrap() {
        let body = f.platform.storage.get(bucket, &object.key).await.unwrap();
        for line in std::str::from_utf8(&body).unwrap().lines() {
            lines.push(serde_json::from_str(line).unwrap());
        }
    }
    lines
}

#[tokio::test]
async fn explodes_ok_pages_into_sorted_text_columns_then_bookkeeping() {
    let f = fixture();
    let nested = r#"{"id":"3","last_updated":null,"reference":"A/3","extra":{"a":[1,2]},"count":12.50,"flag":true}"#;
    let pages = [
        RawPage::ok(1, vec![appeal(1), appeal(2)]),
        RawPage::failed(2, 500, "internal server error"),
        RawPage::ok(3, vec![nested.to_string()]),
    ];
    let mut message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
        .await
        .unwrap();
    message.as_of = Some(date());
    let outcome = f.stage.parse(&message).await.unwrap();

    assert_eq!(outcome.next.layer, Layer::Parsed);
    assert_eq!(outcome.next.as_of, Some(date()), "as_of is passed on");
    assert_eq!(outcome.next.partition["import_date"], "20261121");
    assert_eq!(outcome.published.rows, 3);
    assert_eq!(outcome.field_columns, 7);
    assert!(outcome.report.passed());

    let batch = parsed_rows(&f, "appeals").await.unwrap();
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "count",
            "extra",
            "flag",
            "id",
            "last_updated",
            "reference",
            "ward",
            "page_number",
            "import_api_url_requested",
            "import_api_status_code",
            "import_exception_thrown",
            "import_datetime",
            "import_timestamp"
        ]
    );
    assert_eq!(
        column(&batch, "id").iter().collect::<Vec<_>>(),
        [Some("1"), Some("2"), Some("3")]
    );
    assert_eq!(column(&batch, "extra").value(2), r#"{"a":[1,2]}"#);
    assert_eq!(column(&batch, "count").value(2), "12.50");
    assert_eq!(column(&batch, "flag").value(2), "true");
    assert!(column(&batch, "extra").is_null(0));
    assert!(column(&batch, "ward").is_null(0));
    assert!(column(&batch, "last_updated").is_null(2));
    let pages = batch
        .column_by_name("page_number")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(pages.values().to_vec(), [1, 1, 3]);
    assert_eq!(
        column(&batch, "import_api_status_code")
            .iter()
            .collect::<Vec<_>>(),
        [Some("200"); 3]
    );
    assert!(
        column(&batch, "import_api_url_requested")
            .value(2)
            .ends_with("page=3")
    );

    // The parsed table is registered with the text columns and the partition keys.
    let def = f
        .platform
        .catalog
        .table("local-tascomi-raw-zone", "appeals")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(def.columns.len(), 13);
    assert_eq!(def.columns[0].hive_type, "string");
    assert_eq!(def.partition_keys[3], "import_date");
}

/// A raw partition of our earlier runs (`int` page number and status, whole-second
/// `import_timestamp`) parses as a current one: the status `200` is `"200"`, the page number a
/// `bigint`, the failed page (`500`) left out; rows and text columns are the same.
#[tokio::test]
async fn a_raw_partition_with_the_earlier_types_is_cast_and_parsed_alike() {
    let pages = [
        RawPage::ok(1, vec![appeal(1), appeal(2)]),
        RawPage::failed(2, 500, "internal server error"),
        RawPage::ok(3, vec![appeal(3)]),
    ];
    let mut parsed = Vec::new();
    for earlier in [false, true] {
        let f = fixture();
        let message = if earlier {
            publish_raw_with_earlier_types(&f.platform, &table("appeals"), date(), &pages).await
        } else {
            publish_raw(&f.platform, &table("appeals"), date(), &pages).await
        }
        .unwrap();
        let outcome = f.stage.parse(&message).await.unwrap();
        assert_eq!(outcome.published.rows, 3);
        parsed.push(parsed_rows(&f, "appeals").await.unwrap());
    }
    let (current, earlier) = (&parsed[0], &parsed[1]);
    assert_eq!(earlier.schema(), current.schema());
    let types = |name: &str| {
        earlier
            .schema()
            .field_with_name(name)
            .unwrap()
            .data_type()
            .clone()
    };
    assert_eq!(types("page_number"), DataType::Int64);
    assert_eq!(types("import_api_status_code"), DataType::Utf8);
    assert_eq!(types("import_timestamp"), DataType::Utf8);
    assert_eq!(
        column(earlier, "import_api_status_code")
            .iter()
            .collect::<Vec<_>>(),
        [Some("200"); 3]
    );
    let pages = earlier
        .column_by_name("page_number")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(pages.values().to_vec(), [1, 1, 3]);
    // Every column alike but `import_timestamp`, which is copied as the raw file has it.
    for field in current.schema().fields() {
        let name = field.name();
        if name == "import_timestamp" {
            continue;
        }
        assert_eq!(
            earlier.column_by_name(name),
            current.column_by_name(name),
            "{name}"
        );
    }
    assert_eq!(column(earlier, "import_timestamp").value(0), "1795314600");
    assert_eq!(column(current, "import_timestamp").value(0), "1795314600.0");
}

#[tokio::test]
async fn the_same_message_twice_publishes_the_partition_once() {
    let f = fixture();
    let message = publish_raw(
        &f.platform,
        &table("appeals"),
        date(),
        &[RawPage::ok(1, vec![appeal(1), appeal(2)])],
    )
    .await
    .unwrap();
    let first = f.stage.parse(&message).await.unwrap();
    let second = f.stage.parse(&message).await.unwrap();
    assert_eq!(
        second.published.replaced.as_deref(),
        Some(first.published.location.as_str())
    );
    assert_eq!(parsed_rows(&f, "appeals").await.unwrap().num_rows(), 2);
    let partition = f
        .platform
        .layout
        .partition(&table("appeals"), Layer::Parsed, date());
    let files = f
        .platform
        .storage
        .list(&partition.bucket, &partition.key_prefix())
        .await
        .unwrap();
    assert!(
        files
            .iter()
            .all(|o| o.key.contains(&second.published.run_id)),
        "{files:?}"
    );
}

#[tokio::test]
async fn batch_size_does_not_change_the_result() {
    let small = fixture_with(ParseSettings::with_batch_rows(1));
    let large = fixture();
    let pages = [
        RawPage::ok(1, (1..=5).map(appeal).collect()),
        RawPage::ok(2, (6..=9).map(appeal).collect()),
    ];
    let mut results = Vec::new();
    for f in [&small, &large] {
        let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
            .await
            .unwrap();
        f.stage.parse(&message).await.unwrap();
        results.push(parsed_rows(f, "appeals").await.unwrap());
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0].num_rows(), 9);
}

#[tokio::test]
async fn a_failed_gate_publishes_nothing_and_keeps_the_last_good_partition() {
    let f = fixture();
    let good = publish_raw(
        &f.platform,
        &table("appeals"),
        date(),
        &[RawPage::ok(1, vec![appeal(1), appeal(2)])],
    )
    .await
    .unwrap();
    let published = f.stage.parse(&good).await.unwrap().published;

    // The same day re-ingested, now with a record without an id (and id 2 twice, which
    // is not a failure: one row is kept).
    let pages = [
        RawPage::ok(1, vec![appeal(1), appeal(2)]),
        RawPage::ok(2, vec![appeal(2), r#"{"reference":"A/?"}"#.into()]),
    ];
    let bad = publish_raw(&f.platform, &table("appeals"), date(), &pages)
        .await
        .unwrap();
    let err = f.stage.parse(&bad).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("appeals parsed import_date=20261121: data-quality gate failed"),
        "{text}"
    );
    assert!(text.contains("missing_id = 1 (threshold 0)"), "{text}");
    assert!(!text.contains("unique_id"), "{text}");
    assert!(matches!(err.into_failure(), Failure::Permanent(_)));

    let partition = f
        .platform
        .layout
        .partition(&table("appeals"), Layer::Parsed, date());
    let now = published_files(&f.platform, &partition)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        now.location, published.location,
        "the last good partition stays"
    );
    assert_eq!(parsed_rows(&f, "appeals").await.unwrap().num_rows(), 2);
    let files = f
        .platform
        .storage
        .list(&partition.bucket, &partition.key_prefix())
        .await
        .unwrap();
    assert!(
        files.iter().all(|o| o.key.contains(&published.run_id)),
        "failed run discarded: {files:?}"
    );

    // Both runs recorded their results, the failed one with its figures.
    let lines = reports(&f, "appeals").await;
    assert_eq!(lines.len(), 10, "five checks per run");
    let failed: Vec<_> = lines.iter().filter(|l| l["passed"] == false).collect();
    assert_eq!(failed.len(), 5);
    let missing = failed
        .iter()
        .find(|l| l["check"]["check"] == "missing_id")
        .unwrap();
    assert_eq!(missing["check"]["value"], 1.0);
    assert_eq!(missing["partition_date"], "20261121");
    assert_eq!(missing["stage"], "parse");
    let collapsed = failed
        .iter()
        .find(|l| l["check"]["check"] == "duplicate_records_collapsed")
        .unwrap();
    assert_eq!(collapsed["check"]["value"], 1.0);
    assert_eq!(collapsed["check"]["passed"], true);
}

#[tokio::test]
async fn completeness_of_the_configured_column_gates_the_partition() {
    let f = fixture();
    let record = |id: u32, reference: Option<&str>| {
        let mut object = serde_json::json!({"id": id.to_string(), "last_updated": null});
        if let Some(reference) = reference {
            object["application_reference_number"] = reference.into();
        }
        object.to_string()
    };
    // 98 of 100 records have a reference: below 99 %.
    let records: Vec<String> = (0..100)
        .map(|i| record(i, (i >= 2).then_some("2026/0001")))
        .collect();
    let message = publish_raw(
        &f.platform,
        &table("applications"),
        date(),
        &[RawPage::ok(1, records)],
    )
    .await
    .unwrap();
    let err = f.stage.parse(&message).await.unwrap_err().to_string();
    assert!(
        err.contains("completeness_application_reference_number = 0.98 (threshold 0.99)"),
        "{err}"
    );
    // 99 of 100 pass.
    let records: Vec<String> = (0..100)
        .map(|i| record(i, (i >= 1).then_some("2026/0001")))
        .collect();
    let message = publish_raw(
        &f.platform,
        &table("applications"),
        date(),
        &[RawPage::ok(1, records)],
    )
    .await
    .unwrap();
    f.stage.parse(&message).await.unwrap();
}

#[tokio::test]
async fn a_quiet_day_publishes_an_empty_partition() {
    let f = fixture();
    for pages in [vec![], vec![RawPage::failed(1, 202, "no results")]] {
        let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
            .await
            .unwrap();
        let outcome = f.stage.parse(&message).await.unwrap();
        assert_eq!(outcome.published.rows, 0);
        assert_eq!(outcome.field_columns, 0);
        assert!(outcome.report.passed(), "{:?}", outcome.report);
        let partition = f
            .platform
            .layout
            .partition(&table("appeals"), Layer::Parsed, date());
        assert!(
            published_files(&f.platform, &partition)
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test]
async fn a_record_that_is_not_an_object_names_table_partition_page_and_row() {
    let f = fixture();
    let pages = [
        RawPage::ok(1, vec![appeal(1)]),
        RawPage::ok(2, vec![appeal(2), appeal(3), "[1,2]".into()]),
    ];
    let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
        .await
        .unwrap();
    let err = f.stage.parse(&message).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "appeals raw import_date=20261121, page 2, row 3: the record is a JSON array, not an object"
    );
    assert!(!err.is_transient());
    let partition = f
        .platform
        .layout
        .partition(&table("appeals"), Layer::Parsed, date());
    assert!(
        published_files(&f.platform, &partition)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn unusable_field_names_are_an_error_naming_the_field() {
    let f = fixture();
    let pages = [RawPage::ok(1, vec![r#"{"id":"1","bad name":"x"}"#.into()])];
    let message = publish_raw(&f.platform, &table("appeals"), date(), &pages)
        .await
        .unwrap();
    let err = f.stage.parse(&message).await.unwrap_err().to_string();
    assert!(
        err.starts_with("appeals raw import_date=20261121: column \"bad name\""),
        "{err}"
    );
}

#[tokio::test]
async fn messages_for_other_layers_or_missing_partitions_are_refused() {
    let f = fixture();
    let message = publish_raw(&f.platform, &table("appeals"), date(), &[])
        .await
        .unwrap();
    let mut wrong = message.clone();
    wrong.layer = Layer::Parsed;
    let err = f.stage.parse(&wrong).await.unwrap_err().to_string();
    assert!(
        err.contains("reads raw partitions, but the message names the parsed layer of appeals"),
        "{err}"
    );

    let mut other_day = message.clone();
    other_day.partition.insert("import_day".into(), "22".into());
    other_day
        .partition
        .insert("import_date".into(), "20261122".into());
    let err = f.stage.parse(&other_day).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "appeals raw import_date=20261122 is not published in the catalog (a replayed message for a partition that was removed?)"
    );
    assert!(matches!(err.into_failure(), Failure::Permanent(_)));
}

#[tokio::test]
async fn the_handler_answers_with_the_next_message_and_knows_the_configured_tables() {
    let f = fixture();
    assert!(f.stage.is_known_table(&table("applications")));
    assert!(!f.stage.is_known_table(&table("wards")));
    assert_eq!(f.stage.stage(), "parse");
    let message = publish_raw(
        &f.platform,
        &table("appeals"),
        date(),
        &[RawPage::ok(1, vec![appeal(1)])],
    )
    .await
    .unwrap();
    let next = f.stage.handle(message).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].layer, Layer::Parsed);
}
