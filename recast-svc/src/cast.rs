//! Text to typed values: the cast semantics of the increment layer, one column at a time.
//!
//! The old Glue jobs cast with Spark's default (non-ANSI) rules, and analysts compare our tables
//! with theirs, so where our rules and Spark's would give another value we take Spark's (the
//! side-by-side table is in `docs/parse-recast.md`). Every text value is first trimmed of
//! surrounding whitespace; a value that is then empty is null (an empty field, not a failed
//! cast). What each type then accepts:
//!
//! | type | accepted | Arrow type |
//! | --- | --- | --- |
//! | boolean | `t`, `true`, `y`, `yes`, `1` and `f`, `false`, `n`, `no`, `0`, in any case (Spark's words) | Boolean |
//! | integer, long | an optional sign and decimal digits, then optionally `.` and digits: the fraction is truncated, as Spark does (`12.7` is 12, `-3.9` is -3, `12.` is 12, `.5` is 0); the result within the type's range | Int32, Int64 |
//! | float, double | what Spark's `DoubleType` cast takes: decimal numbers with an optional exponent (`1.5`, `-0.25`, `.5`, `5.`, `2e3`) and an optional Java suffix (`1.5d`, `2f`); `NaN`, `inf`, `infinity` (either sign, any case) | Float64 for both (the old tables' `double`) |
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
//! store such an instant as UTC. Anything else, for example `1,000`, `1e3` for an integer,
//! `0000-00-00 00:00:00`, `21/11/2026` or an out-of-range number, becomes null.
//!
//! Every value that was not a clean cast is counted ([`Cast::failures`], the stage's
//! `cast_failures` checks), with a few examples kept (as the value was sent): never silently.
//! Not clean is a present value that became null, or an integer whose text lost something to
//! the truncation: a fraction with a digit other than 0 (`12.7`, `-0.5`), or no digit at all
//! (`.`, which Spark reads as 0). `12.0` and `12.` are clean: the number is exactly 12.
//!
//! Integers, floats and booleans are parsed here, by Spark's rules (Arrow's kernels differ:
//! they refuse `12.7` for an integer, take prefixes and other words such as `tr` or `on` for a
//! boolean, and do not take `1.5d`). Timestamps and dates go through Arrow's cast kernel
//! (`arrow::compute::cast` with `safe` on: a value that does not parse becomes null); values
//! with a zone are first rewritten as the London wall-clock text (or date) they name; a column
//! without one is not copied.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::error::ArrowError;
use common::dictionary::ColumnType;
use common::layout::parse_london_timestamp;

/// How many failed values a column keeps as examples.
pub const MAX_EXAMPLES: usize = 3;
/// Examples longer than this many characters are cut, so a log line stays a line.
const MAX_EXAMPLE_CHARS: usize = 40;

