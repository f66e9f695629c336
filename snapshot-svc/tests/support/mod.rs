//! Scenarios of the snapshot stage, run against any platform: the local one (tests/local.rs)
//! and moto (tests/moto.rs). Each scenario publishes increment partitions the way recast-svc
//! does (PartitionWriter), with the raw and parsed partitions of the same import as ingest and
//! parse publish them (the snapshot checks every import reached the increment layer), delivers
//! "partition ready" messages and reads the snapshot back.
#![allow(dead_code, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, TimeUnit};
use chrono::NaiveDate;
use common::catalog::PartitionInfo;
use common::config::PipelineFile;
use common::layout::{Layer, TableName};
use common::messages::{self, PartitionReady};
use common::parquet_io::read_all;
use common::platform::Platform;
use common::publish::{PartitionWriter, new_run_id, published_partitions};
use common::queue::{MemoryQueue, Queue};
use common::runner::{Disposition, Failure, Handler, Runner, RunnerSettings};
use common::storage::split_s3_uri;
use snapshot_svc::plan::parameters;
use snapshot_svc::{SnapshotSettings, SnapshotStage};
use tascomi_test_support::publish::{new_run, publish_run};

pub const TABLE: &str = "applications";

/// A lake to run scenarios in, and what owns it.
pub struct Lake {
    pub platform: Platform,
    /// Holds the local data directory, or a scratch directory for moto runs.
    pub dir: tempfile::TempDir,
}

/// Local files and the local catalog (the embedded default), in a temporary directory.
pub async fn local_lake() -> Option<Lake> {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::local(dir.path());
    Some(Lake { platform, dir })
}

/// S3 and Glue on moto (`AWS_ENDPOINT_URL`), with buckets and a database of the test's own
/// (named `<name>-raw-<suffix>`...), so that tests run in parallel on one server. `None`, with
/// the reason printed, without an endpoint, except in CI (env `CI`), where that fails.
pub async fn moto_lake(name: &str) -> Option<Lake> {
    let env = common::config::Env::from_process();
    let endpoint = match env.get("AWS_ENDPOINT_URL") {
        Some(endpoint) => endpoint.to_owned(),
        None if env.get("CI").is_some() => panic!("AWS_ENDPOINT_URL is not set in CI"),
        _ => {
            println!(
                "skipped: AWS_ENDPOINT_URL is not set (run scripts/test.sh, which starts moto)"
            );
            return None;
        }
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await;
    let run = new_run_id();
    let suffix = &run[run.len() - 12..];
    let raw = format!("{name}-raw-{suffix}");
    let refined = format!("{name}-refined-{suffix}");
    let s3 = common::storage::S3Storage::new(&sdk);
    for bucket in [&raw, &refined] {
        s3.client()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
    }
    let env = common::config::Env::from_pairs([
        ("TASCOMI_RAW_BUCKET", raw.as_str()),
        ("TASCOMI_REFINED_BUCKET", refined.as_str()),
        ("TASCOMI_DATABASE_PREFIX", &format!("{name}{suffix}")),
        ("TASCOMI_ORPHAN_GRACE_SECS", "0"),
    ]);
    let platform = Platform::aws(&sdk, &env).unwrap();
    Some(Lake {
        platform,
        dir: tempfile::tempdir().unwrap(),
    })
}

pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

pub fn table() -> TableName {
    TableName::new(TABLE).unwrap()
}

pub fn pipeline(completeness_column: &str) -> PipelineFile {
    PipelineFile::parse(
        &format!(
            "tables:\n  {TABLE}: {{ schedule: daily, completeness_column: {completeness_column} }}\n"
        ),
        "test pipeline",
    )
    .unwrap()
}

/// Small batches and files, so that a few rows exercise splitting, copying and rewriting.
pub fn small_settings() -> SnapshotSettings {
    SnapshotSettings {
        batch_rows: 4,
        file_rows: 10,
        target_file_bytes: 64 * 1024 * 1024,
        hole_grace: Duration::from_secs(1800),
    }
}

pub fn stage(lake: &Lake) -> SnapshotStage {
    SnapshotStage::new(lake.platform.clone(), pipeline("id"), small_settings())
}

/// One record of an increment: id, last_updated (`YYYY-MM-DD HH:MM:SS`), a value.
#[derive(Debug, Clone)]
pub struct Rec {
    pub id: i32,
    pub last_updated: Option<&'static str>,
    pub value: &'static str,
}

pub fn rec(id: i32, last_updated: Option<&'static str>, value: &'static str) -> Rec {
    Rec {
        id,
        last_updated,
        value,
    }
}

fn micros(text: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

/// An increment batch as recast-svc writes it: typed columns plus the bookkeeping columns,
/// without the partition columns. `extra` adds text columns (a field that appeared).
pub fn increment_batch(records: &[Rec], extra: &[(&str, &str)]) -> RecordBatch {
    let n = records.len();
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    let mut fields = vec![
        Field::new("id", DataType::Int32, true),
        Field::new("last_updated", ts.clone(), true),
        Field::new("value", DataType::Utf8, true),
        Field::new("page_number", DataType::Int64, true),
        Field::new("import_api_url_requested", DataType::Utf8, true),
        Field::new("import_api_status_code", DataType::Utf8, true),
        Field::new("import_exception_thrown", DataType::Utf8, true),
        Field::new("import_datetime", ts, true),
        Field::new("import_timestamp", DataType::Utf8, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(records.iter().map(|r| r.id))),
        Arc::new(TimestampMicrosecondArray::from_iter(
            records.iter().map(|r| r.last_updated.map(micros)),
        )),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| r.value),
        )),
        Arc::new(Int64Array::from_iter_values(std::iter::repeat_n(1, n))),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            "https://example-planning.idoxcloud.com/rest/v1/applications?page=1",
            n,
        ))),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n("200", n))),
        Arc::new(StringArray::from_iter(std::iter::repeat_n(None::<&str>, n))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            std::iter::repeat_n(micros("2026-11-21 02:00:00"), n),
        )),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            "1795226400.0",
            n,
        ))),
    ];
    for (name, value) in extra {
        fields.push(Field::new(*name, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from_iter_values(
            std::iter::repeat_n(*value, n),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// The published partition of `layer` and `date`, if any.
pub async fn published(
    platform: &Platform,
    layer: Layer,
    date: NaiveDate,
) -> Option<PartitionInfo> {
    let partition = platform.layout.partition(&table(), layer, date);
    published_partitions(platform.catalog.as_ref(), &partition)
        .await
        .unwrap()
        .into_iter()
        .find(|(d, _)| *d == date)
        .map(|(_, info)| info)
}

/// Publishes a small partition of `layer` (raw or parsed: one text column, as far as the
/// snapshot cares) with these catalog parameters, as ingest-svc or parse-svc would.
pub async fn publish_upstream(
    platform: &Platform,
    layer: Layer,
    date: NaiveDate,
    parameters: &[(&str, &str)],
) -> PartitionReady {
    let partition = platform.layout.partition(&table(), layer, date);
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "record",
            DataType::Utf8,
            true,
        )])),
        vec![Arc::new(StringArray::from(vec!["{\"id\": \"1\"}"]))],
    )
    .unwrap();
    let mut writer = new_run(platform, &partition, batch.schema());
    writer.write(&batch).await.unwrap();
    let parameters = parameters
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let published = publish_run(platform, writer, parameters).await.unwrap();
    PartitionReady::new(&partition, published.location, published.run_id, None)
}

