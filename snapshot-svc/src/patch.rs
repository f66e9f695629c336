//! Merging the increment into a file of the previous snapshot in place: row group by row
//! group, the replaced rows take the increment's values where they were, and only the columns
//! whose values changed are encoded again; the others are copied as encoded bytes
//! ([`common::parquet_io::SourceRowGroup`]).
//!
//! A night's updates touch most files, but in planning data an update changes a few columns of
//! a record (status, dates, officer), so most column chunks of a touched row group are the same
//! bytes as yesterday's. For each row group of the file:
//! - no increment id falls in it: every column chunk is copied;
//! - every increment id that falls in it replaces one of its rows: the replaced rows' old and
//!   new values are compared column by column, the changed columns are decoded again with the
//!   new values put in and encoded, the rest copied. When more than half the columns changed
//!   (updates that rewrite whole records), encoding everything is as cheap, so the group is
//!   woven as a file is rewritten, and the merge rewrites the following files the usual way;
//! - an increment id falls in it that it does not hold (a record inserted among older ones):
//!   the group is woven: decoded, merged by id and encoded whole.
//!
//! The result is the same rows as a rewrite, in the same order; the row groups of the file are
//! kept. The data-quality gate sees every row's id and completeness value.
//!
//! Memory: one row group's encoded bytes, its replaced rows decoded, and its changed columns (at
//! most half of them) decoded.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::interleave;
use arrow::datatypes::{Schema, SchemaRef};
use common::parquet_io::SourceRowGroup;
use common::storage::Storage;

use crate::error::{Result, SnapshotError};
use crate::increment::PreparedIncrement;
use crate::inputs::{BaseFile, arrow_error};
use crate::merge::{MergeColumns, weave};
use crate::output::Output;
use crate::schema::conform;
use crate::winner::KeyEncoder;

/// Whether `file` can be merged in place into a snapshot of schema `target`: its columns are
/// exactly `target`'s (flat, same order, types and nullability), and the statistics give each
/// row group's id range, the ranges ascending without overlap.
pub(crate) fn patchable(file: &BaseFile, target: &Schema) -> bool {
    let same_fields = file.schema.fields().len() == target.fields().len()
        && file
            .schema
            .fields()
            .iter()
            .zip(target.fields())
            .all(|(a, b)| {
                a.name() == b.name()
                    && a.data_type() == b.data_type()
                    && a.is_nullable() == b.is_nullable()
                    && !a.data_type().is_nested()
            });
    let ordered = file
        .groups
        .as_ref()
        .is_some_and(|groups| groups.windows(2).all(|pair| pair[0].1 < pair[1].0));
    same_fields && ordered
}

/// How an in-place merge went, for the report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PatchCounts {
    /// Row groups written with some columns copied (every column, when untouched).
    pub patched_groups: u64,
    /// Row groups decoded, merged and encoded whole.
    pub woven_groups: u64,
    /// Column chunks encoded again in the patched row groups.
    pub encoded_chunks: u64,
    /// Column chunks copied as encoded bytes.
    pub copied_chunks: u64,
}

/// The state of in-place merging across the files of one merge.
#[derive(Debug)]
pub(crate) struct Patcher<'a> {
    storage: Arc<dyn Storage>,
    increment: &'a PreparedIncrement,
    ids: &'a KeyEncoder,
    /// The id's column in the snapshot's schema.
    id_index: usize,
    /// The rows of a full row group ([`full_group_rows`]): a file's last group under half of
    /// it is a fragment, which new records join.
    full_group_rows: i64,
    columns: &'a MergeColumns,
    batch_rows: usize,
    /// Set once a row group changed in more than half its columns: from then on touched row
    /// groups are woven and files rewritten (the updates rewrite whole records; comparing would
    /// only add work).
    weave_touched: bool,
    pub(crate) counts: PatchCounts,
}