/// A cast column and the values that were not a clean cast.
#[derive(Debug, Clone)]
pub struct Cast {
    pub array: ArrayRef,
    /// Values that were present (not null, not blank) but not a clean cast: now null, or an
    /// integer whose fraction was truncated (see the module docs).
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
    // Rows, in order, of values that cast but not cleanly (a truncated fraction).
    let mut truncated = Vec::new();
    let array: ArrayRef = match to {
        ColumnType::Boolean => Arc::new(
            text.iter()
                .map(|v| v.and_then(parse_bool))
                .collect::<BooleanArray>(),
        ),
        ColumnType::Integer => {
            let values = integers(&text, &mut truncated, |n| i32::try_from(n).ok());
            Arc::new(Int32Array::from(values))
        }
        ColumnType::Long => Arc::new(Int64Array::from(integers(&text, &mut truncated, Some))),
        ColumnType::Float | ColumnType::Double => Arc::new(
            text.iter()
                .map(|v| v.and_then(parse_double))
                .collect::<Float64Array>(),
        ),
        ColumnType::Timestamp | ColumnType::Date => {
            let london = to_london(&text, to);
            cast_with_options(
                london.as_ref().unwrap_or(&text),
                &to.data_type(),
                &CastOptions {
                    safe: true,
                    ..Default::default()
                },
            )?
        }
    };
    let failures = array.null_count() - text.null_count() + truncated.len();
    let examples = if failures == 0 {
        Vec::new()
    } else {
        (0..text.len())
            .filter(|&i| {
                (text.is_valid(i) && array.is_null(i)) || truncated.binary_search(&i).is_ok()
            })
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

/// The integers of `text` by [`parse_integer`], each narrowed by `fit` (`None`: out of range);
/// the rows whose cast was not clean are added to `truncated`.
fn integers<T>(
    text: &StringArray,
    truncated: &mut Vec<usize>,
    fit: impl Fn(i64) -> Option<T>,
) -> Vec<Option<T>> {
    text.iter()
        .enumerate()
        .map(|(i, v)| {
            let parsed = v.and_then(parse_integer)?;
            let value = fit(parsed.value)?;
            if !parsed.clean {
                truncated.push(i);
            }
            Some(value)
        })
        .collect()
}

/// An integer read from text, and whether the text held exactly that number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedInteger {
    pub value: i64,
    /// False when a fraction with a digit other than 0 was truncated, or the text had no digit
    /// at all (`.`, `-.`: 0, as Spark reads them).
    pub clean: bool,
}

/// Text (trimmed) to a 64-bit integer as Spark's non-ANSI cast reads it (`UTF8String.toLong`
/// with decimals allowed): an optional sign, ASCII digits, then optionally `.` and digits only,
/// the fraction truncated toward zero. `None` for anything else (`1e3`, `1,000`, `12.5.1`, a
/// lone sign) and beyond the range of a long.
pub fn parse_integer(value: &str) -> Option<ParsedInteger> {
    let bytes = value.as_bytes();
    let (negative, rest) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    if rest.is_empty() {
        return None;
    }
    let (whole, fraction) = match rest.iter().position(|&b| b == b'.') {
        Some(dot) => (&rest[..dot], &rest[dot + 1..]),
        None => (rest, &[][..]),
    };
    if !whole.iter().chain(fraction).all(u8::is_ascii_digit) {
        return None;
    }
    // Accumulated as a negative number, as Spark does, so that the minimum fits.
    let mut result: i64 = 0;
    for &digit in whole {
        result = result
            .checked_mul(10)?
            .checked_sub(i64::from(digit - b'0'))?;
    }
    let value = if negative {
        result
    } else {
        result.checked_neg()?
    };
    let dropped = fraction.iter().any(|&d| d != b'0');
    let digitless = whole.is_empty() && fraction.is_empty();
    Some(ParsedInteger {
        value,
        clean: !(dropped || digitless),
    })
}

/// Text (trimmed) to a double as Spark's non-ANSI `DoubleType` cast reads it: Java's
/// `Double.parseDouble` for decimal numbers (an optional sign, digits with an optional `.` and
/// exponent, an optional `d`/`f` suffix; `NaN` and `Infinity`), then Spark's own words `inf`,
/// `infinity` (either sign) and `nan`, in any case. `None` for anything else. Java's hexadecimal
/// floats (`0x1p3`) are not read (documented in `docs/parse-recast.md`).
pub fn parse_double(value: &str) -> Option<f64> {
    let word = |w: &str| value.eq_ignore_ascii_case(w);
    if ["inf", "+inf", "infinity", "+infinity"]
        .into_iter()
        .any(word)
    {
        return Some(f64::INFINITY);
    }
    if ["-inf", "-infinity"].into_iter().any(word) {
        return Some(f64::NEG_INFINITY);
    }
    if word("nan") || value == "+NaN" || value == "-NaN" {
        return Some(f64::NAN);
    }
    let number = value.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(value);
    // Rust's grammar for these characters is Java's: digits with at least one before or after
    // the `.`, an exponent with digits; its words (`inf`, `nan`) cannot get past this filter.
    if !number
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    number.parse::<f64>().ok()
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

/// The accepted boolean words, Spark's (`StringUtils.isTrueString` / `isFalseString`); see the
/// module docs.
pub fn parse_bool(value: &str) -> Option<bool> {
    const TRUE: [&str; 5] = ["t", "true", "y", "yes", "1"];
    const FALSE: [&str; 5] = ["f", "false", "n", "no", "0"];
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
    use arrow::array::Date32Array;
    use arrow::datatypes::{Date32Type, TimestampMicrosecondType};
    use chrono::{NaiveDate, NaiveDateTime};

    fn text(values: &[Option<&str>]) -> StringArray {
        values.iter().copied().collect()
    }

    /// Casts each value alone and returns what it became, rendered by `show`. A null from a
    /// value that is not blank is counted as a failure, and nothing else is.
    fn each<T: PartialEq + std::fmt::Debug + Clone>(
        to: ColumnType,
        cases: &[(&str, Option<T>)],
        show: impl Fn(&ArrayRef) -> Option<T>,
    ) {
        let cases: Vec<(&str, Option<T>, bool)> = cases
            .iter()
            .map(|(input, expected)| {
                let failure = expected.is_none() && !input.trim().is_empty();
                (*input, expected.clone(), failure)
            })
            .collect();
        each_counted(to, &cases, show);
    }

    /// As [`each`], with whether each value counts as not clean given.
    fn each_counted<T: PartialEq + std::fmt::Debug>(
        to: ColumnType,
        cases: &[(&str, Option<T>, bool)],
        show: impl Fn(&ArrayRef) -> Option<T>,
    ) {
        for (input, expected, counted) in cases {
            let cast = cast_text(&text(&[Some(input)]), to).unwrap();
            assert_eq!(&show(&cast.array), expected, "{input:?} as {}", to.name());
            assert_eq!(
                cast.failures,
                usize::from(*counted),
                "{input:?} failure count"
            );
            assert_eq!(
                cast.examples.len(),
                usize::from(*counted),
                "{input:?} examples"
            );
        }
    }

    fn value_of<A: Array + 'static, T>(f: impl Fn(&A) -> T) -> impl Fn(&ArrayRef) -> Option<T> {
        move |array| {
            let typed = array.as_any().downcast_ref::<A>().unwrap();
            typed.is_valid(0).then(|| f(typed))
        }
    }

    /// Spark's words, trimmed, in any case; nothing else (Arrow's kernel would take `tr`,
    /// `on`, `off`).
    #[test]
    fn booleans_accept_exactly_sparks_words() {
        each(
            ColumnType::Boolean,
            &[
                ("t", Some(true)),
                ("T", Some(true)),
                ("true", Some(true)),
                ("TRUE", Some(true)),
                ("True", Some(true)),
                ("y", Some(true)),
                ("Y", Some(true)),
                ("1", Some(true)),
                ("yes", Some(true)),
                ("YES", Some(true)),
                (" yes ", Some(true)),
                ("\tYeS\n", Some(true)),
                ("f", Some(false)),
                ("F", Some(false)),
                ("false", Some(false)),
                ("False", Some(false)),
                ("n", Some(false)),
                ("N", Some(false)),
                ("0", Some(false)),
                ("no", Some(false)),
                ("No", Some(false)),
                (" nO ", Some(false)),
                ("", None),
                ("   ", None),
                ("on", None),
                ("off", None),
                ("tr", None),
                ("fals", None),
                ("ye", None),
                ("2", None),
                ("-1", None),
                ("01", None),
                ("1.0", None),
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
                ("-2147483649", None),
                ("1,000", None),
                ("1e3", None),
                ("12abc", None),
                ("12.5.1", None),
                ("12.e3", None),
                ("12. 5", None),
                ("1 000", None),
                ("0x1F", None),
                ("+", None),
                ("-", None),
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
                ("9223372036854775807", Some(i64::MAX)),
                ("9223372036854775808", None),
                ("-9223372036854775809", None),
                ("99999999999999999999999", None),
                ("533 100", None),
            ],
            value_of(|a: &Int64Array| a.value(0)),
        );
    }

    /// Spark truncates a fraction toward zero; the value is counted as not clean when the
    /// fraction had a digit other than 0, or the text had no digit at all.
    #[test]
    fn integers_truncate_a_fraction_as_spark_does_and_count_it() {
        each_counted(
            ColumnType::Integer,
            &[
                ("12.7", Some(12), true),
                ("-3.9", Some(-3), true),
                ("12.0", Some(12), false),
                ("12.000", Some(12), false),
                ("12.", Some(12), false),
                ("-0.0", Some(0), false),
                ("+1.5", Some(1), true),
                (".5", Some(0), true),
                ("-.5", Some(0), true),
                ("0.001", Some(0), true),
                (".0", Some(0), false),
                (".", Some(0), true),
                ("-.", Some(0), true),
                (" 7.25 ", Some(7), true),
                ("2147483647.9", Some(i32::MAX), true),
                ("-2147483648.9", Some(i32::MIN), true),
                ("2147483648.0", None, true),
                ("12.7x", None, true),
            ],
            value_of(|a: &Int32Array| a.value(0)),
        );
        each_counted(
            ColumnType::Long,
            &[
                ("5300000001.99", Some(5_300_000_001i64), true),
                ("-9223372036854775808.5", Some(i64::MIN), true),
                ("9223372036854775808.0", None, true),
            ],
            value_of(|a: &Int64Array| a.value(0)),
        );
        // A column: the truncated values and the nulls are counted and exemplified in row
        // order; the clean ones are not.
        let values = text(&[
            Some("1"),
            Some("2.5"),
            Some("x"),
            Some("3.0"),
            None,
            Some("-4.75"),
        ]);
        let cast = cast_text(&values, ColumnType::Integer).unwrap();
        let ints = cast.array.as_primitive::<arrow::datatypes::Int32Type>();
        assert_eq!(
            ints.iter().collect::<Vec<_>>(),
            [Some(1), Some(2), None, Some(3), None, Some(-4)]
        );
        assert_eq!(cast.failures, 3);
        assert_eq!(cast.examples, ["2.5", "x", "-4.75"]);
    }

    #[test]
    fn parse_integer_reads_as_sparks_to_long() {
        let read = |s: &str| parse_integer(s).map(|p| (p.value, p.clean));
        assert_eq!(read("12.7"), Some((12, false)));
        assert_eq!(read("-12.7"), Some((-12, false)));
        assert_eq!(read("12"), Some((12, true)));
        assert_eq!(read("."), Some((0, false)));
        assert_eq!(read("+"), None);
        assert_eq!(read(""), None);
        assert_eq!(read("1.2.3"), None);
        assert_eq!(read("-9223372036854775808"), Some((i64::MIN, true)));
        assert_eq!(read("9223372036854775808"), None);
    }

    /// `float` and `double` alike: 64-bit doubles, read as Spark's `DoubleType` cast reads.
    #[test]
    fn floats_and_doubles_take_decimal_numbers_as_doubles() {
        for to in [ColumnType::Double, ColumnType::Float] {
            assert_eq!(to.data_type(), arrow::datatypes::DataType::Float64);
            each(
                to,
                &[
                    ("1.5", Some(1.5)),
                    ("-0.25", Some(-0.25)),
                    ("42", Some(42.0)),
                    (".5", Some(0.5)),
                    ("5.", Some(5.0)),
                    ("+.5", Some(0.5)),
                    ("2e3", Some(2000.0)),
                    ("1.5E-2", Some(0.015)),
                    ("1e+2", Some(100.0)),
                    (" 3.75 ", Some(3.75)),
                    // More digits than a float holds: the double, not a float's rounding.
                    ("0.1", Some(0.1)),
                    ("16777217", Some(16_777_217.0)),
                    // Java's suffixes, which Spark's cast takes.
                    ("1.5d", Some(1.5)),
                    ("2f", Some(2.0)),
                    ("2.5D", Some(2.5)),
                    ("1e3F", Some(1000.0)),
                    ("inf", Some(f64::INFINITY)),
                    ("+Infinity", Some(f64::INFINITY)),
                    ("INF", Some(f64::INFINITY)),
                    ("-inf", Some(f64::NEG_INFINITY)),
                    ("-Infinity", Some(f64::NEG_INFINITY)),
                    ("1,5", None),
                    ("£5", None),
                    ("1.2.3", None),
                    (".", None),
                    ("e5", None),
                    ("1e", None),
                    ("1dd", None),
                    ("d", None),
                    ("infd", None),
                    ("five", None),
                    ("", None),
                ],
                value_of(|a: &Float64Array| a.value(0)),
            );
            for nan in ["NaN", "nan", "NAN", "+NaN", "-NaN"] {
                let cast = cast_text(&text(&[Some(nan)]), to).unwrap();
                let value = cast.array.as_primitive::<arrow::datatypes::Float64Type>();
                assert!(value.value(0).is_nan(), "{nan}");
                assert_eq!(cast.failures, 0);
            }
            for not_nan in ["+nan", "-nan", "nan1"] {
                let cast = cast_text(&text(&[Some(not_nan)]), to).unwrap();
                assert!(cast.array.is_null(0), "{not_nan}");
            }
        }
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
