//! Text to typed values: the cast semantics of the increment layer, one column at a time.
//!
//! Every text value is first trimmed of surrounding whitespace; a value that is then empty is
//! null (an empty field, not a failed cast). What each type then accepts:
//!
//! | type | accepted | Arrow type |
//! | --- | --- | --- |
//! | boolean | `t`/`f`, `true`/`false`, `1`/`0`, `yes`/`no`, in any case | Boolean |
//! | integer, long | an optional sign and decimal digits, within the type's range (`42`, `-7`, `+3`) | Int32, Int64 |
//! | float, double | decimal numbers with an optional exponent (`1.5`, `-0.25`, `.5`, `2e3`), `NaN`, `inf` | Float32, Float64 |
//! | timestamp | `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS`, each with an optional fraction of up to nine digits; a bare `YYYY-MM-DD` (midnight); either time form followed by a zone (`Z`, `+01:00`, `+0100`), converted to London wall-clock | Timestamp(µs), no time zone |
//! | date | `YYYY-MM-DD` (also `YYYYMMDD`, and a timestamp as above, whose date is taken: for a timestamp with a zone, the London date of that instant) | Date32 |
//!
//! Timestamps are London wall-clock times, the reading every stage uses
//! ([`common::layout::parse_london_timestamp`]), stored without a zone; a fraction beyond
//! microseconds is truncated. Tascomi's own text (`2026-07-01 11:00:00`) is stored as it reads,
//! summer or winter. A timestamp with a zone names an instant and is stored as London's
//! wall-clock time at that instant: `2026-07-01T11:00:00Z` is `2026-07-01 12:00:00` (British
//! Summer Time), `2026-12-01T11:00:00Z` is `2026-12-01 11:00:00`; as a date,
//! `2026-07-01T23:30:00Z` is `2026-07-02`. A value that is not plain date-and-time text (it has
//! a zone, a letter other than the `T`, a `+`, or a `-` after the date) and that
//! `parse_london_timestamp` cannot read is a failure, never left to Arrow's parser, which would
//! store such an instant as UTC. Anything else, for example `1,000`, `12.0` for an integer,
//! `0000-00-00 00:00:00`, `21/11/2026` or an out-of-range number, becomes null and is counted
//! as a cast failure, with a few examples kept (as the value was sent): never silently.
//!
//! Numbers, timestamps and dates go through Arrow's cast kernels (`arrow::compute::cast` with
//! `safe` on: a value that does not parse becomes null). Values with a zone are first rewritten
//! as the London wall-clock text (or date) they name; a column without one is not copied.
//! Booleans do not go through Arrow: its kernel also takes prefixes and other words (`tr`,
//! `fals`, `y`, `on`, `of`), which would let junk through, so this module matches the table
//! above exactly.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::error::ArrowError;
use common::dictionary::ColumnType;
use common::layout::parse_london_timestamp;

/// How many failed values a column keeps as examples.
pub const MAX_EXAMPLES: usize = 3;
/// Examples longer than this many characters are cut, so a log line stays a line.
const MAX_EXAMPLE_CHARS: usize = 40;

/// A cast column and the values that did not cast.
#[derive(Debug, Clone)]
pub struct Cast {
    pub array: ArrayRef,
    /// Values that were present (not null, not blank) but did not cast, now null.
    pub failures: usize,
    /// Up to [`MAX_EXAMPLES`] of them, in row order.
    pub examples: Vec<String>,
}

/// Casts a text column to `to`. `Err` only when `values` is not text or Arrow refuses the cast
/// itself (never for a value that does not parse: that is a counted failure).
pub fn cast_text(values: &dyn Array, to: ColumnType) -> Result<Cast, ArrowError> {
    let Some(text) = values.as_string_opt::<i32>() else {
        return Err(ArrowError::CastError(format!(
            "expected a text column to cast to {}, found {}",
            to.name(),
            values.data_type()
        )));
    };
    let text = normalize(text);
    let london = match to {
        ColumnType::Timestamp | ColumnType::Date => to_london(&text, to),
        _ => None,
    };
    let array: ArrayRef = match to {
        ColumnType::Boolean => Arc::new(
            text.iter()
                .map(|v| v.and_then(parse_bool))
                .collect::<BooleanArray>(),
        ),
        _ => cast_with_options(
            london.as_ref().unwrap_or(&text),
            &to.data_type(),
            &CastOptions {
                safe: true,
                ..Default::default()
            },
        )?,
    };
    let failures = array.null_count() - text.null_count();
    let examples = if failures == 0 {
        Vec::new()
    } else {
        (0..text.len())
            .filter(|&i| text.is_valid(i) && array.is_null(i))
            .take(MAX_EXAMPLES)
            .map(|i| example(text.value(i)))
            .collect()
    };
    Ok(Cast {
        array,
        failures,
        examples,
    })
}

