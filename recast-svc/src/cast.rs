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
mod tests;
