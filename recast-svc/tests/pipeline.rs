//! Raw -> parsed -> increment for tables of the production column-type dictionary (the
//! 752-field `applications` among them), on the embedded platform and on moto (S3, Glue, SQS),
//! with the typed Parquet read back by an independent reader (pyarrow).
//!
//! The moto tests run when `AWS_ENDPOINT_URL` is set (scripts/test.sh starts moto) and are
//! skipped with a reason otherwise, unless `CI` is set, where skipping is a failure. The
//! reader checks run when `TASCOMI_PYTHON` names a Python with pyarrow, under the same rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use common::config::{Env, PipelineFile};
use common::dictionary::{ColumnType, ColumnTypes};
use common::layout::{Layer, TableName};
use common::messages::{self, PartitionReady};
use common::platform::Platform;
use common::queue::{MemoryQueue, Queue, SqsQueue};
use common::runner::{Disposition, Runner, RunnerSettings};
use parse_svc::source::published_files;
use parse_svc::testing::{RawPage, RecordShape, publish_raw};
use parse_svc::{ParseSettings, ParseStage};
use recast_svc::{RecastSettings, RecastStage};

const PIPELINE: &str = "\
tables:
  applications: { schedule: daily, completeness_column: application_reference_number }
  appeals: daily
  enforcements: daily
  public_consultations: { schedule: daily, completeness_column: document_id }
  pre_applications: { schedule: daily, keep_as_text: true }
";

/// The tables driven end to end, with their number of record fields.
const TABLES: [(&str, usize); 5] = [
    ("applications", 752),
    ("appeals", 60),
    ("enforcements", 60),
    ("public_consultations", 30),
    ("pre_applications", 40),
];

fn production_dictionary() -> ColumnTypes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/tascomi/column-type-dictionary.json");
    ColumnTypes::load(&path).unwrap()
}

fn pipeline() -> PipelineFile {
    PipelineFile::parse(PIPELINE, "pipeline.yaml").unwrap()
}

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
}

fn table(name: &str) -> TableName {
    TableName::new(name).unwrap()
}

fn shape(dictionary: &ColumnTypes, name: &str, fields: usize) -> RecordShape {
    let config = pipeline().table_or_default(&table(name));
    RecordShape::from_dictionary(dictionary, name, fields, &[&config.completeness_column])
}

/// Sets one field of a JSON record.
fn with_field(record: &str, field: &str, value: &str) -> String {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(record).unwrap();
    object.insert(field.into(), value.into());
    serde_json::Value::Object(object).to_string()
}

/// The first column of `table` that the dictionary types as `wanted`.
fn typed_column(dictionary: &ColumnTypes, name: &str, wanted: ColumnType) -> String {
    dictionary
        .columns(name)
        .find(|(c, t)| *t == wanted && *c != "id")
        .map(|(c, _)| c.to_owned())
        .unwrap()
}

