use super::*;
use crate::storage::LocalStorage;
use arrow::array::{ArrayRef, Int32Array, StringArray};
use arrow::datatypes::{DataType, Field};

fn batch(start: i32, rows: i32) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let ids: Vec<i32> = (start..start + rows).collect();
    let names: Vec<Option<String>> = ids
        .iter()
        .map(|i| (i % 3 != 0).then(|| format!("n{i}")))
        .collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn round_trips_in_bounded_batches() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let options = WriteOptions {
        row_group_rows: 1000,
        ..Default::default()
    };
    let mut encoder = FileEncoder::new(batch(0, 1).schema(), &options).unwrap();
    for i in 0..5 {
        encoder.write(&batch(i * 1000, 1000)).unwrap();
    }
    assert_eq!(encoder.rows(), 5000);
    storage
        .put("b", "t/f.parquet", encoder.finish().unwrap())
        .await
        .unwrap();

    let (schema, stream) = read_file(storage.clone(), "b", "t/f.parquet", 300)
        .await
        .unwrap();
    assert_eq!(schema.field(0).name(), "id");
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    assert!(batches.iter().all(|b| b.num_rows() <= 300));
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 5000);
    let metadata = read_metadata(storage.clone(), "b", "t/f.parquet")
        .await
        .unwrap();
    assert_eq!(metadata.num_row_groups(), 5);
}

/// A table as wide as Tascomi's widest: 3 × `MIN_COLUMNS_PER_DECODER` text columns.
fn wide_batch(start: usize, rows: usize) -> RecordBatch {
    let width = 3 * MIN_COLUMNS_PER_DECODER;
    let schema = Arc::new(Schema::new(
        (0..width)
            .map(|c| Field::new(format!("c{c}"), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let columns = (0..width)
        .map(|c| {
            Arc::new(StringArray::from_iter(
                (start..start + rows).map(|r| ((r + c) % 7 != 0).then(|| format!("r{r}c{c}"))),
            )) as ArrayRef
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wide_files_encode_and_decode_on_several_threads_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let options = WriteOptions {
        row_group_rows: 700,
        row_group_bytes: 20_000,
        ..Default::default()
    };
    let written: Vec<RecordBatch> = (0..4).map(|i| wide_batch(i * 500, 500)).collect();
    let mut encoder = FileEncoder::new(written[0].schema(), &options).unwrap();
    for batch in &written {
        encoder.write(batch).unwrap();
    }
    storage
        .put("b", "t/wide.parquet", encoder.finish().unwrap())
        .await
        .unwrap();
    let metadata = read_metadata(storage.clone(), "b", "t/wide.parquet")
        .await
        .unwrap();
    assert!(
        metadata.num_row_groups() > 2000 / 700,
        "the byte limit closes row groups before the row limit: {}",
        metadata.num_row_groups()
    );

    let (_, stream) = read_file(storage.clone(), "b", "t/wide.parquet", 256)
        .await
        .unwrap();
    let read: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    let expected = arrow::compute::concat_batches(&written[0].schema(), &written).unwrap();
    let actual = arrow::compute::concat_batches(&written[0].schema(), &read).unwrap();
    assert_eq!(actual, expected);
}

#[tokio::test]
async fn a_corrupt_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    storage
        .put(
            "b",
            "t/bad.parquet",
            Bytes::from_static(b"not parquet at all"),
        )
        .await
        .unwrap();
    let err = read_all(storage, "b", "t/bad.parquet")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("s3://b/t/bad.parquet"), "{err}");
}

#[tokio::test]
async fn a_patched_row_group_encodes_the_changed_columns_and_copies_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let options = WriteOptions {
        row_group_rows: 100,
        ..Default::default()
    };
    let mut encoder = FileEncoder::new(batch(0, 1).schema(), &options).unwrap();
    encoder.write(&batch(0, 200)).unwrap();
    let body = encoder.finish().unwrap();
    let file_len = body.len() as u64;
    storage.put("b", "t/old.parquet", body).await.unwrap();
    let metadata = read_metadata(storage.clone(), "b", "t/old.parquet")
        .await
        .unwrap();
    assert_eq!(metadata.num_row_groups(), 2);

    let mut encoder = FileEncoder::new(batch(0, 1).schema(), &options).unwrap();
    for index in 0..2 {
        let source = SourceRowGroup::fetch(
            storage.clone(),
            "b",
            "t/old.parquet",
            file_len,
            metadata.clone(),
            index,
        )
        .await
        .unwrap();
        assert_eq!(source.rows(), 100);
        assert!(encoder.can_patch(&source));
        let decoded: Vec<RecordBatch> = source
            .read(None, 64)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(decoded.iter().map(|b| b.num_rows()).sum::<usize>(), 100);
        assert_eq!(decoded[0], batch(index as i32 * 100, 64));
        if index == 0 {
            // Row group 0: the names changed, in two batches; the ids are copied.
            let names: ArrayRef = Arc::new(StringArray::from_iter_values(
                (0..100).map(|i| format!("new {i}")),
            ));
            let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, true)]));
            let batches = [
                RecordBatch::try_new(schema.clone(), vec![names.slice(0, 30)]).unwrap(),
                RecordBatch::try_new(schema, vec![names.slice(30, 70)]).unwrap(),
            ];
            encoder.write_patched(&source, &[1], &batches).unwrap();
        } else {
            // Row group 1: nothing changed, every column copied.
            encoder.write_patched(&source, &[], &[]).unwrap();
        }
    }
    assert_eq!(encoder.rows(), 200);
    storage
        .put("b", "t/new.parquet", encoder.finish().unwrap())
        .await
        .unwrap();
    let rows = read_all(storage.clone(), "b", "t/new.parquet")
        .await
        .unwrap();
    let rows = arrow::compute::concat_batches(&rows[0].schema(), &rows).unwrap();
    let expected = batch(0, 200);
    assert_eq!(
        rows.column(0).to_data(),
        expected.column(0).to_data(),
        "ids copied"
    );
    let names = rows
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(names.value(0), "new 0");
    assert_eq!(names.value(99), "new 99");
    assert_eq!(
        rows.column(1).slice(100, 100).to_data(),
        expected.column(1).slice(100, 100).to_data()
    );
    // The copied chunks keep their statistics.
    let metadata = read_metadata(storage, "b", "t/new.parquet").await.unwrap();
    assert_eq!(metadata.num_row_groups(), 2);
    let stats = metadata.row_group(1).column(0).statistics().unwrap();
    assert_eq!(stats.min_bytes_opt(), Some(&100i32.to_le_bytes()[..]));

    // Columns of another shape are refused before anything is written.
    let other = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let encoder = FileEncoder::new(other, &options).unwrap();
    let source = SourceRowGroup::fetch(
        Arc::new(LocalStorage::new(dir.path())),
        "b",
        "t/old.parquet",
        file_len,
        read_metadata(
            Arc::new(LocalStorage::new(dir.path())),
            "b",
            "t/old.parquet",
        )
        .await
        .unwrap(),
        0,
    )
    .await
    .unwrap();
    assert!(!encoder.can_patch(&source));
}
