//! A first snapshot streamed from an increment that arrives in id order, or nearly: two passes
//! over the increment, neither holding it.
//!
//! - Pass 1, [`InOrderWinners`], reads only the ids and `last_updated` and says which rows win
//!   and in which order they are written: ascending id.
//! - Pass 2, [`Reorder`], reads the rows again and hands them out in that order.
//!
//! "Nearly" is what the Tascomi API gives: it pages with offsets over a live table, so a full
//! load in id order holds a few records out of place (a record served again at the start of the
//! next page; parse keeps the later copy, so the kept row sits a page after its id's place).
//! Pass 1 keeps the last `window` distinct ids it read, sorted, with their best version: a row
//! whose id falls inside the window is compared or inserted there, and only ids that leave the
//! window are final. A row whose id is below every id still in the window cannot be placed with
//! certainty, so the stream is declared out of order and the caller holds the increment instead
//! (`Preparer`). The rule for which version wins is [`crate::winner`]'s, the same as when held.
//!
//! Memory: pass 1 holds `window` ids with their versions, and 8 bytes per winning row; pass 2
//! holds the batches read whose rows are not yet written: one batch when the increment is in
//! order, a few more for rows out of place (bounded by the window).

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::row::OwnedRow;
use chrono::NaiveDate;

use crate::winner::{HeldVersion, KeyEncoder, WinnerRule};

/// How many distinct ids a row of a streamed increment may be out of place by: well over a
/// page of the Tascomi API, the distance a record served again moves. Pass 1 holds this many
/// ids; pass 2 holds at most the rows between a row's place and where it was read.
pub const WINDOW_IDS: usize = 16_384;

/// An id in the window: its key, its best version so far and that version's row number.
#[derive(Debug)]
struct Held {
    key: OwnedRow,
    version: HeldVersion,
    at: u64,
}

/// Pass 1: the winning rows of an increment read in id order, or with rows out of place by
/// less than `window` distinct ids.
#[derive(Debug)]
pub struct InOrderWinners {
    rule: WinnerRule,
    window: usize,
    /// The last ids read, ascending, at most `window` of them.
    recent: VecDeque<Held>,
    /// The largest id that left the window: every id up to it is final.
    settled: Option<OwnedRow>,
    /// Rows added so far.
    rows: u64,
    /// The winners' row numbers, in id order.
    winners: Vec<u64>,
    null_ids: u64,
}

impl InOrderWinners {
    /// `schema` is the schema of the batches to add; `ids` encodes its id column. `window` is
    /// at least 1: how many distinct ids a row may be out of place by.
    pub fn new(
        schema: &SchemaRef,
        id_column: &str,
        last_updated_column: &str,
        ids: Arc<KeyEncoder>,
        window: usize,
    ) -> Result<Self, ArrowError> {
        Ok(Self {
            rule: WinnerRule::new(schema, id_column, last_updated_column, ids)?,
            window: window.max(1),
            recent: VecDeque::new(),
            settled: None,
            rows: 0,
            winners: Vec::new(),
            null_ids: 0,
        })
    }

    /// Adds the next batch read. `Ok(false)` as soon as a row's id is at or below an id that
    /// already left the window: the increment is not in id order (stop, and hold it with a
    /// `Preparer` instead).
    pub fn add(&mut self, batch: &RecordBatch, import_date: NaiveDate) -> Result<bool, ArrowError> {
        let keys = self.rule.keys(batch)?;
        for row in 0..batch.num_rows() {
            let at = self.rows;
            self.rows += 1;
            let Some(key) = keys.id(row) else {
                self.null_ids += 1;
                continue;
            };
            if self.settled.as_ref().is_some_and(|s| key <= s.row()) {
                return Ok(false);
            }
            let version = keys.version(row, import_date);
            // Usually the id is above every id in the window: a push at the back.
            let place = match self.recent.back() {
                Some(last) if key <= last.key.row() => {
                    self.recent.partition_point(|held| held.key.row() < key)
                }
                _ => self.recent.len(),
            };
            match self.recent.get_mut(place) {
                Some(held) if held.key.row() == key => {
                    if version.replaces(&held.version.version()) {
                        held.version = version.owned();
                        held.at = at;
                    }
                }
                _ => {
                    let held = Held {
                        key: key.owned(),
                        version: version.owned(),
                        at,
                    };
                    self.recent.insert(place, held);
                    if self.recent.len() > self.window {
                        self.settle_first();
                    }
                }
            }
        }
        Ok(true)
    }

