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
        if increment.contains_near(key, *cursor) {
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
        (increment.interleave(Some(batch), picks)).map_err(arrow_error(what.to_owned()))?
    };
    out.write(&merged).await?;
    Ok(replaced)
}

#[cfg(test)]
mod tests;
