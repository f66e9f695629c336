//! The streaming merge: the previous snapshot, file by file and batch by batch, with the
//! prepared increment woven in by id ([`merge`]); or, for a first snapshot whose increment
//! arrives in id order, the increment's winning rows streamed straight through
//! ([`InOrderSnapshot`], rows slightly out of place put back in order by [`crate::streamed`]).
//! `merge_inputs` picks the way.
//!
//! Files of the previous snapshot are visited in order of their smallest id (from the Parquet
//! statistics of `id`). Each one is either (the decision is [`crate::output::decide`]; the files
//! written and the gate's figures are `crate::output::Output`)
//! - **copied** server-side, untouched, when no id of the increment lies in its id range, its
//!   columns are the new snapshot's columns, and its statistics say how many ids and
//!   completeness values it holds (the gate needs those figures without reading the rows); or
//! - **rewritten**: streamed batch by batch, rows whose id is in the increment dropped, the
//!   increment's rows inserted in id order, up to the next file's smallest id.
//!
//! The file count stays bounded night after night: rewritten neighbours are written as one run,
//! split into full files (so a file that grew does not leave a small remainder of its own); an
//! untouched file that is not yet full (fewer than `file_rows` rows) is rewritten when
//! increment rows fall between it and the next file (typically new records, whose ids are above
//! every existing id), so they join it instead of starting a small file of their own; and an
//! untouched small file is compacted into its neighbours ([`crate::output::compacts`]).
//!
//! Output stays ordered by id across files when the previous snapshot was (ours always is), so
//! each file keeps a narrow id range and later merges copy most files. Correctness does not
//! depend on the order: every increment row is written exactly once and every previous row whose
//! id is in the increment is dropped, whatever the ranges.
//!
//! Memory: the prepared increment, one batch of the previous snapshot (plus its merged copy) and
//! the file being encoded (at most the target file size), plus the ids written (for the
//! uniqueness check; copied files' ids are never read).

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::compute::interleave_record_batch;
use common::parquet_io::read_file;
use common::publish::{PartitionWriter, StagedPartition};
use common::storage::Storage;
use futures::TryStreamExt;

use crate::error::{Result, SnapshotError};
use crate::increment::PreparedIncrement;
use crate::inputs::{BaseFile, IncrementReader, Inputs, arrow_error};
use crate::output::{Action, MergeReport, Output, Rewrite, compacts, decide};
use crate::patch::{Patcher, patchable};
use crate::schema::conform;
use crate::settings::SnapshotSettings;
use crate::streamed::{Reorder, WINDOW_IDS};
use crate::winner::KeyEncoder;

/// The columns the merge works with.
#[derive(Debug, Clone)]
pub struct MergeColumns {
    pub id: String,
    /// The column the data-quality gate requires to be complete.
    pub completeness: String,
}

/// Merges `increment` into the previous snapshot's `base` files, writing through `writer`.
/// Returns the staged (unpublished) partition and what was done; the caller publishes or
/// discards it according to the gate.
pub async fn merge(
    storage: Arc<dyn Storage>,
    mut base: Vec<BaseFile>,
    increment: &PreparedIncrement,
    writer: PartitionWriter,
    ids: &KeyEncoder,
    columns: &MergeColumns,
    settings: &SnapshotSettings,
) -> Result<(StagedPartition, MergeReport)> {
    let (batch_rows, file_rows) = (settings.batch_rows, settings.file_rows);
    let target = increment.schema.clone();
    let id_index = target
        .index_of(&columns.id)
        .map_err(|_| SnapshotError::MissingColumn {
            what: format!("the snapshot of {}", writer.partition().table),
            column: columns.id.clone(),
        })?;
    // Files without a known range first (they are rewritten anyway), then by smallest id.
    base.sort_by(|a, b| {
        let min = |f: &BaseFile| f.id_range.as_ref().map(|(min, _)| min.clone());
        min(a).cmp(&min(b)).then_with(|| a.key.cmp(&b.key))
    });
    let mut out = Output::new(writer, ids, columns, file_rows);
    let mut report = MergeReport::default();
    let mut patcher = Patcher::new(
        storage.clone(),
        increment,
        (ids, id_index),
        (columns, &base),
        batch_rows,
    );
    let mut cursor = 0;
    for (i, file) in base.iter().enumerate() {
        let next_min = base
            .get(i + 1)
            .and_then(|f| f.id_range.as_ref())
            .map(|(min, _)| min);
        let action = match decide(file, next_min, increment, &target, out.file_rows()) {
            Action::Copy if compacts(file, base.get(i + 1), out.has_open_file(), settings) => {
                Action::Rewrite(Rewrite::Compacts)
            }
            action => action,
        };
        tracing::debug!(file = %file.key, ?action, "previous snapshot file");
        match action {
            Action::Copy => {
                if let Some((min, _)) = &file.id_range {
                    let before = increment.rows_below(min);
                    if before > cursor {
                        out.write_increment(increment, cursor..before).await?;
                        cursor = before;
                    }
                }
                out.copy(file).await?;
                report.copied_files += 1;
            }
            Action::Rewrite(why) => {
                let bound = next_min
                    .map_or(increment.len(), |m| increment.rows_below(m))
                    .max(cursor);
                // A file that only has rows replaced, or only gains rows after it, keeps its
                // row groups and their unchanged column chunks.
                let in_place = matches!(
                    why,
                    Rewrite::HoldsIncrementIds | Rewrite::AbsorbsFollowingRows
                ) && patchable(file, &target)
                    && !patcher.whole_records();
                let patched = patcher.counts.patched_groups;
                let replaced = if in_place {
                    patcher.patch(file, &mut cursor, bound, &mut out).await?
                } else {
                    rewrite(
                        storage.clone(),
                        file,
                        increment,
                        &mut cursor,
                        bound,
                        &mut out,
                        id_index,
                        batch_rows,
                    )
                    .await?
                };
                report.replaced_rows += replaced;
                out.write_increment(increment, cursor..bound).await?;
                cursor = bound;
                // The file stays open: the rows of a following rewritten file join it, so
                // rewritten neighbours are packed into full files (a copy closes it).
                match patcher.counts.patched_groups > patched {
                    true => report.patched_files += 1,
                    false => report.rewritten_files += 1,
                }
            }
        }
    }
    out.write_increment(increment, cursor..increment.len())
        .await?;
    report.increment_rows = increment.len() as u64;
    report.patch = patcher.counts;
    out.finish(increment.stats.null_ids, report).await
}

