//! The two passes over a raw partition (see the [crate](crate) docs): the union of the record
//! fields and the row kept per id, then the records exploded into text columns.
//!
//! Rows are read in storage order, the same on both passes; only rows of pages with status
//! `"200"` and a record are parsed, with their bookkeeping columns cast to the parsed layer's
//! types (so a raw file of our earlier runs, whose page number and status are `int`, parses as a
//! current one: its status `200` is cast to `"200"`).

use std::collections::{BTreeSet, HashMap};

use arrow::array::BooleanArray;
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::compute::kernels::boolean::{and, is_not_null};
use arrow::compute::kernels::cmp::eq;
use arrow::compute::{cast, filter, filter_record_batch};
use arrow::datatypes::{DataType, Int64Type};
use arrow::error::ArrowError;
use common::bookkeeping::{BOOKKEEPING, OK_STATUS, PAGE_NUMBER, STATUS};
use common::layout::PartitionRef;
use common::source::PartitionReader;
use common::threads::{on_threads, threads};
use common::transform_stage::{Output, TransformError};

use crate::error::{ParseError, Result};
use crate::explode::{Exploder, FieldCollector, RecordError, RecordKey};
use crate::versions::{Chooser, Selection, id_keys};

/// The rows of one raw batch worth parsing: status `"200"` and a record.
pub(crate) struct RawRows {
    records: StringArray,
    pages: Int64Array,
    /// Each row's number within its page, counting from 1 in storage order.
    row_numbers: Vec<u64>,
    /// The first row's number among the pass's kept rows, counting from 0 in storage order (the
    /// same row has the same ordinal in both passes).
    first_ordinal: u64,
    /// The bookkeeping columns of those rows, in [`BOOKKEEPING`] order and types.
    bookkeeping: Vec<ArrayRef>,
}

/// Reads a raw partition's kept rows batch by batch, in the same order on every pass.
pub(crate) struct RawReader<'r, 'a> {
    input: &'r mut PartitionReader<'a>,
    raw: &'a PartitionRef,
    page_rows: HashMap<Option<i64>, u64>,
    /// Rows with status `"200"` but no record, seen in this pass.
    pub(crate) skipped: u64,
    /// Rows kept (status `"200"` and a record) so far in this pass.
    pub(crate) ordinal: u64,
}

impl<'r, 'a> RawReader<'r, 'a> {
    pub(crate) fn new(input: &'r mut PartitionReader<'a>) -> Self {
        Self {
            raw: input.partition(),
            input,
            page_rows: HashMap::new(),
            skipped: 0,
            ordinal: 0,
        }
    }

    /// Starts a new pass from the first file.
    fn rewind(&mut self) {
        self.input.rewind();
        self.page_rows.clear();
        self.skipped = 0;
        self.ordinal = 0;
    }

    /// The next batch of kept rows, or `None` at the end of the pass.
    async fn next(&mut self) -> Result<Option<RawRows>> {
        let batch = self.input.next_batch().await;
        match batch.map_err(TransformError::from)? {
            Some((file, batch)) => self.select_rows(&batch, file).map(Some),
            None => Ok(None),
        }
    }

    /// Pass 1: the union of the record fields, and the row kept for each id (see
    /// [`crate::versions`]).
    pub(crate) async fn first_pass(&mut self) -> Result<(BTreeSet<String>, Selection)> {
        self.rewind();
        let mut collectors: Vec<FieldCollector> =
            (0..threads()).map(|_| FieldCollector::default()).collect();
        let mut chooser = Chooser::default();
        while let Some(rows) = self.next().await? {
            let shares = collectors
                .iter_mut()
                .zip(row_shares(rows.records.len(), threads()));
            let results = on_threads(shares.collect(), |(collector, range)| {
                range
                    .into_iter()
                    .map(|i| {
                        collector
                            .add(rows.records.value(i))
                            .map_err(|problem| (i, problem))
                    })
                    .collect::<Result<Vec<RecordKey>, _>>()
            });
            let mut keys = Vec::with_capacity(rows.records.len());
            for result in results {
                keys.extend(result.map_err(|(i, problem)| {
                    bad_record(self.raw, &rows, i, rows.row_numbers[i], problem)
                })?);
            }
            let ids: Vec<Option<&str>> = keys.iter().map(|k| k.id.as_deref()).collect();
            for (i, id) in id_keys(&ids).into_iter().enumerate() {
                let Some(id) = id else { continue };
                let page = rows
                    .pages
                    .is_valid(i)
                    .then(|| page_order(rows.pages.value(i)));
                let ordinal = self.ordinal_of(&rows, i)?;
                chooser.offer(id, keys[i].last_updated.as_deref(), page, ordinal);
            }
        }
        let fields = collectors
            .into_iter()
            .flat_map(FieldCollector::into_fields)
            .collect();
        Ok((fields, chooser.finish()))
    }

