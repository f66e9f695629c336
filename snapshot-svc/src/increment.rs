//! Preparing the increments: one row per id, the latest version, sorted by id.
//!
//! Which version of an id wins is [`crate::winner`]'s rule; this module applies it two ways:
//! - [`Preparer`] holds the increments and picks the winners in any order (a merge onto a base
//!   snapshot, or increments not in id order): memory grows with the increment, its rows
//!   (conformed batches) plus, per id, its key and the winner's position. The previous snapshot
//!   is never held here.
//! - [`crate::streamed::InOrderWinners`] finds the winners of an increment read in id order,
//!   or nearly, without holding it (a first snapshot, streamed).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::row::OwnedRow;
use chrono::NaiveDate;

use crate::winner::{HeldVersion, KeyEncoder, WinnerRule};

/// Where the winning version of an id is, and what it is ranked by.
#[derive(Debug)]
struct Candidate {
    version: HeldVersion,
    batch: usize,
    row: usize,
}

/// What preparing the increments found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrepareStats {
    /// Rows read from the increment files.
    pub rows_read: u64,
    /// Distinct ids kept (one row each).
    pub rows_kept: u64,
    /// Rows without an id: they cannot be merged; the data-quality gate counts them.
    pub null_ids: u64,
}

/// Collects conformed increment batches and picks one row per id. Pure: no I/O.
#[derive(Debug)]
pub struct Preparer {
    target: SchemaRef,
    rule: WinnerRule,
    batches: Vec<RecordBatch>,
    best: HashMap<OwnedRow, Candidate>,
    stats: PrepareStats,
}

impl Preparer {
    /// `target` is the snapshot schema every added batch has; `ids` encodes its id column.
    /// Without a `last_updated_column` in `target`, every row counts as undated.
    pub fn new(
        target: SchemaRef,
        id_column: &str,
        last_updated_column: &str,
        ids: Arc<KeyEncoder>,
    ) -> Result<Self, ArrowError> {
        let rule = WinnerRule::new(&target, id_column, last_updated_column, ids)?;
        Ok(Self {
            target,
            rule,
            batches: Vec::new(),
            best: HashMap::new(),
            stats: PrepareStats::default(),
        })
    }

    /// Adds a batch (of the target schema) of the increment imported on `import_date`.
    /// Batches must be added in read order: on a full tie the later one wins.
    pub fn add(&mut self, batch: RecordBatch, import_date: NaiveDate) -> Result<(), ArrowError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if batch.schema() != self.target {
            return Err(ArrowError::SchemaError(
                "increment batch does not have the snapshot schema".into(),
            ));
        }
        self.stats.rows_read += batch.num_rows() as u64;
        let batch_index = self.batches.len();
        {
            let keys = self.rule.keys(&batch)?;
            for row in 0..batch.num_rows() {
                let Some(id) = keys.id(row) else {
                    self.stats.null_ids += 1;
                    continue;
                };
                let version = keys.version(row, import_date);
                let candidate = || Candidate {
                    version: version.owned(),
                    batch: batch_index,
                    row,
                };
                match self.best.entry(id.owned()) {
                    Entry::Vacant(slot) => {
                        slot.insert(candidate());
                    }
                    Entry::Occupied(mut slot) => {
                        // Read later than the held row: it wins unless the held one is newer.
                        if version.replaces(&slot.get().version.version()) {
                            slot.insert(candidate());
                        }
                    }
                }
            }
        }
        self.batches.push(batch);
        Ok(())
    }

    /// The winning rows sorted by id, in batches of at most `chunk_rows` rows.
    ///
    /// Memory: a chunk whose rows are consecutive in one batch read is a slice of it (no copy),
    /// and each batch read is released once the last chunk reading it is made, so an increment
    /// that arrives in id order (a full load, typically) is not held twice.
    pub fn finish(self, chunk_rows: usize) -> Result<PreparedIncrement, ArrowError> {
        let mut winners: Vec<(OwnedRow, (usize, usize))> = self
            .best
            .into_iter()
            .map(|(key, c)| (key, (c.batch, c.row)))
            .collect();
        winners.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let chunk_rows = chunk_rows.max(1);
        let mut last_use: Vec<Option<usize>> = vec![None; self.batches.len()];
        for (number, chunk) in winners.chunks(chunk_rows).enumerate() {
            for (_, (batch, _)) in chunk {
                last_use[*batch] = Some(number);
            }
        }
        let mut sources: Vec<Option<RecordBatch>> = self
            .batches
            .into_iter()
            .zip(&last_use)
            .map(|(batch, used)| used.map(|_| batch))
            .collect();
        let mut chunks = Vec::with_capacity(winners.len().div_ceil(chunk_rows));
        for (number, chunk) in winners.chunks(chunk_rows).enumerate() {
            let at: Vec<(usize, usize)> = chunk.iter().map(|(_, at)| *at).collect();
            chunks.push(gather(&sources, &at)?);
            for &(batch, _) in &at {
                if last_use[batch] == Some(number) {
                    sources[batch] = None;
                }
            }
        }
        let keys: Vec<OwnedRow> = winners.into_iter().map(|(key, _)| key).collect();
        let mut stats = self.stats;
        stats.rows_kept = keys.len() as u64;
        Ok(PreparedIncrement {
            schema: self.target,
            chunks,
            chunk_rows,
            keys,
            stats,
        })
    }
}