/// A snapshot written straight from an increment that arrives in id order, one row per id
/// (see [`crate::increment::InOrderWinners`]), when there is no previous snapshot: the
/// batches are written as they are read, so memory holds a batch, not the increment.
#[derive(Debug)]
pub struct InOrderSnapshot<'a> {
    out: Output<'a>,
}

impl<'a> InOrderSnapshot<'a> {
    pub fn new(
        writer: PartitionWriter,
        ids: &'a KeyEncoder,
        columns: &'a MergeColumns,
        settings: &SnapshotSettings,
    ) -> Self {
        Self {
            out: Output::new(writer, ids, columns, settings.file_rows),
        }
    }

    /// Appends rows of the snapshot schema, in id order.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.out.write(batch).await
    }

    /// The staged partition and the same report [`merge`] gives; `null_ids` are the
    /// increment's rows without an id (dropped, counted by the gate).
    pub async fn finish(self, null_ids: u64) -> Result<(StagedPartition, MergeReport)> {
        let (staged, mut report) = self.out.finish(null_ids, MergeReport::default()).await?;
        // Without a base nothing is copied: every row written is an increment row.
        report.increment_rows = report.rows;
        Ok((staged, report))
    }
}

/// Merges `inputs` into a new snapshot written through `writer` (`ids` encodes the snapshot's
/// ids). Without a base, an increment in id order (a full load, typically) is streamed instead
/// of held: memory stays bounded by a batch on the largest tables. Otherwise the increment is
/// held, one row per id, and woven into the base's files ([`merge`]).
pub(crate) async fn merge_inputs(
    inputs: &Inputs,
    ids: &Arc<KeyEncoder>,
    writer: PartitionWriter,
    columns: &MergeColumns,
    settings: &SnapshotSettings,
) -> Result<(StagedPartition, MergeReport)> {
    let in_order = match inputs.base.is_empty() {
        true => inputs.read_order(ids.clone(), WINDOW_IDS).await?,
        false => None,
    };
    match in_order {
        Some(order) => {
            let snapshot = InOrderSnapshot::new(writer, ids, columns, settings);
            write_in_order(inputs, order, snapshot, settings.batch_rows).await
        }
        None => {
            let increment = inputs.prepare(ids.clone()).await?;
            let base_files = inputs.base_files(ids, columns)?;
            merge(
                inputs.storage(),
                base_files,
                &increment,
                writer,
                ids,
                columns,
                settings,
            )
            .await
        }
    }
}

