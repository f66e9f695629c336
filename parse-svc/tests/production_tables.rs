//! Raw -> parsed for tables of the production column-type dictionary (the 752-field
//! `applications` among them), on the embedded platform and on moto (S3, Glue, SQS); and the
//! check that the parsed partitions recast-svc's tests write directly
//! (`tascomi_test_support::publish_parsed`) are what this stage makes.
//!
//! The moto tests run when `AWS_ENDPOINT_URL` is set (scripts/test.sh starts moto) and are
//! skipped with a reason otherwise, unless `CI` is set, where skipping is a failure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::compute::concat_batches;
use common::dictionary::{ColumnType, ColumnTypes};
use common::layout::Layer;
use common::messages::{self, PartitionReady};
use common::platform::Platform;
use common::queue::{MemoryQueue, Queue};
use common::runner::{Disposition, Runner, RunnerSettings};
use common::source::published_files;
use parse_svc::{ParseSettings, ParseStage};
use tascomi_test_support::{MotoPlatform, RawPage, publish_parsed, publish_raw, read_published};

use tascomi_test_support::production::{
    TABLES, date, pipeline, production_dictionary, shape, table, typed_column, with_field,
};

/// The raw pages of a table: two pages of records and a failed page in between, the last record
/// of the first page served again at the start of the last (offset paging over a live table)
/// when `served_twice`; for `applications`, two values that will not cast.
fn raw_pages(
    dictionary: &ColumnTypes,
    name: &str,
    fields: usize,
    records: usize,
    served_twice: bool,
) -> Vec<RawPage> {
    let shape = shape(dictionary, name, fields);
    let mut first = shape.records(1, records / 2);
    let mut second = shape.records(1 + (records / 2) as u64, records - records / 2);
    if served_twice {
        second.insert(0, first[first.len() - 1].clone());
    }
    if name == "applications" {
        let integer = typed_column(dictionary, name, ColumnType::Integer);
        let timestamp = typed_column(dictionary, name, ColumnType::Timestamp);
        first[0] = with_field(&first[0], &integer, "not a number");
        first[1] = with_field(&first[1], &timestamp, "0000-00-00 00:00:00");
    }
    vec![
        RawPage::ok(1, first),
        RawPage::failed(2, 500, "internal server error"),
        RawPage::ok(3, second),
    ]
}

/// Parses every table's raw partition on `platform` and checks what was published.
async fn raw_to_parsed(platform: &Platform) {
    let Some(dictionary) = production_dictionary() else {
        return;
    };
    let parse = ParseStage::new(
        platform.clone(),
        pipeline(),
        ParseSettings::with_batch_rows(128),
    );
    for (name, fields) in TABLES {
        let records = if name == "applications" { 300 } else { 50 };
        let pages = raw_pages(&dictionary, name, fields, records, true);
        let raw = publish_raw(platform, &table(name), date(), &pages)
            .await
            .unwrap();

        let parsed = parse.parse(&raw).await.unwrap();
        assert_eq!(parsed.published.rows, records as u64, "{name}");
        assert_eq!(parsed.next.layer, Layer::Parsed);
        let collapsed = parsed
            .report
            .checks
            .iter()
            .find(|c| c.check == "duplicate_records_collapsed")
            .unwrap();
        assert_eq!(
            (collapsed.value, collapsed.examples.as_slice()),
            (1.0, [(records / 2).to_string()].as_slice()),
            "{name}: the record served twice is kept once"
        );
        assert!(
            parsed.field_columns >= fields,
            "{name}: {} columns",
            parsed.field_columns
        );
        if name == "applications" {
            assert_eq!(parsed.field_columns, 752);
        }
    }
}

#[tokio::test]
async fn raw_to_parsed_for_production_tables_on_the_embedded_platform() {
    let dir = tempfile::tempdir().unwrap();
    raw_to_parsed(&Platform::local(dir.path())).await;
}

#[tokio::test]
async fn raw_to_parsed_for_production_tables_on_moto() {
    let Some(moto) = MotoPlatform::start().await else {
        return;
    };
    raw_to_parsed(&moto.platform).await;
}

/// recast-svc's tests write their input with `publish_parsed` rather than run this stage: the
/// two must publish the same columns and rows.
#[tokio::test]
async fn the_parsed_partitions_of_the_test_support_are_what_this_stage_publishes() {
    let Some(dictionary) = production_dictionary() else {
        return;
    };
    for (name, fields) in [("applications", 752), ("appeals", 60)] {
        let pages = raw_pages(&dictionary, name, fields, 40, false);
        let mut read = Vec::new();
        for through_the_stage in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let platform = Platform::local(dir.path());
            let field_columns = if through_the_stage {
                let stage = ParseStage::new(platform.clone(), pipeline(), Default::default());
                let raw = publish_raw(&platform, &table(name), date(), &pages)
                    .await
                    .unwrap();
                stage.parse(&raw).await.unwrap().field_columns
            } else {
                publish_parsed(&platform, &table(name), date(), &pages)
                    .await
                    .unwrap()
                    .field_columns
            };
            let partition = platform
                .layout
                .partition(&table(name), Layer::Parsed, date());
            let batches = read_published(&platform, &partition)
                .await
                .unwrap()
                .unwrap();
            let batch = concat_batches(&batches[0].schema(), &batches).unwrap();
            read.push((field_columns, batch));
        }
        assert_eq!(read[0], read[1], "{name}");
        assert_eq!(read[0].1.num_rows(), 40, "{name}");
    }
}