/// Trims every value and makes blank ones null, copying only when something changes.
fn normalize(text: &StringArray) -> StringArray {
    let untouched = text
        .iter()
        .flatten()
        .all(|v| !v.is_empty() && v.trim().len() == v.len());
    if untouched {
        return text.clone();
    }
    text.iter()
        .map(|v| v.map(str::trim).filter(|v| !v.is_empty()))
        .collect()
}

/// For a timestamp or date column with values that are not plain date-and-time text (see
/// [`is_plain`]): the column with each of those rewritten as London wall-clock text (a date
/// column: the London date), read by [`parse_london_timestamp`], or null when it cannot read
/// it. `None` when every value is plain, the usual case: nothing is copied.
fn to_london(text: &StringArray, to: ColumnType) -> Option<StringArray> {
    if text.iter().flatten().all(is_plain) {
        return None;
    }
    let format = match to {
        ColumnType::Date => "%Y-%m-%d",
        _ => "%Y-%m-%d %H:%M:%S%.f",
    };
    Some(
        text.iter()
            .map(|value| {
                let value = value?;
                if is_plain(value) {
                    return Some(Cow::Borrowed(value));
                }
                let at = parse_london_timestamp(value)?;
                Some(Cow::Owned(at.format(format).to_string()))
            })
            .collect(),
    )
}

/// True for text that can only be a date or a zoneless date and time: digits, `:` and `.`,
/// `-` within the date, and at most one ` ` or `T` between date and time. Everything Tascomi
/// sends is plain; a zone (`Z`, `+01:00`, `-05:00`) never is.
fn is_plain(value: &str) -> bool {
    let mut in_time = false;
    value.bytes().all(|b| match b {
        b'0'..=b'9' | b':' | b'.' => true,
        b'-' => !in_time,
        b' ' | b'T' => !std::mem::replace(&mut in_time, true),
        _ => false,
    })
}

/// The accepted boolean words; see the module docs.
pub fn parse_bool(value: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["t", "true", "1", "yes"];
    const FALSE: [&str; 4] = ["f", "false", "0", "no"];
    if TRUE.iter().any(|w| w.eq_ignore_ascii_case(value)) {
        Some(true)
    } else if FALSE.iter().any(|w| w.eq_ignore_ascii_case(value)) {
        Some(false)
    } else {
        None
    }
}