/// The first snapshot of an increment in id order (or nearly), streamed: every increment row
/// is read again and the winners (`order`, from [`Inputs::read_order`]) written in id order.
async fn write_in_order(
    inputs: &Inputs,
    (order, null_ids): (Vec<u64>, u64),
    mut snapshot: InOrderSnapshot<'_>,
    batch_rows: usize,
) -> Result<(StagedPartition, MergeReport)> {
    let mut reader = IncrementReader::new(inputs, inputs.target.clone());
    let mut rows = Reorder::new(order, batch_rows);
    let mut what = format!("{} increment", inputs.table);
    while !rows.is_done() {
        match rows.pop().map_err(arrow_error(what.clone()))? {
            Some(batch) => snapshot.write(&batch).await?,
            None => match reader.next().await? {
                Some((batch, _, file)) => {
                    rows.push(batch);
                    what = file;
                }
                None => {
                    return Err(SnapshotError::Arrow {
                        what,
                        source: arrow::error::ArrowError::ComputeError(
                            "the increment has fewer rows than when it was first read".into(),
                        ),
                    });
                }
            },
        }
    }
    snapshot.finish(null_ids).await
}

/// Streams one file of the previous snapshot through the merge. Returns how many of its rows
/// the increment replaced. Increment rows below each kept row (and below `bound`) are written
/// before it, advancing `cursor`.
#[allow(clippy::too_many_arguments)]
async fn rewrite(
    storage: Arc<dyn Storage>,
    file: &BaseFile,
    increment: &PreparedIncrement,
    cursor: &mut usize,
    bound: usize,
    out: &mut Output<'_>,
    id_index: usize,
    batch_rows: usize,
) -> Result<u64> {
    let what = file.describe();
    let read_error = |source| SnapshotError::Read {
        what: what.clone(),
        source: Box::new(source),
    };
    let (_, mut batches) = read_file(storage, &file.bucket, &file.key, batch_rows)
        .await
        .map_err(read_error)?;
    let mut replaced = 0;
    while let Some(batch) = batches.try_next().await.map_err(read_error)? {
        let batch = conform(&batch, &increment.schema, &[]).map_err(arrow_error(what.clone()))?;
        replaced += weave(&batch, increment, cursor, bound, out, id_index, &what).await?;
    }
    Ok(replaced)
}

/// Writes one batch of the previous snapshot (of the snapshot's schema) with the increment
/// woven in: its rows whose id the increment holds dropped, and increment rows below each kept
/// row (and below `bound`) written before it, advancing `cursor`. Returns the rows dropped.
pub(crate) async fn weave(
    batch: &RecordBatch,
    increment: &PreparedIncrement,
    cursor: &mut usize,
    bound: usize,
    out: &mut Output<'_>,
    id_index: usize,
    what: &str,
) -> Result<u64> {
    let ids = batch.column(id_index);
    let keys = out
        .ids()
        .encode(ids)
        .map_err(arrow_error(what.to_owned()))?;
    let keys_of = increment.keys();
    let mut replaced = 0;
    // (source, row): source 0 is the batch, 1 the increment (resolved below).
    let mut picks: Vec<(bool, usize)> = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        if ids.is_null(row) {
            picks.push((false, row));
            continue;
        }
        let key = keys.row(row);
        while *cursor < bound && keys_of[*cursor].row() < key {
            picks.push((true, *cursor));
            *cursor += 1;
        }
        if increment.contains(key) {
            replaced += 1;
        } else {
            picks.push((false, row));
        }
    }
    if picks.is_empty() {
        return Ok(replaced);
    }
    let merged = if picks.iter().all(|(from_increment, _)| !from_increment) {
        let rows: Vec<(usize, usize)> = picks.iter().map(|(_, row)| (0, *row)).collect();
        if rows.len() == batch.num_rows() {
            batch.clone()
        } else {
            interleave_record_batch(&[batch], &rows).map_err(arrow_error(what.to_owned()))?
        }
    } else {
        interleave_with_increment(batch, increment, &picks).map_err(arrow_error(what.to_owned()))?
    };
    out.write(&merged).await?;
    Ok(replaced)
}

/// Builds the merged batch from picks of the previous batch and of increment rows, passing
/// only the increment chunks the picks touch.
fn interleave_with_increment(
    batch: &RecordBatch,
    increment: &PreparedIncrement,
    picks: &[(bool, usize)],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut sources: Vec<&RecordBatch> = vec![batch];
    // Increment chunk number -> its index in `sources`.
    let mut slots: Vec<(usize, usize)> = Vec::new();
    let mut indices = Vec::with_capacity(picks.len());
    for &(from_increment, row) in picks {
        if !from_increment {
            indices.push((0, row));
            continue;
        }
        let (chunk, offset) = increment.position(row);
        let slot = match slots.iter().find(|(c, _)| *c == chunk) {
            Some((_, slot)) => *slot,
            None => {
                sources.push(increment.chunk(chunk));
                slots.push((chunk, sources.len() - 1));
                sources.len() - 1
            }
        };
        indices.push((slot, offset));
    }
    interleave_record_batch(&sources, &indices)
}

#[cfg(test)]
mod tests {
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
}
