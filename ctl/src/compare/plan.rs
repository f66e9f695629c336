//! How one column is compared when the two sides typed it, or encoded it, differently.
//!
//! Values are compared after casting both sides to one type:
//!
//! | left and right | relation | compared as |
//! | --- | --- | --- |
//! | the same Arrow type | same | that type |
//! | timestamps of other units or zones (Spark's INT96, read as nanoseconds, against our INT64 microseconds) | encoding | the instants, at the coarser unit |
//! | Date32 and Date64; Utf8, LargeUtf8 and Utf8View; the binary types | encoding | Date32; Utf8; Binary |
//! | integers of other widths (`int` and `bigint`) | width | Int64 |
//! | floats of other widths (`float` and `double`) | width | the narrower float: a `double` 533456.78 equals the `float` 533456.78 |
//! | an integer and a float | width | Float64 |
//! | text and any type text casts to | changed | the typed side's type: the text is parsed (`"200"` equals `200`); a text that does not parse differs |
//! | anything else | changed | text, when both cast to text; else the values are not compared |
//!
//! An encoding difference is what Athena does not see (both are `timestamp`) and is not a
//! difference; a width or changed type is one (width only with `--ignore-widening` off).

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::error::ArrowError;
use serde::Serialize;

/// One side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
}

/// How the two sides' types of one column relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// The same Arrow type.
    Same,
    /// The same type to Athena, written otherwise (timestamp units, text or date encodings):
    /// not a difference.
    Encoding,
    /// Numbers of other widths or kinds (`int`/`bigint`, `float`/`double`, `int`/`double`).
    Width,
    /// Any other change of type (text and a number, a date and a timestamp, ...).
    Changed,
}

impl Relation {
    /// Whether this relation is a difference of the snapshots (`ignore_widening`: a width
    /// difference is not).
    pub fn counts(self, ignore_widening: bool) -> bool {
        match self {
            Relation::Same | Relation::Encoding => false,
            Relation::Width => !ignore_widening,
            Relation::Changed => true,
        }
    }
}

/// How one column is compared: the casts each side goes through (in order; both end on the
/// same type), or none when there is no common type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPlan {
    pub relation: Relation,
    left: Vec<DataType>,
    right: Vec<DataType>,
    /// The side whose text is parsed as the other side's type: a value that does not parse
    /// differs from whatever the other side holds.
    parsed: Option<Side>,
    /// The type both sides are compared as; `None`: not compared.
    pub compared_as: Option<DataType>,
    /// Timestamps compared as their instants (numbers) at this unit.
    instants: Option<TimeUnit>,
}

/// `Int32 (int)`: the Arrow type, with Athena's name when it has one.
pub fn type_name(data_type: &DataType) -> String {
    match common::catalog::hive_type(data_type) {
        Some(hive) => format!("{data_type} ({hive})"),
        None => data_type.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float(u8),
    Timestamp(TimeUnit),
    Date,
    Text,
    Binary,
    Bool,
    Other,
}

fn kind(data_type: &DataType) -> Kind {
    use DataType::*;
    match data_type {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Kind::Int,
        Float16 => Kind::Float(16),
        Float32 => Kind::Float(32),
        Float64 => Kind::Float(64),
        Timestamp(unit, _) => Kind::Timestamp(*unit),
        Date32 | Date64 => Kind::Date,
        Utf8 | LargeUtf8 | Utf8View => Kind::Text,
        Binary | LargeBinary | BinaryView => Kind::Binary,
        Boolean => Kind::Bool,
        _ => Kind::Other,
    }
}

fn float(bits: u8) -> DataType {
    match bits {
        16 => DataType::Float16,
        32 => DataType::Float32,
        _ => DataType::Float64,
    }
}

/// Seconds are coarser than milliseconds, and so on.
fn coarseness(unit: TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 3,
        TimeUnit::Millisecond => 2,
        TimeUnit::Microsecond => 1,
        TimeUnit::Nanosecond => 0,
    }
}

/// A timestamp's instant at `unit`, as a plain number (its zone dropped: Arrow stores every
/// timestamp as a count from the epoch, so only the unit has to agree).
fn instant(data_type: &DataType, unit: TimeUnit) -> Vec<DataType> {
    let zone = match data_type {
        DataType::Timestamp(_, zone) => zone.clone(),
        _ => None,
    };
    vec![DataType::Timestamp(unit, zone), DataType::Int64]
}