/// The rows at `at` ((batch, row) pairs into `sources`, all present) as one batch: a slice
/// when they are consecutive rows of one batch, else a copy.
fn gather(
    sources: &[Option<RecordBatch>],
    at: &[(usize, usize)],
) -> Result<RecordBatch, ArrowError> {
    let missing =
        || ArrowError::InvalidArgumentError("an increment batch was released too early".into());
    let (first_batch, first_row) = at[0];
    let consecutive = at
        .iter()
        .enumerate()
        .all(|(i, &(batch, row))| batch == first_batch && row == first_row + i);
    if consecutive {
        let source = sources[first_batch].as_ref().ok_or_else(missing)?;
        return Ok(source.slice(first_row, at.len()));
    }
    let mut used: Vec<usize> = at.iter().map(|(batch, _)| *batch).collect();
    used.sort_unstable();
    used.dedup();
    let refs = used
        .iter()
        .map(|&b| sources[b].as_ref().ok_or_else(missing))
        .collect::<Result<Vec<_>, _>>()?;
    let indices: Vec<(usize, usize)> = at
        .iter()
        .map(|&(batch, row)| (used.binary_search(&batch).unwrap_or_default(), row))
        .collect();
    interleave_record_batch(&refs, &indices)
}

/// The increment ready to merge: one row per id, sorted by id.
#[derive(Debug)]
pub struct PreparedIncrement {
    pub schema: SchemaRef,
    chunks: Vec<RecordBatch>,
    chunk_rows: usize,
    keys: Vec<OwnedRow>,
    pub stats: PrepareStats,
}