    fn settle_first(&mut self) {
        if let Some(held) = self.recent.pop_front() {
            self.winners.push(held.at);
            self.settled = Some(held.key);
        }
    }

    /// The winners' row numbers (counting every row added, from 0) in id order, and how many
    /// rows had no id.
    pub fn finish(mut self) -> (Vec<u64>, u64) {
        while !self.recent.is_empty() {
            self.settle_first();
        }
        (self.winners, self.null_ids)
    }
}

/// Pass 2: hands out the rows of a stream read again, in the order pass 1 found (`order`: row
/// numbers counting from 0, each at most once). Holds each batch read until its last row in
/// `order` is handed out.
#[derive(Debug)]
pub struct Reorder {
    order: Vec<u64>,
    /// For every row read, whether it is in `order` (dropped rows are never waited for).
    wanted: Vec<bool>,
    next: usize,
    /// Batches read and still needed: (first row number, batch, rows of it not yet handed out).
    held: VecDeque<(u64, RecordBatch, usize)>,
    /// Rows read so far.
    read: u64,
    batch_rows: usize,
}

impl Reorder {
    /// `batch_rows` (at least 1) bounds the rows of each batch handed out.
    pub fn new(order: Vec<u64>, batch_rows: usize) -> Self {
        let rows = order.iter().max().map_or(0, |last| *last as usize + 1);
        let mut wanted = vec![false; rows];
        for &row in &order {
            wanted[row as usize] = true;
        }
        Self {
            order,
            wanted,
            next: 0,
            held: VecDeque::new(),
            read: 0,
            batch_rows: batch_rows.max(1),
        }
    }

    /// Whether every row of `order` has been handed out.
    pub fn is_done(&self) -> bool {
        self.next == self.order.len()
    }

    /// Takes the next batch read (the rows that follow the previous one).
    pub fn push(&mut self, batch: RecordBatch) {
        let start = self.read;
        self.read += batch.num_rows() as u64;
        let end = (self.read as usize).min(self.wanted.len());
        let needed = self
            .wanted
            .get(start as usize..end)
            .map_or(0, |rows| rows.iter().filter(|w| **w).count());
        if needed > 0 {
            self.held.push_back((start, batch, needed));
        }
    }