/// Publishes a raw import of `date` with ingest's `import_kind` parameter (`full` or
/// `incremental`).
pub async fn publish_raw(platform: &Platform, date: NaiveDate, kind: &str) -> PartitionReady {
    publish_upstream(
        platform,
        Layer::Raw,
        date,
        &[("import_kind", kind), ("mode", kind)],
    )
    .await
}

/// Rewrites the catalog's record of when the partition of `layer` and `date` was published, as
/// if it had been `hours` ago (a night that was killed yesterday).
pub async fn published_hours_ago(platform: &Platform, layer: Layer, date: NaiveDate, hours: i64) {
    let partition = platform.layout.partition(&table(), layer, date);
    let mut info = published(platform, layer, date)
        .await
        .unwrap_or_else(|| panic!("no {layer} partition of {date}"));
    let then = chrono::Utc::now() - chrono::Duration::hours(hours);
    info.parameters
        .insert("published_at".into(), then.to_rfc3339());
    platform
        .catalog
        .publish_partition(&partition.database, &partition.catalog_table, &info)
        .await
        .unwrap();
}

/// Publishes an increment partition as recast-svc would, and returns its message. The raw and
/// parsed partitions of the same import are published first when they are not yet (the
/// table's first import is a full load, later ones incremental), an hour ago: the snapshot
/// requires every import to have reached the increment layer.
pub async fn publish_increment(
    platform: &Platform,
    date: NaiveDate,
    batches: &[RecordBatch],
    as_of: Option<NaiveDate>,
) -> PartitionReady {
    if published(platform, Layer::Raw, date).await.is_none() {
        let raw_of = platform.layout.partition(&table(), Layer::Raw, date);
        let first = published_partitions(platform.catalog.as_ref(), &raw_of)
            .await
            .unwrap()
            .is_empty();
        publish_raw(platform, date, if first { "full" } else { "incremental" }).await;
        published_hours_ago(platform, Layer::Raw, date, 1).await;
    }
    if published(platform, Layer::Parsed, date).await.is_none() {
        publish_upstream(platform, Layer::Parsed, date, &[]).await;
        published_hours_ago(platform, Layer::Parsed, date, 1).await;
    }
    let partition = platform.layout.partition(&table(), Layer::Increment, date);
    let schema = batches[0].schema();
    let mut writer = PartitionWriter::new(
        platform.storage.clone(),
        partition.clone(),
        new_run_id(),
        schema,
        platform.write_options,
    );
    for batch in batches {
        writer.write(batch).await.unwrap();
    }
    let published = writer
        .finish()
        .await
        .unwrap()
        .publish(
            platform.catalog.as_ref(),
            &platform.layout,
            BTreeMap::new(),
            platform.orphan_grace,
        )
        .await
        .unwrap();
    PartitionReady::new(&partition, published.location, published.run_id, as_of)
}

pub async fn increment(
    lake: &Lake,
    date: NaiveDate,
    records: &[Rec],
    as_of: NaiveDate,
) -> PartitionReady {
    publish_increment(
        &lake.platform,
        date,
        &[increment_batch(records, &[])],
        Some(as_of),
    )
    .await
}

/// Handles a message and expects a publication; returns the snapshot's partition-ready.
pub async fn snapshot(stage: &SnapshotStage, message: PartitionReady) -> PartitionReady {
    match stage.handle(message).await {
        Ok(mut next) => {
            assert_eq!(next.len(), 1);
            next.remove(0)
        }
        Err(failure) => panic!("snapshot failed: {failure}"),
    }
}

/// A snapshot partition as read back: rows by id, the partition's parameters, its files.
#[derive(Debug)]
pub struct SnapshotRows {
    pub batches: Vec<RecordBatch>,
    pub parameters: BTreeMap<String, String>,
    pub location: String,
    pub keys: Vec<String>,
}

