use super::*;
use crate::catalog::LocalCatalog;
use crate::layout::{Layer, TableName};
use crate::parquet_io::read_all;
use crate::storage::LocalStorage;
use arrow::array::Int32Array;
use arrow::datatypes::{DataType, Field, Schema};
use chrono::NaiveDate;

struct Fixture {
    _dir: tempfile::TempDir,
    storage: Arc<dyn Storage>,
    catalog: LocalCatalog,
    layout: Layout,
    partition: PartitionRef,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path().join("data")));
    let catalog = LocalCatalog::new(dir.path().join("catalog"));
    let layout = Layout {
        raw_bucket: "raw".into(),
        refined_bucket: "refined".into(),
        database_prefix: "test".into(),
    };
    let table = TableName::new("appeals").unwrap();
    let partition = layout.partition(
        &table,
        Layer::Increment,
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
    );
    Fixture {
        _dir: dir,
        storage,
        catalog,
        layout,
        partition,
    }
}

fn ids(range: std::ops::Range<i32>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from_iter_values(range))]).unwrap()
}

async fn run(f: &Fixture, batches: &[RecordBatch], options: WriteOptions) -> Published {
    let mut writer = PartitionWriter::new(
        f.storage.clone(),
        f.partition.clone(),
        new_run_id(),
        batches[0].schema(),
        options,
    );
    for b in batches {
        writer.write(b).await.unwrap();
    }
    let staged = writer.finish().await.unwrap();
    staged
        .publish(
            &f.catalog,
            &f.layout,
            BTreeMap::new(),
            Duration::from_secs(3600),
        )
        .await
        .unwrap()
}

async fn published_rows(f: &Fixture) -> usize {
    let partitions = f
        .catalog
        .list_partitions(&f.partition.database, &f.partition.catalog_table)
        .await
        .unwrap();
    assert_eq!(partitions.len(), 1);
    let (bucket, prefix) = split_s3_uri(&partitions[0].location).unwrap();
    let mut rows = 0;
    for object in f.storage.list(bucket, prefix).await.unwrap() {
        for b in read_all(f.storage.clone(), bucket, &object.key)
            .await
            .unwrap()
        {
            rows += b.num_rows();
        }
    }
    rows
}

#[tokio::test]
async fn publishing_twice_replaces_and_cleans_up() {
    let f = fixture();
    let first = run(&f, &[ids(0..10)], WriteOptions::default()).await;
    assert_eq!(first.rows, 10);
    assert_eq!(first.replaced, None);
    let second = run(&f, &[ids(0..10)], WriteOptions::default()).await;
    assert_eq!(second.replaced.as_deref(), Some(first.location.as_str()));
    assert_eq!(published_rows(&f).await, 10);
    // Only the second run's files remain under the partition.
    let left = f
        .storage
        .list(&f.partition.bucket, &f.partition.key_prefix())
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].key.contains(&second.run_id));
    let table = f
        .catalog
        .table(&f.partition.database, &f.partition.catalog_table)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(table.columns[0].hive_type, "int");
    assert_eq!(table.partition_keys[3], "import_date");
}

#[tokio::test]
async fn large_partitions_are_split_into_files() {
    let f = fixture();
    let options = WriteOptions {
        target_file_bytes: 1,
        row_group_rows: 1024,
        ..WriteOptions::default()
    };
    let published = run(&f, &[ids(0..100), ids(100..200), ids(200..300)], options).await;
    assert_eq!(published.files, 3);
    assert_eq!(published_rows(&f).await, 300);
}

#[tokio::test]
async fn a_discarded_run_leaves_nothing_and_old_orphans_are_collected() {
    let f = fixture();
    let mut writer = PartitionWriter::new(
        f.storage.clone(),
        f.partition.clone(),
        new_run_id(),
        ids(0..1).schema(),
        WriteOptions::default(),
    );
    writer.write(&ids(0..5)).await.unwrap();
    writer.finish().await.unwrap().discard().await.unwrap();
    assert!(
        f.storage
            .list(&f.partition.bucket, "")
            .await
            .unwrap()
            .is_empty()
    );

    // An orphan from a crashed run long ago, and one from a run that may still be writing.
    let old = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        1_000_000_000,
        0,
    ))
    .simple()
    .to_string();
    let young = new_run_id();
    for run in [&old, &young] {
        let key = format!("{}run-{run}/part-00000.parquet", f.partition.key_prefix());
        f.storage
            .put(&f.partition.bucket, &key, bytes::Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    let published = run(&f, &[ids(0..3)], WriteOptions::default()).await;
    let left: Vec<String> = f
        .storage
        .list(&f.partition.bucket, "")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().any(|k| k.contains(&young)));
    assert!(left.iter().any(|k| k.contains(&published.run_id)));
}