    /// The next rows in order that have been read, at most `batch_rows`; `None` when the next
    /// row is not read yet (push more) or every row is handed out.
    pub fn pop(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        let mut picks = Vec::new();
        while self.next < self.order.len() && picks.len() < self.batch_rows {
            let row = self.order[self.next];
            if row >= self.read {
                break;
            }
            let slot = self.held.partition_point(|(start, _, _)| *start <= row) - 1;
            let (start, _, left) = &mut self.held[slot];
            picks.push((slot, (row - *start) as usize));
            *left -= 1;
            self.next += 1;
        }
        if picks.is_empty() {
            return Ok(None);
        }
        let sources: Vec<&RecordBatch> = self.held.iter().map(|(_, batch, _)| batch).collect();
        let rows = interleave_record_batch(&sources, &picks)?;
        // A batch is released once all its wanted rows are out, and slots must stay valid
        // above, so only now.
        self.held.retain(|(_, _, left)| *left > 0);
        Ok(Some(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rows::{dated_batch as batch, dated_schema as schema};
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Int32Type};

    fn winners(batches: &[RecordBatch], window: usize) -> Option<(Vec<u64>, u64)> {
        let ids = Arc::new(KeyEncoder::new(&DataType::Int32).unwrap());
        let mut w = InOrderWinners::new(&schema(), "id", "last_updated", ids, window).unwrap();
        for b in batches {
            if !w.add(b, crate::test_rows::day(20)).unwrap() {
                return None;
            }
        }
        Some(w.finish())
    }

    /// Every row handed out by a `Reorder` over `batches`, as (id, value).
    fn reordered(
        batches: &[RecordBatch],
        order: Vec<u64>,
        batch_rows: usize,
    ) -> Vec<(i32, String)> {
        let mut reorder = Reorder::new(order, batch_rows);
        let mut out = Vec::new();
        let mut input = batches.iter();
        while !reorder.is_done() {
            match reorder.pop().unwrap() {
                Some(rows) => {
                    assert!(rows.num_rows() <= batch_rows);
                    let ids = rows.column(0).as_primitive::<Int32Type>();
                    let values = rows.column(2).as_string::<i32>();
                    out.extend(
                        (0..rows.num_rows()).map(|i| (ids.value(i), values.value(i).to_owned())),
                    );
                }
                None => reorder.push(input.next().expect("rows to wait for").clone()),
            }
        }
        out
    }

    #[test]
    fn in_order_rows_follow_the_winner_rule() {
        let newer = Some("2026-11-20 10:00:00");
        let older = Some("2026-11-19 10:00:00");
        let batches = [
            batch(&[(Some(1), None, "a"), (Some(2), newer, "b newer")]),
            batch(&[
                (None, None, "no id"),
                (Some(2), older, "b older"),
                (Some(3), None, "c"),
                (Some(3), None, "c again"),
            ]),
        ];
        // Id 2: the newer row (1) beats the older (3); id 3: a full tie, the later row (5).
        for window in [1, 2, 100] {
            assert_eq!(
                winners(&batches, window),
                Some((vec![0, 1, 5], 1)),
                "window {window}"
            );
        }
    }

    #[test]
    fn a_row_out_of_place_within_the_window_is_put_in_its_place() {
        // Id 1 served again at the start of the next page, and id 4 first seen late: each in
        // its place by id, the later copy of id 1 winning the tie.
        let batches = [
            batch(&[
                (Some(1), None, "a"),
                (Some(2), None, "b"),
                (Some(3), None, "c"),
            ]),
            batch(&[
                (Some(1), None, "a again"),
                (Some(5), None, "e"),
                (Some(4), None, "d"),
            ]),
        ];
        let (order, nulls) = winners(&batches, 4).unwrap();
        assert_eq!((order.clone(), nulls), (vec![3, 1, 2, 5, 4], 0));
        assert_eq!(
            reordered(&batches, order, 2),
            [(1, "a again"), (2, "b"), (3, "c"), (4, "d"), (5, "e")]
                .map(|(id, v)| (id, v.to_owned()))
        );
    }

    #[test]
    fn a_row_further_out_of_place_than_the_window_stops_the_stream() {
        let batches = [batch(&[
            (Some(1), None, "a"),
            (Some(2), None, "b"),
            (Some(3), None, "c"),
            (Some(1), None, "a again"),
        ])];
        assert_eq!(winners(&batches, 2), None, "id 1 has left a window of 2");
        assert!(winners(&batches, 3).is_some());
        let late = [batch(&[(Some(2), None, "b"), (Some(1), None, "a")])];
        assert_eq!(
            winners(&late, 1),
            Some((vec![1, 0], 0)),
            "2 is still in the window"
        );
        let later = [batch(&[
            (Some(2), None, "b"),
            (Some(3), None, "c"),
            (Some(1), None, "a"),
        ])];
        assert_eq!(winners(&later, 1), None);
    }

    #[test]
    fn reorder_hands_out_rows_in_order_and_releases_batches() {
        let batches: Vec<RecordBatch> = (0..4)
            .map(|b| {
                batch(
                    &(0..3)
                        .map(|r| (Some(b * 3 + r), None, "x"))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        // Row 0 is wanted last: its batch is held to the end; rows 4 and 7 are dropped.
        let order = vec![1, 2, 3, 5, 6, 8, 9, 10, 11, 0];
        let got: Vec<i32> = reordered(&batches, order, 4)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(got, [1, 2, 3, 5, 6, 8, 9, 10, 11, 0]);

        // In order, each batch is released as soon as it is handed out.
        let mut reorder = Reorder::new((0..12).collect(), 3);
        for b in &batches {
            reorder.push(b.clone());
            assert_eq!(reorder.pop().unwrap().unwrap().num_rows(), 3);
            assert!(reorder.held.is_empty());
        }
        assert!(reorder.is_done());
    }
}