impl SnapshotRows {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// Ids in file order.
    pub fn ids(&self) -> Vec<i32> {
        self.batches
            .iter()
            .flat_map(|b| {
                b.column_by_name("id")
                    .unwrap()
                    .as_primitive::<Int32Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    /// The text value of `column` for the row with this id.
    pub fn text(&self, id: i32, column: &str) -> Option<String> {
        for b in &self.batches {
            let ids = b.column_by_name("id").unwrap().as_primitive::<Int32Type>();
            if let Some(row) = (0..b.num_rows()).find(|&r| ids.value(r) == id) {
                let values = b.column_by_name(column)?;
                let values = values.as_string::<i32>();
                return (!values.is_null(row)).then(|| values.value(row).to_owned());
            }
        }
        panic!("id {id} is not in the snapshot")
    }

    pub fn parameter(&self, name: &str) -> &str {
        self.parameters
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no parameter {name} in {:?}", self.parameters))
    }
}

/// Reads the published snapshot partition of `date` (all its files, in key order).
pub async fn read_snapshot(platform: &Platform, date: NaiveDate) -> SnapshotRows {
    let partition = platform.layout.partition(&table(), Layer::Snapshot, date);
    let partitions = published_partitions(platform.catalog.as_ref(), &partition)
        .await
        .unwrap();
    let (_, info) = partitions
        .into_iter()
        .find(|(d, _)| *d == date)
        .unwrap_or_else(|| panic!("no snapshot partition for {date}"));
    let (bucket, prefix) = split_s3_uri(&info.location).unwrap();
    let mut batches = Vec::new();
    let mut keys = Vec::new();
    for object in platform.storage.list(bucket, prefix).await.unwrap() {
        batches.extend(
            read_all(platform.storage.clone(), bucket, &object.key)
                .await
                .unwrap(),
        );
        keys.push(object.key);
    }
    SnapshotRows {
        batches,
        parameters: info.parameters,
        location: info.location,
        keys,
    }
}

pub async fn snapshot_partition_count(platform: &Platform) -> usize {
    let partition = platform.layout.partition(&table(), Layer::Snapshot, day(1));
    published_partitions(platform.catalog.as_ref(), &partition)
        .await
        .unwrap()
        .len()
}

/// Ids 1..=n, each with a dated last_updated and the value `v1`.
pub fn records(ids: std::ops::RangeInclusive<i32>, value: &'static str) -> Vec<Rec> {
    ids.map(|id| rec(id, Some("2026-11-01 09:00:00"), value))
        .collect()
}

fn assert_unique(ids: &[i32]) {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "one row per id: {ids:?}");
}

fn assert_ordered(ids: &[i32]) {
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ordered by id: {ids:?}"
    );
}

// ---------------------------------------------------------------- scenarios

/// Three days of increments, no snapshot yet: the first snapshot holds every id once, with its
/// latest version and its import partition columns.
pub async fn first_snapshot_from_several_days(lake: &Lake) {
    let stage = stage(lake);
    increment(lake, day(1), &records(1..=12, "v1"), day(3)).await;
    increment(
        lake,
        day(2),
        &[
            rec(2, Some("2026-11-01 12:00:00"), "v2"),
            rec(13, Some("2026-11-01 12:00:00"), "v2"),
        ],
        day(3),
    )
    .await;
    let last = increment(
        lake,
        day(3),
        &[rec(3, Some("2026-11-02 12:00:00"), "v3")],
        day(3),
    )
    .await;
    let ready = snapshot(&stage, last).await;
    assert_eq!(ready.layer, Layer::Snapshot);
    assert_eq!(ready.partition["snapshot_date"], "20261103");
    assert_eq!(ready.as_of, Some(day(3)));

    let snap = read_snapshot(&lake.platform, day(3)).await;
    let ids = snap.ids();
    assert_eq!(ids, (1..=13).collect::<Vec<_>>());
    assert_eq!(snap.text(1, "value").as_deref(), Some("v1"));
    assert_eq!(snap.text(2, "value").as_deref(), Some("v2"));
    assert_eq!(snap.text(3, "value").as_deref(), Some("v3"));
    assert_eq!(snap.text(1, "import_date").as_deref(), Some("20261101"));
    assert_eq!(snap.text(2, "import_date").as_deref(), Some("20261102"));
    assert_eq!(snap.text(3, "import_month").as_deref(), Some("11"));
    assert_eq!(snap.parameter(parameters::BASE_SNAPSHOT_DATE), "");
    assert_eq!(
        snap.parameter(parameters::APPLIED_INCREMENTS)
            .split(',')
            .count(),
        3
    );
    assert!(
        snap.keys.len() >= 2,
        "13 rows at 10 rows per file: {:?}",
        snap.keys
    );
    // The partition columns of the snapshot come from the path, never from the files.
    let schema = snap.batches[0].schema();
    assert!(schema.column_with_name("snapshot_date").is_none());
    assert!(schema.column_with_name("import_date").is_some());
}

/// A full load in id order (the usual first snapshot) is streamed rather than held; with a
/// record delivered twice by neighbouring pages, the later copy wins, and the rows are those of
/// the same load out of order (which is held and sorted). A copy served again a page later
/// (the row parse keeps is then out of place) is put back in its place.
pub async fn a_first_snapshot_in_id_order_equals_the_same_load_out_of_order(lake: &Lake) {
    let stage = stage(lake);
    let mut in_order = records(1..=25, "v1");
    in_order.insert(7, rec(7, Some("2026-11-01 09:00:00"), "second copy"));
    in_order.insert(20, rec(12, Some("2026-11-01 09:00:00"), "a page later"));
    let last = increment(lake, day(1), &in_order, day(1)).await;
    snapshot(&stage, last).await;
    let streamed = read_snapshot(&lake.platform, day(1)).await;

    // Out of id order, the two copies of 7 (and of 12) still in the same order.
    let mut shuffled = in_order.clone();
    shuffled.rotate_left(10);
    let last = increment(lake, day(2), &shuffled, day(2)).await;
    // Day 2 merges onto day 1; a fresh stage on a fresh table would be needed for a second
    // first snapshot, so compare against what the merge of the same rows gives.
    snapshot(&stage, last).await;
    let merged = read_snapshot(&lake.platform, day(2)).await;

    assert_eq!(streamed.ids(), (1..=25).collect::<Vec<_>>());
    assert_eq!(merged.ids(), streamed.ids());
    for id in 1..=25 {
        assert_eq!(
            streamed.text(id, "value"),
            merged.text(id, "value"),
            "id {id}"
        );
    }
    assert_eq!(streamed.text(7, "value").as_deref(), Some("second copy"));
    assert_eq!(streamed.text(12, "value").as_deref(), Some("a page later"));
    assert!(
        streamed.keys.len() >= 2,
        "25 rows at 10 rows per file: {:?}",
        streamed.keys
    );
}

/// Yesterday's snapshot plus today's increment: a changed record is replaced, a new one added,
/// untouched ones carried over.
pub async fn changed_record_replaced_and_new_record_added(lake: &Lake) {
    let stage = stage(lake);
    let first = increment(lake, day(1), &records(1..=30, "v1"), day(1)).await;
    snapshot(&stage, first).await;
    let next = increment(
        lake,
        day(2),
        &[
            rec(5, Some("2026-11-01 18:00:00"), "changed"),
            rec(31, Some("2026-11-01 18:00:00"), "new"),
        ],
        day(2),
    )
    .await;
    snapshot(&stage, next).await;
    let snap = read_snapshot(&lake.platform, day(2)).await;
    let ids = snap.ids();
    assert_eq!(ids, (1..=31).collect::<Vec<_>>());
    assert_eq!(snap.text(5, "value").as_deref(), Some("changed"));
    assert_eq!(snap.text(5, "import_date").as_deref(), Some("20261102"));
    assert_eq!(snap.text(31, "value").as_deref(), Some("new"));
    assert_eq!(snap.text(6, "value").as_deref(), Some("v1"));
    assert_eq!(snap.parameter(parameters::BASE_SNAPSHOT_DATE), "20261101");
    assert_eq!(snap.parameter(parameters::REPLACED_ROWS), "1");
    // Files held ids 1..=10, 11..=20, 21..=30: 5 touches the first, which only a replaced row
    // changes, so it is merged in place; the others are copied, and 31 starts a file of its
    // own after the last one, which is full.
    assert_eq!(snap.parameter(parameters::COPIED_FILES), "2");
    assert_eq!(snap.parameter(parameters::PATCHED_FILES), "1");
    assert_eq!(snap.parameter(parameters::REWRITTEN_FILES), "0");
    assert_eq!(snap.parameter("files"), "4");
    // Yesterday's snapshot is unchanged.
    let yesterday = read_snapshot(&lake.platform, day(1)).await;
    assert_eq!(yesterday.rows(), 30);
    assert_eq!(yesterday.text(5, "value").as_deref(), Some("v1"));
}

/// The same id updated on two days after the last snapshot: the later update wins; and a null
/// last_updated loses to a dated one even when it was imported later.
pub async fn later_update_wins_and_null_last_updated_loses(lake: &Lake) {
    let stage = stage(lake);
    let first = increment(lake, day(1), &records(1..=5, "v1"), day(1)).await;
    snapshot(&stage, first).await;
    increment(
        lake,
        day(2),
        &[
            rec(1, Some("2026-11-01 10:00:00"), "day 2"),
            rec(2, Some("2026-11-01 10:00:00"), "dated"),
        ],
        day(3),
    )
    .await;
    let last = increment(
        lake,
        day(3),
        &[
            rec(1, Some("2026-11-02 10:00:00"), "day 3"),
            rec(2, None, "undated"),
        ],
        day(3),
    )
    .await;
    snapshot(&stage, last).await;
    let snap = read_snapshot(&lake.platform, day(3)).await;
    assert_eq!(snap.ids(), [1, 2, 3, 4, 5]);
    assert_eq!(snap.text(1, "value").as_deref(), Some("day 3"));
    assert_eq!(snap.text(2, "value").as_deref(), Some("dated"));
    assert_eq!(snap.parameter(parameters::BASE_SNAPSHOT_DATE), "20261101");
}

/// Today's snapshot made twice (a replayed increment with new content, then an operator's
/// forced rebuild): each run replaces the partition, never adds to it.
pub async fn same_day_rerun_replaces_todays_snapshot(lake: &Lake) {
    let stage = stage(lake);
    let first = increment(lake, day(1), &records(1..=15, "v1"), day(1)).await;
    snapshot(&stage, first).await;
    let today = increment(
        lake,
        day(2),
        &[rec(3, Some("2026-11-01 20:00:00"), "first")],
        day(2),
    )
    .await;
    snapshot(&stage, today).await;
    let before = read_snapshot(&lake.platform, day(2)).await;
    assert_eq!(before.rows(), 15);

    // recast re-publishes today's increment (a replay), with different content.
    let replay = increment(
        lake,
        day(2),
        &[
            rec(3, Some("2026-11-01 21:00:00"), "second"),
            rec(16, None, "added"),
        ],
        day(2),
    )
    .await;
    snapshot(&stage, replay).await;
    let after = read_snapshot(&lake.platform, day(2)).await;
    assert_eq!(after.rows(), 16);
    assert_eq!(after.text(3, "value").as_deref(), Some("second"));
    assert_ne!(after.location, before.location);
    assert_eq!(snapshot_partition_count(&lake.platform).await, 2);

    // An operator's rebuild of today: same rows again, once.
    let rebuilt = stage
        .snapshot(&snapshot_svc::SnapshotRequest {
            table: table(),
            today: day(2),
            increment: None,
            force: true,
        })
        .await
        .unwrap();
    assert!(matches!(
        rebuilt,
        snapshot_svc::SnapshotOutcome::Published(_)
    ));
    let again = read_snapshot(&lake.platform, day(2)).await;
    assert_eq!(again.rows(), 16);
    assert_unique(&again.ids());
    assert_eq!(snapshot_partition_count(&lake.platform).await, 2);
}

/// A day without new data (an empty increment): today's snapshot is yesterday's files, copied
/// server-side, none decoded.
pub async fn a_day_with_no_increment_copies_every_file(lake: &Lake) {
    let stage = stage(lake);
    let first = increment(lake, day(1), &records(1..=45, "v1"), day(1)).await;
    snapshot(&stage, first).await;
    let yesterday = read_snapshot(&lake.platform, day(1)).await;
    assert_eq!(yesterday.keys.len(), 5, "45 rows at 10 per file");

    let empty = increment(lake, day(2), &[], day(2)).await;
    snapshot(&stage, empty).await;
    let today = read_snapshot(&lake.platform, day(2)).await;
    assert_eq!(today.parameter(parameters::COPIED_FILES), "5");
    assert_eq!(today.parameter(parameters::REWRITTEN_FILES), "0");
    assert_eq!(today.keys.len(), 5);
    assert_eq!(today.ids(), yesterday.ids());

    // The next day, a replay of an increment the base already holds: copies again.
    let stale = PartitionReady {
        as_of: Some(day(3)),
        ..increment_message_of(lake, day(1)).await
    };
    snapshot(&stage, stale).await;
    let next = read_snapshot(&lake.platform, day(3)).await;
    assert_eq!(next.parameter(parameters::COPIED_FILES), "5");
    assert_eq!(next.parameter(parameters::REWRITTEN_FILES), "0");
    assert_eq!(next.parameter(parameters::BASE_SNAPSHOT_DATE), "20261102");
}

/// The message recast sent for the published increment of `date`.
pub async fn increment_message_of(lake: &Lake, date: NaiveDate) -> PartitionReady {
    let partition = lake
        .platform
        .layout
        .partition(&table(), Layer::Increment, date);
    let (_, info) = published_partitions(lake.platform.catalog.as_ref(), &partition)
        .await
        .unwrap()
        .into_iter()
        .find(|(d, _)| *d == date)
        .unwrap();
    PartitionReady::new(
        &partition,
        info.location.clone(),
        info.parameters["run_id"].clone(),
        None,
    )
}

/// Only the files whose id range holds an increment id are rewritten; the others are copied.
pub async fn untouched_files_are_copied_and_touched_ones_rewritten(lake: &Lake) {
    let stage = stage(lake);
    let first = increment(lake, day(1), &records(1..=50, "v1"), day(1)).await;
    snapshot(&stage, first).await;
    let next = increment(
        lake,
        day(2),
        &[
            rec(15, Some("2026-11-01 20:00:00"), "x"),
            rec(35, Some("2026-11-01 20:00:00"), "y"),
        ],
        day(2),
    )
    .await;
    snapshot(&stage, next).await;
    let snap = read_snapshot(&lake.platform, day(2)).await;
    assert_eq!(snap.parameter(parameters::COPIED_FILES), "3");
    // Both touched files only have rows replaced: merged in place.
    assert_eq!(snap.parameter(parameters::PATCHED_FILES), "2");
    assert_eq!(snap.parameter(parameters::REWRITTEN_FILES), "0");
    assert_eq!(snap.parameter("files"), "5");
    let ids = snap.ids();
    assert_ordered(&ids);
    assert_eq!(ids.len(), 50);
    assert_eq!(snap.text(15, "value").as_deref(), Some("x"));
    assert_eq!(snap.text(35, "value").as_deref(), Some("y"));
}

/// A field appears in today's increment: the snapshot gains the column, old rows hold null.
pub async fn a_new_column_appears(lake: &Lake) {
    let stage = stage(lake);
    let first = increment(lake, day(1), &records(1..=12, "v1"), day(1)).await;
    snapshot(&stage, first).await;
    let batch = increment_batch(
        &[rec(20, Some("2026-11-01 20:00:00"), "v2")],
        &[("ward_code", "E05009367")],
    );
    let next = publish_increment(&lake.platform, day(2), &[batch], Some(day(2))).await;
    snapshot(&stage, next).await;
    let snap = read_snapshot(&lake.platform, day(2)).await;
    assert_eq!(snap.ids(), (1..=12).chain([20]).collect::<Vec<_>>());
    assert_eq!(snap.text(20, "ward_code").as_deref(), Some("E05009367"));
    assert_eq!(snap.text(1, "ward_code"), None);
    // Old files lack the column, so they were rewritten, not copied.
    assert_eq!(snap.parameter(parameters::COPIED_FILES), "0");
    let catalog_table = lake
        .platform
        .catalog
        .table(
            &lake.platform.layout.database(common::layout::Zone::Refined),
            TABLE,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(catalog_table.columns.iter().any(|c| c.name == "ward_code"));
}

/// A column whose type changed in a way that cannot be cast safely stops the merge with an
/// error naming the column and both types; nothing is published.
pub async fn an_unsafe_type_change_is_refused(lake: &Lake) {
    let stage = stage(lake);
    let first = increment(lake, day(1), &records(1..=3, "v1"), day(1)).await;
    snapshot(&stage, first).await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, true),
        Field::new("value", DataType::Int32, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from(vec![1])),
            Arc::new(Int32Array::from(vec![7])),
        ],
    )
    .unwrap();
    // The catalog refuses a retyped column, so the partition is registered without it, as a
    // table dropped and recreated by hand after a dictionary change would be.
    let platform = &lake.platform;
    let partition = platform
        .layout
        .partition(&table(), Layer::Increment, day(2));
    let run_id = new_run_id();
    let mut writer = PartitionWriter::new(
        platform.storage.clone(),
        partition.clone(),
        run_id.clone(),
        batch.schema(),
        platform.write_options,
    );
    writer.write(&batch).await.unwrap();
    let staged = writer.finish().await.unwrap();
    platform
        .catalog
        .publish_partition(
            &partition.database,
            &partition.catalog_table,
            &PartitionInfo {
                values: partition.values(),
                location: staged.location.clone(),
                parameters: BTreeMap::from([("run_id".to_string(), run_id.clone())]),
            },
        )
        .await
        .unwrap();
    let next = PartitionReady::new(&partition, staged.location.clone(), run_id, Some(day(2)));
    match stage.handle(next).await {
        Err(Failure::Permanent(err)) => {
            let text = format!("{err:#}");
            assert!(text.contains("column value is Utf8"), "{text}");
            assert!(
                text.contains("but Int32 in increment import_date=20261102"),
                "{text}"
            );
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert_eq!(snapshot_partition_count(&lake.platform).await, 1);
}

/// The data-quality gate: a completeness column mostly null fails the run, publishes nothing,
/// and the report is recorded anyway.
pub async fn a_failed_gate_publishes_nothing_and_records_the_report(lake: &Lake) {
    let stage = SnapshotStage::new(
        lake.platform.clone(),
        pipeline("ward_code"),
        small_settings(),
    );
    let first = increment(lake, day(1), &records(1..=10, "v1"), day(1)).await;
    match stage.handle(first).await {
        Err(Failure::Permanent(err)) => {
            let text = format!("{err:#}");
            assert!(
                text.contains("completeness_ward_code = 0 (threshold 0.99)"),
                "{text}"
            );
            assert!(
                text.contains("applications snapshot snapshot_date=20261101"),
                "{text}"
            );
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert_eq!(snapshot_partition_count(&lake.platform).await, 0);
    let refined = &lake.platform.layout.refined_bucket;
    let reports = lake
        .platform
        .storage
        .list(
            refined,
            &format!("{}snapshot/{TABLE}/", lake.platform.metrics_prefix),
        )
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    let body = lake
        .platform
        .storage
        .get(refined, &reports[0].key)
        .await
        .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("\"passed\":false"), "{text}");
    // Nothing was left under the snapshot's prefix.
    let left = lake
        .platform
        .storage
        .list(refined, &Layer::Snapshot.table_prefix(&table()))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

// ------------------------------------------------------- holes and the row-count gate

/// The failure of a handled message, expected permanent; its text (the dead-letter reason).
async fn permanent_failure(stage: &SnapshotStage, message: PartitionReady) -> String {
    match stage.handle(message).await {
        Err(Failure::Permanent(err)) => format!("{err:#}"),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

/// Nothing of the snapshot was published or left behind (the run's files are discarded).
async fn assert_no_snapshot_files(lake: &Lake, date: NaiveDate) {
    assert!(
        published(&lake.platform, Layer::Snapshot, date)
            .await
            .is_none(),
        "no snapshot of {date} should be published"
    );
}

/// A night killed half-way: ingest published night 1's raw partition (the table's full load),
/// parse never ran. Night 2 runs normally. Its snapshot is not built from night 2's increment
/// alone: it is refused, naming night 1's missing partition and the replay that repairs it, and
/// nothing is published. Once the replay has published night 1's increment (and its snapshot),
/// the redelivered night 2 message makes the full table.
pub async fn a_killed_night_is_a_hole_until_replayed(lake: &Lake) {
    let stage = stage(lake);
    publish_raw(&lake.platform, day(1), "full").await;
    published_hours_ago(&lake.platform, Layer::Raw, day(1), 26).await;
    let night2 = increment(
        lake,
        day(2),
        &[
            rec(3, Some("2026-11-01 20:00:00"), "changed"),
            rec(43, Some("2026-11-01 20:00:00"), "new"),
        ],
        day(2),
    )
    .await;

    let text = permanent_failure(&stage, night2.clone()).await;
    for expected in [
        "applications snapshot snapshot_date=20261102: not built on a hole, nothing published",
        "1 import it must hold (no base: those from the latest full load, import_date=20261101, up to today) did not reach the increment layer",
        "applications parsed import_date=20261101 is not published (nor its increment)",
        "repair: tascomi replay --stage parse --table applications --from 2026-11-01 --to 2026-11-01",
    ] {
        assert!(text.contains(expected), "expected {expected:?} in {text}");
    }
    assert_eq!(snapshot_partition_count(&lake.platform).await, 0);
    let left = lake
        .platform
        .storage
        .list(
            &lake.platform.layout.refined_bucket,
            &Layer::Snapshot.table_prefix(&table()),
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    // Callers branch on the variant: the missing partition, its layer and date, the repair.
    let request = snapshot_svc::SnapshotRequest {
        table: table(),
        today: day(2),
        increment: None,
        force: true,
    };
    match stage.snapshot(&request).await {
        Err(snapshot_svc::SnapshotError::Hole(holes)) => {
            assert!(!holes.is_transient());
            assert_eq!(holes.window, snapshot_svc::Window::FromFullLoad(day(1)));
            assert_eq!(holes.missing.len(), 1);
            assert_eq!(holes.missing[0].layer, Layer::Parsed);
            assert_eq!(holes.missing[0].import_date, day(1));
        }
        other => panic!("expected a hole, got {other:?}"),
    }

    // The replay: parse and recast publish night 1, whose snapshot is made...
    let night1 = increment(lake, day(1), &records(1..=42, "v1"), day(1)).await;
    snapshot(&stage, night1).await;
    assert_eq!(read_snapshot(&lake.platform, day(1)).await.rows(), 42);
    // ...and the dead-lettered night 2 message, redriven, makes the whole table.
    snapshot(&stage, night2).await;
    let snap = read_snapshot(&lake.platform, day(2)).await;
    assert_eq!(snap.rows(), 43);
    assert_eq!(snap.ids(), (1..=43).collect::<Vec<_>>());
    assert_eq!(snap.text(3, "value").as_deref(), Some("changed"));
    assert_eq!(snap.parameter(parameters::BASE_SNAPSHOT_DATE), "20261101");
}

/// A missing increment whose parsed partition exists (recast never ran for night 2) names the
/// recast replay; with a base, the window is the imports after it.
pub async fn a_missing_increment_names_the_recast_replay(lake: &Lake) {
    let stage = stage(lake);
    let night1 = increment(lake, day(1), &records(1..=12, "v1"), day(1)).await;
    snapshot(&stage, night1).await;
    publish_raw(&lake.platform, day(2), "incremental").await;
    publish_upstream(&lake.platform, Layer::Parsed, day(2), &[]).await;
    for layer in [Layer::Raw, Layer::Parsed] {
        published_hours_ago(&lake.platform, layer, day(2), 20).await;
    }
    let night3 = increment(lake, day(3), &[rec(13, None, "new")], day(3)).await;
    let text = permanent_failure(&stage, night3).await;
    for expected in [
        "(those after the base snapshot_date=20261101, up to today)",
        "applications increment import_date=20261102 is not published;",
        "repair: tascomi replay --stage recast --table applications --from 2026-11-02 --to 2026-11-02",
    ] {
        assert!(text.contains(expected), "expected {expected:?} in {text}");
    }
    assert_no_snapshot_files(lake, day(3)).await;
}

/// A first snapshot needs a full load: with only incremental imports (here partitions written
/// before ingest recorded `import_kind`, `mode=incremental`), it is refused, naming the full
/// load command. A first night whose full load never reached the increment layer (its parse
/// gate failed) is a hole; a new full load starts a new window and makes the whole table.
pub async fn a_first_snapshot_needs_a_full_load(lake: &Lake) {
    let stage = stage(lake);
    publish_upstream(
        &lake.platform,
        Layer::Raw,
        day(1),
        &[("mode", "incremental")],
    )
    .await;
    let only_increments = increment(lake, day(1), &records(1..=5, "v1"), day(1)).await;
    let text = permanent_failure(&stage, only_increments).await;
    for expected in [
        "applications snapshot snapshot_date=20261101: not built, nothing published: a first snapshot needs a full load",
        "repair: tascomi ingest --table applications --mode full",
    ] {
        assert!(text.contains(expected), "expected {expected:?} in {text}");
    }
    assert_eq!(snapshot_partition_count(&lake.platform).await, 0);

    // A full load whose parse failed its gate (raw only), then a normal night: a hole.
    publish_raw(&lake.platform, day(2), "full").await;
    published_hours_ago(&lake.platform, Layer::Raw, day(2), 25).await;
    let night3 = increment(lake, day(3), &records(4..=6, "v3"), day(3)).await;
    let text = permanent_failure(&stage, night3).await;
    assert!(
        text.contains("applications parsed import_date=20261102 is not published"),
        "{text}"
    );
    assert!(
        text.contains(
            "tascomi replay --stage parse --table applications --from 2026-11-02 --to 2026-11-02"
        ),
        "{text}"
    );
    assert_eq!(snapshot_partition_count(&lake.platform).await, 0);

    // The operator loads the table in full again (an older partition saying `mode=full` counts
    // as a full load too): the window starts there, the older imports are not needed.
    publish_upstream(&lake.platform, Layer::Raw, day(4), &[("mode", "full")]).await;
    let full = increment(lake, day(4), &records(1..=30, "v4"), day(4)).await;
    snapshot(&stage, full).await;
    let snap = read_snapshot(&lake.platform, day(4)).await;
    assert_eq!(snap.ids(), (1..=30).collect::<Vec<_>>());
    assert_eq!(snap.text(5, "value").as_deref(), Some("v4"));
    assert_eq!(
        snap.parameter(parameters::APPLIED_INCREMENTS)
            .split(',')
            .count(),
        1,
        "only the full load's increment: older ones are in it"
    );
}

/// A hole whose work is in flight is transient: tonight's raw import was published a moment
/// ago and parse is still running when a replayed increment of last night asks for tonight's
/// snapshot. The message is retried; once tonight's increment is published, the snapshot is.
pub async fn an_in_flight_hole_is_transient(lake: &Lake) {
    let stage = stage(lake);
    let night1 = increment(lake, day(1), &records(1..=12, "v1"), day(1)).await;
    snapshot(&stage, night1.clone()).await;
    publish_raw(&lake.platform, day(2), "incremental").await;
    let replayed = PartitionReady {
        as_of: Some(day(2)),
        ..night1
    };
    match stage.handle(replayed.clone()).await {
        Err(Failure::Transient(err)) => {
            let text = format!("{err:#}");
            assert!(
                text.contains("applications parsed import_date=20261102 is not published (nor its increment) (probably in flight: raw import_date=20261102 published"),
                "{text}"
            );
            assert!(text.contains("retried"), "{text}");
        }
        other => panic!("expected a transient failure, got {other:?}"),
    }
    assert_no_snapshot_files(lake, day(2)).await;
    // With no grace, the same hole is permanent.
    let impatient = SnapshotStage::new(
        lake.platform.clone(),
        pipeline("id"),
        SnapshotSettings {
            hole_grace: Duration::ZERO,
            ..small_settings()
        },
    );
    permanent_failure(&impatient, replayed.clone()).await;

    let night2 = increment(lake, day(2), &[rec(13, None, "new")], day(2)).await;
    snapshot(&stage, night2).await;
    assert_eq!(read_snapshot(&lake.platform, day(2)).await.rows(), 13);
    // The retried message now finds its increment in tonight's snapshot.
    assert!(matches!(
        stage.handle(replayed).await,
        Err(Failure::Discard(_))
    ));
}

/// The gate's row-count check: a snapshot holding fewer rows than its base (here a base file
/// that went missing, as an expiry rule or a hand deletion would do) fails, publishes nothing
/// and says the figures; the report is recorded. A per-table threshold allows a given drop.
pub async fn a_row_count_drop_fails_the_gate(lake: &Lake) {
    let stage = stage(lake);
    let night1 = increment(lake, day(1), &records(1..=45, "v1"), day(1)).await;
    snapshot(&stage, night1).await;
    let base = read_snapshot(&lake.platform, day(1)).await;
    assert_eq!(base.keys.len(), 5);
    let (bucket, _) = split_s3_uri(&base.location).unwrap();
    lake.platform
        .storage
        .delete(bucket, &base.keys[1..2])
        .await
        .unwrap();
    let night2 = increment(lake, day(2), &[rec(46, None, "new")], day(2)).await;
    let text = permanent_failure(&stage, night2.clone()).await;
    for expected in [
        "applications snapshot snapshot_date=20261102: data-quality gate failed, nothing published",
        "row_count_change = -0.2 (threshold 0), e.g. 36 rows against 45 in the base snapshot_date=20261101",
    ] {
        assert!(text.contains(expected), "expected {expected:?} in {text}");
    }
    assert_no_snapshot_files(lake, day(2)).await;
    let refined = &lake.platform.layout.refined_bucket;
    let reports = lake
        .platform
        .storage
        .list(
            refined,
            &format!("{}snapshot/{TABLE}/20261102-", lake.platform.metrics_prefix),
        )
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    let body = lake
        .platform
        .storage
        .get(refined, &reports[0].key)
        .await
        .unwrap();
    let report = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        report.contains("\"check\":\"row_count_change\""),
        "{report}"
    );

    // The table's override allows a 25 % drop: the same night publishes.
    let tolerant = SnapshotStage::new(
        lake.platform.clone(),
        PipelineFile::parse(
            &format!("row_count_drop_threshold: 0\ntables:\n  {TABLE}: {{ schedule: daily, row_count_drop_threshold: 0.25 }}\n"),
            "test pipeline",
        )
        .unwrap(),
        small_settings(),
    );
    snapshot(&tolerant, night2).await;
    assert_eq!(read_snapshot(&lake.platform, day(2)).await.rows(), 36);
}

/// Three ordinary nights: every import reaches the increment layer, each snapshot is published
/// and its gate report carries a passed `row_count_change`.
pub async fn a_normal_nightly_run_is_unaffected(lake: &Lake) {
    let stage = stage(lake);
    let night1 = increment(lake, day(1), &records(1..=20, "v1"), day(1)).await;
    snapshot(&stage, night1).await;
    for (d, id) in [(2, 21), (3, 22)] {
        let night = increment(
            lake,
            day(d),
            &[
                rec(id, None, "new"),
                rec(d as i32, Some("2026-11-02 09:00:00"), "changed"),
            ],
            day(d),
        )
        .await;
        snapshot(&stage, night).await;
    }
    let snap = read_snapshot(&lake.platform, day(3)).await;
    assert_eq!(snap.ids(), (1..=22).collect::<Vec<_>>());
    assert_eq!(snap.parameter(parameters::BASE_SNAPSHOT_DATE), "20261102");
    let refined = &lake.platform.layout.refined_bucket;
    let reports = lake
        .platform
        .storage
        .list(
            refined,
            &format!("{}snapshot/{TABLE}/20261103-", lake.platform.metrics_prefix),
        )
        .await
        .unwrap();
    let body = lake
        .platform
        .storage
        .get(refined, &reports[0].key)
        .await
        .unwrap();
    let report = String::from_utf8(body.to_vec()).unwrap();
    let line = report
        .lines()
        .find(|l| l.contains("row_count_change"))
        .unwrap_or_else(|| panic!("no row_count_change in {report}"));
    assert!(line.contains("\"passed\":true"), "{line}");
    assert!(
        line.contains("22 rows against 21 in the base snapshot_date=20261102"),
        "{line}"
    );
}

fn runner_of(
    stage: Arc<SnapshotStage>,
    input: &MemoryQueue,
    next: &MemoryQueue,
    dlq: &MemoryQueue,
    concurrency: usize,
) -> Runner<SnapshotStage> {
    Runner::new(
        stage,
        Arc::new(input.clone()),
        Some(Arc::new(next.clone())),
        Some(Arc::new(dlq.clone())),
        RunnerSettings {
            concurrency,
            wait_time: Duration::from_millis(20),
            visibility_timeout: Duration::from_secs(60),
            ..Default::default()
        },
    )
}

/// The same message delivered twice: one snapshot, the duplicate acknowledged without work.
/// Then a backfill: several increment messages for the table at once make one merge that holds
/// them all; the others are acknowledged as already in today's snapshot.
pub async fn duplicate_and_concurrent_deliveries_merge_once(lake: &Lake) {
    let stage = Arc::new(stage(lake));
    let input = MemoryQueue::new("snapshot", Duration::from_secs(60));
    let next = MemoryQueue::new("downstream", Duration::from_secs(60));
    let dlq = MemoryQueue::new("snapshot-dlq", Duration::from_secs(60));
    let runner = runner_of(stage.clone(), &input, &next, &dlq, 1);
    let first = increment(lake, day(1), &records(1..=20, "v1"), day(1)).await;
    let body = messages::encode(&first);
    input.send(&body, &BTreeMap::new()).await.unwrap();
    input.send(&body, &BTreeMap::new()).await.unwrap();
    let done = runner.drain(Duration::from_millis(20)).await;
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!(done[0], Disposition::Done { sent: 1 });
    assert!(
        matches!(&done[1], Disposition::Discarded(reason)
            if reason.contains("already in today's snapshot")),
        "{done:?}"
    );
    assert_eq!(next.bodies().len(), 1);
    assert_eq!(read_snapshot(&lake.platform, day(1)).await.rows(), 20);

    // A backfill of three days, delivered together to a runner handling two at a time.
    let runner = runner_of(stage.clone(), &input, &next, &dlq, 2);
    for (d, id) in [(2, 21), (3, 22), (4, 23)] {
        let records = [
            rec(id, Some("2026-11-01 09:00:00"), "backfill"),
            rec(1, Some("2026-11-01 09:00:00"), "backfill"),
        ];
        let m = publish_increment(
            &lake.platform,
            day(d),
            &[increment_batch(&records, &[])],
            Some(day(5)),
        )
        .await;
        input
            .send(&messages::encode(&m), &BTreeMap::new())
            .await
            .unwrap();
    }
    let done = runner.drain(Duration::from_millis(50)).await;
    assert_eq!(done.len(), 3, "{done:?}");
    let published = done
        .iter()
        .filter(|d| matches!(d, Disposition::Done { .. }))
        .count();
    assert_eq!(published, 1, "one merge for the backfill: {done:?}");
    assert!(dlq.bodies().is_empty());
    let snap = read_snapshot(&lake.platform, day(5)).await;
    assert_eq!(snap.ids(), (1..=23).collect::<Vec<_>>());
    assert_eq!(
        snap.parameter(parameters::APPLIED_INCREMENTS)
            .split(',')
            .count(),
        3
    );
}

/// The snapshot read back by an independent reader (pyarrow and duckdb): one row per id.
pub async fn independent_reader_sees_one_row_per_id(lake: &Lake) {
    let stage = stage(lake);
    let first = increment(lake, day(1), &records(1..=25, "v1"), day(1)).await;
    snapshot(&stage, first).await;
    let next = increment(
        lake,
        day(2),
        &[
            rec(7, Some("2026-11-01 20:00:00"), "v2"),
            rec(26, None, "v2"),
        ],
        day(2),
    )
    .await;
    snapshot(&stage, next).await;
    // Fetch the partition's files through the storage API, so the same check runs on moto.
    let snap = read_snapshot(&lake.platform, day(2)).await;
    // The file holding 7 was merged in place (some of its column chunks are yesterday's
    // bytes), and so was the last, which 26 follows.
    assert_eq!(snap.parameter(parameters::PATCHED_FILES), "2");
    assert_ne!(snap.parameter(parameters::COPIED_COLUMN_CHUNKS), "0");
    let Some(python) = python() else { return };
    let (bucket, _) = split_s3_uri(&snap.location).unwrap();
    let folder = lake.dir.path().join("independent-reader");
    std::fs::create_dir_all(&folder).unwrap();
    for (i, key) in snap.keys.iter().enumerate() {
        let body = lake.platform.storage.get(bucket, key).await.unwrap();
        std::fs::write(folder.join(format!("part-{i:05}.parquet")), body).unwrap();
    }
    let script = r#"
import sys, pyarrow.dataset as ds, duckdb
folder = sys.argv[1]
table = ds.dataset(folder, format="parquet").to_table()
ids = table.column("id").to_pylist()
assert len(ids) == len(set(ids)), "duplicate ids"
con = duckdb.connect()
rows, distinct = con.execute(f"select count(*), count(distinct id) from read_parquet('{folder}/*.parquet')").fetchone()
value = con.execute(f"select value from read_parquet('{folder}/*.parquet') where id = 7").fetchone()[0]
print(len(ids), rows, distinct, value)
"#;
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&folder)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.trim(), "26 26 26 v2");
}

/// The interpreter with pyarrow and duckdb (`TASCOMI_PYTHON`), or `None` with a skip notice.
pub fn python() -> Option<String> {
    let env = common::config::Env::from_process();
    match env.get("TASCOMI_PYTHON") {
        Some(python) => Some(python.to_owned()),
        None if env.get("CI").is_some() => panic!("TASCOMI_PYTHON is not set in CI"),
        _ => {
            println!("skipped: TASCOMI_PYTHON is not set (run scripts/test.sh)");
            None
        }
    }
}

/// Each scenario as a test, on the lake `$make` builds (an expression giving `Option<Lake>`;
/// `None` skips).
#[allow(unused_macros)]
macro_rules! scenarios {
    ($make:expr) => {
        scenarios!(@each $make;
            first_snapshot_from_several_days,
            a_first_snapshot_in_id_order_equals_the_same_load_out_of_order,
            changed_record_replaced_and_new_record_added,
            later_update_wins_and_null_last_updated_loses,
            same_day_rerun_replaces_todays_snapshot,
            a_day_with_no_increment_copies_every_file,
            untouched_files_are_copied_and_touched_ones_rewritten,
            a_new_column_appears,
            an_unsafe_type_change_is_refused,
            a_failed_gate_publishes_nothing_and_records_the_report,
            duplicate_and_concurrent_deliveries_merge_once,
            independent_reader_sees_one_row_per_id,
            a_killed_night_is_a_hole_until_replayed,
            a_missing_increment_names_the_recast_replay,
            a_first_snapshot_needs_a_full_load,
            an_in_flight_hole_is_transient,
            a_row_count_drop_fails_the_gate,
            a_normal_nightly_run_is_unaffected,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(lake) = $make.await else { return };
                support::$name(&lake).await;
            }
        )*
    };
}
