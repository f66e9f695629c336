//! The streaming merge: the previous snapshot, file by file and batch by batch, with the
//! prepared increment woven in by id.
//!
//! Files of the previous snapshot are visited in order of their smallest id (from the Parquet
//! statistics of `id`). Each one is either
//! - **copied** server-side, untouched, when no id of the increment lies in its id range, its
//!   columns are the new snapshot's columns, and its statistics say how many ids and
//!   completeness values it holds (the gate needs those figures without reading the rows); or
//! - **rewritten**: streamed batch by batch, rows whose id is in the increment dropped, the
//!   increment's rows inserted in id order, up to the next file's smallest id.
//!
//! One exception keeps the file count from growing night after night: an untouched file that is
//! not yet full (fewer than `file_rows` rows) is rewritten when increment rows fall between it
//! and the next file (typically new records, whose ids are above every existing id), so they
//! join it instead of starting a small file of their own.
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

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options, interleave_record_batch};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::row::OwnedRow;
use common::parquet_io::{read_file, read_metadata};
use common::publish::{PartitionWriter, StagedPartition};
use common::quality::{CheckResult, MIN_COMPLETENESS, QualityCheck};
use common::storage::Storage;
use futures::TryStreamExt;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::parquet_to_arrow_schema;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;

use crate::error::{Result, SnapshotError};
use crate::increment::{KeyEncoder, PreparedIncrement};
use crate::schema::{conform, same_columns};

/// The columns the merge works with.
#[derive(Debug, Clone)]
pub struct MergeColumns {
    pub id: String,
    /// The column the data-quality gate requires to be complete.
    pub completeness: String,
}

/// One file of the previous snapshot, summarised from its footer (no rows read).
#[derive(Debug, Clone)]
pub struct BaseFile {
    pub bucket: String,
    pub key: String,
    pub bytes: u64,
    pub rows: u64,
    pub schema: SchemaRef,
    /// Smallest and largest id, when the statistics give them for every row group.
    pub id_range: Option<(OwnedRow, OwnedRow)>,
    /// Rows without an id, when the statistics say.
    pub id_nulls: Option<u64>,
    /// Rows with a completeness value, when the statistics say.
    pub complete: Option<u64>,
}

impl BaseFile {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// Summarises a file from its footer (`metadata`): schema, row count and the statistics
    /// of the id and completeness columns. `ids` encodes ids of the new snapshot's id type.
    pub fn from_metadata(
        bucket: &str,
        key: &str,
        bytes: u64,
        metadata: &ParquetMetaData,
        ids: &KeyEncoder,
        columns: &MergeColumns,
    ) -> Result<Self> {
        let what = format!("s3://{bucket}/{key}");
        let arrow_error = |source: ParquetError| SnapshotError::Arrow {
            what: what.clone(),
            source: source.into(),
        };
        let file = metadata.file_metadata();
        let schema = file_schema(metadata).map_err(arrow_error)?;
        if schema.column_with_name(&columns.id).is_none() {
            return Err(SnapshotError::MissingColumn {
                what,
                column: columns.id.clone(),
            });
        }
        let rows = file.num_rows().max(0) as u64;
        let groups = || metadata.row_groups().iter();
        let id_stats = StatisticsConverter::try_new(&columns.id, &schema, file.schema_descr())
            .map_err(arrow_error)?;
        let id_nulls = sum_known(&id_stats.row_group_null_counts(groups()).map_err(arrow_error)?);
        let mins = id_stats.row_group_mins(groups()).map_err(arrow_error)?;
        let maxes = id_stats.row_group_maxes(groups()).map_err(arrow_error)?;
        let id_range = key_range(ids, &mins, &maxes);
        let complete = match schema.column_with_name(&columns.completeness) {
            None => Some(0),
            Some(_) => {
                let stats = StatisticsConverter::try_new(
                    &columns.completeness,
                    &schema,
                    file.schema_descr(),
                )
                .map_err(arrow_error)?;
                let nulls = stats.row_group_null_counts(groups()).map_err(arrow_error)?;
                sum_known(&nulls).map(|n| rows.saturating_sub(n))
            }
        };
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            bytes,
            rows,
            schema: Arc::new(schema),
            id_range,
            id_nulls,
            complete,
        })
    }
}

/// The Arrow schema a Parquet file was written with.
pub fn file_schema(metadata: &ParquetMetaData) -> Result<Schema, ParquetError> {
    let file = metadata.file_metadata();
    parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
}

/// Reads a file's footer.
pub async fn footer(
    storage: Arc<dyn Storage>,
    bucket: &str,
    key: &str,
) -> Result<Arc<ParquetMetaData>> {
    read_metadata(storage, bucket, key)
        .await
        .map_err(|source| SnapshotError::Read {
            what: format!("s3://{bucket}/{key}"),
            source,
        })
}

fn sum_known(counts: &arrow::array::UInt64Array) -> Option<u64> {
    (counts.null_count() == 0).then(|| counts.values().iter().sum())
}