fn example(value: &str) -> String {
    if value.chars().count() <= MAX_EXAMPLE_CHARS {
        value.to_owned()
    } else {
        let cut: String = value.chars().take(MAX_EXAMPLE_CHARS).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Float32Array, Float64Array, Int32Array, Int64Array};
    use arrow::datatypes::{Date32Type, TimestampMicrosecondType};
    use chrono::{NaiveDate, NaiveDateTime};

    fn text(values: &[Option<&str>]) -> StringArray {
        values.iter().copied().collect()
    }

    /// Casts each value alone and returns what it became, rendered by `show`.
    fn each<T: PartialEq + std::fmt::Debug>(
        to: ColumnType,
        cases: &[(&str, Option<T>)],
        show: impl Fn(&ArrayRef) -> Option<T>,
    ) {
        for (input, expected) in cases {
            let cast = cast_text(&text(&[Some(input)]), to).unwrap();
            assert_eq!(&show(&cast.array), expected, "{input:?} as {}", to.name());
            let blank = input.trim().is_empty();
            let expect_failure = expected.is_none() && !blank;
            assert_eq!(
                cast.failures,
                usize::from(expect_failure),
                "{input:?} failure count"
            );
        }
    }

    fn value_of<A: Array + 'static, T>(f: impl Fn(&A) -> T) -> impl Fn(&ArrayRef) -> Option<T> {
        move |array| {
            let typed = array.as_any().downcast_ref::<A>().unwrap();
            typed.is_valid(0).then(|| f(typed))
        }
    }

    #[test]
    fn booleans_accept_exactly_the_documented_words() {
        each(
            ColumnType::Boolean,
            &[
                ("t", Some(true)),
                ("T", Some(true)),
                ("true", Some(true)),
                ("TRUE", Some(true)),
                ("True", Some(true)),
                ("1", Some(true)),
                ("yes", Some(true)),
                ("YES", Some(true)),
                (" yes ", Some(true)),
                ("f", Some(false)),
                ("F", Some(false)),
                ("false", Some(false)),
                ("False", Some(false)),
                ("0", Some(false)),
                ("no", Some(false)),
                ("No", Some(false)),
                ("", None),
                ("   ", None),
                ("y", None),
                ("n", None),
                ("on", None),
                ("off", None),
                ("tr", None),
                ("fals", None),
                ("2", None),
                ("-1", None),
                ("yes please", None),
            ],
            value_of(|a: &BooleanArray| a.value(0)),
        );
    }

    #[test]
    fn integers_take_digits_with_a_sign_and_surrounding_spaces() {
        each(
            ColumnType::Integer,
            &[
                ("42", Some(42)),
                ("-7", Some(-7)),
                ("+3", Some(3)),
                ("0", Some(0)),
                ("007", Some(7)),
                (" 12 ", Some(12)),
                ("\t12\n", Some(12)),
                ("2147483647", Some(i32::MAX)),
                ("-2147483648", Some(i32::MIN)),
                ("2147483648", None),
                ("12.0", None),
                ("1.5", None),
                ("1,000", None),
                ("1e3", None),
                ("12abc", None),
                ("abc", None),
                ("", None),
                (" ", None),
            ],
            value_of(|a: &Int32Array| a.value(0)),
        );
        each(
            ColumnType::Long,
            &[
                ("5300000001", Some(5_300_000_001i64)),
                (" -9223372036854775808", Some(i64::MIN)),
                ("9223372036854775808", None),
                ("533 100", None),
            ],
            value_of(|a: &Int64Array| a.value(0)),
        );
    }

    #[test]
    fn floats_take_decimal_numbers() {
        each(
            ColumnType::Double,
            &[
                ("1.5", Some(1.5)),
                ("-0.25", Some(-0.25)),
                ("42", Some(42.0)),
                (".5", Some(0.5)),
                ("2e3", Some(2000.0)),
                ("1.5E-2", Some(0.015)),
                (" 3.75 ", Some(3.75)),
                ("inf", Some(f64::INFINITY)),
                ("1,5", None),
                ("£5", None),
                ("1.2.3", None),
                ("five", None),
                ("", None),
            ],
            value_of(|a: &Float64Array| a.value(0)),
        );
        each(
            ColumnType::Float,
            &[("2.5", Some(2.5f32)), ("10", Some(10.0)), ("x", None)],
            value_of(|a: &Float32Array| a.value(0)),
        );
        let nan = cast_text(&text(&[Some("NaN")]), ColumnType::Double).unwrap();
        assert!(
            nan.array
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(0)
                .is_nan()
        );
    }

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[test]
    fn timestamps_take_space_or_t_with_optional_fraction() {
        let micros = |a: &ArrayRef| {
            let typed = a.as_primitive::<TimestampMicrosecondType>();
            typed.is_valid(0).then(|| typed.value(0))
        };
        let us = |s: &str| Some(at(s).and_utc().timestamp_micros());
        each(
            ColumnType::Timestamp,
            &[
                ("2026-11-21 10:15:00", us("2026-11-21 10:15:00")),
                ("2026-11-21T10:15:00", us("2026-11-21 10:15:00")),
                ("2026-11-21 10:15:00.5", us("2026-11-21 10:15:00.5")),
                (
                    "2026-11-21 10:15:00.123456",
                    us("2026-11-21 10:15:00.123456"),
                ),
                (
                    "2026-11-21T10:15:00.123456789",
                    us("2026-11-21 10:15:00.123456"),
                ),
                (" 2026-11-21 10:15:00 ", us("2026-11-21 10:15:00")),
                // Summer time is not shifted: the wall-clock time is stored as it reads.
                ("2026-06-21 23:30:00", us("2026-06-21 23:30:00")),
                ("2026-11-21", us("2026-11-21 00:00:00")),
                // A zone names an instant: London's wall-clock time then. In winter London is
                // on UTC, so `Z` reads as written.
                ("2026-11-21T10:15:00Z", us("2026-11-21 10:15:00")),
                ("2026-11-21T10:15:00+01:00", us("2026-11-21 09:15:00")),
                ("2026-11-21 10:15:00z", us("2026-11-21 10:15:00")),
                // In summer London is an hour ahead of UTC.
                ("2026-07-01T11:00:00Z", us("2026-07-01 12:00:00")),
                ("2026-07-01 11:00:00Z", us("2026-07-01 12:00:00")),
                ("2026-07-01T11:00:00+01:00", us("2026-07-01 11:00:00")),
                ("2026-07-01T11:00:00+0100", us("2026-07-01 11:00:00")),
                ("2026-07-01T06:00:00-05:00", us("2026-07-01 12:00:00")),
                ("2026-07-01T23:30:00Z", us("2026-07-02 00:30:00")),
                (
                    " 2026-07-01T11:00:00.123456Z ",
                    us("2026-07-01 12:00:00.123456"),
                ),
                (
                    "2026-07-01T11:00:00.123456789Z",
                    us("2026-07-01 12:00:00.123456"),
                ),
                // The change of the clocks: 01:30Z on 29 March 2026 is 02:30 BST.
                ("2026-03-29T00:30:00Z", us("2026-03-29 00:30:00")),
                ("2026-03-29T01:30:00Z", us("2026-03-29 02:30:00")),
                ("2026-07-01 11:00:00 +01:00", us("2026-07-01 11:00:00")),
                // Zoned forms parse_london_timestamp does not read are failures, not UTC.
                ("2026-07-01T11:00:00 Europe/London", None),
                ("2026-07-01T11:00:00 BST", None),
                ("2026-07-01Z", None),
                ("0000-00-00 00:00:00", None),
                ("2026-13-01 00:00:00", None),
                ("2026-02-30 10:00:00", None),
                ("21/11/2026 10:15", None),
                ("yesterday", None),
                ("", None),
            ],
            micros,
        );
    }

    #[test]
    fn dates_take_iso_dates() {
        let day = |s: &str| {
            let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
            Some(Date32Type::from_naive_date(date))
        };
        each(
            ColumnType::Date,
            &[
                ("2026-11-21", day("2026-11-21")),
                (" 2026-11-21", day("2026-11-21")),
                ("20261121", day("2026-11-21")),
                ("2026-11-21 10:15:00", day("2026-11-21")),
                // A timestamp with a zone: the London date of the instant.
                ("2026-07-01T23:30:00Z", day("2026-07-02")),
                ("2026-07-01T22:59:59Z", day("2026-07-01")),
                ("2026-12-01T23:30:00Z", day("2026-12-01")),
                ("2026-07-02T00:30:00+02:00", day("2026-07-01")),
                ("2026-02-30", None),
                ("21/11/2026", None),
                ("0000-00-00", None),
                ("", None),
            ],
            value_of(|a: &Date32Array| a.value(0)),
        );
    }

    #[test]
    fn failures_are_counted_with_examples_and_nulls_are_not_failures() {
        let values = text(&[
            Some("1"),
            None,
            Some(""),
            Some("x"),
            Some("2"),
            Some("1,000"),
            Some("y"),
            Some("z"),
            Some(&"long ".repeat(20)),
        ]);
        let cast = cast_text(&values, ColumnType::Integer).unwrap();
        assert_eq!(cast.array.len(), 9);
        assert_eq!(cast.array.null_count(), 7);
        assert_eq!(cast.failures, 5);
        assert_eq!(cast.examples, ["x", "1,000", "y"]);
        let long = cast_text(&text(&[Some(&"long ".repeat(20))]), ColumnType::Integer).unwrap();
        assert_eq!(long.examples[0].chars().count(), MAX_EXAMPLE_CHARS + 3);
    }

    #[test]
    fn zoned_values_are_rewritten_alongside_plain_ones_and_examples_keep_the_sent_text() {
        let values = text(&[
            Some("2026-07-01 11:00:00"),
            Some("2026-07-01T11:00:00Z"),
            None,
            Some(" 2026-07-01T11:00:00 Europe/London"),
            Some("2026-06-30"),
            Some("junk"),
        ]);
        let cast = cast_text(&values, ColumnType::Timestamp).unwrap();
        let typed = cast.array.as_primitive::<TimestampMicrosecondType>();
        let micros = |s: &str| at(s).and_utc().timestamp_micros();
        assert_eq!(typed.value(0), micros("2026-07-01 11:00:00"), "as read");
        assert_eq!(typed.value(1), micros("2026-07-01 12:00:00"), "converted");
        assert_eq!(typed.value(4), micros("2026-06-30 00:00:00"));
        assert!(typed.is_null(2) && typed.is_null(3) && typed.is_null(5));
        assert_eq!(cast.failures, 2);
        assert_eq!(cast.examples, ["2026-07-01T11:00:00 Europe/London", "junk"]);

        // Plain Tascomi text takes the fast path: no rewritten copy.
        let plain = text(&[Some("2026-07-01 11:00:00"), Some("2026-07-01T11:00:00.5")]);
        assert!(to_london(&plain, ColumnType::Timestamp).is_none());
        assert!(is_plain("20261121"));
        assert!(!is_plain("2026-07-01T11:00:00Z"));
        assert!(!is_plain("2026-07-01T11:00:00-05:00"));
        assert!(!is_plain("2026-07-01 11:00:00 11"));
    }

    #[test]
    fn a_column_that_is_not_text_is_an_error() {
        let numbers = Int32Array::from(vec![1]);
        let err = cast_text(&numbers, ColumnType::Integer).unwrap_err();
        assert!(err.to_string().contains("expected a text column"), "{err}");
    }
}
