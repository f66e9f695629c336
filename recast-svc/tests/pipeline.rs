//! Parsed -> increment for tables of the production column-type dictionary (the 752-field
//! `applications` among them), on the embedded platform and on moto (S3, Glue, SQS), with the
//! typed Parquet read back by an independent reader (pyarrow). The parsed partitions are written
//! as parse-svc writes them (`tascomi_test_support::publish_parsed`; parse-svc's tests check
//! that the two agree).
//!
//! The moto tests run when `AWS_ENDPOINT_URL` is set (scripts/test.sh starts moto) and are
//! skipped with a reason otherwise, unless `CI` is set, where skipping is a failure. The
//! reader checks run when `TASCOMI_PYTHON` names a Python with pyarrow, under the same rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::dictionary::{ColumnType, ColumnTypes};
use common::layout::Layer;
use common::messages::{self, PartitionReady};
use common::platform::Platform;
use common::queue::{MemoryQueue, Queue};
use common::runner::{Disposition, Runner, RunnerSettings};
use common::source::published_files;
use recast_svc::{RecastSettings, RecastStage};
use tascomi_test_support::{MotoPlatform, RawPage, publish_parsed};

use tascomi_test_support::production::{
    TABLES, date, pipeline, production_dictionary, shape, table, typed_column, with_field,
};

/// The raw pages of a table: two pages of records and a failed page in between; for
/// `applications`, two values that will not cast.
fn raw_pages(dictionary: &ColumnTypes, name: &str, fields: usize, records: usize) -> Vec<RawPage> {
    let shape = shape(dictionary, name, fields);
    let mut first = shape.records(1, records / 2);
    let second = shape.records(1 + (records / 2) as u64, records - records / 2);
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

/// The interpreter with pyarrow, or `None` (with the reason printed) when the reader checks
/// cannot run here.
fn python() -> Option<PathBuf> {
    match std::env::var_os("TASCOMI_PYTHON") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("TASCOMI_PYTHON is not set, and CI requires the independent reader checks")
        }
        _ => {
            eprintln!("skipped: TASCOMI_PYTHON is not set (run scripts/test.sh)");
            None
        }
    }
}

/// Reads Parquet files with pyarrow: column name -> pyarrow type, and the number of rows.
fn pyarrow_schema(python: &Path, files: &[PathBuf]) -> (BTreeMap<String, String>, u64) {
    const SCRIPT: &str = r#"
import json, sys
import pyarrow.parquet as pq
types, rows = {}, 0
for path in sys.argv[1:]:
    table = pq.read_table(path)
    rows += table.num_rows
    for field in table.schema:
        types[field.name] = str(field.type)
print(json.dumps({"types": types, "rows": rows}))
"#;
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .args(files)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let types = answer["types"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    (types, answer["rows"].as_u64().unwrap())
}

/// The pyarrow type a column of the increment must have.
fn expected_pyarrow_type(
    dictionary: &ColumnTypes,
    name: &str,
    keep_as_text: bool,
    column: &str,
) -> &'static str {
    match column {
        // The old jobs' types: bigint, and the status as text ("200").
        "page_number" => return "int64",
        "import_datetime" => return "timestamp[us]",
        _ if common::bookkeeping::is_bookkeeping(column) => return "string",
        _ => {}
    }
    match dictionary
        .column_type(name, column)
        .filter(|_| !keep_as_text)
    {
        None => "string",
        Some(ColumnType::Integer) => "int32",
        Some(ColumnType::Long) => "int64",
        // `float` and `double` alike: a double, as the old jobs' recast wrote both.
        Some(ColumnType::Float | ColumnType::Double) => "double",
        Some(ColumnType::Boolean) => "bool",
        Some(ColumnType::Timestamp) => "timestamp[us]",
        Some(ColumnType::Date) => "date32[day]",
    }
}

/// Copies a published partition's files out of storage into `dir`, for the reader.
async fn download(platform: &Platform, name: &str, layer: Layer, dir: &Path) -> Vec<PathBuf> {
    let partition = platform.layout.partition(&table(name), layer, date());
    let published = published_files(platform, &partition)
        .await
        .unwrap()
        .unwrap();
    let mut paths = Vec::new();
    for (i, file) in published.files.iter().enumerate() {
        let body = platform
            .storage
            .get(&published.bucket, &file.key)
            .await
            .unwrap();
        let path = dir.join(format!("{name}-{}-{i}.parquet", layer.name()));
        std::fs::write(&path, &body).unwrap();
        paths.push(path);
    }
    paths
}