/// The smallest of the row-group minimums and the largest of the maximums, as keys; `None`
/// when any row group lacks them or they do not cast to the id type.
fn key_range(ids: &KeyEncoder, mins: &ArrayRef, maxes: &ArrayRef) -> Option<(OwnedRow, OwnedRow)> {
    if mins.is_empty() || mins.null_count() > 0 || maxes.null_count() > 0 {
        return None;
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mins = ids
        .encode(&cast_with_options(mins, ids.data_type(), &options).ok()?)
        .ok()?;
    let maxes = ids
        .encode(&cast_with_options(maxes, ids.data_type(), &options).ok()?)
        .ok()?;
    let min = mins.iter().min()?.owned();
    let max = maxes.iter().max()?.owned();
    Some((min, max))
}

/// Why a file of the previous snapshot is rewritten rather than copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Some id of the increment lies in its id range.
    HoldsIncrementIds,
    /// Its columns are not the new snapshot's columns.
    SchemaChanged,
    /// Its statistics lack the id range or the null counts.
    NoStatistics,
    /// It is not full and increment rows follow it before the next file.
    AbsorbsFollowingRows,
}

/// What to do with one file of the previous snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Copy,
    Rewrite(Rewrite),
}

/// The copy-or-rewrite decision for `file`, whose successor (in id order) starts at
/// `next_min` (`None` for the last file).
pub fn decide(
    file: &BaseFile,
    next_min: Option<&OwnedRow>,
    increment: &PreparedIncrement,
    target: &Schema,
    file_rows: usize,
) -> Action {
    let Some((min, max)) = &file.id_range else {
        return Action::Rewrite(Rewrite::NoStatistics);
    };
    if file.id_nulls.is_none() || file.complete.is_none() {
        return Action::Rewrite(Rewrite::NoStatistics);
    }
    if increment.any_within(min, max) {
        return Action::Rewrite(Rewrite::HoldsIncrementIds);
    }
    if !same_columns(&file.schema, target) {
        return Action::Rewrite(Rewrite::SchemaChanged);
    }
    // No increment id lies in min..=max, so the rows below `max` are the rows before the file.
    let through_file = increment.rows_below(max);
    let before_next = next_min.map_or(increment.len(), |m| increment.rows_below(m));
    if before_next > through_file && (file.rows as usize) < file_rows {
        return Action::Rewrite(Rewrite::AbsorbsFollowingRows);
    }
    Action::Copy
}

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeReport {
    /// Files of the previous snapshot copied server-side.
    pub copied_files: usize,
    /// Files of the previous snapshot decoded and written again.
    pub rewritten_files: usize,
    /// Rows of the new snapshot.
    pub rows: u64,
    /// Rows of the previous snapshot replaced by an increment row.
    pub replaced_rows: u64,
    /// Increment rows written.
    pub increment_rows: u64,
    /// Times an id was not above the id written before it: 0 when the snapshot is ordered.
    pub order_breaks: u64,
    /// The data-quality checks of the new snapshot.
    pub checks: Vec<CheckResult>,
}

impl MergeReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// Counts for the gate over rows written and files copied.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    rows: u64,
    complete: u64,
    missing_ids: u64,
}

/// The snapshot being written: splits files at `file_rows`, feeds the gate, watches the order.
#[derive(Debug)]
struct Output<'a> {
    writer: PartitionWriter,
    ids: &'a KeyEncoder,
    columns: &'a MergeColumns,
    file_rows: usize,
    rows_in_file: usize,
    unique: QualityCheck,
    written: Counts,
    copied: Counts,
    last_key: Option<OwnedRow>,
    order_breaks: u64,
}

