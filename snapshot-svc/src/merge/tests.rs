use super::*;
use crate::inputs::footer;
use crate::test_rows::{batch, ids, increment, schema};
use arrow::array::AsArray;
use arrow::datatypes::Int32Type;
use chrono::NaiveDate;
use common::layout::{Layer, Layout, TableName};
use common::parquet_io::{WriteOptions, read_all};
use common::publish::new_run_id;
use common::storage::LocalStorage;

struct Base {
    _dir: tempfile::TempDir,
    storage: Arc<dyn Storage>,
    files: Vec<BaseFile>,
    layout: Layout,
}

/// A previous snapshot of two files: odd ids 1..=9 and 11..=19, valued `old`.
async fn base() -> Base {
    base_of(
        WriteOptions::default(),
        &[&[1, 3, 5, 7, 9], &[11, 13, 15, 17, 19]],
    )
    .await
}

/// A previous snapshot of one file per list of ids, valued `old`, written with `options`.
async fn base_of(options: WriteOptions, files_ids: &[&[i32]]) -> Base {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let layout = Layout {
        raw_bucket: "raw".into(),
        refined_bucket: "refined".into(),
        database_prefix: "t".into(),
    };
    let table = TableName::new("appeals").unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let partition = layout.partition(&table, Layer::Snapshot, day);
    let mut writer =
        PartitionWriter::new(storage.clone(), partition, new_run_id(), schema(), options);
    for ids in files_ids {
        writer.write(&batch(ids, "old")).await.unwrap();
        writer.flush_file().await.unwrap();
    }
    let staged = writer.finish().await.unwrap();
    let columns = MergeColumns {
        id: "id".into(),
        completeness: "id".into(),
    };
    let mut files = Vec::new();
    for f in &staged.files {
        let metadata = footer(storage.clone(), "refined", &f.key).await.unwrap();
        files.push(
            BaseFile::from_metadata("refined", &f.key, f.bytes, &metadata, &ids(), &columns)
                .unwrap(),
        );
    }
    Base {
        _dir: dir,
        storage,
        files,
        layout,
    }
}

