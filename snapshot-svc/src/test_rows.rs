//! Rows for the unit tests of the merge: (id, value) rows with their increment, and (id,
//! `last_updated`, value) rows for the winner rule.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::OwnedRow;
use chrono::NaiveDate;

use crate::increment::{PreparedIncrement, Preparer};
use crate::winner::KeyEncoder;

/// `id` (int) and `value` (text).
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, true),
        Field::new("value", DataType::Utf8, true),
    ]))
}

/// Rows of [`schema`], one per id, all valued `value`.
pub fn batch(ids: &[i32], value: &str) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int32Array::from(ids.to_vec())),
            Arc::new(StringArray::from_iter_values(ids.iter().map(|_| value))),
        ],
    )
    .unwrap()
}

/// The encoder of int ids.
pub fn ids() -> KeyEncoder {
    KeyEncoder::new(&DataType::Int32).unwrap()
}

/// The key of one int id.
pub fn key(v: i32) -> OwnedRow {
    let column: ArrayRef = Arc::new(Int32Array::from(vec![v]));
    ids().encode(&column).unwrap().row(0).owned()
}

/// An increment of [`schema`] valued `new`, in chunks of 2 rows.
pub fn increment(ids_: &[i32]) -> PreparedIncrement {
    let mut preparer = Preparer::new(schema(), "id", "last_updated", Arc::new(ids())).unwrap();
    preparer.add(batch(ids_, "new"), day(2)).unwrap();
    preparer.finish(2).unwrap()
}

/// 2026-11-`d`.
pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

/// `id`, `last_updated` (text) and `value`.
pub fn dated_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, true),
        Field::new("last_updated", DataType::Utf8, true),
        Field::new("value", DataType::Utf8, true),
    ]))
}

/// Rows of [`dated_schema`]: (id, last_updated, value).
pub fn dated_batch(rows: &[(Option<i32>, Option<&str>, &str)]) -> RecordBatch {
    RecordBatch::try_new(
        dated_schema(),
        vec![
            Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .unwrap()
}