impl<'a> Patcher<'a> {
    /// `ids` encodes the snapshot's ids, column `id_index` of the increment's schema; `base`
    /// are the files of the previous snapshot.
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        increment: &'a PreparedIncrement,
        (ids, id_index): (&'a KeyEncoder, usize),
        (columns, base): (&'a MergeColumns, &[BaseFile]),
        batch_rows: usize,
    ) -> Self {
        Self {
            storage,
            increment,
            ids,
            id_index,
            full_group_rows: full_group_rows(base),
            columns,
            batch_rows,
            weave_touched: false,
            counts: PatchCounts::default(),
        }
    }

    /// Whether the night's updates rewrite whole records (a row group changed in more than
    /// half its columns): then patching only adds work, and files are rewritten instead.
    pub(crate) fn whole_records(&self) -> bool {
        self.weave_touched
    }

    /// Merges `file` (which is [`patchable`]) in place. Increment rows below each row group
    /// and between row groups are written in id order, advancing `cursor`; rows above the
    /// file's largest id, up to `bound`, are woven into its last row group when that group is
    /// a fragment (under half the rows of a full row group), so that new records do not add a
    /// small row group every night; otherwise they are left to the caller. Returns how many of
    /// the file's rows were replaced.
    pub(crate) async fn patch(
        &mut self,
        file: &BaseFile,
        cursor: &mut usize,
        bound: usize,
        out: &mut Output<'_>,
    ) -> Result<u64> {
        let increment = self.increment;
        let groups = file
            .groups
            .as_ref()
            .expect("a patchable file has row group ranges");
        let what = file.describe();
        let mut replaced = 0;
        for (index, (min, max)) in groups.iter().enumerate() {
            let before = increment.rows_below(min).max(*cursor);
            out.write_increment(increment, *cursor..before).await?;
            *cursor = before;
            // Increment ids up to the next group's first id belong here; after the last group,
            // those above the file's largest id follow the file.
            let end = match groups.get(index + 1) {
                Some((next, _)) => increment.rows_below(next),
                None => increment.rows_through(max),
            }
            .max(*cursor);
            let fragment = index + 1 == groups.len()
                && file.metadata.row_group(index).num_rows() * 2 < self.full_group_rows;
            let source = SourceRowGroup::fetch(
                self.storage.clone(),
                &file.bucket,
                &file.key,
                file.bytes,
                file.metadata.clone(),
                index,
            )
            .await
            .map_err(|source| SnapshotError::Read {
                what: what.clone(),
                source: Box::new(source),
            })?;
            let what = format!("{what} (row group {index})");
            // New records after a fragment join it: the group is woven with them.
            let weave = fragment && bound > end;
            let rows = *cursor..if weave { bound } else { end };
            let patched = match weave {
                true => None,
                false => self.try_patch(&source, rows.clone(), out, &what).await?,
            };
            replaced += match patched {
                Some(replaced) => replaced,
                None => self.weave_group(&source, rows.clone(), out, &what).await?,
            };
            *cursor = rows.end;
        }
        Ok(replaced)
    }

    /// Writes one row group with the increment's rows `inside` (those whose ids fall in it)
    /// put in place, its unchanged columns copied. `None`, with nothing written, when the
    /// group is to be woven instead (see the module docs).
    async fn try_patch(
        &mut self,
        source: &SourceRowGroup,
        inside: std::ops::Range<usize>,
        out: &mut Output<'_>,
        what: &str,
    ) -> Result<Option<u64>> {
        let id_index = self.id_index;
        let parquet_error = |e: parquet::errors::ParquetError| SnapshotError::Arrow {
            what: what.to_owned(),
            source: e.into(),
        };
        let schema = self.increment.schema.clone();
        // The ids and completeness values of every row: where the increment's rows go, and
        // what the gate counts.
        let narrow = narrow_columns(&schema, self.columns, id_index);
        let mut observed = source
            .read(Some(&narrow), self.batch_rows)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(parquet_error)?;
        let id_at = narrow.iter().position(|c| *c == id_index).unwrap_or(0);
        let replacements = self.find(&observed, id_at, inside.clone(), what)?;
        let all_replaced = replacements.len() == inside.len();
        if !all_replaced || (self.weave_touched && !inside.is_empty()) {
            return Ok(None);
        }
        let changed = if inside.is_empty() {
            Vec::new()
        } else {
            self.changed_columns(source, &replacements, what)?
        };
        if changed.len() * 2 > schema.fields().len() {
            self.weave_touched = true;
            return Ok(None);
        }
        // The patched values of the changed columns, and of the observed ones.
        let mut patched = Vec::new();
        if !changed.is_empty() {
            let batches = source
                .read(Some(&changed), self.batch_rows)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(parquet_error)?;
            patched = self.put_in(batches, &changed, &replacements, what)?;
        }
        observed = self.put_in(observed, &narrow, &replacements, what)?;
        if !out
            .write_patched(source, &changed, &patched, &observed)
            .await?
        {
            return Ok(None);
        }
        self.counts.patched_groups += 1;
        self.counts.encoded_chunks += changed.len() as u64;
        self.counts.copied_chunks += (schema.fields().len() - changed.len()) as u64;
        Ok(Some(replacements.len() as u64))
    }

    /// The rows of the group (numbered from 0 in the group) whose ids the increment's rows
    /// `inside` hold, with those rows: (row, increment row), in row order. `narrow` are the
    /// group's batches with the id as column `id_at`.
    fn find(
        &self,
        narrow: &[RecordBatch],
        id_at: usize,
        inside: std::ops::Range<usize>,
        what: &str,
    ) -> Result<Vec<(usize, usize)>> {
        let mut replacements = Vec::new();
        let mut start = 0;
        for batch in narrow {
            let ids = batch.column(id_at);
            let keys = self.ids.encode(ids).map_err(arrow_error(what.to_owned()))?;
            for row in 0..batch.num_rows() {
                if ids.is_null(row) {
                    continue;
                }
                if let Some(at) = self.increment.index_within(keys.row(row), inside.clone()) {
                    replacements.push((start + row, at));
                }
            }
            start += batch.num_rows();
        }
        Ok(replacements)
    }

    /// The leaf columns (ascending) in which some replaced row's new value differs from its
    /// old one. Decodes only the replaced rows.
    fn changed_columns(
        &self,
        source: &SourceRowGroup,
        replacements: &[(usize, usize)],
        what: &str,
    ) -> Result<Vec<usize>> {
        let rows: Vec<usize> = replacements.iter().map(|(row, _)| *row).collect();
        let old = source.read_rows(&rows).map_err(|e| SnapshotError::Arrow {
            what: what.to_owned(),
            source: e.into(),
        })?;
        let old = arrow::compute::concat_batches(&self.increment.schema, &old)
            .map_err(arrow_error(what.to_owned()))?;
        let new = self.increment_rows(replacements.iter().map(|(_, at)| *at), what)?;
        Ok((0..new.num_columns())
            .filter(|&c| old.column(c).to_data() != new.column(c).to_data())
            .collect())
    }

    /// Increment rows, in the given order, as one batch of the snapshot's schema.
    fn increment_rows(&self, rows: impl Iterator<Item = usize>, what: &str) -> Result<RecordBatch> {
        (self.increment.interleave(None, rows.map(|at| (true, at))))
            .map_err(arrow_error(what.to_owned()))
    }

    /// `batches` (the group's rows, of the leaf columns `columns`) with the replaced rows'
    /// values taken from the increment.
    fn put_in(
        &self,
        batches: Vec<RecordBatch>,
        columns: &[usize],
        replacements: &[(usize, usize)],
        what: &str,
    ) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::with_capacity(batches.len());
        let mut start = 0;
        let mut next = 0;
        for batch in batches {
            let end = start + batch.num_rows();
            let first = next;
            while next < replacements.len() && replacements[next].0 < end {
                next += 1;
            }
            let here = &replacements[first..next];
            if here.is_empty() {
                start = end;
                out.push(batch);
                continue;
            }
            let new = self.increment_rows(here.iter().map(|(_, at)| *at), what)?;
            // Row i of the batch comes from the batch (0, i) or from `new` (1, j).
            let mut picks: Vec<(usize, usize)> = (0..batch.num_rows()).map(|i| (0, i)).collect();
            for (j, (row, _)) in here.iter().enumerate() {
                picks[row - start] = (1, j);
            }
            let arrays = columns
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    interleave(
                        &[batch.column(i).as_ref(), new.column(*column).as_ref()],
                        &picks,
                    )
                })
                .collect::<Result<Vec<ArrayRef>, _>>()
                .map_err(arrow_error(what.to_owned()))?;
            out.push(
                RecordBatch::try_new(batch.schema(), arrays)
                    .map_err(arrow_error(what.to_owned()))?,
            );
            start = end;
        }
        Ok(out)
    }

    /// Decodes the group, merges the increment's rows `inside` by id and writes the rows as
    /// any rewritten file's.
    async fn weave_group(
        &mut self,
        source: &SourceRowGroup,
        inside: std::ops::Range<usize>,
        out: &mut Output<'_>,
        what: &str,
    ) -> Result<u64> {
        let id_index = self.id_index;
        let decode_error = |e: parquet::errors::ParquetError| SnapshotError::Arrow {
            what: what.to_owned(),
            source: e.into(),
        };
        let batches = source.read(None, self.batch_rows).map_err(decode_error)?;
        let (mut cursor, mut replaced) = (inside.start, 0);
        for batch in batches {
            let batch = conform(&batch.map_err(decode_error)?, &self.increment.schema, &[])
                .map_err(arrow_error(what.to_owned()))?;
            replaced += weave(
                &batch,
                self.increment,
                &mut cursor,
                inside.end,
                out,
                id_index,
                what,
            )
            .await?;
        }
        out.write_increment(self.increment, cursor..inside.end)
            .await?;
        self.counts.woven_groups += 1;
        Ok(replaced)
    }
}

/// The most rows a row group of any of `files` holds: the size a full row group has.
fn full_group_rows(files: &[BaseFile]) -> i64 {
    files
        .iter()
        .flat_map(|f| f.metadata.row_groups())
        .map(|g| g.num_rows())
        .max()
        .unwrap_or(0)
}

/// The leaf columns the gate reads: the id, then the completeness column if it is another.
fn narrow_columns(schema: &SchemaRef, columns: &MergeColumns, id_index: usize) -> Vec<usize> {
    let mut narrow = vec![id_index];
    if let Ok(complete) = schema.index_of(&columns.completeness)
        && complete != id_index
    {
        narrow.push(complete);
    }
    narrow.sort_unstable();
    narrow
}