/// Merges and returns the report and the ids (and values) of each output file.
async fn run(
    base: &Base,
    inc: &PreparedIncrement,
    file_rows: usize,
) -> (MergeReport, Vec<Vec<(i32, String)>>) {
    let table = TableName::new("appeals").unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
    let writer = PartitionWriter::new(
        base.storage.clone(),
        base.layout.partition(&table, Layer::Snapshot, day),
        new_run_id(),
        schema(),
        WriteOptions::default(),
    );
    let columns = MergeColumns {
        id: "id".into(),
        completeness: "id".into(),
    };
    let settings = SnapshotSettings {
        batch_rows: 2,
        file_rows,
        ..Default::default()
    };
    let (staged, report) = merge(
        base.storage.clone(),
        base.files.clone(),
        inc,
        writer,
        &ids(),
        &columns,
        &settings,
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    for f in &staged.files {
        let mut rows = Vec::new();
        for b in read_all(base.storage.clone(), "refined", &f.key)
            .await
            .unwrap()
        {
            let ids = b.column(0).as_primitive::<Int32Type>();
            let values = b.column(1).as_string::<i32>();
            rows.extend((0..b.num_rows()).map(|i| (ids.value(i), values.value(i).to_owned())));
        }
        out.push(rows);
    }
    (report, out)
}

fn ids_of(files: &[Vec<(i32, String)>]) -> Vec<Vec<i32>> {
    files
        .iter()
        .map(|f| f.iter().map(|(id, _)| *id).collect())
        .collect()
}

#[tokio::test]
async fn increment_rows_are_woven_in_by_id_across_files() {
    let base = base().await;
    assert_eq!(base.files.len(), 2);
    let (report, files) = run(&base, &increment(&[0, 4, 10, 13, 25]), 8).await;
    // Both files rewritten: their rows are one run, split into files of 8 rows.
    assert_eq!(
        ids_of(&files),
        [vec![0, 1, 3, 4, 5, 7, 9, 10], vec![11, 13, 15, 17, 19, 25]]
    );
    assert_eq!(files[1][1], (13, "new".to_owned()));
    assert_eq!(files[1][0], (11, "old".to_owned()));
    // File 1 gains ids (0, 4, 10) and is rewritten; in file 2 the increment only replaces
    // a row (13), so it is merged in place: its id chunk copied, its values encoded.
    assert_eq!((report.copied_files, report.rewritten_files), (0, 1));
    assert_eq!(report.patched_files, 1);
    assert_eq!(
        (report.patch.copied_chunks, report.patch.encoded_chunks),
        (1, 1)
    );
    assert_eq!(report.replaced_rows, 1);
    assert_eq!(report.rows, 14);
    assert_eq!(report.order_breaks, 0);
    assert!(report.passed(), "{:?}", report.checks);
    // With room for all, the two rewritten files become one.
    let (report, files) = run(&base, &increment(&[0, 4, 10, 13, 25]), 100).await;
    assert_eq!(files.len(), 1);
    assert_eq!(report.rows, 14);
}

#[tokio::test]
async fn rows_between_files_join_a_file_that_is_not_full_or_stand_alone() {
    let base = base().await;
    // File 1 has room (5 of 8 rows): it takes id 10 (its row group copied, 10 after it);
    // file 2 (not under half a file) is copied.
    let (report, files) = run(&base, &increment(&[10]), 8).await;
    assert_eq!((report.copied_files, report.rewritten_files), (1, 0));
    assert_eq!(report.patched_files, 1);
    assert_eq!(
        ids_of(&files),
        [vec![1, 3, 5, 7, 9, 10], vec![11, 13, 15, 17, 19]]
    );
    // Files under half a file (5 of 100 rows): file 2 is compacted into the file that
    // took id 10.
    let (report, files) = run(&base, &increment(&[10]), 100).await;
    assert_eq!((report.copied_files, report.rewritten_files), (0, 1));
    assert_eq!(report.patched_files, 1);
    assert_eq!(
        ids_of(&files),
        [vec![1, 3, 5, 7, 9, 10, 11, 13, 15, 17, 19]]
    );
    // Both files full (5 of 5 rows): both copied, id 10 gets a file between them.
    let (report, files) = run(&base, &increment(&[10]), 5).await;
    assert_eq!((report.copied_files, report.rewritten_files), (2, 0));
    assert_eq!(
        ids_of(&files),
        [vec![1, 3, 5, 7, 9], vec![10], vec![11, 13, 15, 17, 19]]
    );
    assert_eq!(report.order_breaks, 0);
    assert_eq!(report.rows, 11);
    // Nothing new: every file copied.
    let (report, files) = run(&base, &increment(&[]), 5).await;
    assert_eq!((report.copied_files, report.rewritten_files), (2, 0));
    assert_eq!(files.len(), 2);
}

#[tokio::test]
async fn new_records_join_a_last_row_group_that_is_a_fragment() {
    let options = WriteOptions {
        row_group_rows: 4,
        ..WriteOptions::default()
    };
    // Row groups [1, 3, 5, 7] and [9]: the second is under half the first.
    let base = base_of(options, &[&[1, 3, 5, 7, 9]]).await;
    assert_eq!(base.files[0].metadata.num_row_groups(), 2);
    let (report, files) = run(&base, &increment(&[3, 11]), 100).await;
    assert_eq!(ids_of(&files), [vec![1, 3, 5, 7, 9, 11]]);
    assert_eq!(files[0][1], (3, "new".to_owned()));
    // 3 is replaced in place in the first group; 11 is woven into the second, which is
    // written again with it instead of a third group of its own.
    assert_eq!(report.patched_files, 1);
    assert_eq!(
        (report.patch.patched_groups, report.patch.woven_groups),
        (1, 1)
    );
    assert_eq!(report.replaced_rows, 1);
    assert!(report.passed(), "{:?}", report.checks);
}

#[tokio::test]
async fn the_gate_counts_copied_files_from_their_statistics() {
    let base = base().await;
    let (report, _) = run(&base, &increment(&[]), 5).await;
    assert_eq!(report.rows, 10);
    let completeness = report
        .checks
        .iter()
        .find(|c| c.check == "completeness_id")
        .unwrap();
    assert_eq!(completeness.value, 1.0);
    assert!(report.passed());
}