impl ColumnPlan {
    fn new(relation: Relation, left: Vec<DataType>, right: Vec<DataType>, to: DataType) -> Self {
        Self {
            relation,
            left,
            right,
            parsed: None,
            compared_as: Some(to),
            instants: None,
        }
    }

    /// What the values are compared as, for people: `Int64 (bigint)`, or `instants at
    /// Timestamp(µs)` for timestamps; `None`: not compared.
    pub fn describe_compared(&self) -> Option<String> {
        match (self.instants, &self.compared_as) {
            (Some(unit), Some(_)) => {
                Some(format!("instants at {}", DataType::Timestamp(unit, None)))
            }
            (None, to) => to.as_ref().map(type_name),
            (Some(_), None) => None,
        }
    }

    /// How a column typed `left` on one side and `right` on the other is compared.
    pub fn of(left: &DataType, right: &DataType) -> Self {
        if left == right {
            return Self::new(Relation::Same, vec![], vec![], left.clone());
        }
        let both =
            |relation, to: DataType| Self::new(relation, vec![to.clone()], vec![to.clone()], to);
        match (kind(left), kind(right)) {
            (Kind::Int, Kind::Int) => both(Relation::Width, DataType::Int64),
            (Kind::Float(a), Kind::Float(b)) => both(Relation::Width, float(a.min(b))),
            (Kind::Int, Kind::Float(_)) | (Kind::Float(_), Kind::Int) => {
                both(Relation::Width, DataType::Float64)
            }
            (Kind::Timestamp(a), Kind::Timestamp(b)) => {
                let unit = if coarseness(a) >= coarseness(b) { a } else { b };
                Self {
                    instants: Some(unit),
                    ..Self::new(
                        Relation::Encoding,
                        instant(left, unit),
                        instant(right, unit),
                        DataType::Int64,
                    )
                }
            }
            (Kind::Date, Kind::Date) => both(Relation::Encoding, DataType::Date32),
            (Kind::Text, Kind::Text) => both(Relation::Encoding, DataType::Utf8),
            (Kind::Binary, Kind::Binary) => both(Relation::Encoding, DataType::Binary),
            (Kind::Text, typed)
                if typed != Kind::Other && can_cast_types(&DataType::Utf8, right) =>
            {
                Self::parsed(Side::Left, right)
            }
            (typed, Kind::Text)
                if typed != Kind::Other && can_cast_types(&DataType::Utf8, left) =>
            {
                Self::parsed(Side::Right, left)
            }
            _ if can_cast_types(left, &DataType::Utf8)
                && can_cast_types(right, &DataType::Utf8) =>
            {
                both(Relation::Changed, DataType::Utf8)
            }
            _ => Self {
                relation: Relation::Changed,
                left: vec![],
                right: vec![],
                parsed: None,
                compared_as: None,
                instants: None,
            },
        }
    }

    /// Text on `side`, parsed as `typed`, the other side's type (which stays as it is).
    fn parsed(side: Side, typed: &DataType) -> Self {
        let text = vec![DataType::Utf8, typed.clone()];
        let (left, right) = match side {
            Side::Left => (text, vec![]),
            Side::Right => (vec![], text),
        };
        Self {
            parsed: Some(side),
            ..Self::new(Relation::Changed, left, right, typed.clone())
        }
    }

    /// `array`, a column of `side`, cast to the type both sides are compared as, and where a
    /// value was lost on the way (a text that does not parse), if anywhere.
    pub fn prepare(
        &self,
        side: Side,
        array: &ArrayRef,
    ) -> Result<(ArrayRef, Option<BooleanArray>), ArrowError> {
        let steps = match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        };
        let options = CastOptions::default();
        let mut out = array.clone();
        for to in steps {
            if out.data_type() != to {
                out = cast_with_options(&out, to, &options)?;
            }
        }
        if self.parsed != Some(side) || out.null_count() == array.null_count() {
            return Ok((out, None));
        }
        let lost: BooleanArray = (0..array.len())
            .map(|i| Some(array.is_valid(i) && out.is_null(i)))
            .collect();
        Ok((out, Some(lost)))
    }
}
