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
use crate::settings::SnapshotSettings;

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
        let id_nulls = sum_known(
            &id_stats
                .row_group_null_counts(groups())
                .map_err(arrow_error)?,
        );
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
            source: Box::new(source),
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

impl<'a> Output<'a> {
    fn new(
        writer: PartitionWriter,
        ids: &'a KeyEncoder,
        columns: &'a MergeColumns,
        file_rows: usize,
    ) -> Self {
        Self {
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
        }
    }

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
        let keys = self
            .ids
            .encode(ids)
            .map_err(|source| SnapshotError::Arrow {
                what: format!("{} ids", self.writer.partition()),
                source,
            })?;
        // Compare neighbours within the batch; keep only the batch's last key.
        let mut previous = None;
        for (row, key) in keys.iter().enumerate() {
            if ids.is_null(row) {
                continue;
            }
            let broken = match previous {
                Some(previous) => previous >= key,
                None => self.last_key.as_ref().is_some_and(|last| last.row() >= key),
            };
            self.order_breaks += u64::from(broken);
            previous = Some(key);
        }
        if let Some(last) = previous {
            self.last_key = Some(last.owned());
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
        let out = self.out;
        let report = MergeReport {
            increment_rows: out.written.rows,
            rows: out.written.rows,
            order_breaks: out.order_breaks,
            checks: out.checks(null_ids),
            ..MergeReport::default()
        };
        let staged = out.writer.finish().await?;
        Ok((staged, report))
    }
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
            source: Box::new(source),
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
            source: Box::new(source),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::increment::Preparer;
    use arrow::array::{AsArray, Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int32Type};
    use chrono::NaiveDate;
    use common::layout::{Layer, Layout, TableName};
    use common::parquet_io::{WriteOptions, read_all};
    use common::publish::new_run_id;
    use common::storage::LocalStorage;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("value", DataType::Utf8, true),
        ]))
    }

    fn batch(ids: &[i32], value: &str) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int32Array::from(ids.to_vec())),
                Arc::new(StringArray::from_iter_values(ids.iter().map(|_| value))),
            ],
        )
        .unwrap()
    }

    fn ids() -> KeyEncoder {
        KeyEncoder::new(&DataType::Int32).unwrap()
    }

    fn key(v: i32) -> OwnedRow {
        let column: ArrayRef = Arc::new(Int32Array::from(vec![v]));
        ids().encode(&column).unwrap().row(0).owned()
    }

    fn increment(ids_: &[i32]) -> PreparedIncrement {
        let encoder = Arc::new(ids());
        let mut preparer = Preparer::new(schema(), "id", "last_updated", encoder).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        preparer.add(batch(ids_, "new"), day).unwrap();
        preparer.finish(2).unwrap()
    }

    fn file(range: Option<(i32, i32)>, rows: u64, schema: SchemaRef) -> BaseFile {
        BaseFile {
            bucket: "b".into(),
            key: "k".into(),
            bytes: 1,
            rows,
            schema,
            id_range: range.map(|(a, b)| (key(a), key(b))),
            id_nulls: Some(0),
            complete: Some(rows),
        }
    }

    #[test]
    fn decide_copies_untouched_files_and_rewrites_the_rest() {
        let inc = increment(&[15, 42]);
        let target = schema();
        let full = |range| file(Some(range), 10, schema());
        assert_eq!(
            decide(&full((1, 10)), Some(&key(11)), &inc, &target, 10),
            Action::Copy
        );
        assert_eq!(
            decide(&full((11, 20)), Some(&key(21)), &inc, &target, 10),
            Action::Rewrite(Rewrite::HoldsIncrementIds)
        );
        let older = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true)]));
        assert_eq!(
            decide(
                &file(Some((21, 30)), 10, older),
                Some(&key(31)),
                &inc,
                &target,
                10
            ),
            Action::Rewrite(Rewrite::SchemaChanged)
        );
        assert_eq!(
            decide(&file(Some((31, 40)), 5, schema()), None, &inc, &target, 10),
            Action::Rewrite(Rewrite::AbsorbsFollowingRows),
            "42 joins the last file, which is not full"
        );
        assert_eq!(
            decide(&full((31, 40)), None, &inc, &target, 10),
            Action::Copy
        );
        assert_eq!(
            decide(&file(None, 10, schema()), None, &inc, &target, 10),
            Action::Rewrite(Rewrite::NoStatistics)
        );
    }

    struct Base {
        _dir: tempfile::TempDir,
        storage: Arc<dyn Storage>,
        files: Vec<BaseFile>,
        layout: Layout,
    }

    /// A previous snapshot of two files: odd ids 1..=9 and 11..=19, valued `old`.
    async fn base() -> Base {
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
        let mut writer = PartitionWriter::new(
            storage.clone(),
            partition,
            new_run_id(),
            schema(),
            WriteOptions::default(),
        );
        writer.write(&batch(&[1, 3, 5, 7, 9], "old")).await.unwrap();
        writer.flush_file().await.unwrap();
        writer
            .write(&batch(&[11, 13, 15, 17, 19], "old"))
            .await
            .unwrap();
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
        let (report, files) = run(&base, &increment(&[0, 4, 10, 13, 25]), 100).await;
        assert_eq!(
            ids_of(&files),
            [vec![0, 1, 3, 4, 5, 7, 9, 10], vec![11, 13, 15, 17, 19, 25]]
        );
        assert_eq!(files[1][1], (13, "new".to_owned()));
        assert_eq!(files[1][0], (11, "old".to_owned()));
        assert_eq!((report.copied_files, report.rewritten_files), (0, 2));
        assert_eq!(report.replaced_rows, 1);
        assert_eq!(report.rows, 14);
        assert_eq!(report.order_breaks, 0);
        assert!(report.passed(), "{:?}", report.checks);
    }

    #[tokio::test]
    async fn rows_between_files_join_a_file_that_is_not_full_or_stand_alone() {
        let base = base().await;
        // File 1 has room (5 of 100 rows): it takes id 10; file 2 is copied.
        let (report, files) = run(&base, &increment(&[10]), 100).await;
        assert_eq!((report.copied_files, report.rewritten_files), (1, 1));
        assert_eq!(
            ids_of(&files),
            [vec![1, 3, 5, 7, 9, 10], vec![11, 13, 15, 17, 19]]
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