    /// The ordinal of row `i` of `rows` (see [`RawRows::first_ordinal`]), which must fit in 32
    /// bits to keep the per-id memory small.
    fn ordinal_of(&self, rows: &RawRows, i: usize) -> Result<u32> {
        u32::try_from(rows.first_ordinal + i as u64).map_err(|_| ParseError::TooManyRecords {
            partition: self.raw.describe(),
        })
    }

    /// Pass 2: explodes every kept row into `schema`'s columns, checking and writing each batch
    /// as soon as it is made.
    ///
    /// Every record is exploded, so every record is checked, but only the rows `selection`
    /// keeps are written (one per id).
    pub(crate) async fn explode_into(
        &mut self,
        fields: &BTreeSet<String>,
        selection: &mut Selection,
        output: &mut Output,
    ) -> Result<()> {
        let schema = output.schema().clone();
        self.rewind();
        let mut exploders: Vec<Exploder> = (0..threads())
            .map(|_| Exploder::new(fields.iter().cloned()))
            .collect();
        while let Some(rows) = self.next().await? {
            let keep = (0..rows.records.len())
                .map(|i| Ok(selection.keep(self.ordinal_of(&rows, i)?, rows.records.value(i))))
                .collect::<Result<Vec<bool>>>()?;
            // Each share of the batch's rows is exploded on its own thread, then written in
            // row order.
            let shares = exploders
                .iter_mut()
                .zip(row_shares(rows.records.len(), threads()));
            let results = on_threads(shares.collect(), |(exploder, range)| {
                for i in range.clone() {
                    exploder
                        .push(rows.records.value(i))
                        .map_err(|problem| (i, problem))?;
                }
                Ok((range, exploder.finish()))
            });
            for result in results {
                let (range, mut columns) = result.map_err(|(i, problem)| {
                    bad_record(self.raw, &rows, i, rows.row_numbers[i], problem)
                })?;
                columns.extend(
                    rows.bookkeeping
                        .iter()
                        .map(|c| c.slice(range.start, range.len())),
                );
                let arrow_error = arrow_error(self.raw);
                let mut batch =
                    RecordBatch::try_new(schema.clone(), columns).map_err(arrow_error)?;
                let kept = &keep[range];
                if kept.contains(&false) {
                    let mask = BooleanArray::from(kept.to_vec());
                    batch = filter_record_batch(&batch, &mask).map_err(arrow_error)?;
                }
                output.write(&batch).await?;
            }
        }
        Ok(())
    }

