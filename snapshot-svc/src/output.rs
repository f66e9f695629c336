//! What the merge writes and what it accounts for.
//!
//! - `Output`: the snapshot being written, split into files of `file_rows` rows, whole files of
//!   the base copied server-side; it feeds the data-quality gate and watches the id order.
//! - [`decide`]: whether a file of the base is copied or rewritten.
//! - The accounting: [`MergeReport`] (what a merge did), the gate's checks (ids unique and
//!   present, the completeness column complete, and [`row_count_check`]: no fewer rows than the
//!   base), the recorded data-quality report (`gate`) and the facts recorded with the
//!   partition (`partition_parameters`).

use std::collections::BTreeMap;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::Schema;
use arrow::row::OwnedRow;
use chrono::NaiveDate;
use common::config::Fraction;
use common::layout::{PartitionRef, date_value};
use common::parquet_io::SourceRowGroup;
use common::platform::Platform;
use common::publish::{PartitionWriter, StagedPartition};
use common::quality::{CheckResult, GateError, MIN_COMPLETENESS, QualityCheck, QualityReport};

use crate::error::{Result, SnapshotError};
use crate::increment::PreparedIncrement;
use crate::inputs::{BaseFile, Inputs};
use crate::merge::MergeColumns;
use crate::patch::PatchCounts;
use crate::plan::{IncrementRun, Plan, encode_included, parameters, run_of};
use crate::schema::same_columns;
use crate::settings::SnapshotSettings;
use crate::stage::STAGE;
use crate::winner::KeyEncoder;

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
    /// It is small, and its rows join the file being written or the next small file
    /// ([`compacts`]).
    Compacts,
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