impl Output<'_> {
    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.observe(batch)?;
        let mut at = 0;
        while at < batch.num_rows() {
            let take = (self.file_rows - self.rows_in_file).min(batch.num_rows() - at);
            self.writer.write(&batch.slice(at, take)).await?;
            self.rows_in_file += take;
            at += take;
            if self.rows_in_file >= self.file_rows {
                self.end_file().await?;
            }
        }
        Ok(())
    }

    /// Gate figures and order of a batch about to be written.
    fn observe(&mut self, batch: &RecordBatch) -> Result<()> {
        self.unique.add(batch);
        self.written.rows += batch.num_rows() as u64;
        if let Some(column) = batch.column_by_name(&self.columns.completeness) {
            self.written.complete += (column.len() - column.null_count()) as u64;
        }
        let Some(ids) = batch.column_by_name(&self.columns.id) else {
            return Ok(());
        };
        let keys = self.ids.encode(ids).map_err(|source| SnapshotError::Arrow {
            what: format!("{} ids", self.writer.partition()),
            source,
        })?;
        for (row, key) in keys.iter().enumerate() {
            if ids.is_null(row) {
                continue;
            }
            if self.last_key.as_ref().is_some_and(|last| last.row() >= key) {
                self.order_breaks += 1;
            }
            self.last_key = Some(key.owned());
        }
        Ok(())
    }

    async fn copy(&mut self, file: &BaseFile) -> Result<()> {
        self.end_file().await?;
        self.writer
            .copy_file(&file.bucket, &file.key, file.rows, file.bytes)
            .await?;
        self.copied.rows += file.rows;
        self.copied.complete += file.complete.unwrap_or(0);
        self.copied.missing_ids += file.id_nulls.unwrap_or(0);
        if let Some((min, max)) = &file.id_range {
            if self.last_key.as_ref().is_some_and(|last| last >= min) {
                self.order_breaks += 1;
            }
            self.last_key = Some(max.clone());
        }
        Ok(())
    }

    async fn end_file(&mut self) -> Result<()> {
        self.writer.flush_file().await?;
        self.rows_in_file = 0;
        Ok(())
    }

    async fn write_increment(
        &mut self,
        increment: &PreparedIncrement,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        for slice in increment.slices(range) {
            self.write(&slice).await?;
        }
        Ok(())
    }

    /// The gate: ids unique among the rows written (copied files cannot collide: their id
    /// ranges hold no increment id, and they passed the gate when first written), no row
    /// without an id, the completeness column at least [`MIN_COMPLETENESS`] complete.
    fn checks(&self, increment_null_ids: u64) -> Vec<CheckResult> {
        let mut checks = self.unique.results();
        let rows = self.written.rows + self.copied.rows;
        let complete = self.written.complete + self.copied.complete;
        let completeness = if rows == 0 {
            1.0
        } else {
            complete as f64 / rows as f64
        };
        for check in &mut checks {
            if check.check == format!("missing_{}", self.columns.id) {
                check.value += (self.copied.missing_ids + increment_null_ids) as f64;
                check.passed = check.value <= check.threshold;
            } else if check.check.starts_with("completeness_") {
                check.value = (completeness * 10_000.0).round() / 10_000.0;
                check.passed = completeness >= MIN_COMPLETENESS;
            }
        }
        checks
    }
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
    batch_rows: usize,
    file_rows: usize,
) -> Result<(StagedPartition, MergeReport)> {
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
    let mut out = Output {
        writer,
        ids,
        columns,
        file_rows: file_rows.max(1),
        rows_in_file: 0,
        unique: QualityCheck::new(&columns.id, &columns.completeness),
        written: Counts::default(),
        copied: Counts::default(),
        last_key: None,
        order_breaks: 0,
    };
    let mut report = MergeReport::default();
    let mut cursor = 0;
    for (i, file) in base.iter().enumerate() {
        let next_min = base
            .get(i + 1)
            .and_then(|f| f.id_range.as_ref())
            .map(|(min, _)| min);
        let action = decide(file, next_min, increment, &target, out.file_rows);
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
            Action::Rewrite(_) => {
                let bound = next_min
                    .map_or(increment.len(), |m| increment.rows_below(m))
                    .max(cursor);
                let replaced = rewrite(
                    storage.clone(),
                    file,
                    increment,
                    &mut cursor,
                    bound,
                    &mut out,
                    id_index,
                    batch_rows,
                )
                .await?;
                report.replaced_rows += replaced;
                out.write_increment(increment, cursor..bound).await?;
                cursor = bound;
                out.end_file().await?;
                report.rewritten_files += 1;
            }
        }
    }
    out.write_increment(increment, cursor..increment.len())
        .await?;
    report.increment_rows = increment.len() as u64;
    report.rows = out.written.rows + out.copied.rows;
    report.order_breaks = out.order_breaks;
    report.checks = out.checks(increment.stats.null_ids);
    let staged = out.writer.finish().await?;
    Ok((staged, report))
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
    let target = increment.schema.clone();
    let (_, mut batches) = read_file(storage, &file.bucket, &file.key, batch_rows)
        .await
        .map_err(|source| SnapshotError::Read {
            what: what.clone(),
            source,
        })?;
    let arrow_error = |source| SnapshotError::Arrow {
        what: what.clone(),
        source,
    };
    let keys_of = increment.keys();
    let mut replaced = 0;
    while let Some(batch) = batches
        .try_next()
        .await
        .map_err(|source| SnapshotError::Read {
            what: what.clone(),
            source,
        })?
    {
        let batch = conform(&batch, &target, &[]).map_err(arrow_error)?;
        let ids = batch.column(id_index);
        let keys = out.ids.encode(ids).map_err(arrow_error)?;
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
            continue;
        }
        let merged = if picks.iter().all(|(from_increment, _)| !from_increment) {
            let rows: Vec<(usize, usize)> = picks.iter().map(|(_, row)| (0, *row)).collect();
            if rows.len() == batch.num_rows() {
                batch
            } else {
                interleave_record_batch(&[&batch], &rows).map_err(arrow_error)?
            }
        } else {
            interleave_with_increment(&batch, increment, &picks).map_err(arrow_error)?
        };
        out.write(&merged).await?;
    }
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