/// The raw pages of a table: two pages of records and a failed page in between, the last record
/// of the first page served again at the start of the last (offset paging over a live table);
/// for `applications`, two values that will not cast.
fn raw_pages(dictionary: &ColumnTypes, name: &str, fields: usize, records: usize) -> Vec<RawPage> {
    let shape = shape(dictionary, name, fields);
    let mut first = shape.records(1, records / 2);
    let mut second = shape.records(1 + (records / 2) as u64, records - records / 2);
    second.insert(0, first[first.len() - 1].clone());
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
        "page_number" | "import_api_status_code" => return "int32",
        "import_datetime" => return "timestamp[us]",
        _ if parse_svc::schema::is_bookkeeping(column) => return "string",
        _ => {}
    }
    match dictionary
        .column_type(name, column)
        .filter(|_| !keep_as_text)
    {
        None => "string",
        Some(ColumnType::Integer) => "int32",
        Some(ColumnType::Long) => "int64",
        Some(ColumnType::Float) => "float",
        Some(ColumnType::Double) => "double",
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

/// Drives every table raw -> parsed -> increment on `platform` and checks what was published.
async fn raw_to_increment(platform: &Platform) {
    let dictionary = production_dictionary();
    let pipeline = pipeline();
    let parse = ParseStage::new(
        platform.clone(),
        pipeline.clone(),
        ParseSettings { batch_rows: 128 },
    );
    let recast = RecastStage::new(
        platform.clone(),
        pipeline.clone(),
        dictionary.clone(),
        RecastSettings { batch_rows: 100 },
    );
    let downloads = tempfile::tempdir().unwrap();
    let python = python();
    for (name, fields) in TABLES {
        let records = if name == "applications" { 300 } else { 50 };
        let pages = raw_pages(&dictionary, name, fields, records);
        let raw = publish_raw(platform, &table(name), date(), &pages)
            .await
            .unwrap();

        let parsed = parse.parse(&raw).await.unwrap();
        assert_eq!(parsed.published.rows, records as u64, "{name}");
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
            if name == "applications" {
                for t in [
                    "int32",
                    "int64",
                    "float",
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

/// Records without an id in one table's raw partition: its parse fails the gate and its message
/// goes to the dead-letter queue with the figures, while another table's message goes on to
/// recast. (Duplicate ids no longer fail a gate: parse keeps one row per id.)
async fn gate_failure_dead_letters_while_others_go_on(
    platform: &Platform,
    parse_queues: [Arc<dyn Queue>; 3],
    recast_queues: [Arc<dyn Queue>; 3],
) {
    let dictionary = production_dictionary();
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

    // The good table's message went on: recast it through its own runner.
    let [recast_input, recast_next, recast_dead] = recast_queues;
    let forwarded = next.receive(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(forwarded.len(), 1);
    recast_input
        .send(&forwarded[0].body, &forwarded[0].attributes)
        .await
        .unwrap();
    next.acknowledge(&forwarded[0].receipt).await.unwrap();
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
async fn raw_to_increment_for_production_tables_on_the_embedded_platform() {
    let dir = tempfile::tempdir().unwrap();
    raw_to_increment(&Platform::local(dir.path())).await;
}

#[tokio::test]
async fn a_failed_gate_dead_letters_its_message_while_other_tables_go_on_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::local(dir.path());
    gate_failure_dead_letters_while_others_go_on(
        &platform,
        memory_queues("parse"),
        memory_queues("recast"),
    )
    .await;
}

/// AWS on moto: buckets, a database prefix and queues of its own, so tests run in parallel on one
/// server. `None` (with the reason printed) when no endpoint is configured.
struct Moto {
    sdk: aws_config::SdkConfig,
    platform: Platform,
    suffix: String,
}

impl Moto {
    async fn start() -> Option<Self> {
        if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
            if std::env::var_os("CI").is_some() {
                panic!("AWS_ENDPOINT_URL is not set, and CI requires the moto tests");
            }
            eprintln!(
                "skipped: AWS_ENDPOINT_URL is not set (run scripts/test.sh, which starts moto)"
            );
            return None;
        }
        let sdk = common::aws::load_sdk_config().await;
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let raw = format!("raw-{suffix}");
        let refined = format!("refined-{suffix}");
        let s3 = common::storage::S3Storage::new(&sdk);
        for bucket in [&raw, &refined] {
            let mut request = s3.client().create_bucket().bucket(bucket);
            if let Some(region) = sdk
                .region()
                .map(|r| r.as_ref())
                .filter(|r| *r != "us-east-1")
            {
                request = request.create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(region.into())
                        .build(),
                );
            }
            request.send().await.unwrap();
        }
        let env = Env::from_pairs([
            ("TASCOMI_RAW_BUCKET", raw),
            ("TASCOMI_REFINED_BUCKET", refined),
            ("TASCOMI_DATABASE_PREFIX", format!("t{suffix}")),
        ]);
        let platform = Platform::aws(&sdk, &env).unwrap();
        Some(Self {
            sdk,
            platform,
            suffix,
        })
    }

    async fn queues(&self, stage: &str) -> [Arc<dyn Queue>; 3] {
        let client = aws_sdk_sqs::Client::new(&self.sdk);
        let mut queues = Vec::new();
        for q in ["in", "next", "dead"] {
            let created = client
                .create_queue()
                .queue_name(format!("{stage}-{q}-{}", self.suffix))
                .send()
                .await
                .unwrap();
            let url = created.queue_url().unwrap().to_owned();
            queues.push(Arc::new(SqsQueue::new(&self.sdk, url)) as Arc<dyn Queue>);
        }
        queues.try_into().unwrap()
    }
}

#[tokio::test]
async fn raw_to_increment_for_production_tables_on_moto() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    raw_to_increment(&moto.platform).await;
}

#[tokio::test]
async fn a_failed_gate_dead_letters_its_message_while_other_tables_go_on_moto() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let parse_queues = moto.queues("parse").await;
    let recast_queues = moto.queues("recast").await;
    gate_failure_dead_letters_while_others_go_on(&moto.platform, parse_queues, recast_queues).await;
}