/// Records without an id in one table's raw partition: its parse fails the gate and its message
/// goes to the dead-letter queue with the figures, while another table's message goes on to
/// recast. (Duplicate ids no longer fail a gate: parse keeps one row per id.)
async fn gate_failure_dead_letters_while_others_go_on(
    platform: &Platform,
    parse_queues: [Arc<dyn Queue>; 3],
) {
    let Some(dictionary) = production_dictionary() else {
        return;
    };
    let pipeline = pipeline();
    let appeals = shape(&dictionary, "appeals", 60);
    let mut records = appeals.records(1, 20);
    for record in &mut records[9..11] {
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(record).unwrap();
        object.insert("id".into(), serde_json::Value::Null);
        *record = serde_json::Value::Object(object).to_string();
    }
    let bad = publish_raw(
        platform,
        &table("appeals"),
        date(),
        &[RawPage::ok(1, records)],
    )
    .await
    .unwrap();
    let enforcements = shape(&dictionary, "enforcements", 60);
    let good = publish_raw(
        platform,
        &table("enforcements"),
        date(),
        &[RawPage::ok(1, enforcements.records(1, 20))],
    )
    .await
    .unwrap();

    let settings = RunnerSettings {
        wait_time: Duration::from_millis(200),
        retry_base: Duration::from_millis(100),
        ..Default::default()
    };
    let [input, next, dead] = parse_queues;
    let parse = Runner::new(
        Arc::new(ParseStage::new(
            platform.clone(),
            pipeline.clone(),
            ParseSettings::default(),
        )),
        input.clone(),
        Some(next.clone()),
        Some(dead.clone()),
        settings.clone(),
    );
    let attributes = BTreeMap::new();
    input
        .send(&messages::encode(&bad), &attributes)
        .await
        .unwrap();
    input
        .send(&messages::encode(&good), &attributes)
        .await
        .unwrap();
    let done = parse.drain(Duration::from_millis(500)).await;
    assert_eq!(done.len(), 2, "{done:?}");
    assert!(done.contains(&Disposition::Done { sent: 1 }), "{done:?}");
    let reason = done
        .iter()
        .find_map(|d| match d {
            Disposition::DeadLettered(reason) => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        reason.contains("appeals parsed import_date=20261121: data-quality gate failed"),
        "{reason}"
    );
    assert!(reason.contains("missing_id = 2 (threshold 0)"), "{reason}");

    let dead_letters = dead.receive(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(dead_letters.len(), 1);
    assert_eq!(dead_letters[0].attributes["failed_stage"], "parse");
    assert!(dead_letters[0].attributes["failure_reason"].contains("missing_id = 2"));
    let body: PartitionReady = messages::decode(&dead_letters[0].body, |_| true).unwrap();
    assert_eq!(body.table.as_str(), "appeals");
    let parsed = platform
        .layout
        .partition(&table("appeals"), Layer::Parsed, date());
    assert!(
        published_files(platform, &parsed).await.unwrap().is_none(),
        "nothing published"
    );

    // The good table's message went on, for recast.
    let forwarded = next.receive(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(forwarded.len(), 1);
    let message: PartitionReady = messages::decode(&forwarded[0].body, |_| true).unwrap();
    assert_eq!(
        (message.table.as_str(), message.layer),
        ("enforcements", Layer::Parsed)
    );
}

fn memory_queues(stage: &str) -> [Arc<dyn Queue>; 3] {
    ["in", "next", "dead"].map(|q| {
        Arc::new(MemoryQueue::new(
            format!("{stage}-{q}"),
            Duration::from_secs(30),
        )) as Arc<dyn Queue>
    })
}

#[tokio::test]
async fn a_failed_gate_dead_letters_its_message_while_other_tables_go_on_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::local(dir.path());
    gate_failure_dead_letters_while_others_go_on(&platform, memory_queues("parse")).await;
}

#[tokio::test]
async fn a_failed_gate_dead_letters_its_message_while_other_tables_go_on_moto() {
    let Some(moto) = MotoPlatform::start().await else {
        return;
    };
    let parse_queues = moto.queues("parse").await;
    gate_failure_dead_letters_while_others_go_on(&moto.platform, parse_queues).await;
}