impl PreparedIncrement {
    /// An increment without rows (a quiet day).
    pub fn empty(schema: SchemaRef) -> Self {
        Self {
            schema,
            chunks: Vec::new(),
            chunk_rows: 1,
            keys: Vec::new(),
            stats: PrepareStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The sorted id keys, one per row.
    pub fn keys(&self) -> &[OwnedRow] {
        &self.keys
    }

    /// The number of rows whose id sorts below `bound`.
    pub fn rows_below(&self, bound: &OwnedRow) -> usize {
        self.keys.partition_point(|k| k < bound)
    }

    /// True when some id lies in `min..=max`.
    pub fn any_within(&self, min: &OwnedRow, max: &OwnedRow) -> bool {
        let first = self.rows_below(min);
        first < self.keys.len() && self.keys[first] <= *max
    }

    /// The number of rows whose id sorts at or below `bound`.
    pub fn rows_through(&self, bound: &OwnedRow) -> usize {
        self.keys.partition_point(|k| k <= bound)
    }

    /// True when the increment holds this id.
    pub fn contains(&self, key: arrow::row::Row<'_>) -> bool {
        self.keys.binary_search_by(|k| k.row().cmp(&key)).is_ok()
    }

    /// [`Self::contains`], looking first at row `near` and the one before it: a merge that
    /// walks the base and the increment in id order finds the answer there, without a search.
    pub fn contains_near(&self, key: arrow::row::Row<'_>, near: usize) -> bool {
        let near = near.min(self.keys.len());
        let at = self.keys.get(near).map(|k| k.row().cmp(&key));
        let below = near.checked_sub(1).map(|i| self.keys[i].row() < key);
        match (at, below) {
            (Some(std::cmp::Ordering::Equal), _) => true,
            (Some(std::cmp::Ordering::Greater) | None, Some(true) | None) => false,
            _ => self.contains(key),
        }
    }

    /// The row holding this id, if one of the rows `within` holds it.
    pub fn index_within(
        &self,
        key: arrow::row::Row<'_>,
        within: std::ops::Range<usize>,
    ) -> Option<usize> {
        let start = within.start;
        self.keys[within]
            .binary_search_by(|k| k.row().cmp(&key))
            .ok()
            .map(|at| start + at)
    }

    /// A batch of the snapshot's schema from `picks`, in order: `(false, row)` is a row of
    /// `batch`, `(true, index)` a row of the increment. Passes only the chunks the picks touch.
    pub fn interleave(
        &self,
        batch: Option<&RecordBatch>,
        picks: impl IntoIterator<Item = (bool, usize)>,
    ) -> Result<RecordBatch, ArrowError> {
        let mut sources: Vec<&RecordBatch> = batch.into_iter().collect();
        // Increment chunk number -> its index in `sources`.
        let mut slots: Vec<(usize, usize)> = Vec::new();
        let mut indices = Vec::new();
        for (from_increment, row) in picks {
            if !from_increment {
                indices.push((0, row));
                continue;
            }
            let (chunk, offset) = self.position(row);
            let slot = match slots.iter().find(|(c, _)| *c == chunk) {
                Some((_, slot)) => *slot,
                None => {
                    sources.push(&self.chunks[chunk]);
                    slots.push((chunk, sources.len() - 1));
                    sources.len() - 1
                }
            };
            indices.push((slot, offset));
        }
        interleave_record_batch(&sources, &indices)
    }

    /// The number of the chunk holding row `index`, and the row's offset in it.
    pub fn position(&self, index: usize) -> (usize, usize) {
        (index / self.chunk_rows, index % self.chunk_rows)
    }

    /// One chunk of rows (see [`Self::position`]).
    pub fn chunk(&self, number: usize) -> &RecordBatch {
        &self.chunks[number]
    }

    /// The batch holding row `index` and the row's offset in it.
    pub fn locate(&self, index: usize) -> (&RecordBatch, usize) {
        let (chunk, offset) = self.position(index);
        (&self.chunks[chunk], offset)
    }

    /// Rows `range` as batches (slices of the chunks, no copy).
    pub fn slices(&self, range: std::ops::Range<usize>) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        let mut at = range.start;
        while at < range.end {
            let (chunk, offset) = self.locate(at);
            let take = (chunk.num_rows() - offset).min(range.end - at);
            out.push(chunk.slice(offset, take));
            at += take;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rows::{dated_batch as batch, dated_schema as schema, day};
    use arrow::array::{ArrayRef, AsArray, Int32Array};
    use arrow::datatypes::{DataType, Int32Type};

    fn prepare(batches: Vec<(RecordBatch, NaiveDate)>, chunk_rows: usize) -> PreparedIncrement {
        let ids = Arc::new(KeyEncoder::new(&DataType::Int32).unwrap());
        let mut preparer = Preparer::new(schema(), "id", "last_updated", ids).unwrap();
        for (b, d) in batches {
            preparer.add(b, d).unwrap();
        }
        preparer.finish(chunk_rows).unwrap()
    }

    fn rows(p: &PreparedIncrement) -> Vec<(i32, String)> {
        p.slices(0..p.len())
            .iter()
            .flat_map(|b| {
                let ids = b.column(0).as_primitive::<Int32Type>().clone();
                let values = b.column(2).as_string::<i32>().clone();
                (0..b.num_rows())
                    .map(move |i| (ids.value(i), values.value(i).to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn an_increment_in_id_order_is_sliced_not_copied() {
        let first = batch(&[(Some(1), None, "a"), (Some(2), None, "b")]);
        let second = batch(&[(Some(3), None, "c"), (Some(4), None, "d")]);
        let values = |b: &RecordBatch| b.column(2).as_string::<i32>().values().as_ptr();
        let read = [values(&first), values(&second)];
        let p = prepare(vec![(first, day(20)), (second, day(20))], 2);
        assert_eq!(values(p.chunk(0)), read[0]);
        assert_eq!(values(p.chunk(1)), read[1]);
        // Out of order, a chunk mixing batches is copied, and still right.
        let p = prepare(
            vec![
                (
                    batch(&[(Some(3), None, "c"), (Some(1), None, "a")]),
                    day(20),
                ),
                (batch(&[(Some(2), None, "b")]), day(20)),
            ],
            2,
        );
        assert_eq!(
            rows(&p),
            [(1, "a".into()), (2, "b".into()), (3, "c".into())]
        );
    }

    #[test]
    fn the_latest_last_updated_wins_whatever_the_import_date() {
        let p = prepare(
            vec![
                (
                    batch(&[(Some(1), Some("2026-11-20 10:00:00"), "newer")]),
                    day(20),
                ),
                (
                    batch(&[(Some(1), Some("2026-11-19 10:00:00"), "older")]),
                    day(21),
                ),
            ],
            10,
        );
        assert_eq!(rows(&p), [(1, "newer".to_owned())]);
    }

    #[test]
    fn a_null_last_updated_loses_to_a_dated_row() {
        let p = prepare(
            vec![
                (
                    batch(&[(Some(1), Some("2020-01-01 00:00:00"), "dated")]),
                    day(20),
                ),
                (batch(&[(Some(1), None, "undated")]), day(21)),
            ],
            10,
        );
        assert_eq!(rows(&p), [(1, "dated".to_owned())]);
    }

    #[test]
    fn a_tie_goes_to_the_later_import_then_to_the_row_read_last() {
        let same = Some("2026-11-20 10:00:00");
        let p = prepare(
            vec![
                (batch(&[(Some(1), same, "day 21")]), day(21)),
                (batch(&[(Some(1), same, "day 20")]), day(20)),
                (
                    batch(&[(Some(2), same, "copy"), (Some(2), same, "copy")]),
                    day(20),
                ),
            ],
            10,
        );
        assert_eq!(rows(&p), [(1, "day 21".to_owned()), (2, "copy".to_owned())]);
        assert_eq!(p.stats.rows_read, 4);
        assert_eq!(p.stats.rows_kept, 2);
    }

    #[test]
    fn contains_near_agrees_with_contains_wherever_it_looks() {
        let p = prepare(
            vec![(
                batch(&[
                    (Some(2), None, "b"),
                    (Some(4), None, "d"),
                    (Some(6), None, "f"),
                ]),
                day(1),
            )],
            2,
        );
        let ids: ArrayRef = Arc::new(Int32Array::from((0..8).collect::<Vec<i32>>()));
        let keys = KeyEncoder::new(&DataType::Int32)
            .unwrap()
            .encode(&ids)
            .unwrap();
        for id in 0..8 {
            for near in 0..6 {
                assert_eq!(
                    p.contains_near(keys.row(id), near),
                    p.contains(keys.row(id)),
                    "id {id} near {near}"
                );
            }
        }
    }

    #[test]
    fn rows_come_out_sorted_by_id_in_chunks() {
        let p = prepare(
            vec![
                (
                    batch(&[
                        (Some(5), None, "e"),
                        (Some(1), None, "a"),
                        (None, None, "?"),
                    ]),
                    day(20),
                ),
                (
                    batch(&[
                        (Some(3), None, "c"),
                        (Some(2), None, "b"),
                        (Some(4), None, "d"),
                    ]),
                    day(21),
                ),
            ],
            2,
        );
        let ids: Vec<i32> = rows(&p).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
        assert_eq!(p.stats.null_ids, 1);
        assert_eq!(
            p.slices(1..4).iter().map(|b| b.num_rows()).sum::<usize>(),
            3
        );
        let ids = Arc::new(KeyEncoder::new(&DataType::Int32).unwrap());
        let key = |v: i32| {
            let column: ArrayRef = Arc::new(Int32Array::from(vec![v]));
            ids.encode(&column).unwrap().row(0).owned()
        };
        assert!(p.any_within(&key(2), &key(2)));
        assert!(!p.any_within(&key(6), &key(9)));
        assert_eq!(p.rows_below(&key(3)), 2);
        assert!(p.contains(key(4).row()));
        assert!(!p.contains(key(0).row()));
    }
}