    /// The rows of `batch` with status `"200"` and a record, with their columns in the types the
    /// parsed layer writes.
    fn select_rows(&mut self, batch: &RecordBatch, file: usize) -> Result<RawRows> {
        let file = self.input.source().uri(file);
        let column = |name: &str, expected: &DataType| -> Result<ArrayRef> {
            let found = batch
                .column_by_name(name)
                .ok_or_else(|| ParseError::MissingColumn {
                    partition: self.raw.describe(),
                    file: file.clone(),
                    column: name.to_owned(),
                })?;
            if found.data_type() == expected {
                return Ok(found.clone());
            }
            cast(found, expected).map_err(|source| ParseError::ColumnType {
                partition: self.raw.describe(),
                file: file.clone(),
                column: name.to_owned(),
                expected: expected.to_string(),
                source: Box::new(source),
            })
        };
        let arrow_error = arrow_error(self.raw);
        let records = column(self.raw.table.as_str(), &DataType::Utf8)?;
        let bookkeeping = BOOKKEEPING
            .iter()
            .map(|(name, t)| column(name, &t.data_type()))
            .collect::<Result<Vec<_>>>()?;
        let status_index = BOOKKEEPING
            .iter()
            .position(|(name, _)| *name == STATUS)
            .unwrap_or_default();
        let ok = eq(
            &bookkeeping[status_index],
            &StringArray::new_scalar(OK_STATUS),
        )
        .map_err(arrow_error)?;
        let keep = and(&ok, &is_not_null(&records).map_err(arrow_error)?).map_err(arrow_error)?;
        self.skipped += (ok.true_count() - keep.true_count()) as u64;
        let records = filter(&records, &keep).map_err(arrow_error)?;
        let bookkeeping = bookkeeping
            .iter()
            .map(|c| filter(c, &keep))
            .collect::<Result<Vec<_>, _>>()
            .map_err(arrow_error)?;
        let page_index = BOOKKEEPING
            .iter()
            .position(|(name, _)| *name == PAGE_NUMBER)
            .unwrap_or_default();
        let pages = bookkeeping[page_index].as_primitive::<Int64Type>().clone();
        let row_numbers = (0..pages.len())
            .map(|i| {
                let count = self
                    .page_rows
                    .entry(pages.is_valid(i).then(|| pages.value(i)))
                    .or_default();
                *count += 1;
                *count
            })
            .collect();
        let first_ordinal = self.ordinal;
        self.ordinal += pages.len() as u64;
        Ok(RawRows {
            records: records.as_string::<i32>().clone(),
            pages,
            row_numbers,
            first_ordinal,
            bookkeeping,
        })
    }
}

/// A page number as [`crate::versions`] orders it (32 bits per id, to keep that memory small):
/// the number itself, as every page number Tascomi has is; one beyond 32 bits is clamped, which
/// keeps the order of pages against every page within 32 bits.
fn page_order(page: i64) -> i32 {
    i32::try_from(page.clamp(i64::from(i32::MIN) + 1, i64::from(i32::MAX))).unwrap_or(i32::MAX)
}

/// `rows` rows cut into at most `shares` contiguous ranges of similar size, in order.
fn row_shares(rows: usize, shares: usize) -> Vec<std::ops::Range<usize>> {
    let size = rows.div_ceil(shares.max(1)).max(1);
    (0..rows)
        .step_by(size)
        .map(|start| start..(start + size).min(rows))
        .collect()
}

fn bad_record(
    raw: &PartitionRef,
    rows: &RawRows,
    index: usize,
    row: u64,
    problem: RecordError,
) -> ParseError {
    let page = if rows.pages.is_valid(index) {
        rows.pages.value(index).to_string()
    } else {
        "(none)".to_owned()
    };
    ParseError::BadRecord {
        partition: raw.describe(),
        page,
        row,
        problem,
    }
}

/// What an Arrow kernel's error becomes: it names the raw partition.
fn arrow_error(raw: &PartitionRef) -> impl Fn(ArrowError) -> ParseError + Copy + '_ {
    move |source| {
        TransformError::Arrow {
            partition: raw.describe(),
            source,
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_shares_cover_every_row_once_in_order() {
        assert_eq!(row_shares(10, 2), vec![0..5, 5..10]);
        assert_eq!(row_shares(5, 2), vec![0..3, 3..5]);
        assert_eq!(row_shares(1, 4), vec![0..1]);
        assert!(row_shares(0, 2).is_empty());
        assert_eq!(row_shares(7, 0), vec![0..7]);
    }

    #[test]
    fn page_numbers_keep_their_order_in_32_bits() {
        assert_eq!(page_order(3), 3);
        assert_eq!(page_order(i64::from(i32::MAX)), i32::MAX);
        assert_eq!(page_order(i64::MAX), i32::MAX);
        // `i32::MIN` stands for "no page number" in the chooser: never a page's.
        assert_eq!(page_order(i64::MIN), i32::MIN + 1);
    }
}