/// Compaction, so the file count stays bounded night after night: an untouched `file` that
/// is small (under half a file, in rows and in bytes) is rewritten rather than copied when its
/// rows can join a file being written (`open_file`: the file before it was rewritten) or the
/// `next` file is small too (the two are written as one). A small file survives only between
/// two untouched full files, and then only until a neighbour changes.
pub fn compacts(
    file: &BaseFile,
    next: Option<&BaseFile>,
    open_file: bool,
    settings: &SnapshotSettings,
) -> bool {
    let small = |f: &BaseFile| {
        (f.rows as usize) * 2 < settings.file_rows
            && (f.bytes as usize) * 2 < settings.target_file_bytes
    };
    small(file) && (open_file || next.is_some_and(small))
}

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeReport {
    /// Files of the previous snapshot copied server-side.
    pub copied_files: usize,
    /// Files of the previous snapshot decoded and written again.
    pub rewritten_files: usize,
    /// Files of the previous snapshot merged in place: their row groups written again with
    /// only the changed columns encoded ([`crate::patch`]), except groups that gained rows.
    pub patched_files: usize,
    /// What the in-place merges did, column chunk by column chunk.
    pub patch: PatchCounts,
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
pub(crate) struct Output<'a> {
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
    pub(crate) fn new(
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

    pub(crate) async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
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

    pub(crate) async fn copy(&mut self, file: &BaseFile) -> Result<()> {
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

    /// Writes a row group of the base again, the leaf columns `changed` from `batches` and the
    /// others copied ([`PartitionWriter::write_patched`]); `observed` are its rows' ids and
    /// completeness values as written (the gate's figures and the order). `Ok(false)`, with
    /// nothing written, when the group's columns are not the file's.
    pub(crate) async fn write_patched(
        &mut self,
        source: &SourceRowGroup,
        changed: &[usize],
        batches: &[RecordBatch],
        observed: &[RecordBatch],
    ) -> Result<bool> {
        if !self.writer.write_patched(source, changed, batches).await? {
            return Ok(false);
        }
        for batch in observed {
            self.observe(batch)?;
        }
        self.rows_in_file += source.rows();
        if self.rows_in_file >= self.file_rows {
            self.end_file().await?;
        }
        Ok(true)
    }

    /// Whether rows written are waiting in a file not yet closed.
    pub(crate) fn has_open_file(&self) -> bool {
        self.writer.has_open_file()
    }

    pub(crate) async fn end_file(&mut self) -> Result<()> {
        self.writer.flush_file().await?;
        self.rows_in_file = 0;
        Ok(())
    }

    pub(crate) async fn write_increment(
        &mut self,
        increment: &PreparedIncrement,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        for slice in increment.slices(range) {
            self.write(&slice).await?;
        }
        Ok(())
    }

    /// The encoder of the snapshot's ids.
    pub(crate) fn ids(&self) -> &KeyEncoder {
        self.ids
    }

    /// The rows a file holds before the next one starts.
    pub(crate) fn file_rows(&self) -> usize {
        self.file_rows
    }

    /// Ends the snapshot: the staged (unpublished) partition, and `report` completed with the
    /// rows, the order and the gate's checks; `increment_null_ids` are the increment's rows
    /// without an id (dropped, counted by the gate).
    pub(crate) async fn finish(
        self,
        increment_null_ids: u64,
        mut report: MergeReport,
    ) -> Result<(StagedPartition, MergeReport)> {
        report.rows = self.written.rows + self.copied.rows;
        report.order_breaks = self.order_breaks;
        report.checks = self.checks(increment_null_ids);
        let staged = self.writer.finish().await?;
        Ok((staged, report))
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

/// The base's date and rows as published (its `rows` parameter), else as its files hold them:
/// a base whose files went missing since still counts what it was published with. `None`
/// without a base.
pub(crate) fn base_rows(plan: &Plan, inputs: &Inputs) -> Option<(NaiveDate, u64)> {
    plan.base.as_ref().map(|(date, info)| {
        let recorded = info.parameters.get("rows").and_then(|r| r.parse().ok());
        let in_files = || {
            inputs
                .base
                .iter()
                .map(|(_, metadata)| metadata.file_metadata().num_rows().max(0) as u64)
                .sum()
        };
        (*date, recorded.unwrap_or_else(in_files))
    })
}

/// The facts recorded with the snapshot partition (see [`parameters`]).
pub(crate) fn partition_parameters(
    plan: &Plan,
    applied: &[IncrementRun],
    report: &MergeReport,
) -> BTreeMap<String, String> {
    let base_date = plan.base.as_ref().map(|(d, _)| date_value(*d));
    let base_run = plan.base.as_ref().map(|(_, info)| run_of(info));
    BTreeMap::from([
        (
            parameters::INCLUDED_INCREMENTS.to_owned(),
            encode_included(&plan.included),
        ),
        (
            parameters::APPLIED_INCREMENTS.to_owned(),
            encode_included(applied.iter().map(|r| (&r.date, &r.run_id))),
        ),
        (
            parameters::BASE_SNAPSHOT_DATE.to_owned(),
            base_date.unwrap_or_default(),
        ),
        (
            parameters::BASE_RUN_ID.to_owned(),
            base_run.unwrap_or_default(),
        ),
        (
            parameters::COPIED_FILES.to_owned(),
            report.copied_files.to_string(),
        ),
        (
            parameters::PATCHED_FILES.to_owned(),
            report.patched_files.to_string(),
        ),
        (
            parameters::COPIED_COLUMN_CHUNKS.to_owned(),
            report.patch.copied_chunks.to_string(),
        ),
        (
            parameters::REWRITTEN_FILES.to_owned(),
            report.rewritten_files.to_string(),
        ),
        (
            parameters::INCREMENT_ROWS.to_owned(),
            report.increment_rows.to_string(),
        ),
        (
            parameters::REPLACED_ROWS.to_owned(),
            report.replaced_rows.to_string(),
        ),
    ])
}

/// The name of the gate's check on the snapshot's row count against its base's.
pub const ROW_COUNT_CHANGE: &str = "row_count_change";

/// The gate's check that a snapshot holds no fewer rows than its base, bar the allowed share:
/// the value is the relative change `(rows - base_rows) / base_rows` (rounded to 4 places), the
/// threshold the lowest change allowed (`-allowed_drop`); the example gives both counts. A merge
/// never removes a row, so with the default (0) any drop fails. An empty base cannot drop.
pub fn row_count_check(
    base_date: NaiveDate,
    base_rows: u64,
    rows: u64,
    allowed_drop: Fraction,
) -> CheckResult {
    let change = if base_rows == 0 {
        0.0
    } else {
        (rows as f64 - base_rows as f64) / base_rows as f64
    };
    let allowed = allowed_drop.get();
    let dropped = base_rows.saturating_sub(rows);
    CheckResult {
        check: ROW_COUNT_CHANGE.to_owned(),
        // On the counts, not the rounded ratio: one row fewer fails the default.
        passed: dropped == 0 || dropped as f64 <= allowed * base_rows as f64,
        value: (change * 10_000.0).round() / 10_000.0,
        threshold: if allowed == 0.0 { 0.0 } else { -allowed },
        examples: vec![format!(
            "{rows} rows against {base_rows} in the base snapshot_date={}",
            date_value(base_date)
        )],
    }
}

/// Records the data-quality report, passed or failed; `Err` when the gate failed.
pub(crate) async fn gate(
    platform: &Platform,
    snapshot: &PartitionRef,
    run_id: &str,
    rows: u64,
    checks: Vec<CheckResult>,
) -> Result<()> {
    let mut quality = QualityReport::new(STAGE, snapshot, run_id);
    quality.rows = rows;
    quality.checks = checks;
    quality
        .record_and_check(platform, snapshot)
        .await
        .map_err(|gate| match gate {
            GateError::Record { source, .. } => SnapshotError::Storage {
                what: format!("recording the data-quality report of {snapshot}"),
                source: Box::new(source),
            },
            GateError::Failed {
                partition,
                failures,
            } => SnapshotError::Quality {
                partition,
                failures,
            },
        })
}

#[cfg(test)]
mod tests;