/// Recasts every table's parsed partition on `platform` and checks what was published.
async fn parsed_to_increment(platform: &Platform) {
    let Some(dictionary) = production_dictionary() else {
        return;
    };
    let pipeline = pipeline();
    let recast = RecastStage::new(
        platform.clone(),
        pipeline.clone(),
        dictionary.clone(),
        RecastSettings::with_batch_rows(100),
    );
    let downloads = tempfile::tempdir().unwrap();
    let python = python();
    for (name, fields) in TABLES {
        let records = if name == "applications" { 300 } else { 50 };
        let pages = raw_pages(&dictionary, name, fields, records);
        let parsed = publish_parsed(platform, &table(name), date(), &pages)
            .await
            .unwrap();
        assert_eq!(parsed.rows, records as u64, "{name}");
        assert!(
            parsed.field_columns >= fields,
            "{name}: {} columns",
            parsed.field_columns
        );

        let increment = recast.recast(&parsed.next).await.unwrap();
        assert_eq!(increment.published.rows, records as u64, "{name}");
        assert_eq!(increment.next.layer, Layer::Increment);
        let keep_as_text = pipeline.table_or_default(&table(name)).keep_as_text;
        if keep_as_text {
            assert_eq!(increment.cast_columns, 0, "{name}");
        } else {
            assert_eq!(
                increment.cast_columns,
                dictionary.columns(name).count(),
                "{name}"
            );
        }
        if name == "applications" {
            assert_eq!(parsed.field_columns, 752);
            assert_eq!(increment.cast_failures, 2);
            let failed: Vec<_> = increment
                .report
                .checks
                .iter()
                .filter(|c| c.check.starts_with("cast_failures_"))
                .map(|c| (c.examples.clone(), c.passed))
                .collect();
            assert_eq!(failed.len(), 2);
            assert!(failed.iter().all(|(_, passed)| *passed));
            assert!(failed.iter().any(|(e, _)| e == &["not a number"]));
            assert!(failed.iter().any(|(e, _)| e == &["0000-00-00 00:00:00"]));
        } else {
            assert_eq!(increment.cast_failures, 0, "{name}");
        }

        // The catalog's refined table has the dictionary's types.
        let partition = platform
            .layout
            .partition(&table(name), Layer::Increment, date());
        let def = platform
            .catalog
            .table(&partition.database, &partition.catalog_table)
            .await
            .unwrap()
            .unwrap();
        let id = def.columns.iter().find(|c| c.name == "id").unwrap();
        assert_eq!(
            id.hive_type,
            if keep_as_text { "string" } else { "int" },
            "{name}"
        );

        if let Some(python) = &python {
            let files = download(platform, name, Layer::Increment, downloads.path()).await;
            let (types, rows) = pyarrow_schema(python, &files);
            assert_eq!(rows, records as u64, "{name}");
            assert_eq!(types.len(), parsed.field_columns + 6, "{name}");
            for (column, found) in &types {
                let expected = expected_pyarrow_type(&dictionary, name, keep_as_text, column);
                assert_eq!(found, expected, "{name}.{column}");
            }
            let typed: BTreeSet<&str> = types.values().map(String::as_str).collect();
            // No 32-bit float is ever written: the dictionary's floats are doubles.
            assert!(!typed.contains("float"), "{name}: {typed:?}");
            if name == "applications" {
                for t in [
                    "int32",
                    "int64",
                    "double",
                    "bool",
                    "timestamp[us]",
                    "string",
                ] {
                    assert!(typed.contains(t), "applications has a {t} column");
                }
            }
        }
    }
}

/// A parsed partition's message through recast's runner: the increment is published and its
/// message sent on, for snapshot-svc.
async fn a_parsed_partition_goes_on_to_snapshot(
    platform: &Platform,
    recast_queues: [Arc<dyn Queue>; 3],
) {
    let Some(dictionary) = production_dictionary() else {
        return;
    };
    let pipeline = pipeline();
    let enforcements = shape(&dictionary, "enforcements", 60);
    let pages = [RawPage::ok(1, enforcements.records(1, 20))];
    let parsed = publish_parsed(platform, &table("enforcements"), date(), &pages)
        .await
        .unwrap();

    let settings = RunnerSettings {
        wait_time: Duration::from_millis(200),
        retry_base: Duration::from_millis(100),
        ..Default::default()
    };
    let [recast_input, recast_next, recast_dead] = recast_queues;
    recast_input
        .send(&messages::encode(&parsed.next), &BTreeMap::new())
        .await
        .unwrap();
    let recast = Runner::new(
        Arc::new(RecastStage::new(
            platform.clone(),
            pipeline,
            dictionary,
            RecastSettings::default(),
        )),
        recast_input,
        Some(recast_next.clone()),
        Some(recast_dead),
        settings,
    );
    assert_eq!(
        recast.drain(Duration::from_millis(500)).await,
        [Disposition::Done { sent: 1 }]
    );
    let snapshot_bound = recast_next
        .receive(10, Duration::from_secs(1))
        .await
        .unwrap();
    let message: PartitionReady = messages::decode(&snapshot_bound[0].body, |_| true).unwrap();
    assert_eq!(
        (message.table.as_str(), message.layer),
        ("enforcements", Layer::Increment)
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
async fn parsed_to_increment_for_production_tables_on_the_embedded_platform() {
    let dir = tempfile::tempdir().unwrap();
    parsed_to_increment(&Platform::local(dir.path())).await;
}

#[tokio::test]
async fn a_parsed_partition_goes_on_to_snapshot_through_the_runner_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::local(dir.path());
    a_parsed_partition_goes_on_to_snapshot(&platform, memory_queues("recast")).await;
}

#[tokio::test]
async fn parsed_to_increment_for_production_tables_on_moto() {
    let Some(moto) = MotoPlatform::start().await else {
        return;
    };
    parsed_to_increment(&moto.platform).await;
}

#[tokio::test]
async fn a_parsed_partition_goes_on_to_snapshot_through_the_runner_moto() {
    let Some(moto) = MotoPlatform::start().await else {
        return;
    };
    let recast_queues = moto.queues("recast").await;
    a_parsed_partition_goes_on_to_snapshot(&moto.platform, recast_queues).await;
}
